"""The counters collection: one document per thread, and every field of it named here.

A counter is ``{_id: thread_id, last_seq: n, generation: g, updated_at: <ISO
time>, users: [...], user_activity: {<user>: <ISO time>}, has_blobs: true?,
renumbered_by_import: g?}``:

- ``last_seq``: the thread's highest reserved seq. A write reserves a block of
  consecutive seqs for each thread it touches by ``$inc``-ing it (upserted, so
  a thread's first write creates its counter). Writers of one thread in
  different processes therefore conflict on its counter, which in a
  transaction puts their commits in seq order.
- ``generation``: how often the thread was reset (deleted whole, or emptied by
  a per-user delete); a reset keeps the counter at ``last_seq: 0``.
- ``updated_at``, ``users``, ``user_activity`` (each user's own last write,
  key escaped): thread listings by activity, one user's showing nothing of
  another's.
- ``has_blobs``: the thread ever had an out-of-line field; deletes look for blobs.
- ``renumbered_by_import``: the generation in which an import renumbered
  some of the thread's events (a later import then looks for source seqs).

No other module spells a counter field. Nothing here translates driver
errors (the store facade does); an upsert that lost a race with another
raises the private :class:`CounterRace`, which the write's retry policy
(:func:`~.transactions.retry_reason`) retries.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from pymongo import ASCENDING, DESCENDING, IndexModel, ReturnDocument, UpdateOne
from pymongo.errors import BulkWriteError, DuplicateKeyError

from ..queries import ThreadCursor, ThreadList
from .codec import escape_key
from .compat import Collection, Document, Session
from .driver_errors import DUPLICATE_KEY

LAST_SEQ = "last_seq"
GENERATION = "generation"
UPDATED_AT = "updated_at"
USERS = "users"
USER_ACTIVITY = "user_activity"
HAS_BLOBS = "has_blobs"
RENUMBERED = "renumbered_by_import"

#: Listing threads, newest activity first (all of them, or one user's).
COUNTER_INDEXES = (
    IndexModel([(UPDATED_AT, DESCENDING), ("_id", DESCENDING)], name="activity"),
    IndexModel(
        [(USERS, ASCENDING), (UPDATED_AT, DESCENDING), ("_id", DESCENDING)],
        name="user_activity",
    ),
)

#: A thread reset by a delete keeps its counter at ``last_seq: 0``: not listed.
_LISTED = {LAST_SEQ: {"$gt": 0}}


class CounterRace(Exception):
    """Two writers upserted a thread's first counter at once and this one lost: try again.

    Private to the package: the write's retry policy retries it, and turns
    the last one into a retryable :class:`~mongo_runevents.errors.StorageError`.
    """

    def __init__(self, thread_id: str) -> None:
        super().__init__(f"the server returned no counter for thread {thread_id!r}")


@dataclass(frozen=True)
class Block:
    """What one write reserves in one thread."""

    count: int
    has_blobs: bool = False
    users: tuple[str, ...] = ()


def _activity_key(user_id: str) -> str:
    return escape_key(user_id)


def _activity_path(user_id: str) -> str:
    """The counter field holding when ``user_id`` last wrote to the thread."""
    return f"{USER_ACTIVITY}.{_activity_key(user_id)}"


def _reservation(block: Block, now: str) -> Document:
    """The update that reserves ``block`` on a thread's counter."""
    update: Document = {"$inc": {LAST_SEQ: block.count}, "$set": {UPDATED_AT: now}}
    if block.has_blobs:
        update["$set"][HAS_BLOBS] = True
    if block.users:
        update["$addToSet"] = {USERS: {"$each": list(block.users)}}
        for user in block.users:
            update["$set"][_activity_path(user)] = now
    return update


async def reserve(
    counters: Collection, thread_id: str, block: Block, now: str, session: Session | None
) -> int:
    """Reserve ``block.count`` seqs of a thread with one ``findOneAndUpdate``; return the first."""
    try:
        counter = await counters.find_one_and_update(
            {"_id": thread_id},
            _reservation(block, now),
            upsert=True,
            return_document=ReturnDocument.AFTER,
            session=session,
        )
    except DuplicateKeyError as exc:
        raise CounterRace(thread_id) from exc
    if counter is None:  # some servers answer a lost upsert race with no document at all
        raise CounterRace(thread_id)
    last: int = counter[LAST_SEQ]
    return last - block.count + 1


async def reserve_blocks(
    counters: Collection, blocks: dict[str, Block], now: str, session: Session | None
) -> dict[str, int]:
    """Reserve a block of seqs in each of several threads; return the first seq of each.

    In a transaction: one bulk ``update`` of all their counters, then one
    ``find`` reading the new values back (the transaction holds those
    counters, so nobody else moves them in between). Without one that
    read-back would not be safe: one ``findOneAndUpdate`` each, sent
    concurrently.
    """
    threads = sorted(blocks)  # the lock order
    if not threads:
        return {}
    if session is None:
        firsts = await asyncio.gather(
            *(reserve(counters, t, blocks[t], now, None) for t in threads)
        )
        return dict(zip(threads, firsts, strict=True))
    try:
        await counters.bulk_write(
            [UpdateOne({"_id": t}, _reservation(blocks[t], now), upsert=True) for t in threads],
            ordered=True,
            session=session,
        )
    except BulkWriteError as exc:
        if any(error.get("code") == DUPLICATE_KEY for error in exc.details.get("writeErrors", [])):
            raise CounterRace(threads[0]) from exc
        raise
    rows = await counters.find({"_id": {"$in": threads}}, {LAST_SEQ: 1}, session=session).to_list(
        None
    )
    last = {row["_id"]: row[LAST_SEQ] for row in rows}
    return {t: last[t] - blocks[t].count + 1 for t in threads}


# --- deletes -------------------------------------------------------------------------


async def reset(
    counters: Collection, thread_id: str, session: Session | None, last_seq: int | None = None
) -> Document | None:
    """Start the thread's numbering again (a new generation); the counter as it was before.

    ``None``: nothing was reset. A thread already at ``last_seq: 0`` (reset
    before, or unknown) is left as it is: resetting nothing is no new
    generation. With ``last_seq``, only a counter still at that value is
    reset: a writer that reserved a seq since keeps its numbering.
    """
    found: Document = {"_id": thread_id, LAST_SEQ: {"$gt": 0} if last_seq is None else last_seq}
    return await counters.find_one_and_update(
        found,
        {
            "$set": {LAST_SEQ: 0},
            "$inc": {GENERATION: 1},
            "$unset": {HAS_BLOBS: "", USERS: "", USER_ACTIVITY: ""},
        },
        session=session,
    )


def had_blobs(counter: Document | None) -> bool:
    """Whether the thread of ``counter`` ever had an out-of-line field."""
    return counter is not None and bool(counter.get(HAS_BLOBS))


async def last_seq(counters: Collection, thread_id: str, session: Session | None) -> int:
    """The thread's highest reserved seq (0 for an unknown or reset thread)."""
    counter = await counters.find_one({"_id": thread_id}, {LAST_SEQ: 1}, session=session)
    return int((counter or {}).get(LAST_SEQ) or 0)


async def blobs_and_users(counters: Collection, thread_id: str) -> tuple[bool, list[str]]:
    """Whether the thread ever had blobs, and the users who wrote to it."""
    counter = await counters.find_one({"_id": thread_id}, {HAS_BLOBS: 1, USERS: 1})
    return had_blobs(counter), list((counter or {}).get(USERS) or [])


async def user_activity(counters: Collection, thread_id: str, user_id: str) -> str | None:
    """When ``user_id`` last wrote to the thread; ``None`` if the counter does not list them.

    ``""``: listed, with no time recorded.
    """
    path = _activity_path(user_id)
    counter = await counters.find_one({"_id": thread_id, USERS: user_id}, {path: 1})
    if counter is None:
        return None
    return str((counter.get(USER_ACTIVITY) or {}).get(_activity_key(user_id)) or "")


async def forget_user(counters: Collection, thread_id: str, user_id: str, seen: str) -> None:
    """Take ``user_id`` off the thread's counter, unless their activity moved past ``seen``."""
    path = _activity_path(user_id)
    await counters.update_one(
        {"_id": thread_id, USERS: user_id, path: seen or {"$exists": False}},
        {"$pull": {USERS: user_id}, "$unset": {path: ""}},
    )


# --- imports -------------------------------------------------------------------------


@dataclass(frozen=True)
class ImportState:
    """What an import needs of a thread's counter."""

    last_seq: int
    #: Whether an import renumbered events of the thread in its current generation.
    renumbered: bool


def _renumbered(counter: Document) -> bool:
    mark = counter.get(RENUMBERED)
    return (
        isinstance(mark, int) and not isinstance(mark, bool) and mark == counter.get(GENERATION, 0)
    )


async def import_states(counters: Collection, threads: list[str]) -> dict[str, ImportState]:
    """The import state of each of ``threads`` that has a counter."""
    rows = await counters.find(
        {"_id": {"$in": threads}}, {LAST_SEQ: 1, RENUMBERED: 1, GENERATION: 1}
    ).to_list(None)
    return {row["_id"]: ImportState(int(row.get(LAST_SEQ, 0)), _renumbered(row)) for row in rows}


async def ensure(counters: Collection, thread_id: str) -> None:
    """Create the thread's counter if it has none (outside any transaction).

    An import's updates are conditional on the counter's value, which an
    upsert that finds the document missing cannot be; and a lost upsert race
    aborts a transaction.
    """
    try:
        await counters.update_one(
            {"_id": thread_id}, {"$setOnInsert": {LAST_SEQ: 0, UPDATED_AT: ""}}, upsert=True
        )
    except DuplicateKeyError as exc:
        raise CounterRace(thread_id) from exc


def import_activity(latest: str | None, has_blobs: bool, users: dict[str, str]) -> Document:
    """The update recording an imported chunk's activity: its latest time, blobs, each user's latest."""
    update: Document = {}
    maxima: Document = {}
    if latest is not None:
        maxima[UPDATED_AT] = latest
    if has_blobs:
        update["$set"] = {HAS_BLOBS: True}
    if users:
        update["$addToSet"] = {USERS: {"$each": list(users)}}
        for user, when in users.items():
            if when:
                maxima[_activity_path(user)] = when
    if maxima:
        update["$max"] = maxima
    return update


async def keep_import_seqs(
    counters: Collection,
    thread_id: str,
    own: list[int],
    activity: Document,
    session: Session | None,
) -> bool:
    """Raise the counter to the chunk's last seq if it is still below its first; whether it was."""
    update = {**activity, "$max": {**activity.get("$max", {}), LAST_SEQ: own[-1]}}
    kept = await counters.find_one_and_update(
        {"_id": thread_id, LAST_SEQ: {"$lt": own[0]}}, update, session=session
    )
    return kept is not None


async def renumber_import(
    counters: Collection, thread_id: str, count: int, activity: Document, session: Session | None
) -> int:
    """Reserve ``count`` seqs after the counter for an import, marking the thread renumbered; the last seq before them."""
    counter = await counters.find_one_and_update(
        {"_id": thread_id},
        {**activity, "$inc": {LAST_SEQ: count}},
        return_document=ReturnDocument.AFTER,
        session=session,
    )
    if counter is None:  # the counter was made by ensure(); only a concurrent drop removes it
        raise CounterRace(thread_id)
    if not _renumbered(counter):
        await counters.update_one(
            {"_id": thread_id}, {"$set": {RENUMBERED: counter.get(GENERATION, 0)}}, session=session
        )
    before: int = counter[LAST_SEQ] - count
    return before


# --- reads ---------------------------------------------------------------------------


async def thread_info(counters: Collection, thread_id: str) -> Document | None:
    """The thread's ``last_seq``, ``generation`` and ``updated_at`` (``None``: unknown)."""
    row = await counters.find_one({"_id": thread_id})
    if row is None:
        return None
    return {
        "thread_id": thread_id,
        "last_seq": int(row.get(LAST_SEQ, 0)),
        "generation": int(row.get(GENERATION, 0)),
        "updated_at": str(row.get(UPDATED_AT, "")),
    }


def listed_thread(thread_id: str, last: int, updated_at: str) -> Document:
    """A row of a thread listing."""
    return {
        "thread_id": thread_id,
        "last_seq": last,
        "updated_at": updated_at,
        "cursor": ThreadCursor(updated_at, thread_id).encode(),
    }


async def list_threads(counters: Collection, query: ThreadList) -> list[Document]:
    """A page of all threads, newest activity first (the ``activity`` index)."""
    found: Document = dict(_LISTED)
    if query.before is not None:
        when, thread_id = query.before.updated_at, query.before.thread_id
        found["$or"] = [{UPDATED_AT: {"$lt": when}}, {UPDATED_AT: when, "_id": {"$lt": thread_id}}]
    rows = await counters.find(
        found,
        {LAST_SEQ: 1, UPDATED_AT: 1},
        sort=[(UPDATED_AT, DESCENDING), ("_id", DESCENDING)],
        limit=query.limit,
    ).to_list(None)
    return [
        listed_thread(row["_id"], int(row[LAST_SEQ]), str(row.get(UPDATED_AT, ""))) for row in rows
    ]


async def user_threads(
    counters: Collection, query: ThreadList, user_id: str
) -> list[tuple[str, str]]:
    """One user's threads as ``(their last activity, thread id)``, newest first, after the cursor."""
    key = _activity_key(user_id)
    rows = await counters.find({USERS: user_id, **_LISTED}, {USER_ACTIVITY: 1}).to_list(None)
    candidates = sorted(
        ((str((row.get(USER_ACTIVITY) or {}).get(key, "")), row["_id"]) for row in rows),
        reverse=True,
    )
    if query.before is not None:
        limit = (query.before.updated_at, query.before.thread_id)
        candidates = [candidate for candidate in candidates if candidate < limit]
    return candidates


async def thread_ids(counters: Collection, after: str | None, limit: int) -> list[str]:
    """Thread ids after ``after``, ascending."""
    found: Document = dict(_LISTED)
    if after is not None:
        found["_id"] = {"$gt": after}
    rows = await counters.find(found, {"_id": 1}, sort=[("_id", ASCENDING)], limit=limit).to_list(
        None
    )
    return [row["_id"] for row in rows]


class ThreadLocks:
    """Per-thread-id asyncio locks, created on demand and dropped when idle.

    The writes of one store object to one thread are serialised, so a single
    server process never races itself on a counter or conflicts with itself.
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
