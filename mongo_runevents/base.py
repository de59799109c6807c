"""The storage interface for the event streams of agent runs: one class, every store's shared logic.

A *thread* is a conversation; a *run* is one execution of the agent inside it.
Everything a run does is an event: the chat messages a UI shows
(``category="message"``) and the traces kept for debugging and audit (any
other category). Both go through this one interface; ``category`` tells them
apart. The store numbers each thread's events with ``seq``: 1, 2, 3, ... in the
order they were written, and readers page through a thread by ``seq``.

:class:`RunEventStore` holds, in this order: DeerFlow's interface (writes,
reads, deletes), the operators' and viewers' methods (single reads, thread
listings, the live tail of :mod:`mongo_runevents.tail`, export through
:mod:`mongo_runevents.paging`, import by the rules of
:mod:`mongo_runevents.importing`), the life cycle, and last the primitives a
store implements, one per kind of query. Each public method checks its
arguments once (events into their validated fields, :data:`~mongo_runevents.fields.EventFields`,
everything else into a query of :mod:`mongo_runevents.queries`) and calls
one primitive: the Memory store interprets the query, the MongoDB store turns
it into a filter. So the stores cannot disagree about input.

The behaviour every store must show is in ``docs/semantics.md`` and is checked
by the conformance suite in ``tests/conformance/``.
"""

from __future__ import annotations

import abc
import asyncio
import functools
import math
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable, Mapping
from types import TracebackType
from typing import Any, TypeVar

from . import paging, queries
from ._json import JsonDefault
from .errors import ImportConflictError, InvalidEventError, StoreClosedError
from .fields import EventFields
from .importing import (
    ON_CONFLICT,
    ImportConflict,
    ImportLookup,
    ImportResult,
    OnConflict,
    Planned,
    Renumbered,
    StoredChunk,
    ThreadHoldings,
    chunks,
    dry_run_seqs,
    plan_import,
)
from .models import (
    MESSAGE_CATEGORY,
    imported_event,
    new_event_from_arguments_yielding,
    new_events_yielding,
)
from .policy import WritePolicy
from .queries import (
    Deletion,
    EventCount,
    EventKey,
    LastVisibleReplies,
    MessagePage,
    MessageSeqs,
    RunEvents,
    ThreadEvents,
    ThreadList,
)
from .records import AnotherUsersEvent, LookedUpRecord, StoredRecord
from .tail import NewsWaiter, follow
from .telemetry import observed

__all__ = ["PAGE_SIZE", "TAIL_READS", "ImportResult", "RunEventStore"]

T = TypeVar("T")

#: Records read per query when the store walks a whole thread (export, tail).
PAGE_SIZE = 500
#: How many of a store's live tails read at once (their other time is spent
#: waiting, which takes no connection: see :mod:`mongo_runevents.mongo.changes`).
#: A write to a thread wakes all its tails; with this bound they take at most
#: this many of the driver's connections (100 by default), and the rest of the
#: store's calls still find one.
TAIL_READS = 8


class RunEventStore(abc.ABC):
    """Where agent servers keep the events of their runs.

    Every implementation guarantees that

    1. an event returned by ``put`` / ``put_batch`` is seen by every later read;
    2. ``seq`` is unique and strictly increasing within a thread, in write order;
    3. ``list_messages`` returns only ``category == "message"`` events;
    4. ``list_events`` returns every category of the given run;
    5. every method returns plain dicts with the fields of a
       :class:`~mongo_runevents.RunEvent`, which the caller may mutate freely.

    ``json_default`` and ``max_trace_content`` say how values that are not
    JSON and long trace content are kept (:class:`~mongo_runevents.policy.WritePolicy`).
    A store is an async context manager: leaving the block closes it.
    """

    def __init__(
        self, *, json_default: JsonDefault = str, max_trace_content: int | None = None
    ) -> None:
        self._policy = WritePolicy(json_default, max_trace_content)

    #: Stores that do not call ``__init__`` (test doubles) get the defaults.
    _policy: WritePolicy = WritePolicy()
    _closed: bool = False

    # --- writes ----------------------------------------------------------------------

    @observed("put")
    async def put(
        self,
        *,
        thread_id: str,
        run_id: str,
        event_type: str,
        category: str,
        content: Any = "",
        metadata: dict[str, Any] | None = None,
        created_at: str | None = None,
        event_id: str | None = None,
        user_id: str | None = None,
    ) -> StoredRecord:
        """Store one event; return the stored record, with its new ``seq``.

        ``content`` may be any value: what is not JSON is kept as
        ``json.dumps(..., default=str)`` would keep it (see ``json_default``).
        ``created_at``, when given, must be ISO-8601 and is returned exactly as
        given; by default it is the current UTC time. ``event_id`` is an
        optional idempotency key, unique within the thread: if the thread
        already holds the same event under that key, its stored record is
        returned and nothing is written; if it holds a different one,
        :class:`~mongo_runevents.EventIdConflictError`. ``user_id`` records
        the event's owner (see the read methods).
        """
        event = await new_event_from_arguments_yielding(locals(), self._policy)
        self._check_open()
        return (await self._write([event]))[0]

    @observed("put_batch")
    async def put_batch(self, events: list[dict[str, Any]]) -> list[StoredRecord]:
        """Store several events at once, all or nothing; return their records in input order.

        Each dict has ``put``'s keyword arguments as keys. This is the call a
        run's journal makes when it flushes its buffer. The events of one thread
        get consecutive ``seq`` values in input order; a batch may mix threads.
        Events whose ``event_id`` the thread already holds are not written
        again: their stored records are returned, so a journal may retry a
        batch (even with new events added) without duplicating anything.
        """
        validated = await new_events_yielding(events, self._policy)
        self._check_open()
        return await self._write(validated) if validated else []

    @observed("put_if_absent")
    async def put_if_absent(
        self,
        *,
        thread_id: str,
        run_id: str,
        event_type: str,
        category: str,
        content: Any = "",
        metadata: dict[str, Any] | None = None,
        created_at: str | None = None,
        event_id: str | None = None,
        user_id: str | None = None,
    ) -> tuple[StoredRecord | AnotherUsersEvent, bool]:
        """Store the event unless the run already holds one of the same ``event_type``.

        Returns ``(record, created)``: the new record and ``True``, or the
        oldest existing event of that type in the run and ``False``. The check
        and the write are atomic with respect to every other writer of the
        thread (a ``run.start`` is written once, however many callers race).
        """
        event = await new_event_from_arguments_yielding(locals(), self._policy)
        self._check_open()
        return await self._write_if_absent(event)

    # --- reads -----------------------------------------------------------------------

    @observed("list_messages")
    async def list_messages(
        self,
        thread_id: str,
        *,
        limit: int = 50,
        before_seq: int | None = None,
        after_seq: int | None = None,
        user_id: str | None = None,
    ) -> list[StoredRecord]:
        """Return a page of the thread's messages (``category == "message"``), ascending by ``seq``.

        Cursors are exclusive and need not name an existing event:

        - ``after_seq``: the first ``limit`` messages with ``seq > after_seq``
          (a UI polling for new messages);
        - ``before_seq``: the last ``limit`` messages with ``seq < before_seq``
          (a UI paging back through history);
        - both: the first ``limit`` messages strictly between them;
        - neither: the newest ``limit`` messages.

        With ``user_id``, only that user's events are seen (here and in every
        read, count and delete).
        """
        query = queries.message_page(thread_id, limit, before_seq, after_seq, user_id)
        self._check_open()
        return await self._read_page(query)

    @observed("list_messages_by_run")
    async def list_messages_by_run(
        self,
        thread_id: str,
        run_id: str,
        *,
        limit: int = 50,
        before_seq: int | None = None,
        after_seq: int | None = None,
        user_id: str | None = None,
    ) -> list[StoredRecord]:
        """Return a page of one run's messages, ascending, with the cursor rules of ``list_messages``."""
        query = queries.message_page(
            thread_id, limit, before_seq, after_seq, user_id, run_id, by_run=True
        )
        self._check_open()
        return await self._read_page(query)

    @observed("list_events")
    async def list_events(
        self,
        thread_id: str,
        run_id: str,
        *,
        event_types: Iterable[str] | None = None,
        limit: int = 500,
        task_id: str | None = None,
        after_seq: int | None = None,
        user_id: str | None = None,
    ) -> list[StoredRecord]:
        """Return the first ``limit`` events of a run, every category, ascending by ``seq``.

        ``event_types`` (any collection of str) keeps only those types; ``None``
        keeps all, and an empty one matches nothing. ``task_id`` keeps the
        events whose ``metadata["task_id"]`` equals it (``""`` matches
        nothing). ``after_seq`` starts after that seq, so a caller can page
        through a run of any length.
        """
        query = queries.run_events(
            thread_id, run_id, event_types, limit, task_id, after_seq, user_id
        )
        self._check_open()
        return [] if query.matches_nothing else await self._read_run(query)

    @observed("count_messages")
    async def count_messages(self, thread_id: str, *, user_id: str | None = None) -> int:
        """Return how many messages (``category == "message"``) the thread holds."""
        query = queries.event_count(thread_id, None, MESSAGE_CATEGORY, user_id)
        self._check_open()
        return await self._count(query)

    @observed("get_last_visible_ai_seq_by_run")
    async def get_last_visible_ai_seq_by_run(
        self, thread_id: str, run_ids: Iterable[str], *, user_id: str | None = None
    ) -> dict[str, int]:
        """Per run, the seq of its newest AI reply a user sees; runs without one are left out.

        ``run_ids`` is any collection of str (DeerFlow passes a ``set``). An AI
        reply is a message whose ``event_type`` is ``llm.ai.response`` (or the
        legacy ``ai_message``); it is visible unless its ``metadata["caller"]``
        starts with ``middleware:``.
        """
        query = queries.last_visible_replies(thread_id, run_ids, user_id)
        self._check_open()
        return await self._last_visible_replies(query) if query.run_ids else {}

    @observed("get_message_seqs")
    async def get_message_seqs(
        self, thread_id: str, identities: Iterable[str], *, user_id: str | None = None
    ) -> dict[str, int]:
        """The seq of each already stored message of the thread, by its identity.

        An identity is DeerFlow's (:func:`~mongo_runevents.identities.message_identity`):
        ``"tool:<tool_call_id>"`` for a tool result, ``"message:<id>"`` for any
        other message with an id (a human message's ``<id>__user`` counts as
        ``<id>``). Only ``category == "message"`` events are found; identities
        not found are left out; when several messages share an identity, the
        earliest seq wins. Each identity is one index look-up, whatever the
        thread's length.
        """
        query = queries.message_seqs(thread_id, identities, user_id)
        self._check_open()
        return await self._message_seqs(query) if query.identities else {}

    # --- deletes -----------------------------------------------------------------------

    @observed("delete_by_thread")
    async def delete_by_thread(self, thread_id: str, *, user_id: str | None = None) -> int:
        """Delete every event of a thread and return how many there were.

        The thread's numbering starts again at 1 afterwards; with ``user_id``,
        only that user's events are deleted, and the numbering goes on unless
        that left the thread empty.
        """
        query = queries.deletion(thread_id, None, user_id, by_run=False)
        self._check_open()
        return await self._delete(query)

    @observed("delete_by_run")
    async def delete_by_run(
        self, thread_id: str, run_id: str, *, user_id: str | None = None
    ) -> int:
        """Delete every event of one run and return how many there were.

        The thread's numbering is not reset: a deleted ``seq`` is never reused.
        """
        query = queries.deletion(thread_id, run_id, user_id, by_run=True)
        self._check_open()
        return await self._delete(query)

    # --- operators' and viewers' methods ------------------------------------------

    @observed("read_after")
    async def read_after(
        self,
        thread_id: str,
        after_seq: int,
        category: str | None = None,
        user_id: str | None = None,
        limit: int = PAGE_SIZE,
    ) -> list[StoredRecord]:
        """The thread's first ``limit`` events after ``after_seq`` (of ``category``, if given).

        The read behind :meth:`watch`, :meth:`export_events` and any walk
        through a whole thread.
        """
        query = queries.thread_events(thread_id, after_seq, category, user_id, limit)
        self._check_open()
        return await self._read_after(query)

    @observed("get_event")
    async def get_event(
        self,
        thread_id: str,
        seq: int,
        *,
        user_id: str | None = None,
        load_large_fields: bool = True,
    ) -> LookedUpRecord | None:
        """One event by its seq, or ``None``.

        With ``load_large_fields=False``, fields stored out of line (events past
        the document size limit) come back as ``None`` and the record has an
        extra key ``large_fields`` naming them and their sizes in bytes, so a
        viewer can show an event without loading megabytes it may not open.
        """
        query = queries.event_key(thread_id, seq, user_id, load_large_fields)
        self._check_open()
        return await self._get_event(query)

    @observed("list_threads")
    async def list_threads(
        self, *, limit: int = 50, before: str | None = None, user_id: str | None = None
    ) -> list[dict[str, Any]]:
        """A page of threads, newest activity first: ``thread_id``, ``last_seq``, ``updated_at``, ``cursor``.

        Pass the last row's ``cursor`` as ``before`` for the next page. With
        ``user_id``, only threads that user has written to.
        """
        query = queries.thread_list(limit, before, user_id)
        self._check_open()
        return await self._list_threads(query)

    @observed("get_thread")
    async def get_thread(self, thread_id: str) -> dict[str, Any] | None:
        """The thread's numbering: ``last_seq``, ``generation`` and ``updated_at``; ``None`` if unknown.

        ``generation`` counts how often the thread was reset (deleted whole, or
        emptied by a per-user delete), after which its seqs start again at 1:
        a reader polling with ``after_seq`` compares it to tell a reset from
        "no news". :meth:`watch` does so by itself.
        """
        query = queries.check_id(thread_id, "thread_id")
        self._check_open()
        return await self._thread_info(query)

    @observed("count_events")
    async def count_events(
        self,
        thread_id: str,
        *,
        run_id: str | None = None,
        category: str | None = None,
        user_id: str | None = None,
    ) -> int:
        """How many events the thread (or one run of it, or one category) holds."""
        query = queries.event_count(thread_id, run_id, category, user_id)
        self._check_open()
        return await self._count(query)

    async def watch(
        self,
        thread_id: str,
        *,
        after_seq: int | None = None,
        category: str | None = None,
        user_id: str | None = None,
        poll_interval: float = 0.1,
        max_poll_interval: float = 2.0,
    ) -> AsyncGenerator[StoredRecord, None]:
        """Yield the thread's events after ``after_seq``, then new ones as they are written.

        Each event once, in seq order, until the caller stops iterating. When
        the thread is reset meanwhile (``delete_by_thread``), the tail notices
        (its :meth:`get_thread` generation changed) and goes on from the start
        of the new thread, whose seqs begin again at 1.
        ``category="message"`` follows what a chat UI shows. Where the store
        can say that a thread changed (a change stream, the Memory store's own
        writes) the tail waits for that; elsewhere it polls with back-off from
        ``poll_interval`` to ``max_poll_interval`` seconds. See
        :mod:`mongo_runevents.tail`.
        """
        query = queries.thread_events(thread_id, after_seq, category, user_id, PAGE_SIZE)
        first = _interval(poll_interval, "poll_interval")
        longest = max(first, _interval(max_poll_interval, "max_poll_interval"))
        self._check_open()
        slots = self._tail_reads()
        async for record in follow(
            functools.partial(_bounded, slots, self._read_after),
            query,
            self._news(query.thread_id, longest),
            functools.partial(_bounded, slots, self._generation, query.thread_id),
            poll_interval=first,
            max_poll_interval=longest,
        ):
            yield record

    def _tail_reads(self) -> asyncio.Semaphore:
        """The store's bound on its live tails' concurrent reads (:data:`TAIL_READS`)."""
        loop = asyncio.get_running_loop()
        held: tuple[Any, asyncio.Semaphore] | None = self.__dict__.get("_tail_read_slots")
        if held is None or held[0] is not loop:  # one per event loop the store is used on
            held = self.__dict__["_tail_read_slots"] = (loop, asyncio.Semaphore(TAIL_READS))
        return held[1]

    async def _generation(self, thread_id: str) -> int:
        info = await self._thread_info(thread_id)
        return 0 if info is None else int(info["generation"])

    async def export_events(
        self, thread_id: str | None = None, *, page_size: int = PAGE_SIZE
    ) -> AsyncGenerator[StoredRecord, None]:
        """Yield every stored record of one thread, or of all threads, in (thread, seq) order.

        Close it (``contextlib.aclosing``) when stopping early.
        """
        if thread_id is not None:
            queries.check_id(thread_id, "thread_id")
        queries.check_limit(page_size, "page_size")
        self._check_open()
        threads = paging.single(thread_id) if thread_id else self._all_thread_ids(page_size)
        async for thread in threads:
            query = ThreadEvents(thread, 0, page_size)
            async for record in paging.walk(self._read_after, query):
                yield record

    async def _all_thread_ids(self, page_size: int) -> AsyncIterator[str]:
        after: str | None = None
        while True:
            page = await self._thread_ids(after, page_size)
            for thread_id in page:
                yield thread_id
            if len(page) < page_size:
                return
            after = page[-1]

    @observed("import_events")
    async def import_events(
        self,
        records: Iterable[Mapping[str, Any]],
        *,
        on_conflict: OnConflict = "renumber",
        dry_run: bool = False,
    ) -> ImportResult:
        """Store records exported elsewhere, keeping their seqs and timestamps; never lose one.

        Each record needs the fields of a stored record, ``seq`` and
        ``created_at`` included; everything is validated before anything is
        written. A record whose thread holds the same event is already there
        (so re-running an import never duplicates); a different event on a
        taken seq is a conflict. ``on_conflict``: ``"renumber"`` (default)
        stores every event, numbering the new records of a thread with a
        conflict after its last seq in the order (seq, ``created_at``, input
        position); ``"skip"`` leaves conflicting records out; ``"stop"``
        raises :class:`~mongo_runevents.errors.ImportConflictError` before
        writing anything. ``dry_run=True`` says what would happen and writes
        nothing. The rules: :mod:`mongo_runevents.importing`.
        """
        if isinstance(records, (str, bytes, Mapping)) or not isinstance(records, Iterable):
            raise InvalidEventError(
                f"import_events takes an iterable of records, got {type(records).__name__}",
                field="records",
            )
        if on_conflict not in ON_CONFLICT:
            raise InvalidEventError(
                f"must be one of {', '.join(map(repr, ON_CONFLICT))}, got {on_conflict!r}",
                field="on_conflict",
            )
        if not isinstance(dry_run, bool):
            raise InvalidEventError(
                f"must be a bool, got {type(dry_run).__name__}", field="dry_run"
            )
        batch = [
            imported_event(record, index, self._policy) for index, record in enumerate(records)
        ]
        self._check_open()
        if not batch:
            return ImportResult(dry_run=dry_run)
        plan = await plan_import(batch, self._import_lookup, on_conflict)
        result = plan.result
        result.dry_run = dry_run
        if on_conflict == "stop" and result.conflicts:
            raise ImportConflictError(_conflicts_text(result.conflicts), conflicts=result.conflicts)
        for thread in plan.threads:
            if dry_run:
                for item, planned in zip(thread.to_store, dry_run_seqs(thread), strict=True):
                    _stored_as(result, thread.thread_id, item, planned)
                continue
            renumber = thread.renumber
            for chunk in chunks(thread):
                stored = await self._import_chunk(
                    thread.thread_id, [(item.event, item.seq) for item in chunk], renumber
                )
                for item, given in zip(chunk, stored.seqs, strict=True):
                    _stored_as(result, thread.thread_id, item, given)
                    # Once a chunk moved, the rest of the thread follows it, in order.
                    renumber = renumber or (given is not None and given != item.seq)
        return result

    # --- life cycle -------------------------------------------------------------------

    async def close(self) -> None:
        """Release what the store owns; later calls raise :class:`~mongo_runevents.StoreClosedError`."""
        self._closed = True

    async def __aenter__(self) -> RunEventStore:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    # --- the primitives a store implements, one per kind of query ------------------
    #
    # Each takes a query of :mod:`mongo_runevents.queries` that was already checked.

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosedError("the store is closed")

    @abc.abstractmethod
    async def _write(self, events: list[EventFields]) -> list[StoredRecord]:
        """Store validated events (at least one), all or nothing; their records in input order."""

    @abc.abstractmethod
    async def _write_if_absent(
        self, event: EventFields
    ) -> tuple[StoredRecord | AnotherUsersEvent, bool]:
        """Store ``event`` unless its run holds one of its type; see :meth:`put_if_absent`."""

    @abc.abstractmethod
    async def _read_page(self, query: MessagePage) -> list[StoredRecord]:
        """A page of messages (:meth:`list_messages`, :meth:`list_messages_by_run`)."""

    @abc.abstractmethod
    async def _read_run(self, query: RunEvents) -> list[StoredRecord]:
        """A run's events (:meth:`list_events`); never called for a query matching nothing."""

    @abc.abstractmethod
    async def _read_after(self, query: ThreadEvents) -> list[StoredRecord]:
        """A thread's events after a seq (:meth:`read_after`)."""

    @abc.abstractmethod
    async def _get_event(self, query: EventKey) -> LookedUpRecord | None:
        """One event (:meth:`get_event`)."""

    @abc.abstractmethod
    async def _list_threads(self, query: ThreadList) -> list[dict[str, Any]]:
        """A page of threads, newest activity first (:meth:`list_threads`)."""

    @abc.abstractmethod
    async def _thread_info(self, thread_id: str) -> dict[str, Any] | None:
        """The thread's ``last_seq``, ``generation`` and ``updated_at`` (:meth:`get_thread`)."""

    @abc.abstractmethod
    async def _thread_ids(self, after: str | None, limit: int) -> list[str]:
        """The first ``limit`` thread ids greater than ``after``, ascending (for export)."""

    @abc.abstractmethod
    async def _count(self, query: EventCount) -> int:
        """How many events match (:meth:`count_messages`, :meth:`count_events`)."""

    @abc.abstractmethod
    async def _last_visible_replies(self, query: LastVisibleReplies) -> dict[str, int]:
        """:meth:`get_last_visible_ai_seq_by_run`, for at least one run id."""

    @abc.abstractmethod
    async def _message_seqs(self, query: MessageSeqs) -> dict[str, int]:
        """:meth:`get_message_seqs`, for at least one identity: through an index, not a scan."""

    @abc.abstractmethod
    async def _delete(self, query: Deletion) -> int:
        """Delete matching events; a thread left empty starts again at 1."""

    @abc.abstractmethod
    async def _import_lookup(self, lookups: list[ImportLookup]) -> dict[str, ThreadHoldings]:
        """For each thread looked up: its last seq, whether an import renumbered it, the matching records.

        See :class:`~mongo_runevents.importing.ImportLookup`; a thread the store
        does not hold may be left out.
        """

    @abc.abstractmethod
    async def _import_chunk(
        self, thread_id: str, records: list[tuple[EventFields, int]], renumber: bool
    ) -> StoredChunk:
        """Store records of one thread (ascending seqs) atomically; the seq each got.

        In one atomic step: read the thread's counter; keep the records' own
        seqs if ``renumber`` is false and the first is above the counter, else
        number them after it (remembering each renumbered record's own seq,
        and that the thread was renumbered); raise the counter to the last;
        insert. A record whose ``event_id`` the thread holds by then is left
        out (``None``). So no reader sees a seq before a lower one is visible.
        The thread's last activity becomes at least the latest ``created_at``.
        """

    def _news(self, thread_id: str, max_wait: float) -> NewsWaiter | None:
        """What tells the tail that a thread changed; ``None``: the tail polls."""
        return None


def _conflicts_text(conflicts: list[ImportConflict]) -> str:
    """``2 records collide with other events ...: record 4 (thread 't', seq 3): ...``."""
    shown = "; ".join(
        f"record {c.index} (thread {c.thread_id!r}, seq {c.seq}): {c.reason}" for c in conflicts[:3]
    )
    more = f"; and {len(conflicts) - 3} more" if len(conflicts) > 3 else ""
    count = "1 record collides" if len(conflicts) == 1 else f"{len(conflicts)} records collide"
    return f"{count} with other events; nothing was written (on_conflict='stop'): {shown}{more}"


def _stored_as(result: ImportResult, thread_id: str, item: Planned, seq: int | None) -> None:
    """Count a planned record stored under ``seq`` (``None``: another writer took its key)."""
    if seq is None:
        reason = "its event_id was taken by another writer during the import"
        conflict = ImportConflict(item.index, thread_id, item.seq, reason)
        result.conflicts.append(conflict)
        result.skipped.append(conflict)
        return
    result.inserted += 1
    if seq != item.seq:
        result.renumbered.append(Renumbered(item.index, thread_id, item.seq, seq))


def _interval(value: Any, name: str) -> float:
    """A polling interval: a positive, finite number of seconds."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidEventError(
            f"must be a number of seconds, got {type(value).__name__}", field=name
        )
    if not (math.isfinite(value) and value > 0):
        raise InvalidEventError(
            f"must be a positive, finite number of seconds, got {value}", field=name
        )
    return float(value)


async def _bounded(slots: asyncio.Semaphore, read: Callable[..., Awaitable[T]], *args: Any) -> T:
    """``read(*args)`` while holding one of ``slots``."""
    async with slots:
        return await read(*args)
