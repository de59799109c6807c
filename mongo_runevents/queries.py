"""The arguments of every read, count and delete, checked once into immutable queries.

:class:`~mongo_runevents.base.RunEventStore` turns the arguments of each public
call into one of these objects before any store sees them, so every store
refuses the same input with the same error and answers the same query. A store
implements one primitive per kind of query: the Memory store interprets the
object, the MongoDB store turns it into a filter.

Collections of ids and types (``run_ids``, ``event_types``) are checked into
tuples without duplicates and without ``""`` (which matches nothing); a query
whose filters can match nothing says so (``matches_nothing``), and the base
class answers it without asking the store.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ._json import INT64_MAX
from .errors import InvalidEventError
from .models import AI_REPLY_TYPES, HIDDEN_CALLER_PREFIX, MESSAGE_CATEGORY, id_problem
from .records import AnotherUsersEvent, StoredRecord

# --- single arguments ---------------------------------------------------------------


def check_id(value: Any, name: str) -> str:
    """A thread or run id argument: a non-empty ``str`` and nothing else."""
    if not isinstance(value, str):
        raise InvalidEventError(f"must be a str, got {type(value).__name__}", field=name)
    if not value:
        raise InvalidEventError("must not be empty", field=name)
    problem = id_problem(value)
    if problem is not None:
        raise InvalidEventError(problem, field=name)
    return value


def check_optional_id(value: Any, name: str) -> str | None:
    """An optional id argument (``user_id``, ``category``): ``None`` or a non-empty ``str``."""
    return None if value is None else check_id(value, name)


def check_filter(value: Any, name: str) -> str | None:
    """A value to match (``task_id``): ``None`` or a ``str``; an empty one matches nothing.

    DeerFlow's HTTP endpoints pass query strings through, so ``""`` is a value
    a caller sends, not a bug.
    """
    if value is None or (isinstance(value, str) and not value):
        return value
    return check_id(value, name)


def check_ids(value: Any, name: str) -> tuple[str, ...]:
    """A collection of ids or types (``run_ids``, ``event_types``): any iterable of ``str``.

    DeerFlow passes a ``set``; lists, tuples, frozensets, dict views and
    generators are taken too. A bare ``str`` is refused (it is iterable, but
    passing one is a bug), and so is a mapping. Duplicates and ``""`` (which
    matches nothing) are dropped; the order of first occurrence is kept.
    """
    if isinstance(value, (str, bytes, bytearray, Mapping)) or not isinstance(value, Iterable):
        raise InvalidEventError(
            f"must be a collection of str (a list, set or tuple), got {type(value).__name__}",
            field=name,
        )
    items = list(value)
    for index, item in enumerate(items):
        if not isinstance(item, str):
            raise InvalidEventError(
                f"must be a str, got {type(item).__name__}", field=f"{name}[{index}]"
            )
        problem = id_problem(item) if item else None
        if problem is not None:
            raise InvalidEventError(problem, field=f"{name}[{index}]")
    return tuple(dict.fromkeys(str.__str__(item) for item in items if item))


def check_limit(value: Any, name: str = "limit") -> int:
    """A page size: an ``int`` of at least 1 (``bool`` is not a number here)."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidEventError(f"must be an int, got {type(value).__name__}", field=name)
    if not 1 <= value <= INT64_MAX:
        raise InvalidEventError(f"must be between 1 and 2**63-1, got {value}", field=name)
    return value


def check_cursor(value: Any, name: str) -> int | None:
    """A ``before_seq`` / ``after_seq`` cursor: ``None`` or an ``int`` >= 0."""
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidEventError(f"must be an int or None, got {type(value).__name__}", field=name)
    if not 0 <= value <= INT64_MAX:
        raise InvalidEventError(f"must be between 0 and 2**63-1, got {value}", field=name)
    return value


def is_visible_ai_reply(record: dict[str, Any]) -> bool:
    """Whether a record is an AI reply a user sees (``get_last_visible_ai_seq_by_run``)."""
    caller = record["metadata"].get("caller")
    return (
        record["category"] == MESSAGE_CATEGORY
        and record["event_type"] in AI_REPLY_TYPES
        and not (isinstance(caller, str) and caller.startswith(HIDDEN_CALLER_PREFIX))
    )


def existing_as_seen_by(
    record: StoredRecord, user_id: str | None
) -> StoredRecord | AnotherUsersEvent:
    """What ``put_if_absent`` returns of the run's existing event to a caller acting as ``user_id``.

    The check spans users (one event per thread, run and type), but a caller
    sees only its own user's events: of another user's event (or one with no
    user, to a caller with one) it learns only that it exists, as the key it
    asked about: ``thread_id``, ``run_id``, ``event_type``. No seq, time or content.
    """
    if user_id is None or record.get("user_id") == user_id:
        return record
    return {
        "thread_id": record["thread_id"],
        "run_id": record["run_id"],
        "event_type": record["event_type"],
    }


# --- queries --------------------------------------------------------------------------


@dataclass(frozen=True)
class MessagePage:
    """A page of a thread's messages (or of one run's), with the cursor rules of ``list_messages``.

    With ``after_seq``: the first ``limit`` after it; otherwise the last
    ``limit`` before ``before_seq`` (or the newest). Always returned ascending.
    """

    thread_id: str
    limit: int
    before_seq: int | None = None
    after_seq: int | None = None
    run_id: str | None = None
    user_id: str | None = None

    @property
    def newest_first(self) -> bool:
        """Whether the page is the last ``limit`` of its window (read newest first, then reversed)."""
        return self.after_seq is None


@dataclass(frozen=True)
class RunEvents:
    """The first ``limit`` events of a run after ``after_seq``, every category (``list_events``)."""

    thread_id: str
    run_id: str
    limit: int
    after_seq: int | None = None
    #: ``None``: every type.
    event_types: tuple[str, ...] | None = None
    #: ``None``: any; else events whose ``metadata["task_id"]`` equals it.
    task_id: str | None = None
    user_id: str | None = None

    @property
    def matches_nothing(self) -> bool:
        """Whether the filters exclude every event (an empty type list, an empty task id)."""
        return self.event_types == () or self.task_id == ""


@dataclass(frozen=True)
class ThreadEvents:
    """The thread's first ``limit`` events after ``after_seq``, of one category if given.

    The read behind paging through a whole thread, the live tail and export.
    """

    thread_id: str
    after_seq: int
    limit: int
    category: str | None = None
    user_id: str | None = None


@dataclass(frozen=True)
class EventCount:
    """How many events a thread holds (of one run, of one category, of one user)."""

    thread_id: str
    run_id: str | None = None
    category: str | None = None
    user_id: str | None = None


@dataclass(frozen=True)
class LastVisibleReplies:
    """Per run, the seq of its newest AI reply a user sees."""

    thread_id: str
    run_ids: tuple[str, ...]
    user_id: str | None = None


@dataclass(frozen=True)
class MessageSeqs:
    """The seqs of some messages of a thread, by identity (``get_message_seqs``)."""

    thread_id: str
    identities: tuple[str, ...]
    user_id: str | None = None


@dataclass(frozen=True)
class Deletion:
    """The events to delete: a thread's, or one run's, or only one user's part of either."""

    thread_id: str
    run_id: str | None = None
    user_id: str | None = None

    @property
    def whole_thread(self) -> bool:
        """Whether every event of the thread goes (its numbering then starts again at 1)."""
        return self.run_id is None and self.user_id is None


@dataclass(frozen=True)
class EventKey:
    """One event, by thread and seq (``get_event``)."""

    thread_id: str
    seq: int
    user_id: str | None = None
    #: Whether fields stored out of line are read too.
    load_large_fields: bool = True


@dataclass(frozen=True)
class ThreadCursor:
    """Where a page of threads ended: the last thread's activity time and id."""

    updated_at: str
    thread_id: str

    def encode(self) -> str:
        """The opaque text a caller passes back as ``before``."""
        return f"{self.updated_at}|{self.thread_id}"

    @classmethod
    def decode(cls, text: Any) -> ThreadCursor:
        """A cursor from what :meth:`encode` made; anything else is an input error."""
        if isinstance(text, str):
            updated_at, separator, thread_id = text.partition("|")
            if separator and thread_id:
                return cls(updated_at, thread_id)
        raise InvalidEventError("is not a cursor this store returned", field="before")


@dataclass(frozen=True)
class ThreadList:
    """A page of threads, newest activity first (``list_threads``)."""

    limit: int
    before: ThreadCursor | None = None
    user_id: str | None = None


# --- checking arguments into queries ------------------------------------------------------


def message_page(
    thread_id: Any,
    limit: Any,
    before_seq: Any,
    after_seq: Any,
    user_id: Any,
    run_id: Any = None,
    *,
    by_run: bool = False,
) -> MessagePage:
    """The query of ``list_messages`` (or, ``by_run``, of ``list_messages_by_run``)."""
    thread = check_id(thread_id, "thread_id")
    run = check_id(run_id, "run_id") if by_run else None
    return MessagePage(
        thread,
        check_limit(limit),
        check_cursor(before_seq, "before_seq"),
        check_cursor(after_seq, "after_seq"),
        run,
        check_optional_id(user_id, "user_id"),
    )


def run_events(
    thread_id: Any,
    run_id: Any,
    event_types: Any,
    limit: Any,
    task_id: Any,
    after_seq: Any,
    user_id: Any,
) -> RunEvents:
    """The query of ``list_events``."""
    return RunEvents(
        check_id(thread_id, "thread_id"),
        check_id(run_id, "run_id"),
        check_limit(limit),
        check_cursor(after_seq, "after_seq"),
        None if event_types is None else check_ids(event_types, "event_types"),
        check_filter(task_id, "task_id"),
        check_optional_id(user_id, "user_id"),
    )


def thread_events(
    thread_id: Any, after_seq: Any, category: Any, user_id: Any, limit: Any
) -> ThreadEvents:
    """The query of ``read_after``."""
    cursor = check_cursor(after_seq, "after_seq")
    return ThreadEvents(
        check_id(thread_id, "thread_id"),
        0 if cursor is None else cursor,
        check_limit(limit),
        check_optional_id(category, "category"),
        check_optional_id(user_id, "user_id"),
    )


def event_count(thread_id: Any, run_id: Any, category: Any, user_id: Any) -> EventCount:
    """The query of ``count_events`` and ``count_messages``."""
    return EventCount(
        check_id(thread_id, "thread_id"),
        check_optional_id(run_id, "run_id"),
        check_optional_id(category, "category"),
        check_optional_id(user_id, "user_id"),
    )


def last_visible_replies(thread_id: Any, run_ids: Any, user_id: Any) -> LastVisibleReplies:
    """The query of ``get_last_visible_ai_seq_by_run``."""
    return LastVisibleReplies(
        check_id(thread_id, "thread_id"),
        check_ids(run_ids, "run_ids"),
        check_optional_id(user_id, "user_id"),
    )


def message_seqs(thread_id: Any, identities: Any, user_id: Any) -> MessageSeqs:
    """The query of ``get_message_seqs``: identities are any collection of ``str``.

    They are not ids (an identity is a prefix and an id), so only their type is
    checked: one no message can have is simply not found. Duplicates and ``""``
    are dropped.
    """
    if isinstance(identities, (str, bytes, bytearray, Mapping)) or not isinstance(
        identities, Iterable
    ):
        raise InvalidEventError(
            f"must be a collection of str (a list, set or tuple), got {type(identities).__name__}",
            field="identities",
        )
    items = list(identities)
    for index, item in enumerate(items):
        if not isinstance(item, str):
            raise InvalidEventError(
                f"must be a str, got {type(item).__name__}", field=f"identities[{index}]"
            )
    return MessageSeqs(
        check_id(thread_id, "thread_id"),
        tuple(dict.fromkeys(str.__str__(item) for item in items if item)),
        check_optional_id(user_id, "user_id"),
    )


def deletion(thread_id: Any, run_id: Any, user_id: Any, *, by_run: bool) -> Deletion:
    """The query of ``delete_by_thread`` (or, ``by_run``, of ``delete_by_run``)."""
    thread = check_id(thread_id, "thread_id")
    run = check_id(run_id, "run_id") if by_run else None
    return Deletion(thread, run, check_optional_id(user_id, "user_id"))


def event_key(thread_id: Any, seq: Any, user_id: Any, load_large_fields: Any) -> EventKey:
    """The query of ``get_event``."""
    thread = check_id(thread_id, "thread_id")
    number = check_cursor(seq, "seq")
    if number is None or number < 1:
        raise InvalidEventError(f"must be an int of at least 1, got {seq!r}", field="seq")
    if not isinstance(load_large_fields, bool):
        raise InvalidEventError("must be a bool", field="load_large_fields")
    return EventKey(thread, number, check_optional_id(user_id, "user_id"), load_large_fields)


def thread_list(limit: Any, before: Any, user_id: Any) -> ThreadList:
    """The query of ``list_threads``."""
    return ThreadList(
        check_limit(limit),
        None if before is None else ThreadCursor.decode(before),
        check_optional_id(user_id, "user_id"),
    )
