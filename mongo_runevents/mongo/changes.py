"""Waking a live tail when its thread is written to: a change stream on the events collection.

The stream only says "something was inserted into this thread"; the tail's
read by seq decides what is new (:mod:`mongo_runevents.tail`). A stream that
fails is reopened from its resume token (or afresh when the server lost that
history); a deployment without change streams makes the waiter give up, and
the tail polls.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from pymongo.errors import OperationFailure, PyMongoError

from . import compat

logger = logging.getLogger(__name__)

# Server answers meaning "this deployment has no change streams".
_NO_CHANGE_STREAMS = {
    40573,  # The $changeStream stage is only supported on replica sets
    115,  # CommandNotSupported
    20,  # IllegalOperation
}
# Server answers meaning "the resume token's history is gone".
_HISTORY_LOST = {280, 286}


class ChangeStreamWaiter:
    """A :class:`~mongo_runevents.tail.NewsWaiter` over a change stream of one thread's inserts."""

    def __init__(
        self,
        events: Any,
        thread_id: str,
        max_wait: float,
        has_change_streams: Callable[[], Awaitable[bool]],
    ) -> None:
        self._events = events
        self._has_change_streams: Callable[[], Awaitable[bool]] | None = has_change_streams
        self._thread_id = thread_id
        self._max_wait_ms = max(1, int(max_wait * 1000))
        self._stream: Any = None
        self._resume_token: Any = None
        self._available = True

    async def wait(self) -> bool:
        """Return at the thread's next insert or after the longest wait; ``False`` if no stream."""
        if self._has_change_streams is not None:
            # Asked once, at the first wait: the store may not be set up before.
            self._available = await self._has_change_streams()
            self._has_change_streams = None
        if not self._available:
            return False
        if self._stream is None:
            self._stream = await self._open()
            if self._stream is None:
                return False
        try:
            # Returns at the first change, or after max_await_time with none.
            await self._stream.try_next()
            self._resume_token = self._stream.resume_token
        except PyMongoError as exc:
            logger.info("change stream of thread %r failed, reopening: %s", self._thread_id, exc)
            await self.close()
            if isinstance(exc, OperationFailure) and exc.code in _HISTORY_LOST:
                self._resume_token = None  # start afresh: the seq cursor covers the gap
            return False
        return True

    async def _open(self) -> Any:
        pipeline = [
            {"$match": {"operationType": "insert", "fullDocument.thread_id": self._thread_id}},
            {"$project": {"fullDocument.seq": 1}},
        ]
        options: dict[str, Any] = {"max_await_time_ms": self._max_wait_ms}
        if self._resume_token is not None:
            options["resume_after"] = self._resume_token
        try:
            return await compat.resolve(self._events.watch(pipeline, **options))
        except OperationFailure as exc:
            if exc.code in _NO_CHANGE_STREAMS:
                self._available = False
            logger.info(
                "could not open a change stream on thread %r, polling: %s", self._thread_id, exc
            )
        except PyMongoError as exc:
            logger.info(
                "could not open a change stream on thread %r, polling: %s", self._thread_id, exc
            )
        return None

    async def close(self) -> None:
        """Close the stream, if one is open."""
        stream, self._stream = self._stream, None
        if stream is None:
            return
        try:
            await compat.resolve(stream.close())
        except PyMongoError:
            logger.debug("closing a change stream failed", exc_info=True)
