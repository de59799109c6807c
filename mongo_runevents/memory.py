"""The in-memory reference store: no dependencies, for development and tests.

Every method runs without awaiting anything, so on one event loop each call is
atomic by construction: a batch is all-or-nothing and no reader can see a
half-written one. Records are copied on the way in and on the way out, so what
a caller does with its own objects never changes what is stored.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any

from ._json import copy_json
from .base import RunEventStore
from .errors import EventIdConflictError
from .models import (
    MESSAGE_CATEGORY,
    NewEvent,
    check_cursor,
    check_event_types,
    check_id,
    check_limit,
    new_event,
    new_events,
    utc_now_iso,
)


def _seq_of(record: dict[str, Any]) -> int:
    seq: int = record["seq"]
    return seq


def _copy(record: dict[str, Any]) -> dict[str, Any]:
    copied = dict(record)
    copied["content"] = copy_json(record["content"])
    copied["metadata"] = copy_json(record["metadata"])
    return copied


@dataclass
class _Thread:
    last_seq: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    by_event_id: dict[str, dict[str, Any]] = field(default_factory=dict)


def _page(
    rows: list[dict[str, Any]], limit: int, before_seq: int | None, after_seq: int | None
) -> list[dict[str, Any]]:
    """The cursor rules of ``list_messages`` over rows sorted by ``seq``."""
    start = 0 if after_seq is None else bisect.bisect_right(rows, after_seq, key=_seq_of)
    end = len(rows) if before_seq is None else bisect.bisect_left(rows, before_seq, key=_seq_of)
    if end <= start:
        return []
    if after_seq is None:
        return rows[max(start, end - limit) : end]
    return rows[start : min(end, start + limit)]


class MemoryRunEventStore(RunEventStore):
    """A :class:`RunEventStore` kept in a dict; lost when the process ends."""

    def __init__(self) -> None:
        self._threads: dict[str, _Thread] = {}

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
    ) -> dict[str, Any]:
        event = new_event(
            {
                "thread_id": thread_id,
                "run_id": run_id,
                "event_type": event_type,
                "category": category,
                "content": content,
                "metadata": metadata,
                "created_at": created_at,
                "event_id": event_id,
            }
        )
        return self._append([event])[0]

    async def put_batch(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return self._append(new_events(events))

    def _append(self, events: list[NewEvent]) -> list[dict[str, Any]]:
        # First every check, then every write: a batch is all-or-nothing.
        stored_already = [self._stored_with_key(index, event) for index, event in enumerate(events)]
        now = utc_now_iso()
        results = []
        for event, stored in zip(events, stored_already, strict=True):
            if stored is None:
                thread = self._threads.setdefault(event.thread_id, _Thread())
                thread.last_seq += 1
                stored = _copy(event.to_record(thread.last_seq, event.created_at or now))
                thread.events.append(stored)
                if stored["category"] == MESSAGE_CATEGORY:
                    thread.messages.append(stored)
                if event.event_id is not None:
                    thread.by_event_id[event.event_id] = stored
            results.append(_copy(stored))
        return results

    def _stored_with_key(self, index: int, event: NewEvent) -> dict[str, Any] | None:
        """The stored record holding ``event``'s idempotency key, if the thread has one."""
        thread = self._threads.get(event.thread_id)
        if event.event_id is None or thread is None:
            return None
        stored = thread.by_event_id.get(event.event_id)
        if stored is not None and not event.same_event_as(stored):
            raise EventIdConflictError(
                f"event {index}: thread {event.thread_id!r} already holds a different "
                f"event with event_id {event.event_id!r} (seq {stored['seq']})"
            )
        return stored

    async def list_messages(
        self,
        thread_id: str,
        *,
        limit: int = 50,
        before_seq: int | None = None,
        after_seq: int | None = None,
    ) -> list[dict[str, Any]]:
        check_id(thread_id, "thread_id")
        check_limit(limit)
        check_cursor(before_seq, "before_seq")
        check_cursor(after_seq, "after_seq")
        thread = self._threads.get(thread_id)
        if thread is None:
            return []
        return [_copy(row) for row in _page(thread.messages, limit, before_seq, after_seq)]

    async def list_events(
        self,
        thread_id: str,
        run_id: str,
        *,
        event_types: list[str] | None = None,
        limit: int = 500,
    ) -> list[dict[str, Any]]:
        check_id(thread_id, "thread_id")
        check_id(run_id, "run_id")
        types = check_event_types(event_types)
        check_limit(limit)
        rows = [
            row
            for row in self._events(thread_id)
            if row["run_id"] == run_id and (types is None or row["event_type"] in types)
        ]
        return [_copy(row) for row in rows[:limit]]

    async def list_messages_by_run(self, thread_id: str, run_id: str) -> list[dict[str, Any]]:
        check_id(thread_id, "thread_id")
        check_id(run_id, "run_id")
        thread = self._threads.get(thread_id)
        if thread is None:
            return []
        return [_copy(row) for row in thread.messages if row["run_id"] == run_id]

    async def count_messages(self, thread_id: str) -> int:
        check_id(thread_id, "thread_id")
        thread = self._threads.get(thread_id)
        return 0 if thread is None else len(thread.messages)

    async def delete_by_thread(self, thread_id: str) -> int:
        check_id(thread_id, "thread_id")
        thread = self._threads.pop(thread_id, None)
        return 0 if thread is None else len(thread.events)

    async def delete_by_run(self, thread_id: str, run_id: str) -> int:
        check_id(thread_id, "thread_id")
        check_id(run_id, "run_id")
        thread = self._threads.get(thread_id)
        if thread is None:
            return 0
        before = len(thread.events)
        thread.events = [row for row in thread.events if row["run_id"] != run_id]
        thread.messages = [row for row in thread.messages if row["run_id"] != run_id]
        thread.by_event_id = {
            key: row for key, row in thread.by_event_id.items() if row["run_id"] != run_id
        }
        return before - len(thread.events)

    def _events(self, thread_id: str) -> list[dict[str, Any]]:
        thread = self._threads.get(thread_id)
        return [] if thread is None else thread.events
