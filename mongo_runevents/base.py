"""The storage interface for the event streams of agent runs.

A *thread* is a conversation; a *run* is one execution of the agent inside it.
Everything a run does is an event: the chat messages a UI shows
(``category="message"``) and the traces kept for debugging and audit (any
other category). Both go through this one interface; ``category`` tells them
apart. The store numbers each thread's events with ``seq``: 1, 2, 3, ... in the
order they were written, and readers page through a thread by ``seq``.

The full behaviour every implementation must show is in ``docs/semantics.md``
and is checked by the conformance suite in ``tests/conformance.py``.
"""

from __future__ import annotations

import abc
from typing import Any


class RunEventStore(abc.ABC):
    """Where agent servers keep the events of their runs.

    Every implementation guarantees that

    1. an event returned by ``put`` / ``put_batch`` is seen by every later read;
    2. ``seq`` is unique and strictly increasing within a thread, in write order;
    3. ``list_messages`` returns only ``category == "message"`` events;
    4. ``list_events`` returns every category of the given run;
    5. every method returns plain dicts with the fields of a
       :class:`~mongo_runevents.RunEvent`, which the caller may mutate freely.
    """

    @abc.abstractmethod
    async def put(
        self,
        *,
        thread_id: str,
        run_id: str,
        event_type: str,
        category: str,
        content: str | dict[str, Any] = "",
        metadata: dict[str, Any] | None = None,
        created_at: str | None = None,
        event_id: str | None = None,
        user_id: str | None = None,
    ) -> dict[str, Any]:
        """Store one event; return the stored record, with its new ``seq``.

        ``content`` may be any JSON-compatible value. ``created_at``, when given,
        must be ISO-8601 and is returned exactly as given; by default it is the
        current UTC time. ``event_id`` is an optional idempotency key, unique
        within the thread: if the thread already holds the same event under
        that key, its stored record is returned and nothing is written; if it
        holds a different one, :class:`~mongo_runevents.EventIdConflictError`.
        ``user_id`` records the event's owner (see the read methods).
        """

    @abc.abstractmethod
    async def put_batch(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Store several events at once, all or nothing; return their records in input order.

        Each dict has ``put``'s keyword arguments as keys. This is the call a
        run's journal makes when it flushes its buffer. The events of one thread
        get consecutive ``seq`` values in input order; a batch may mix threads.
        Events whose ``event_id`` the thread already holds are not written
        again: their stored records are returned, so a journal may retry a
        batch (even with new events added) without duplicating anything.
        """

    @abc.abstractmethod
    async def put_if_absent(
        self,
        *,
        thread_id: str,
        run_id: str,
        event_type: str,
        category: str,
        content: str | dict[str, Any] = "",
        metadata: dict[str, Any] | None = None,
        created_at: str | None = None,
        event_id: str | None = None,
        user_id: str | None = None,
    ) -> tuple[dict[str, Any], bool]:
        """Store the event unless the run already holds one of the same ``event_type``.

        Returns ``(record, created)``: the new record and ``True``, or the
        oldest existing event of that type in the run and ``False``. The check
        and the write are atomic with respect to every other writer of the
        thread (a ``run.start`` is written once, however many callers race).
        """

    @abc.abstractmethod
    async def list_messages(
        self,
        thread_id: str,
        *,
        limit: int = 50,
        before_seq: int | None = None,
        after_seq: int | None = None,
        user_id: str | None = None,
    ) -> list[dict[str, Any]]:
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

    @abc.abstractmethod
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
        """Return the first ``limit`` events of a run, every category, ascending by ``seq``.

        ``event_types`` keeps only those types; ``None`` keeps all, and an empty
        list matches nothing. ``task_id`` keeps the events whose
        ``metadata["task_id"]`` equals it. ``after_seq`` starts after that seq,
        so a caller can page through a run of any length.
        """

    @abc.abstractmethod
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
        """Return a page of one run's messages, ascending, with the cursor rules of ``list_messages``."""

    @abc.abstractmethod
    async def count_messages(self, thread_id: str, *, user_id: str | None = None) -> int:
        """Return how many messages (``category == "message"``) the thread holds."""

    @abc.abstractmethod
    async def get_last_visible_ai_seq_by_run(
        self, thread_id: str, run_ids: list[str], *, user_id: str | None = None
    ) -> dict[str, int]:
        """Per run, the seq of its newest AI reply a user sees; runs without one are left out.

        An AI reply is a message whose ``event_type`` is ``llm.ai.response``
        (or the legacy ``ai_message``); it is visible unless its
        ``metadata["caller"]`` starts with ``middleware:``.
        """

    @abc.abstractmethod
    async def delete_by_thread(self, thread_id: str, *, user_id: str | None = None) -> int:
        """Delete every event of a thread and return how many there were.

        The thread's numbering starts again at 1 afterwards; with ``user_id``,
        only that user's events are deleted and the numbering goes on.
        """

    @abc.abstractmethod
    async def delete_by_run(
        self, thread_id: str, run_id: str, *, user_id: str | None = None
    ) -> int:
        """Delete every event of one run and return how many there were.

        The thread's numbering is not reset: a deleted ``seq`` is never reused.
        """

    async def close(self) -> None:  # noqa: B027 (optional hook, deliberately empty)
        """Release what the store owns; the default owns nothing."""
