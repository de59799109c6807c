"""Following a thread live: every event once, in seq order, as it is written.

The seq is the cursor. The tail reads everything after the last seq it
yielded, then waits for news and reads again. Waiting uses a change stream
where the deployment has one (replica set, sharded cluster): the stream only
wakes the tail up, and the read by seq decides what is new, so a dropped
stream, a resumed one or a duplicate notification can never skip or repeat an
event. Where there is no change stream (standalone, mongomock), or when it
fails, the tail polls with exponential back-off instead.

Ordering holds exactly in transaction mode, where commits land in seq order.
In plain mode, writers in different processes may commit seq n+1 before n,
and a tail that read n+1 will not go back for n (see docs/semantics.md).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING, Any

from pymongo.errors import OperationFailure, PyMongoError

from . import _compat
from .errors import StorageError

if TYPE_CHECKING:
    from .mongo import MongoRunEventStore

logger = logging.getLogger(__name__)

#: Events read per query while catching up.
PAGE_SIZE = 500

# Server answers meaning "this deployment has no change streams".
_NO_CHANGE_STREAMS = {
    40573,  # The $changeStream stage is only supported on replica sets
    115,  # CommandNotSupported
    20,  # IllegalOperation
}


async def follow(
    store: MongoRunEventStore,
    thread_id: str,
    *,
    after_seq: int,
    category: str | None,
    user_id: str | None,
    poll_interval: float,
    max_poll_interval: float,
) -> AsyncGenerator[dict[str, Any], None]:
    """Yield the thread's events after ``after_seq``, then new ones as they come, forever."""
    cursor = after_seq
    stream: Any = None
    resume_token: Any = None
    change_streams = store.has_change_streams
    interval = poll_interval
    try:
        while True:
            if change_streams and stream is None:
                stream, change_streams = await _open(
                    store, thread_id, resume_token, max_poll_interval
                )
            while True:
                try:
                    page = await store.read_after(thread_id, cursor, category, user_id, PAGE_SIZE)
                except StorageError as exc:
                    if not exc.retryable:
                        raise
                    # The server is away: keep the cursor and try again later.
                    logger.warning(
                        "tail of thread %r: %s; retrying in %.1f s", thread_id, exc, interval
                    )
                    await asyncio.sleep(interval)
                    interval = min(interval * 2, max_poll_interval)
                    continue
                for record in page:
                    cursor = record["seq"]
                    yield record
                if page:
                    interval = poll_interval
                if len(page) < PAGE_SIZE:
                    break
            if stream is None:
                await asyncio.sleep(interval)
                interval = min(interval * 2, max_poll_interval)
                continue
            try:
                # Returns at the first change, or after max_await_time with none.
                await stream.try_next()
                resume_token = stream.resume_token
            except PyMongoError as exc:
                logger.info("change stream of thread %r failed, reopening: %s", thread_id, exc)
                await _close(stream)
                stream = None
                if isinstance(exc, OperationFailure) and exc.code in (280, 286):
                    resume_token = None  # history lost: start afresh, the seq cursor covers it
    finally:
        if stream is not None:
            await _close(stream)


async def _open(
    store: MongoRunEventStore, thread_id: str, resume_token: Any, max_wait: float
) -> tuple[Any, bool]:
    """A change stream that signals inserts into the thread, and whether to keep using them."""
    pipeline = [
        {"$match": {"operationType": "insert", "fullDocument.thread_id": thread_id}},
        {"$project": {"fullDocument.seq": 1}},
    ]
    options: dict[str, Any] = {"max_await_time_ms": max(1, int(max_wait * 1000))}
    if resume_token is not None:
        options["resume_after"] = resume_token
    try:
        return await _compat.resolve(store.events_collection.watch(pipeline, **options)), True
    except OperationFailure as exc:
        if exc.code in _NO_CHANGE_STREAMS:
            return None, False
        logger.info("could not open a change stream on thread %r, polling: %s", thread_id, exc)
        return None, True
    except PyMongoError as exc:
        logger.info("could not open a change stream on thread %r, polling: %s", thread_id, exc)
        return None, True


async def _close(stream: Any) -> None:
    try:
        await _compat.resolve(stream.close())
    except PyMongoError:
        logger.debug("closing a change stream failed", exc_info=True)
