"""Reserving seqs: one counter document per thread, advanced with ``findOneAndUpdate``.

A counter is ``{_id: thread_id, last_seq: n, updated_at: <ISO time>, users:
[...], user_activity: {<user>: <ISO time>}, has_blobs: true?}``. A write reserves a block of consecutive seqs for
each thread it touches by ``$inc``-ing ``last_seq`` by the block's size
(upserted, so a thread's first write creates its counter); ``updated_at``,
``users`` and ``user_activity`` (each user's own last write, so that a user's
listing shows nothing of another's) let operators list threads by activity, ``has_blobs`` tells deletes
to look for out-of-line fields. Writers of one thread in different processes
therefore conflict on its counter, which in a transaction puts their commits
in seq order.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from pymongo import ReturnDocument, UpdateOne
from pymongo.errors import DuplicateKeyError

from ..errors import StorageError
from .codec import escape_key
from .setup import UPDATED_AT_FIELD, USER_ACTIVITY_FIELD, USERS_FIELD

#: How many times a counter upsert that lost a race with another is retried.
_UPSERT_ATTEMPTS = 5


@dataclass(frozen=True)
class Block:
    """What one write reserves in one thread."""

    count: int
    has_blobs: bool = False
    users: tuple[str, ...] = ()


def user_activity_path(user_id: str) -> str:
    """The counter field holding when ``user_id`` last wrote to the thread (the key escaped)."""
    return f"{USER_ACTIVITY_FIELD}.{escape_key(user_id)}"


def counter_update(block: Block, now: str) -> dict[str, Any]:
    """The update that reserves ``block`` on a thread's counter."""
    update: dict[str, Any] = {"$inc": {"last_seq": block.count}, "$set": {UPDATED_AT_FIELD: now}}
    if block.has_blobs:
        update["$set"]["has_blobs"] = True
    if block.users:
        update["$addToSet"] = {USERS_FIELD: {"$each": list(block.users)}}
        for user in block.users:
            update["$set"][user_activity_path(user)] = now
    return update


async def reserve_blocks(
    counters: Any, blocks: dict[str, Block], now: str, session: Any
) -> dict[str, int]:
    """Reserve a block of seqs per thread; return the first seq of each.

    One thread: one ``findOneAndUpdate``. Several threads, in a transaction:
    one bulk ``update`` of all their counters, then one ``find`` that reads
    the new values back (the transaction holds those counters, so nobody
    else moves them in between): two round trips whatever the number of
    threads. Without a transaction that read-back would not be safe, so
    the counters are updated with one ``findOneAndUpdate`` each, sent
    concurrently.
    """
    threads = sorted(blocks)  # the lock order
    if not threads:
        return {}
    if len(threads) == 1:
        [thread_id] = threads
        return {thread_id: await reserve(counters, thread_id, blocks[thread_id], now, session)}
    if session is None:
        firsts = await asyncio.gather(*(reserve(counters, t, blocks[t], now) for t in threads))
        return dict(zip(threads, firsts, strict=True))
    await counters.bulk_write(
        [UpdateOne({"_id": t}, counter_update(blocks[t], now), upsert=True) for t in threads],
        ordered=True,
        session=session,
    )
    rows = await counters.find({"_id": {"$in": threads}}, {"last_seq": 1}, session=session).to_list(
        None
    )
    last = {row["_id"]: row["last_seq"] for row in rows}
    return {t: last[t] - blocks[t].count + 1 for t in threads}


async def reserve(
    counters: Any, thread_id: str, block: Block, now: str, session: Any = None
) -> int:
    """Reserve ``block.count`` seqs of a thread; return the first."""
    update = counter_update(block, now)
    for attempt in range(1, _UPSERT_ATTEMPTS + 1):
        try:
            counter = await counters.find_one_and_update(
                {"_id": thread_id},
                update,
                upsert=True,
                return_document=ReturnDocument.AFTER,
                session=session,
            )
        except DuplicateKeyError:
            # Two writers upserted the thread's first counter at once and
            # this one lost; the document exists now, so try again.
            if session is not None or attempt == _UPSERT_ATTEMPTS:
                raise
            continue
        if counter is not None:
            break
        # Some servers answer a lost upsert race with no document at all.
        if session is not None or attempt == _UPSERT_ATTEMPTS:
            raise StorageError(
                f"the server returned no counter for thread {thread_id!r}", retryable=True
            )
    last: int = counter["last_seq"]
    return last - block.count + 1


class ThreadLocks:
    """Per-thread-id asyncio locks, created on demand and dropped when idle.

    The writes of one store object to one thread are serialised, so a single
    server process never races itself or conflicts with itself.
    """

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._users: dict[str, int] = {}

    @asynccontextmanager
    async def hold(self, thread_ids: Iterable[str]) -> AsyncIterator[None]:
        """Hold the locks of ``thread_ids``, taken in sorted order so holders never deadlock."""
        keys = sorted(set(thread_ids))
        for key in keys:
            self._users[key] = self._users.get(key, 0) + 1
            self._locks.setdefault(key, asyncio.Lock())
        taken: list[str] = []
        try:
            for key in keys:
                await self._locks[key].acquire()
                taken.append(key)
            yield
        finally:
            for key in taken:
                self._locks[key].release()
            for key in keys:
                self._users[key] -= 1
                if not self._users[key]:
                    del self._users[key], self._locks[key]
