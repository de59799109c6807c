"""The in-memory reference store: no dependencies, for development and tests.

Every method runs without awaiting anything, so on one event loop each call is
atomic by construction: a batch is all-or-nothing and no reader can see a
half-written one. Records are copied on the way in and on the way out, so what
a caller does with its own objects never changes what is stored.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ._json import JsonDefault, copy_json
from .base import RunEventStore
from .errors import EventIdConflictError
from .models import (
    MESSAGE_CATEGORY,
    NewEvent,
    WritePolicy,
    check_event_types,
    check_filter,
    check_id,
    check_ids,
    check_optional_id,
    check_page,
    is_visible_ai_reply,
    new_event_from_arguments,
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
    """A :class:`RunEventStore` kept in a dict; lost when the process ends.

    ``json_default`` and ``max_trace_content`` are those of
    :class:`~mongo_runevents.models.WritePolicy`.
    """

    def __init__(
        self, *, json_default: JsonDefault = str, max_trace_content: int | None = None
    ) -> None:
        self._threads: dict[str, _Thread] = {}
        self._policy = WritePolicy(json_default, max_trace_content)

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
    ) -> dict[str, Any]:
        return self._append([new_event_from_arguments(locals(), self._policy)])[0]

    async def put_batch(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return self._append(new_events(events, self._policy))

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
    ) -> tuple[dict[str, Any], bool]:
        event = new_event_from_arguments(locals(), self._policy)
        for row in self._events(thread_id):
            if row["run_id"] == run_id and row["event_type"] == event_type:
                return _copy(row), False
        return self._append([event])[0], True

    def _append(self, events: list[NewEvent]) -> list[dict[str, Any]]:
        # First every check, then every write: a batch is all-or-nothing.
        stored_already = [self._stored_with_key(index, event) for index, event in enumerate(events)]
        now = utc_now_iso()
        results = []
        for event, stored in zip(events, stored_already, strict=True):
            if stored is None:
                thread = self._threads.setdefault(event.thread_id, _Thread())
                thread.last_seq += 1
                stored = event.to_record(thread.last_seq, event.created_at or now)
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
        user_id: str | None = None,
    ) -> list[dict[str, Any]]:
        check_id(thread_id, "thread_id")
        check_page(limit, before_seq, after_seq)
        rows = self._rows(self._messages(thread_id), user_id)
        return [_copy(row) for row in _page(rows, limit, before_seq, after_seq)]

    async def list_events(
        self,
        thread_id: str,
        run_id: str,
        *,
        event_types: list[str] | None = None,
        limit: int = 500,
        task_id: str | None = None,
        after_seq: int | None = None,
        user_id: str | None = None,
    ) -> list[dict[str, Any]]:
        check_id(thread_id, "thread_id")
        check_id(run_id, "run_id")
        types = check_event_types(event_types)
        check_page(limit, None, after_seq)
        check_filter(task_id, "task_id")
        if task_id == "" or types == []:
            return []
        rows = [
            row
            for row in self._rows(self._events(thread_id), user_id)
            if row["run_id"] == run_id
            and (types is None or row["event_type"] in types)
            and (task_id is None or row["metadata"].get("task_id") == task_id)
            and (after_seq is None or row["seq"] > after_seq)
        ]
        return [_copy(row) for row in rows[:limit]]

    async def list_messages_by_run(
        self,
        thread_id: str,
        run_id: str,
        *,
        limit: int = 50,
        before_seq: int | None = None,
        after_seq: int | None = None,
        user_id: str | None = None,
    ) -> list[dict[str, Any]]:
        check_id(thread_id, "thread_id")
        check_id(run_id, "run_id")
        check_page(limit, before_seq, after_seq)
        rows = [
            row for row in self._rows(self._messages(thread_id), user_id) if row["run_id"] == run_id
        ]
        return [_copy(row) for row in _page(rows, limit, before_seq, after_seq)]

    async def count_messages(self, thread_id: str, *, user_id: str | None = None) -> int:
        check_id(thread_id, "thread_id")
        return len(self._rows(self._messages(thread_id), user_id))

    async def get_last_visible_ai_seq_by_run(
        self, thread_id: str, run_ids: list[str], *, user_id: str | None = None
    ) -> dict[str, int]:
        check_id(thread_id, "thread_id")
        wanted = set(check_ids(run_ids, "run_ids"))
        newest: dict[str, int] = {}
        for row in self._rows(self._messages(thread_id), user_id):
            if row["run_id"] in wanted and is_visible_ai_reply(row):
                newest[row["run_id"]] = row["seq"]
        return newest

    async def delete_by_thread(self, thread_id: str, *, user_id: str | None = None) -> int:
        check_id(thread_id, "thread_id")
        if check_optional_id(user_id, "user_id") is None:
            thread = self._threads.pop(thread_id, None)
            return 0 if thread is None else len(thread.events)
        deleted = self._delete(thread_id, lambda row: row.get("user_id") == user_id)
        thread = self._threads.get(thread_id)
        if thread is not None and not thread.events:
            # The user's events were all the thread had: it starts again at 1.
            del self._threads[thread_id]
        return deleted

    async def delete_by_run(
        self, thread_id: str, run_id: str, *, user_id: str | None = None
    ) -> int:
        check_id(thread_id, "thread_id")
        check_id(run_id, "run_id")
        check_optional_id(user_id, "user_id")
        return self._delete(
            thread_id,
            lambda row: (
                row["run_id"] == run_id and (user_id is None or row.get("user_id") == user_id)
            ),
        )

    def _delete(self, thread_id: str, doomed: Callable[[dict[str, Any]], bool]) -> int:
        """Delete the thread's events for which ``doomed`` is true; the numbering goes on."""
        thread = self._threads.get(thread_id)
        if thread is None:
            return 0
        before = len(thread.events)
        thread.events = [row for row in thread.events if not doomed(row)]
        thread.messages = [row for row in thread.messages if not doomed(row)]
        thread.by_event_id = {
            key: row for key, row in thread.by_event_id.items() if not doomed(row)
        }
        return before - len(thread.events)

    @staticmethod
    def _rows(rows: list[dict[str, Any]], user_id: str | None) -> list[dict[str, Any]]:
        """``rows``, or only the user's when ``user_id`` is given."""
        if check_optional_id(user_id, "user_id") is None:
            return rows
        return [row for row in rows if row.get("user_id") == user_id]

    def _messages(self, thread_id: str) -> list[dict[str, Any]]:
        thread = self._threads.get(thread_id)
        return [] if thread is None else thread.messages

    def _events(self, thread_id: str) -> list[dict[str, Any]]:
        thread = self._threads.get(thread_id)
        return [] if thread is None else thread.events
