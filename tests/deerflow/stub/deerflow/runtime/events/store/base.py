"""DeerFlow's abstract store: the methods its callers use."""

from __future__ import annotations

import abc


class RunEventStore(abc.ABC):
    @abc.abstractmethod
    async def put(
        self, *, thread_id, run_id, event_type, category, content="", metadata=None, created_at=None
    ): ...

    @abc.abstractmethod
    async def put_batch(self, events): ...

    @abc.abstractmethod
    async def put_if_absent(
        self, *, thread_id, run_id, event_type, category, content="", metadata=None, created_at=None
    ): ...

    @abc.abstractmethod
    async def list_messages(
        self, thread_id, *, limit=50, before_seq=None, after_seq=None, user_id=None
    ): ...

    @abc.abstractmethod
    async def list_events(
        self, thread_id, run_id, *, event_types=None, task_id=None, limit=500, after_seq=None
    ): ...

    @abc.abstractmethod
    async def list_messages_by_run(
        self, thread_id, run_id, *, limit=50, before_seq=None, after_seq=None
    ): ...

    @abc.abstractmethod
    async def get_last_visible_ai_seq_by_run(self, thread_id, run_ids, *, user_id=None): ...

    @abc.abstractmethod
    async def count_messages(self, thread_id): ...

    @abc.abstractmethod
    async def delete_by_thread(self, thread_id): ...

    @abc.abstractmethod
    async def delete_by_run(self, thread_id, run_id): ...
