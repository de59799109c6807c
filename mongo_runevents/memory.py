"""The in-memory reference store: no dependencies, for development and tests.

Every primitive runs without awaiting anything, so on one event loop each call
is atomic by construction: a batch is all-or-nothing and no reader can see a
half-written one. Records are copied on the way in and on the way out, so what
a caller does with its own objects never changes what is stored. The queries
arrive checked (:mod:`mongo_runevents.queries`); this module only interprets
them.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from ._json import JsonDefault, copy_json
from .base import RunEventStore
from .errors import EventIdConflictError
from .fields import EventFields, same_event, to_record
from .identities import message_identity
from .importing import ImportLookup, StoredChunk, ThreadHoldings, chunk_seqs, latest_time
from .models import MESSAGE_CATEGORY, utc_now_iso
from .queries import (
    Deletion,
    EventCount,
    EventKey,
    LastVisibleReplies,
    MessagePage,
    MessageSeqs,
    RunEvents,
    ThreadCursor,
    ThreadEvents,
    ThreadList,
    existing_as_seen_by,
    is_visible_ai_reply,
)
from .records import AnotherUsersEvent, LookedUpRecord, StoredRecord
from .tail import NewsWaiter

Record = dict[str, Any]


def _seq_of(record: Record) -> int:
    seq: int = record["seq"]
    return seq


def _copy(record: Record) -> StoredRecord:
    copied = dict(record)
    copied["content"] = copy_json(record["content"])
    copied["metadata"] = copy_json(record["metadata"])
    return cast(StoredRecord, copied)  # stored as ``NewEvent.to_record`` built it


@dataclass
class _Thread:
    last_seq: int = 0
    updated_at: str = ""
    events: list[Record] = field(default_factory=list)
    messages: list[Record] = field(default_factory=list)
    by_event_id: dict[str, Record] = field(default_factory=dict)
    users: set[str] = field(default_factory=set)
    #: The messages of each identity (``get_message_seqs``'s index), in seq order.
    by_identity: dict[str, list[Record]] = field(default_factory=dict)
    #: When each user last wrote to the thread (a user's listing shows only theirs).
    user_activity: dict[str, str] = field(default_factory=dict)
    #: Whether an import renumbered some of the thread's events.
    renumbered: bool = False
    #: The seq in its source of each event an import renumbered, by its seq here.
    source_seqs: dict[int, int] = field(default_factory=dict)

    def add(self, record: Record) -> None:
        """Keep ``record`` in seq order (an import may bring an older seq)."""
        for rows in (self.events, self.messages):
            if rows is self.messages and record["category"] != MESSAGE_CATEGORY:
                continue
            if rows and rows[-1]["seq"] > record["seq"]:
                rows.insert(bisect.bisect_left(rows, record["seq"], key=_seq_of), record)
            else:
                rows.append(record)
        if "event_id" in record:
            self.by_event_id[record["event_id"]] = record
        if "user_id" in record:
            self.users.add(record["user_id"])
        if record["category"] == MESSAGE_CATEGORY:
            identity = message_identity(record["content"])
            if identity is not None:
                same = self.by_identity.setdefault(identity, [])
                same.insert(bisect.bisect_right(same, record["seq"], key=_seq_of), record)
        self.last_seq = max(self.last_seq, record["seq"])


def _page(rows: list[Record], query: MessagePage) -> list[Record]:
    """The cursor rules of ``list_messages`` over rows sorted by ``seq``."""
    after, before = query.after_seq, query.before_seq
    start = 0 if after is None else bisect.bisect_right(rows, after, key=_seq_of)
    end = len(rows) if before is None else bisect.bisect_left(rows, before, key=_seq_of)
    if end <= start:
        return []
    if query.newest_first:
        return rows[max(start, end - query.limit) : end]
    return rows[start : min(end, start + query.limit)]


def _owned(rows: list[Record], user_id: str | None) -> list[Record]:
    """``rows``, or only the user's when ``user_id`` is given."""
    if user_id is None:
        return rows
    return [row for row in rows if row.get("user_id") == user_id]


class _ChangeSignal:
    """Wakes the tails of one thread when it is written to."""

    def __init__(self, store: MemoryRunEventStore, thread_id: str, max_wait: float) -> None:
        self._store = store
        self._thread_id = thread_id
        self._max_wait = max_wait

    async def wait(self) -> bool:
        changed = self._store._signals.setdefault(self._thread_id, asyncio.Event())
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(changed.wait(), self._max_wait)
        return True

    async def close(self) -> None:
        return None


class MemoryRunEventStore(RunEventStore):
    """A :class:`RunEventStore` kept in a dict; lost when the process ends.

    ``json_default`` and ``max_trace_content`` are those of
    :class:`~mongo_runevents.policy.WritePolicy`.
    """

    def __init__(
        self, *, json_default: JsonDefault = str, max_trace_content: int | None = None
    ) -> None:
        super().__init__(json_default=json_default, max_trace_content=max_trace_content)
        self._threads: dict[str, _Thread] = {}
        self._signals: dict[str, asyncio.Event] = {}
        #: How often each thread was reset (deleted whole), kept across resets.
        self._generations: dict[str, int] = {}

    # --- writes --------------------------------------------------------------------

    async def _write(self, events: list[EventFields]) -> list[StoredRecord]:
        # First every check, then every write: a batch is all-or-nothing.
        stored_already = [self._stored_with_key(index, event) for index, event in enumerate(events)]
        now = utc_now_iso()
        results = []
        for event, stored in zip(events, stored_already, strict=True):
            if stored is None:
                thread = self._threads.setdefault(event["thread_id"], _Thread())
                stored = to_record(event, thread.last_seq + 1, event["created_at"] or now)
                thread.add(stored)
                thread.updated_at = now
                if "user_id" in event:
                    thread.user_activity[event["user_id"]] = now
                self._signal(event["thread_id"])
            results.append(_copy(stored))
        return results

    async def _write_if_absent(
        self, event: EventFields
    ) -> tuple[StoredRecord | AnotherUsersEvent, bool]:
        # One event per (thread, run, type) across users; another user's is not shown.
        for row in self._rows(event["thread_id"], messages=False):
            if row["run_id"] == event["run_id"] and row["event_type"] == event["event_type"]:
                return existing_as_seen_by(_copy(row), event.get("user_id")), False
        return (await self._write([event]))[0], True

    def _stored_with_key(self, index: int, event: EventFields) -> Record | None:
        """The stored record holding ``event``'s idempotency key, if the thread has one."""
        thread = self._threads.get(event["thread_id"])
        if "event_id" not in event or thread is None:
            return None
        stored = thread.by_event_id.get(event["event_id"])
        if stored is not None and not same_event(
            event, stored, times_given=event["created_at"] is not None
        ):
            raise EventIdConflictError(
                f"event {index}: thread {event['thread_id']!r} already holds a different "
                f"event with event_id {event['event_id']!r} (seq {stored['seq']})"
            )
        return stored

    def _signal(self, thread_id: str) -> None:
        changed = self._signals.pop(thread_id, None)
        if changed is not None:
            changed.set()

    def _news(self, thread_id: str, max_wait: float) -> NewsWaiter:
        return _ChangeSignal(self, thread_id, max_wait)

    async def _import_lookup(self, lookups: list[ImportLookup]) -> dict[str, ThreadHoldings]:
        held = {}
        for lookup in lookups:
            thread = self._threads.get(lookup.thread_id)
            if thread is None:
                continue
            found = {id(row): row for row in map(self._at_in(thread), lookup.seqs) if row}
            for key in lookup.event_ids:
                if key in thread.by_event_id:
                    found[id(thread.by_event_id[key])] = thread.by_event_id[key]
            if lookup.sources:
                for seq, source in thread.source_seqs.items():
                    row = self._at_in(thread)(seq) if source in lookup.seqs else None
                    if row is not None:
                        found[id(row)] = row
            rows = sorted(found.values(), key=_seq_of)
            held[lookup.thread_id] = ThreadHoldings(
                thread.last_seq,
                thread.renumbered,
                tuple(_copy(row) for row in rows),
                {
                    row["seq"]: thread.source_seqs[row["seq"]]
                    for row in rows
                    if row["seq"] in thread.source_seqs
                },
            )
        return held

    async def _import_chunk(
        self, thread_id: str, records: list[tuple[EventFields, int]], renumber: bool
    ) -> StoredChunk:
        # Nothing is awaited: the chunk lands whole, before any reader runs again.
        thread = self._threads.setdefault(thread_id, _Thread())
        held = thread.by_event_id
        fresh = [(event, own) for event, own in records if event.get("event_id") not in held]
        seqs, moved = chunk_seqs(thread.last_seq, [own for _, own in fresh], renumber)
        given = iter(seqs)
        result: list[int | None] = []
        for event, own in records:
            if event.get("event_id") in thread.by_event_id:
                result.append(None)
                continue
            seq = next(given)
            thread.add(to_record(event, seq, event["created_at"] or ""))
            user_id = event.get("user_id")
            if user_id is not None:
                # The user's activity: the time of their latest event, not the import's.
                when = latest_time([event["created_at"] or ""])
                if when is not None and when > thread.user_activity.get(user_id, ""):
                    thread.user_activity[user_id] = when
            if moved:
                thread.source_seqs[seq] = own
                thread.renumbered = True
            result.append(seq)
        latest = latest_time(event["created_at"] or "" for event, _ in fresh)
        if latest is not None and latest > thread.updated_at:
            thread.updated_at = latest
        if fresh:
            self._signal(thread_id)
        return StoredChunk(result)

    # --- reads ---------------------------------------------------------------------

    async def _read_page(self, query: MessagePage) -> list[StoredRecord]:
        rows = _owned(self._rows(query.thread_id, messages=True), query.user_id)
        if query.run_id is not None:
            rows = [row for row in rows if row["run_id"] == query.run_id]
        return [_copy(row) for row in _page(rows, query)]

    async def _read_run(self, query: RunEvents) -> list[StoredRecord]:
        types = query.event_types
        rows = [
            row
            for row in _owned(self._rows(query.thread_id, messages=False), query.user_id)
            if row["run_id"] == query.run_id
            and (types is None or row["event_type"] in types)
            and (query.task_id is None or row["metadata"].get("task_id") == query.task_id)
            and (query.after_seq is None or row["seq"] > query.after_seq)
        ]
        return [_copy(row) for row in rows[: query.limit]]

    async def _read_after(self, query: ThreadEvents) -> list[StoredRecord]:
        rows = self._rows(query.thread_id, messages=query.category == MESSAGE_CATEGORY)
        start = bisect.bisect_right(rows, query.after_seq, key=_seq_of)
        found: list[StoredRecord] = []
        for row in rows[start:]:
            if len(found) == query.limit:
                break
            if (query.category is None or row["category"] == query.category) and (
                query.user_id is None or row.get("user_id") == query.user_id
            ):
                found.append(_copy(row))
        return found

    async def _get_event(self, query: EventKey) -> LookedUpRecord | None:
        row = self._at(query.thread_id, query.seq)
        if row is None:
            return None
        if query.user_id is not None and row.get("user_id") != query.user_id:
            return None
        return cast(LookedUpRecord, _copy(row))  # all of it: no field is out of line here

    async def _list_threads(self, query: ThreadList) -> list[Record]:
        user = query.user_id
        threads = [
            (
                thread.updated_at if user is None else thread.user_activity.get(user, ""),
                thread_id,
                thread,
            )
            for thread_id, thread in self._threads.items()
            if user is None or user in thread.users
        ]
        threads.sort(reverse=True)
        if query.before is not None:
            limit = (query.before.updated_at, query.before.thread_id)
            threads = [item for item in threads if (item[0], item[1]) < limit]
        return [
            {
                "thread_id": thread_id,
                # A user's row: the seq of the user's newest event, nothing of another's.
                "last_seq": thread.last_seq
                if user is None
                else max(row["seq"] for row in thread.events if row.get("user_id") == user),
                "updated_at": updated_at,
                "cursor": ThreadCursor(updated_at, thread_id).encode(),
            }
            for updated_at, thread_id, thread in threads[: query.limit]
        ]

    async def _thread_info(self, thread_id: str) -> Record | None:
        thread = self._threads.get(thread_id)
        generation = self._generations.get(thread_id, 0)
        if thread is None and not generation:
            return None
        return {
            "thread_id": thread_id,
            "last_seq": 0 if thread is None else thread.last_seq,
            "generation": generation,
            "updated_at": "" if thread is None else thread.updated_at,
        }

    async def _thread_ids(self, after: str | None, limit: int) -> list[str]:
        ids = sorted(t for t, thread in self._threads.items() if thread.last_seq)
        start = 0 if after is None else bisect.bisect_right(ids, after)
        return ids[start : start + limit]

    async def _count(self, query: EventCount) -> int:
        rows = _owned(
            self._rows(query.thread_id, query.category == MESSAGE_CATEGORY), query.user_id
        )
        return sum(
            (query.run_id is None or row["run_id"] == query.run_id)
            and (query.category is None or row["category"] == query.category)
            for row in rows
        )

    async def _last_visible_replies(self, query: LastVisibleReplies) -> dict[str, int]:
        newest: dict[str, int] = {}
        for row in _owned(self._rows(query.thread_id, messages=True), query.user_id):
            if row["run_id"] in query.run_ids and is_visible_ai_reply(row):
                newest[row["run_id"]] = row["seq"]
        return newest

    async def _message_seqs(self, query: MessageSeqs) -> dict[str, int]:
        thread = self._threads.get(query.thread_id)
        if thread is None:
            return {}
        found: dict[str, int] = {}
        for identity in query.identities:
            for row in _owned(thread.by_identity.get(identity, []), query.user_id):
                found[identity] = row["seq"]  # the earliest: rows are in seq order
                break
        return found

    # --- deletes -------------------------------------------------------------------

    async def _delete(self, query: Deletion) -> int:
        thread = self._threads.get(query.thread_id)
        if thread is None:
            return 0
        if query.whole_thread:
            self._reset(query.thread_id)
            return len(thread.events)

        def doomed(row: Record) -> bool:
            return (query.run_id is None or row["run_id"] == query.run_id) and (
                query.user_id is None or row.get("user_id") == query.user_id
            )

        deleted = self._remove(thread, doomed)
        if query.run_id is None and not thread.events:
            # The user's events were all the thread had: it starts again at 1.
            self._reset(query.thread_id)
        return deleted

    def _reset(self, thread_id: str) -> None:
        """Forget the thread: its numbering starts again at 1, in a new generation."""
        del self._threads[thread_id]
        self._generations[thread_id] = self._generations.get(thread_id, 0) + 1
        self._signal(thread_id)

    @staticmethod
    def _remove(thread: _Thread, doomed: Callable[[Record], bool]) -> int:
        """Remove the thread's events for which ``doomed`` is true; the numbering goes on."""
        before = len(thread.events)
        thread.events = [row for row in thread.events if not doomed(row)]
        thread.messages = [row for row in thread.messages if not doomed(row)]
        thread.by_event_id = {
            key: row for key, row in thread.by_event_id.items() if not doomed(row)
        }
        thread.users = {row["user_id"] for row in thread.events if "user_id" in row}
        for identity, rows in list(thread.by_identity.items()):
            kept = [row for row in rows if not doomed(row)]
            if kept:
                thread.by_identity[identity] = kept
            else:
                del thread.by_identity[identity]
        still_held = {row["seq"] for row in thread.events}
        thread.source_seqs = {
            seq: source for seq, source in thread.source_seqs.items() if seq in still_held
        }
        thread.user_activity = {
            user: when for user, when in thread.user_activity.items() if user in thread.users
        }
        return before - len(thread.events)

    def _at(self, thread_id: str, seq: int) -> Record | None:
        """The thread's event with ``seq``, if it holds one."""
        thread = self._threads.get(thread_id)
        return None if thread is None else self._at_in(thread)(seq)

    @staticmethod
    def _at_in(thread: _Thread) -> Callable[[int], Record | None]:
        """A function giving ``thread``'s event with a seq, if it holds one."""

        def at(seq: int) -> Record | None:
            rows = thread.events
            index = bisect.bisect_left(rows, seq, key=_seq_of)
            return rows[index] if index < len(rows) and rows[index]["seq"] == seq else None

        return at

    def _rows(self, thread_id: str, messages: bool) -> list[Record]:
        """The thread's events (or only its messages), in seq order."""
        thread = self._threads.get(thread_id)
        if thread is None:
            return []
        return thread.messages if messages else thread.events
