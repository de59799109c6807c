"""What every store offers beyond DeerFlow's interface, built on the primitives alone.

Single reads (``read_after``, ``get_event``), thread listings and counts, the
live tail (:mod:`mongo_runevents.tail`), export (:mod:`mongo_runevents.paging`)
and import (:mod:`mongo_runevents.importing`): each checks its arguments once
and calls the store's primitives, so every store behaves the same.
"""

from __future__ import annotations

import asyncio
import functools
import math
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import Any, TypeVar

from . import paging, queries
from .errors import ImportConflictError, InvalidEventError
from .importing import (
    ON_CONFLICT,
    ImportConflict,
    ImportResult,
    OnConflict,
    assign,
    plan_import,
)
from .models import (
    NewEvent,
    imported_event,
)
from .primitives import StorePrimitives
from .queries import (
    ThreadEvents,
)
from .tail import follow
from .telemetry import observed

T = TypeVar("T")

#: Records read per query when the store walks a whole thread (export, tail).
PAGE_SIZE = 500
#: How many of a store's live tails read at once (their other time is spent
#: waiting, which takes no connection: see :mod:`mongo_runevents.mongo.changes`).
#: A write to a thread wakes all its tails; with this bound they take at most
#: this many of the driver's connections (100 by default), and the rest of the
#: store's calls still find one.
TAIL_READS = 8


def _conflicts_text(conflicts: list[ImportConflict]) -> str:
    """``2 records collide with other events ...: record 4 (thread 't', seq 3): ...``."""
    shown = "; ".join(
        f"record {c.index} (thread {c.thread_id!r}, seq {c.seq}): {c.reason}" for c in conflicts[:3]
    )
    more = f"; and {len(conflicts) - 3} more" if len(conflicts) > 3 else ""
    count = "1 record collides" if len(conflicts) == 1 else f"{len(conflicts)} records collide"
    return f"{count} with other events; nothing was written (on_conflict='stop'): {shown}{more}"


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


class StoreOperations(StorePrimitives):
    """The operators' and viewers' operations, on any store."""

    @observed("read_after")
    async def read_after(
        self,
        thread_id: str,
        after_seq: int,
        category: str | None = None,
        user_id: str | None = None,
        limit: int = PAGE_SIZE,
    ) -> list[dict[str, Any]]:
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
    ) -> dict[str, Any] | None:
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
    ) -> AsyncGenerator[dict[str, Any], None]:
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
    ) -> AsyncGenerator[dict[str, Any], None]:
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
        to_write: list[tuple[NewEvent, int]] = []
        positions: list[int] = []
        for thread in plan.threads:
            if not thread.to_store:
                continue
            first = 0
            if thread.renumber:
                count = len(thread.to_store)
                first = (
                    thread.last_seq + 1
                    if dry_run
                    else await self._reserve_for_import(thread.thread_id, count)
                )
            to_write += assign(thread, first, result)
            positions += [item.index for item in thread.to_store]
        refused = set(await self._import(to_write)) if to_write and not dry_run else set()
        for position in sorted(refused):
            event, seq = to_write[position]
            conflict = ImportConflict(
                positions[position],
                event.thread_id,
                seq,
                f"seq {seq} or its event_id was taken by another writer during the import",
            )
            result.conflicts.append(conflict)
            result.skipped.append(conflict)
        if refused:
            lost = {positions[position] for position in refused}
            result.renumbered = [item for item in result.renumbered if item.index not in lost]
        result.inserted = len(to_write) - len(refused)
        return result
