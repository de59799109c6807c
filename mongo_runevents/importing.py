"""What an import does with each record, decided once for every store.

:meth:`~mongo_runevents.RunEventStore.import_events` validates the records,
then :func:`plan_import` decides, thread by thread, from what the store holds
(one look-up primitive), and the store writes what the plan says. The rules:

- A record is **already there** when its thread holds the same event: the
  same run, type, category, content, metadata, user, ``created_at`` and
  ``event_id`` (compared exactly, types included; a record with another
  ``event_id``, or none, is another event), at the record's seq or, in a thread an
  earlier import renumbered, at any seq. A record repeating an earlier record
  of the same input is already there too. Nothing is written for it.
- A different event on a seq the thread holds, or on a seq an earlier record
  of the input takes, is a **conflict**. So is a record whose ``event_id`` the
  thread (or an earlier record) holds for a different event.
- ``on_conflict="renumber"`` (the default) keeps every event: every new record
  of a thread with a seq conflict is numbered after the thread's last seq, in
  the stable order (seq, then ``created_at``, then position in the input), so
  the imported thread keeps its own order and follows the events already
  there. Threads without a conflict keep their seqs. ``"skip"`` stores the
  records without a conflict and skips the others; ``"stop"`` raises
  :class:`~mongo_runevents.errors.ImportConflictError` before anything is
  written. An ``event_id`` conflict cannot be renumbered away: that record is
  skipped (or stops the import).

Everything here is pure but the look-up; see ``docs/semantics.md``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

from .models import NewEvent

#: What ``import_events`` does with a conflicting record.
OnConflict = Literal["renumber", "skip", "stop"]
ON_CONFLICT: tuple[OnConflict, ...] = ("renumber", "skip", "stop")


@dataclass(frozen=True)
class ImportConflict:
    """A record that collides with another event: its position in the input, thread, seq and why.

    ``other`` is the position of the earlier record of the input it collides
    with, when it is one (rather than a stored event).
    """

    index: int
    thread_id: str
    seq: int
    reason: str
    other: int | None = None


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
    return type(item)(**moved)


# --- what a store looks up ------------------------------------------------------------


@dataclass(frozen=True)
class ImportLookup:
    """The events of one thread an import needs to see.

    Those holding one of ``seqs``, one of ``event_ids``, or (when ``times``
    is given) a ``(run_id, created_at)`` pair of ``times``.
    """

    thread_id: str
    seqs: frozenset[int] = frozenset()
    event_ids: frozenset[str] = frozenset()
    times: frozenset[tuple[str, str]] = frozenset()


@dataclass(frozen=True)
class ThreadHoldings:
    """What a store holds of a thread, for an import.

    ``last_seq`` is the thread's counter (0 for a new thread), ``renumbered``
    whether an earlier import renumbered some of its events, ``records`` the
    stored records matching the look-up.
    """

    last_seq: int = 0
    renumbered: bool = False
    records: tuple[dict[str, Any], ...] = ()


def matches(record: dict[str, Any], lookup: ImportLookup) -> bool:
    """Whether a stored record is one ``lookup`` asks for (for stores that filter in Python)."""
    return (
        record["seq"] in lookup.seqs
        or record.get("event_id") in lookup.event_ids
        or (record["run_id"], record["created_at"]) in lookup.times
    )


Lookup = Callable[[list[ImportLookup]], Awaitable[dict[str, ThreadHoldings]]]


# --- the order of records ------------------------------------------------------------

_TIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?"
    r"\s*(?:(Z|z)|([+-])(\d{2})(?::?(\d{2}))?)?"
)
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def time_key(created_at: str) -> tuple[int, str]:
    """An ordering key for a ``created_at``: microseconds since 1970 (UTC), then the text.

    A time without an offset is taken as UTC; one that cannot be read sorts last.
    """
    found = _TIME.fullmatch(created_at.strip())
    if found is None:
        return 2**62, created_at
    year, month, day, hour, minute, second, fraction, _z, sign, off_h, off_m = found.groups()
    try:
        moment = datetime(int(year), int(month), int(day), tzinfo=timezone.utc) + timedelta(
            hours=int(hour or 0),
            minutes=int(minute or 0),
            seconds=int(second or 0),
            microseconds=int((fraction or "0")[:6].ljust(6, "0")),
        )
    except ValueError:
        return 2**62, created_at
    if sign:
        offset = timedelta(hours=int(off_h), minutes=int(off_m or 0))
        moment -= offset if sign == "+" else -offset
    return (moment - _EPOCH) // timedelta(microseconds=1), created_at


def order_key(seq: int, created_at: str | None, position: int) -> tuple[int, tuple[int, str], int]:
    """The stable order of an import: seq, then ``created_at``, then position in the input."""
    return seq, time_key(created_at or ""), position


# --- the plan --------------------------------------------------------------------------


@dataclass(frozen=True)
class Planned:
    """A record the plan stores: its position in the input, the event and its seq in the input."""

    index: int
    event: NewEvent
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


def _same(event: NewEvent, stored: dict[str, Any] | None) -> bool:
    """Whether ``stored`` is this very event; records with different ``event_id`` never are."""
    return (
        stored is not None
        and stored.get("event_id") == event.event_id
        and event.same_event_as(stored)
    )


def fingerprint(record: dict[str, Any]) -> bytes:
    """A digest that two records share when they may be the same event (:func:`_same` decides).

    JSON with sorted keys tells ``1``, ``1.0`` and ``true`` apart, as the exact
    comparison does, so equal events always share it.
    """
    text = json.dumps([record.get(name) for name in _COMPARED], sort_keys=True, ensure_ascii=False)
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


#: The fields that make two records the same event.
_COMPARED = (
    "run_id",
    "event_type",
    "category",
    "created_at",
    "user_id",
    "event_id",
    "content",
    "metadata",
)


def _as_record(event: NewEvent) -> dict[str, Any]:
    """The fields :meth:`NewEvent.same_event_as` compares, without copying content."""
    record = {
        "run_id": event.run_id,
        "event_type": event.event_type,
        "category": event.category,
        "content": event.content,
        "metadata": event.metadata,
        "created_at": event.created_at,
    }
    for name in ("user_id", "event_id"):
        value = getattr(event, name)
        if value is not None:
            record[name] = value
    return record


def _plan_thread(
    thread_id: str,
    items: list[tuple[int, NewEvent, int]],
    held: ThreadHoldings,
    on_conflict: OnConflict,
    result: ImportResult,
) -> ThreadPlan:
    """Decide for each record of one thread (``items`` in the stable order)."""
    plan = ThreadPlan(thread_id, held.last_seq)
    stored_at = {record["seq"]: record for record in held.records}
    stored_key = {record["event_id"]: record for record in held.records if "event_id" in record}
    # Stored events at other seqs matter only in a thread an import renumbered.
    stored_like: dict[bytes, list[dict[str, Any]]] = {}
    if held.renumbered:
        for record in held.records:
            stored_like.setdefault(fingerprint(record), []).append(record)
    # What the plan takes, as records would be stored (earlier records of the input).
    taken_at: dict[int, tuple[int, NewEvent]] = {}
    taken_key: dict[str, tuple[int, NewEvent]] = {}
    taken_like: dict[bytes, list[NewEvent]] = {}
    seq_conflicts: list[ImportConflict] = []

    for index, event, seq in items:
        if _same(event, stored_at.get(seq)):
            result.already_there += 1
            continue
        like = fingerprint(_as_record(event))
        if any(_same(event, r) for r in stored_like.get(like, ())):
            result.already_there += 1
            continue
        if any(_same(event, _as_record(earlier)) for earlier in taken_like.get(like, ())):
            result.already_there += 1  # a repeat of an earlier record of the input
            continue
        key = event.event_id
        if key is not None and (key in stored_key or key in taken_key):
            holder = stored_key.get(key)
            if _same(event, holder):
                result.already_there += 1
                continue
            where = f"seq {holder['seq']}" if holder is not None else f"record {taken_key[key][0]}"
            conflict = ImportConflict(
                index, thread_id, seq, f"its event_id {key!r} is held by another event ({where})"
            )
            result.conflicts.append(conflict)
            result.skipped.append(conflict)
            continue
        planned = Planned(index, event, seq)
        reason, other = None, None
        if seq in stored_at:
            reason = f"seq {seq} holds another event"
        elif seq in taken_at:
            other = taken_at[seq][0]
            reason = f"record {other} of the input has seq {seq} too"
        if reason is not None:
            conflict = ImportConflict(index, thread_id, seq, reason, other)
            result.conflicts.append(conflict)
            seq_conflicts.append(conflict)
            if on_conflict == "skip":
                result.skipped.append(conflict)
                continue
        else:
            taken_at[seq] = (index, event)
        if key is not None:
            taken_key[key] = (index, event)
        taken_like.setdefault(like, []).append(event)
        plan.to_store.append(planned)

    plan.renumber = bool(seq_conflicts) and on_conflict == "renumber"
    return plan


async def plan_import(
    records: list[tuple[NewEvent, int]], lookup: Lookup, on_conflict: OnConflict
) -> ImportPlan:
    """Decide what to do with each validated ``(event, seq)``, from what ``lookup`` finds.

    One look-up for every thread of the call, and a second one for the
    threads an earlier import renumbered (to find their events at other seqs).
    """
    by_thread: dict[str, list[tuple[int, NewEvent, int]]] = {}
    for index, (event, seq) in enumerate(records):
        by_thread.setdefault(event.thread_id, []).append((index, event, seq))
    for items in by_thread.values():
        items.sort(key=lambda item: order_key(item[2], item[1].created_at, item[0]))
    first = [
        ImportLookup(
            thread_id,
            seqs=frozenset(seq for _, _, seq in items),
            event_ids=frozenset(e.event_id for _, e, _ in items if e.event_id is not None),
        )
        for thread_id, items in sorted(by_thread.items())
    ]
    held = await lookup(first)
    again = [
        ImportLookup(
            query.thread_id,
            times=frozenset(
                (e.run_id, e.created_at or "") for _, e, _ in by_thread[query.thread_id]
            ),
        )
        for query in first
        if held.get(query.thread_id, ThreadHoldings()).renumbered
    ]
    if again:
        for thread_id, more in (await lookup(again)).items():
            before = held[thread_id]
            records_by_seq = {r["seq"]: r for r in (*before.records, *more.records)}
            held[thread_id] = ThreadHoldings(
                before.last_seq, True, tuple(records_by_seq[seq] for seq in sorted(records_by_seq))
            )
    plan = ImportPlan()
    for thread_id, items in sorted(by_thread.items()):
        holdings = held.get(thread_id, ThreadHoldings())
        plan.threads.append(_plan_thread(thread_id, items, holdings, on_conflict, plan.result))
    return plan


def assign(plan: ThreadPlan, first_seq: int, result: ImportResult) -> list[tuple[NewEvent, int]]:
    """The records of a thread plan as ``(event, seq)``; renumbered from ``first_seq`` if it says so.

    Every record stored under another seq than its own is added to ``result.renumbered``.
    """
    stored = []
    for offset, item in enumerate(plan.to_store):
        seq = first_seq + offset if plan.renumber else item.seq
        if seq != item.seq:
            result.renumbered.append(Renumbered(item.index, plan.thread_id, item.seq, seq))
        stored.append((item.event, seq))
    return stored
