"""Checking a migration: does the store hold every event of a source, as the source serves it?

:func:`verify_threads` takes the records of whole threads of a source (our
export, DeerFlow's JSONL folder or database, read as ``import`` reads them,
owners set the same way) and compares them with the store:

- **every record**: the store must hold it as the same event (run, type,
  category, content, metadata, owner, ``created_at``, ``event_id``, compared
  exactly), at its own seq or at the seq an import renumbered it to. This is
  the import's own rule for "already there" (a dry run of ``import_events``),
  so a record ``verify`` accepts is one a second import would not write. A
  record the store lacks is *changed* when the store holds, at its seq, an
  event of the same run and type with other values (the difference names the
  fields), else *missing*;
- **what a chat UI reads**: each owner's pages of each thread, newest first
  then older with ``before_seq`` as DeerFlow's gateway reads them (with the
  owner's ``user_id``), must show every message of the source, in the
  source's order; ``count_messages`` for that owner must count them all.

Normalisations (documented in ``docs/semantics.md``, never differences):
records an import renumbered (a thread that already had events) are found
under their new seqs; events the store holds beyond the source (written
there since, by a live server) are counted, not reported; a DeerFlow JSONL
seed line of another run is that run's event (DeerFlow's ``list_events``
reads it from the file it sits in).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ._json import same_json
from .base import RunEventStore
from .fields import EventFields, same_event
from .importing import order_key, plan_import
from .models import MESSAGE_CATEGORY, imported_event
from .records import StoredRecord

#: Messages per page, as DeerFlow's UI asks for them.
UI_PAGE = 50
#: The fields of a record that make it the event it is.
_COMPARED = ("run_id", "event_type", "category", "content", "metadata", "created_at")


@dataclass(frozen=True)
class Difference:
    """One way the store disagrees with the source: thread, seq (in the source), what, where read."""

    thread_id: str
    seq: int | None
    kind: str
    detail: str
    source: str | None = None

    def __str__(self) -> str:
        where = f"{self.source}: " if self.source else ""
        seq = f", seq {self.seq}" if self.seq is not None else ""
        return f"{where}thread {self.thread_id!r}{seq}: {self.kind}: {self.detail}"


@dataclass
class VerifyResult:
    """What a check found: counts, and every difference."""

    threads: int = 0
    records: int = 0
    #: Source records the store holds as they are (renumbered ones included).
    matched: int = 0
    #: Source messages the UI shows under another seq than their own (an import renumbered them).
    renumbered: int = 0
    #: Events the store holds in the checked threads beyond the source's.
    store_only: int = 0
    #: UI pages read (one per owner and page).
    pages: int = 0
    differences: list[Difference] = field(default_factory=list)

    @property
    def agrees(self) -> bool:
        """Whether the store holds the source exactly (normalisations aside)."""
        return not self.differences

    def add(self, other: VerifyResult) -> None:
        """Add the counts and differences of ``other``."""
        for name in ("threads", "records", "matched", "renumbered", "store_only", "pages"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.differences += other.differences


def _held_as(event: EventFields, stored: Mapping[str, Any]) -> bool:
    """Whether ``stored`` records ``event`` (its key and its ``created_at`` included), as the import decides."""
    return stored.get("event_id") == event.get("event_id") and same_event(
        event, stored, times_given=True
    )


def _fields_differing(event: EventFields, stored: Mapping[str, Any]) -> list[str]:
    """The fields in which ``stored`` is not ``event`` (exact JSON comparison)."""
    differing = []
    for name in (*_COMPARED, "user_id", "event_id"):
        mine, theirs = event.get(name), stored.get(name)
        if not same_json(mine, theirs):
            differing.append(name)
    return differing


async def verify_threads(
    store: RunEventStore,
    records: list[dict[str, Any]],
    where: Callable[[int], str] | None = None,
) -> VerifyResult:
    """Compare the records of whole threads of a source with ``store`` (see the module docstring).

    ``records`` hold every record of each of their threads (as ``import``
    reads them); ``where(i)`` names the place record ``i`` was read, for the
    differences.
    """
    result = VerifyResult(records=len(records))
    if not records:
        return result
    policy = store._policy  # values compared as the import stored them (json_default, truncation)
    validated = [imported_event(record, index, policy) for index, record in enumerate(records)]
    # The import's own decision, without writing: what it would store is what the store lacks.
    plan = await plan_import(validated, store._import_lookup, "renumber")
    lacking = {item.index for thread in plan.threads for item in thread.to_store}
    reasons = {conflict.index: conflict.reason for conflict in plan.result.conflicts}
    lacking |= {conflict.index for conflict in plan.result.skipped}
    by_thread: dict[str, list[int]] = {}
    for index, (event, _) in enumerate(validated):
        by_thread.setdefault(event["thread_id"], []).append(index)
    result.threads = len(by_thread)
    for index in sorted(lacking):
        record = records[index]
        stored = await store.get_event(record["thread_id"], record["seq"])
        fields = [] if stored is None else _fields_differing(validated[index][0], stored)
        if fields and not {"run_id", "event_type"} & set(fields):
            # The same run's event of the same type, with other values: changed.
            kind = "changed"
            detail = f"the store's event at seq {record['seq']} differs in {', '.join(fields)}"
        else:
            kind = "missing"
            detail = reasons.get(index, "the store holds no such event")
        result.differences.append(
            Difference(record["thread_id"], record["seq"], kind, detail, where and where(index))
        )
    result.matched = len(records) - len(lacking)
    for thread_id, indexes in sorted(by_thread.items()):
        await _check_thread(store, thread_id, [validated[i] for i in indexes], result)
    return result


async def _check_thread(
    store: RunEventStore,
    thread_id: str,
    events: list[tuple[EventFields, int]],
    result: VerifyResult,
) -> None:
    """Counts, renumbering and the UI's pages of one thread, for each owner."""
    ordered = sorted(
        range(len(events)), key=lambda i: order_key(events[i][1], events[i][0]["created_at"], i)
    )
    source = [events[i] for i in ordered]
    total = await store.count_events(thread_id)
    result.store_only += max(0, total - len(source))
    owners = sorted({event.get("user_id") for event, _ in source}, key=lambda user: user or "")
    for owner in owners:
        mine = [
            (event, seq)
            for event, seq in source
            if event.get("user_id") == owner and event["category"] == MESSAGE_CATEGORY
        ]
        if not mine:
            continue
        shown = await _ui_pages(store, thread_id, owner, result)
        position = 0
        for message in shown:
            if position < len(mine) and _held_as(mine[position][0], message):
                if message["seq"] != mine[position][1]:
                    result.renumbered += 1
                position += 1
        who = "no user" if owner is None else f"user {owner!r}"
        if position < len(mine):
            result.differences.append(
                Difference(
                    thread_id,
                    mine[position][1],
                    "ui",
                    f"the pages {who} reads show {position} of the thread's {len(mine)} "
                    "source messages in order; the first one not shown is this one",
                )
            )
        counted = await store.count_messages(thread_id, user_id=owner)
        if counted < len(mine):
            result.differences.append(
                Difference(
                    thread_id,
                    None,
                    "count",
                    f"count_messages for {who} is {counted}; the source has {len(mine)}",
                )
            )


async def _ui_pages(
    store: RunEventStore, thread_id: str, owner: str | None, result: VerifyResult
) -> list[StoredRecord]:
    """The thread's messages as a chat UI pages them for ``owner``: newest page, then older ones."""
    pages: list[list[StoredRecord]] = []
    before: int | None = None
    while True:
        page = await store.list_messages(thread_id, limit=UI_PAGE, before_seq=before, user_id=owner)
        result.pages += 1
        if not page:
            break
        pages.append(page)
        if len(page) < UI_PAGE:
            break
        before = page[0]["seq"]
    return [message for page in reversed(pages) for message in page]
