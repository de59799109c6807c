"""What an import does with each record, decided once for every store.

:meth:`~mongo_runevents.RunEventStore.import_events` validates the records,
then :func:`plan_import` decides, thread by thread, from what the store holds
(one look-up primitive), and the store writes what the plan says, a chunk of
one thread at a time, each chunk atomically (the other primitive). The rules:

- Records at different seqs of one source thread are different events, even
  when they are equal in every other field. A record is **already there**
  when its thread holds the same event (the same run, type, category,
  content, metadata, user, ``created_at`` and ``event_id``, compared exactly,
  types included) at the record's seq, or at another seq an import stored it
  under when it renumbered it (the store remembers each renumbered record's
  seq in its source), or when the thread holds its ``event_id`` for that very
  event. Nothing is written for it, so an import runs again without effect.
- A record is a **conflict** when its seq is not above the thread's last seq
  (another event holds it, or a reader may have passed it), when an earlier
  record of the input has its seq (several DeerFlow processes writing one
  folder), or when its ``event_id`` is held by a different event.
- ``on_conflict="renumber"`` (the default) keeps every event: every new record
  of a thread with a seq conflict is numbered after the thread's last seq, in
  the stable order (seq, then ``created_at``, then position in the input), so
  the imported thread keeps its own order and follows the events already
  there. Threads without a conflict keep their seqs. ``"skip"`` stores the
  records without a conflict and skips the others; ``"stop"`` raises
  :class:`~mongo_runevents.errors.ImportConflictError` before anything is
  written. An ``event_id`` conflict cannot be renumbered away: that record is
  skipped (or stops the import).
- Readers get what writers give them: a chunk's seqs are taken on the
  thread's counter and its records inserted in one atomic step (one
  transaction on MongoDB deployments with transactions), so no reader sees a
  seq of the thread before a lower one becomes visible. When a concurrent
  writer took seqs after the look-up, the chunk and the rest of the thread
  are numbered after them instead (reported as renumbered): nothing is lost.

Everything here is pure but the two primitives; see ``docs/semantics.md``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

from .fields import EventFields, same_event
from .records import StoredRecord
from .times import utc_moment

#: What ``import_events`` does with a conflicting record.
OnConflict = Literal["renumber", "skip", "stop"]
ON_CONFLICT: tuple[OnConflict, ...] = ("renumber", "skip", "stop")


def _record_of_the_input(index: int) -> str:
    return f"record {index} of the input"


@dataclass(frozen=True)
class ImportConflict:
    """A record that collides with another event: its position in the input, thread, seq and why.

    ``other`` is the position of the earlier record of the input it collides
    with, when it is one (rather than a stored event): by its seq, or by its
    ``event_id`` when ``event_id`` is set. :meth:`describe` says why with
    that record named as the caller knows it (a file and line, say).
    """

    index: int
    thread_id: str
    seq: int
    reason: str
    other: int | None = None
    event_id: str | None = None

    @classmethod
    def with_record(
        cls, index: int, thread_id: str, seq: int, other: int, event_id: str | None = None
    ) -> ImportConflict:
        """A collision with the earlier record ``other`` of the input (by ``event_id`` if given)."""
        conflict = cls(index, thread_id, seq, "", other, event_id)
        object.__setattr__(conflict, "reason", conflict.describe(_record_of_the_input))
        return conflict

    def describe(self, name: Callable[[int], str]) -> str:
        """Why the record collides, the other record of the input named by ``name(position)``."""
        if self.other is None:
            return self.reason
        if self.event_id is not None:
            return f"its event_id {self.event_id!r} is held by another event ({name(self.other)})"
        return f"{name(self.other)} has seq {self.seq} too"


@dataclass(frozen=True)
class Renumbered:
    """A record stored under another seq than its own (``on_conflict="renumber"``)."""

    index: int
    thread_id: str
    old_seq: int
    new_seq: int


@dataclass
class ImportResult:
    """What an import did (or, with ``dry_run``, would do) with each record.

    ``inserted`` counts the records stored (renumbered ones included),
    ``already_there`` those the store held already (or that repeat an
    earlier record of the input). ``conflicts`` lists every record that
    collided with a different event; ``renumbered`` every record stored under
    a new seq, with the old and the new; ``skipped`` the records not stored
    (conflicts under ``on_conflict="skip"``, ``event_id`` conflicts, and seqs a
    concurrent writer took between the look-up and the write).
    """

    inserted: int = 0
    already_there: int = 0
    conflicts: list[ImportConflict] = field(default_factory=list)
    renumbered: list[Renumbered] = field(default_factory=list)
    skipped: list[ImportConflict] = field(default_factory=list)
    dry_run: bool = False

    def add(self, other: ImportResult, offset: int = 0) -> None:
        """Add ``other`` (of records starting at input position ``offset``) to this result."""
        self.inserted += other.inserted
        self.already_there += other.already_there
        for name in ("conflicts", "renumbered", "skipped"):
            mine: list[Any] = getattr(self, name)
            mine += [_shifted(item, offset) for item in getattr(other, name)]


def _shifted(item: Any, offset: int) -> Any:
    moved = {**item.__dict__, "index": item.index + offset}
    if moved.get("other") is not None:
        moved["other"] += offset
        # Its reason names the other record by its position: named anew.
        return ImportConflict.with_record(
            moved["index"], moved["thread_id"], moved["seq"], moved["other"], moved["event_id"]
        )
    return type(item)(**moved)


# --- what a store looks up ------------------------------------------------------------


@dataclass(frozen=True)
class ImportLookup:
    """The events of one thread an import needs to see.

    Those holding one of ``seqs`` or one of ``event_ids``, and (when
    ``sources`` is true) those an import renumbered from one of ``seqs``.
    """

    thread_id: str
    seqs: frozenset[int] = frozenset()
    event_ids: frozenset[str] = frozenset()
    sources: bool = False


@dataclass(frozen=True)
class ThreadHoldings:
    """What a store holds of a thread, for an import.

    ``last_seq`` is the thread's counter (0 for a new thread), ``renumbered``
    whether an import renumbered some of its events, ``records`` the stored
    records matching the look-up and ``source_seqs`` the seq in its source of
    each renumbered one among them (by its seq in the store).
    """

    last_seq: int = 0
    renumbered: bool = False
    records: tuple[StoredRecord, ...] = ()
    source_seqs: dict[int, int] = field(default_factory=dict)


Lookup = Callable[[list[ImportLookup]], Awaitable[dict[str, ThreadHoldings]]]


@dataclass(frozen=True)
class StoredChunk:
    """What a store did with one chunk of a thread: the seq of each record (``None``: not stored).

    A record is not stored when, at the write, the thread held its
    ``event_id`` already (a concurrent writer stored it after the look-up).
    """

    seqs: list[int | None]


#: Records per atomic write of one thread: small enough for any transaction.
IMPORT_CHUNK = 500


# --- the order of records ------------------------------------------------------------

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
#: Where a ``created_at`` that names no time sorts: after every one that does.
_UNREADABLE = 2**62


def time_key(created_at: str) -> tuple[int, str]:
    """An ordering key for a ``created_at``: microseconds since 1970 (UTC), then the text.

    A time without an offset is taken as UTC; one that validation refuses
    (:func:`~mongo_runevents.times.check_iso_8601`) sorts last.
    """
    moment = utc_moment(created_at)
    if moment is None:
        return _UNREADABLE, created_at
    return (moment - _EPOCH) // timedelta(microseconds=1), created_at


def latest_time(created_ats: Iterable[str]) -> str | None:
    """The latest of some ``created_at`` values as UTC ISO-8601 (as ``utc_now_iso`` writes it).

    What a thread's last activity becomes after an import: the time of its
    events, not the time of the import. ``None`` when none can be read.
    """
    latest = max((time_key(text)[0] for text in created_ats), default=_UNREADABLE)
    if latest == _UNREADABLE:
        return None
    moment = _EPOCH + timedelta(microseconds=latest)
    return moment.isoformat(timespec="microseconds")


def order_key(seq: int, created_at: str | None, position: int) -> tuple[int, tuple[int, str], int]:
    """The stable order of an import: seq, then ``created_at``, then position in the input."""
    return seq, time_key(created_at or ""), position


# --- the plan --------------------------------------------------------------------------


@dataclass(frozen=True)
class Planned:
    """A record the plan stores: its position in the input, the event and its seq in the input."""

    index: int
    event: EventFields
    seq: int


@dataclass
class ThreadPlan:
    """What to store of one thread; ``renumber``: the records of ``to_store`` get new seqs."""

    thread_id: str
    last_seq: int
    to_store: list[Planned] = field(default_factory=list)
    renumber: bool = False


@dataclass
class ImportPlan:
    """The plan of one import call, thread by thread, and what it says about each record."""

    threads: list[ThreadPlan] = field(default_factory=list)
    result: ImportResult = field(default_factory=ImportResult)


def _same(event: EventFields, stored: Mapping[str, Any] | None) -> bool:
    """Whether ``stored`` is this very event; records with different ``event_id`` never are."""
    return (
        stored is not None
        and stored.get("event_id") == event.get("event_id")
        and same_event(event, stored, times_given=True)
    )


def _plan_thread(
    thread_id: str,
    items: list[tuple[int, EventFields, int]],
    held: ThreadHoldings,
    on_conflict: OnConflict,
    result: ImportResult,
) -> ThreadPlan:
    """Decide for each record of one thread (``items`` in the stable order)."""
    plan = ThreadPlan(thread_id, held.last_seq)
    # The stored events by their seq in their source: their own seq unless renumbered.
    by_source: dict[int, list[Mapping[str, Any]]] = {}
    for record in held.records:
        source = held.source_seqs.get(record["seq"], record["seq"])
        by_source.setdefault(source, []).append(record)
    stored_key = {record["event_id"]: record for record in held.records if "event_id" in record}
    stored_seqs = {record["seq"] for record in held.records}
    taken_at: dict[int, tuple[int, EventFields]] = {}
    taken_key: dict[str, tuple[int, EventFields]] = {}
    seq_conflicts = 0

    for index, event, seq in items:
        if any(_same(event, stored) for stored in by_source.get(seq, ())):
            result.already_there += 1
            continue
        if seq in taken_at and _same(event, taken_at[seq][1]):
            result.already_there += 1  # the very record again, at the same seq
            continue
        key = event.get("event_id")
        if key is not None and (key in stored_key or key in taken_key):
            holder = stored_key.get(key)
            if _same(event, holder) or (holder is None and _same(event, taken_key[key][1])):
                result.already_there += 1  # the same event, by its key
                continue
            if holder is not None:
                reason = f"its event_id {key!r} is held by another event (seq {holder['seq']})"
                conflict = ImportConflict(index, thread_id, seq, reason)
            else:
                conflict = ImportConflict.with_record(
                    index, thread_id, seq, taken_key[key][0], event_id=key
                )
            result.conflicts.append(conflict)
            result.skipped.append(conflict)
            continue
        seq_conflict: ImportConflict | None = None
        if seq in taken_at:
            seq_conflict = ImportConflict.with_record(index, thread_id, seq, taken_at[seq][0])
        elif seq in by_source or seq in stored_seqs:
            seq_conflict = ImportConflict(index, thread_id, seq, f"seq {seq} holds another event")
        elif seq <= held.last_seq:
            reason = (
                f"seq {seq} is not above the thread's last seq ({held.last_seq}): "
                "readers may have passed it"
            )
            seq_conflict = ImportConflict(index, thread_id, seq, reason)
        if seq_conflict is not None:
            conflict = seq_conflict
            result.conflicts.append(conflict)
            seq_conflicts += 1
            if on_conflict == "skip":
                result.skipped.append(conflict)
                continue
        else:
            taken_at[seq] = (index, event)
        if key is not None:
            taken_key[key] = (index, event)
        plan.to_store.append(Planned(index, event, seq))

    plan.renumber = bool(seq_conflicts) and on_conflict == "renumber"
    return plan


async def plan_import(
    records: list[tuple[EventFields, int]], lookup: Lookup, on_conflict: OnConflict
) -> ImportPlan:
    """Decide what to do with each validated ``(event, seq)``, from what ``lookup`` finds.

    One look-up for every thread of the call; the stores answer it, for a
    thread an import renumbered, with its renumbered events too.
    """
    by_thread: dict[str, list[tuple[int, EventFields, int]]] = {}
    for index, (event, seq) in enumerate(records):
        by_thread.setdefault(event["thread_id"], []).append((index, event, seq))
    for items in by_thread.values():
        items.sort(key=lambda item: order_key(item[2], item[1]["created_at"], item[0]))
    held = await lookup(
        [
            ImportLookup(
                thread_id,
                seqs=frozenset(seq for _, _, seq in items),
                event_ids=frozenset(e["event_id"] for _, e, _ in items if "event_id" in e),
                sources=True,
            )
            for thread_id, items in sorted(by_thread.items())
        ]
    )
    plan = ImportPlan()
    for thread_id, items in sorted(by_thread.items()):
        holdings = held.get(thread_id, ThreadHoldings())
        plan.threads.append(_plan_thread(thread_id, items, holdings, on_conflict, plan.result))
    return plan


def chunks(plan: ThreadPlan, size: int = IMPORT_CHUNK) -> list[list[Planned]]:
    """The records a thread plan stores, in chunks of at most ``size`` written atomically each."""
    return [plan.to_store[start : start + size] for start in range(0, len(plan.to_store), size)]


def dry_run_seqs(plan: ThreadPlan) -> list[int]:
    """The seqs a thread plan's records would get if nobody else wrote meanwhile."""
    if plan.renumber:
        return [plan.last_seq + 1 + offset for offset in range(len(plan.to_store))]
    return [item.seq for item in plan.to_store]


def chunk_seqs(last_seq: int, seqs: list[int], renumber: bool) -> tuple[list[int], bool]:
    """The seqs a chunk gets on a thread whose counter is ``last_seq``, and whether they are new.

    Its own seqs (ascending, every one above the counter) unless ``renumber``
    says otherwise or the counter reached them: then the seqs after the counter.
    """
    if not renumber and seqs and seqs[0] > last_seq:
        return seqs, False
    return [last_seq + 1 + offset for offset in range(len(seqs))], True
