"""Waking live tails when their threads are written to: one change stream per store, shared.

A store's live tails (``watch``, the viewer's live pages) all wait on one
:class:`ChangeHub`: a single change stream of the events collection's inserts
(each change projected to its thread id), read by one background task that
wakes the tails of that thread. So however many tails are open, waiting takes
one connection of the driver's pool, not one each (a hundred tails used to
hold the whole pool, and an unrelated ``put`` waited behind them). The reads
a wake-up starts are bounded separately (:data:`~mongo_runevents.base.TAIL_READS`).

The stream only says "something was inserted into this thread"; the tail's
read by seq decides what is new (:mod:`mongo_runevents.tail`). A stream that
fails is reopened from its resume token (or afresh when the server lost that
history); every tail is woken whenever the stream opens or fails, so an
insert made while no stream was open is read too. A deployment without change
streams makes the waiters give up, and the tails poll.

The stream is not filtered by thread: each insert into the collection sends
the hub a small change (its thread id and a resume token) while a tail is open.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from pymongo.asynchronous.change_stream import AsyncChangeStream
from pymongo.errors import OperationFailure, PyMongoError

from . import compat
from .compat import Collection, Document

#: The shared stream (a Motor stream in its place under Motor).
Stream = AsyncChangeStream[Document]

logger = logging.getLogger(__name__)

# Server answers meaning "this deployment has no change streams".
_NO_CHANGE_STREAMS = {
    40573,  # The $changeStream stage is only supported on replica sets
    115,  # CommandNotSupported
    20,  # IllegalOperation
}
# Server answers meaning "the resume token's history is gone".
_HISTORY_LOST = {280, 286}

#: How long one read of the shared stream waits for a change (the server's
#: ``maxAwaitTimeMS``): also how soon the hub notices that its last tail left.
STREAM_WAIT_SECONDS = 1.0
#: How long the hub waits before opening a stream again after a failure.
REOPEN_DELAY_SECONDS = 0.5


def _outcome_retrieved(task: asyncio.Task[None]) -> None:
    """Take note of how the hub's task ended.

    On Python 3.10 a Ctrl-C can land while this background task runs: the loop
    re-raises the ``KeyboardInterrupt`` to the command, and without this the
    task's copy of it is also printed at exit ("exception was never retrieved").
    """
    if not task.cancelled():
        task.exception()


class ChangeHub:
    """The shared change stream of one store's events collection; see the module's description."""

    def __init__(
        self, events: Collection, has_change_streams: Callable[[], Awaitable[bool]]
    ) -> None:
        self._events = events
        self._has_change_streams = has_change_streams
        self._waiters: dict[str, set[HubWaiter]] = {}
        self._task: asyncio.Task[None] | None = None
        #: ``None`` until asked; ``False`` for good once the deployment says it has none.
        self._available: bool | None = None
        #: Whether a stream is open and read right now.
        self.streaming = False
        self._resume_token: Mapping[str, Any] | None = None

    @property
    def available(self) -> bool | None:
        """Whether the deployment offers change streams (``None``: not known yet)."""
        return self._available

    @property
    def waiting(self) -> int:
        """How many tails wait on the hub."""
        return sum(len(waiters) for waiters in self._waiters.values())

    def waiter(self, thread_id: str, max_wait: float) -> HubWaiter:
        """A :class:`~mongo_runevents.tail.NewsWaiter` for one tail of ``thread_id``."""
        waiter = HubWaiter(self, thread_id, max_wait)
        self._waiters.setdefault(thread_id, set()).add(waiter)
        return waiter

    def _leave(self, waiter: HubWaiter) -> None:
        waiters = self._waiters.get(waiter.thread_id)
        if waiters is not None:
            waiters.discard(waiter)
            if not waiters:
                del self._waiters[waiter.thread_id]

    def _ensure_running(self) -> None:
        """Start the reading task if none runs on this event loop."""
        loop = asyncio.get_running_loop()
        if self._task is not None and not self._task.done() and self._task.get_loop() is loop:
            return
        self._task = loop.create_task(self._run())
        self._task.add_done_callback(_outcome_retrieved)

    def _wake(self, thread_id: str) -> None:
        for waiter in self._waiters.get(thread_id, ()):
            waiter.news.set()

    def _wake_all(self) -> None:
        for waiters in self._waiters.values():
            for waiter in waiters:
                waiter.news.set()

    async def _run(self) -> None:
        """Read the shared stream while any tail waits; wake the tails of each inserted thread."""
        try:
            if self._available is None:
                self._available = await self._has_change_streams()
            while self._waiters and self._available:
                stream = await self._open()
                if stream is None:
                    self._wake_all()  # they poll meanwhile
                    await asyncio.sleep(REOPEN_DELAY_SECONDS)
                    continue
                try:
                    await self._read(stream)
                finally:
                    self.streaming = False
                    await _close(stream)
        except Exception:  # the tails poll; the next wait starts the hub again
            logger.exception("the shared change stream stopped")
        finally:
            self.streaming = False
            self._wake_all()

    async def _read(self, stream: Stream) -> None:
        """Read ``stream`` until it fails or no tail waits any more."""
        self.streaming = True
        # Whatever was inserted before the stream opened is read by the tails now.
        self._wake_all()
        while self._waiters:
            try:
                # Returns at the first change, or after maxAwaitTimeMS with none.
                change = await stream.try_next()
                self._resume_token = stream.resume_token
            except PyMongoError as exc:
                logger.info("the shared change stream failed, reopening: %s", exc)
                if isinstance(exc, OperationFailure) and exc.code in _HISTORY_LOST:
                    self._resume_token = None  # start afresh: the seq cursors cover the gap
                self._wake_all()
                return
            if change is not None:
                thread_id = change.get("fullDocument", {}).get("thread_id")
                if isinstance(thread_id, str):
                    self._wake(thread_id)

    async def _open(self) -> Stream | None:
        pipeline: list[Document] = [
            {"$match": {"operationType": "insert"}},
            {"$project": {"fullDocument.thread_id": 1}},
        ]
        options: dict[str, Any] = {"max_await_time_ms": int(STREAM_WAIT_SECONDS * 1000)}
        if self._resume_token is not None:
            options["resume_after"] = self._resume_token
        try:
            stream: Stream = await compat.resolve(self._events.watch(pipeline, **options))
            return stream
        except OperationFailure as exc:
            if exc.code in _NO_CHANGE_STREAMS:
                self._available = False
            elif exc.code in _HISTORY_LOST:
                self._resume_token = None
            logger.info("could not open the shared change stream, polling: %s", exc)
        except PyMongoError as exc:
            logger.info("could not open the shared change stream, polling: %s", exc)
        return None

    async def close(self) -> None:
        """Stop reading the stream (the store is closing)."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


class HubWaiter:
    """One tail's waiter on a :class:`ChangeHub`."""

    def __init__(self, hub: ChangeHub, thread_id: str, max_wait: float) -> None:
        self.thread_id = thread_id
        self.news = asyncio.Event()
        self._hub = hub
        self._max_wait = max_wait

    async def wait(self) -> bool:
        """Return at the thread's next insert or after the longest wait; ``False`` if no stream."""
        hub = self._hub
        if hub.available is not False:
            hub._ensure_running()
        if hub.available is False or not hub.streaming:
            return False
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.news.wait(), self._max_wait)
        self.news.clear()
        return True

    async def close(self) -> None:
        """Leave the hub (its stream closes within a second once no tail waits)."""
        self._hub._leave(self)


async def _close(stream: Stream) -> None:
    try:
        await compat.resolve(stream.close())
    except PyMongoError:
        logger.debug("closing a change stream failed", exc_info=True)
