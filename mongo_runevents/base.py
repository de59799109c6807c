"""The storage interface for the event streams of agent runs, and the logic every store shares.

A *thread* is a conversation; a *run* is one execution of the agent inside it.
Everything a run does is an event: the chat messages a UI shows
(``category="message"``) and the traces kept for debugging and audit (any
other category). Both go through this one interface; ``category`` tells them
apart. The store numbers each thread's events with ``seq``: 1, 2, 3, ... in the
order they were written, and readers page through a thread by ``seq``.

:class:`RunEventStore` holds DeerFlow's interface; :mod:`mongo_runevents.operations` the
other public methods, :mod:`mongo_runevents.primitives` what a store implements. Each checks its arguments
once (events into :class:`~mongo_runevents.models.NewEvent`, everything else
into a query of :mod:`mongo_runevents.queries`) and calls one primitive per
kind of query, which a store implements: the Memory store interprets the
query, the MongoDB store turns it into a filter. So the stores cannot disagree
about input. The live tail, paging and export are built on the primitives.

The behaviour every store must show is in ``docs/semantics.md`` and is checked
by the conformance suite in ``tests/conformance/``.
"""

from __future__ import annotations

from collections.abc import Iterable
from types import TracebackType
from typing import Any

from . import queries
from ._json import JsonDefault
from .importing import (
    ImportResult,
)
from .models import (
    MESSAGE_CATEGORY,
    new_event_from_arguments_yielding,
    new_events_yielding,
)
from .operations import PAGE_SIZE, StoreOperations
from .policy import WritePolicy
from .telemetry import observed

__all__ = ["PAGE_SIZE", "ImportResult", "RunEventStore"]


class RunEventStore(StoreOperations):
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
    ) -> dict[str, Any]:
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
    async def put_batch(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
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
    ) -> tuple[dict[str, Any], bool]:
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
    ) -> list[dict[str, Any]]:
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
    ) -> list[dict[str, Any]]:
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
