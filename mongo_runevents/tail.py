"""Following a thread live: every event once, in seq order, as it is written.

The seq is the cursor. The tail reads everything after the last seq it
yielded, then waits for news and reads again. A store may offer a
:class:`NewsWaiter` that returns as soon as the thread may have changed (the
MongoDB store's change streams, the Memory store's own writes); it only wakes
the tail up, and the read by seq decides what is new, so a dropped, resumed or
repeated notification can never skip or repeat an event. Without a waiter,
or while it is unavailable, the tail polls with exponential back-off.

Ordering holds exactly where commits land in seq order (transactions, the
Memory store). In the MongoDB store's plain mode, writers in different
processes may commit seq n+1 before n, and a tail that read n+1 will not go
back for n (see docs/semantics.md).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import replace
from typing import Protocol

from .errors import StorageError
from .paging import ThreadRead
from .queries import ThreadEvents
from .records import StoredRecord

logger = logging.getLogger(__name__)


class NewsWaiter(Protocol):
    """Tells a tail that its thread may have changed."""

    async def wait(self) -> bool:
        """Wait until the thread may have changed, or for a while at most; return ``True``.

        ``False``, at once, when the waiter cannot wait right now (a broken or
        missing change stream): the tail then polls until it works again.
        """

    async def close(self) -> None:
        """Release what the waiter holds (a change stream)."""


async def follow(
    read: ThreadRead,
    query: ThreadEvents,
    news: NewsWaiter | None,
    generation: Callable[[], Awaitable[int]],
    *,
    poll_interval: float,
    max_poll_interval: float,
) -> AsyncGenerator[StoredRecord, None]:
    """Yield the thread's events after ``query.after_seq``, then new ones as they come, forever.

    ``generation()`` tells how often the thread was reset. It is read at the
    start and after every page read: a page is yielded only if the generation
    did not change while it was read. When it changed, the thread was deleted
    and begun again at seq 1: the page (which may hold the new thread's events
    past the old cursor) is dropped and the tail goes on from seq 1, so no
    event of the new thread is yielded twice, however long the backlog.
    """
    interval = poll_interval
    # None: not known yet (the server was away); the first answer sets it.
    current = await _generation(generation, query.thread_id, None)
    try:
        while True:
            try:
                page = await read(query)
            except StorageError as exc:
                if not exc.retryable:
                    raise
                # The server is away: keep the cursor and try again later.
                logger.warning(
                    "tail of thread %r: %s; retrying in %.1f s", query.thread_id, exc, interval
                )
                await asyncio.sleep(interval)
                interval = min(interval * 2, max_poll_interval)
                continue
            latest = await _generation(generation, query.thread_id, current)
            if current is not None and latest is not None and latest != current:
                logger.info(
                    "thread %r was reset (generation %d -> %d): following it from seq 1",
                    query.thread_id,
                    current,
                    latest,
                )
                current = latest
                query = replace(query, after_seq=0)
                continue
            if current is None:
                current = latest
            for record in page:
                query = replace(query, after_seq=record["seq"])
                interval = poll_interval
                yield record
            if len(page) == query.limit:
                continue  # a backlog: read on before waiting
            if news is None or not await news.wait():
                await asyncio.sleep(interval)
                interval = min(interval * 2, max_poll_interval)
    finally:
        if news is not None:
            await news.close()


async def _generation(
    generation: Callable[[], Awaitable[int]], thread_id: str, current: int | None
) -> int | None:
    """The thread's generation now; ``current`` if the store cannot say right now."""
    try:
        return await generation()
    except StorageError as exc:
        if not exc.retryable:
            raise
        logger.warning("tail of thread %r: %s; reading on", thread_id, exc)
        return current
