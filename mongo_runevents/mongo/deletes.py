"""Deletes: a thread's events, one run's, or one user's part of either, with their blobs.

Deleting a whole thread also resets its counter (to a new generation), so its
numbering starts again at 1; so does a per-user delete that leaves the thread
empty. In transaction mode both run in one transaction (retried as every
write is, :mod:`.transactions`). Blobs are found before their events are
deleted and deleted after them, so no reader ever meets an event whose blob
is gone for good; a crash in between leaves an orphan blob, never a dangling
reference.
"""

from __future__ import annotations

from typing import Any

from ..queries import Deletion
from . import counters, events
from .blobs import BLOBS_FIELD
from .compat import Document, Session
from .counters import ThreadLocks
from .setup import Collections, Deployment
from .transactions import Retrying


class Deleter:
    """The delete flow of one store."""

    def __init__(self, collections: Collections, retrying: Retrying, locks: ThreadLocks) -> None:
        self._collections = collections
        self._retrying = retrying
        self._locks = locks

    async def delete(self, query: Deletion, deployment: Deployment) -> int:
        """Delete what ``query`` names; return how many events went."""
        found: Document = {"thread_id": query.thread_id}
        if query.run_id is not None:
            found["run_id"] = query.run_id
        found = events.owned(found, query.user_id)
        if query.run_id is not None:
            return await self._delete_events(found)
        async with self._locks.hold([query.thread_id]):
            deleted = 0
            if query.user_id is not None:
                deleted = await self._delete_events(found)
            attempts = self._retrying.attempts(
                "deleting a thread",
                transactions=deployment.transactions,
                transaction_lifetime_seconds=deployment.transaction_lifetime_seconds,
            )
            async for attempt in attempts:
                async with attempt as session:
                    if query.user_id is None:
                        deleted = await self._delete_thread(query.thread_id, session)
                    else:
                        await self._reset_if_empty(query.thread_id, session)
            return deleted

    async def _delete_thread(self, thread_id: str, session: Session | None) -> int:
        """Delete every event of the thread and reset its counter to a new generation.

        The counter is kept (``last_seq: 0``, ``generation`` + 1) rather than
        deleted, so that a live tail can tell the thread was reset.

        In a transaction the counter is reset first: writers of the thread
        update it too, so whoever comes second conflicts and retries; taking it
        last would let a steady stream of writers starve the delete. Without a
        transaction the events go first: a writer in another process that
        reserved a seq just before may still insert it afterwards, and a later
        write reaching the same seq then fails loudly (IntegrityError) instead
        of the first write vanishing silently.
        """
        in_transaction = session is not None
        counter = None
        if in_transaction:
            counter = await counters.reset(self._collections.counters, thread_id, session)
        result = await self._collections.events.delete_many(
            {"thread_id": thread_id}, session=session
        )
        if not in_transaction:
            counter = await counters.reset(self._collections.counters, thread_id, session)
        if counters.had_blobs(counter):
            await self._collections.blobs.delete(thread_id, None, session)
        deleted: int = result.deleted_count
        return deleted

    async def _reset_if_empty(self, thread_id: str, session: Session | None) -> None:
        """Reset the thread's numbering if it holds no event (after a per-user delete).

        Nothing but the counter changes: the thread holds no event to delete,
        and whatever another process writes meanwhile must stay. In a
        transaction, a writer that adds an event meanwhile has updated the
        counter, so the reset conflicts and the check runs again. Without one,
        the counter is reset only if it still holds the value read before the
        thread was found empty: a writer that reserved a seq since keeps its
        numbering (as after a whole-thread delete, a writer that reserved a
        seq just before and inserts it after is caught by the unique index).
        """
        last = await counters.last_seq(self._collections.counters, thread_id, session)
        if not last:
            return
        remaining = await self._collections.events.find_one(
            {"thread_id": thread_id}, {"_id": 1}, session=session
        )
        if remaining is None:
            await counters.reset(self._collections.counters, thread_id, session, last_seq=last)

    async def _delete_events(self, query: Document) -> int:
        """Delete the events matching ``query`` (within one thread) and their blobs."""
        thread_id = query["thread_id"]
        # Only threads whose counter says they ever had blobs are searched
        # for them: reading the counter by _id is cheap on every server.
        had_blobs, users = await counters.blobs_and_users(self._collections.counters, thread_id)
        file_ids = await self._blob_ids(query) if had_blobs else []
        result = await self._collections.events.delete_many(query)
        if file_ids:
            await self._collections.blobs.delete(thread_id, file_ids, None)
        if "user_id" in query:
            users = [user for user in users if user == query["user_id"]]
        if result.deleted_count and users:
            await self._forget_users_without_events(thread_id, users)
        deleted: int = result.deleted_count
        return deleted

    async def _forget_users_without_events(self, thread_id: str, users: list[str]) -> None:
        """Take the users who hold no event of the thread any more off its counter.

        A user's thread listing then leaves the thread out, as on every store.
        The counter changes only if the user's activity is still the one read
        before their events were found gone: a user who writes meanwhile stays.
        """
        for user in users:
            seen = await counters.user_activity(self._collections.counters, thread_id, user)
            if seen is None:
                continue
            remaining = await self._collections.events.find_one(
                {"thread_id": thread_id, "user_id": user}, {"_id": 1}
            )
            if remaining is None:
                await counters.forget_user(self._collections.counters, thread_id, user, seen)

    async def _blob_ids(self, query: Document) -> list[Any]:
        """The blobs of the events ``query`` names (a run's, or one user's part of a thread).

        A whole run's are found by the bucket's own (thread, run) index; one
        user's only through their events, which records no blob index costs
        every write: those are read from the thread's events (rare: a
        per-user delete in a thread that has large events).
        """
        if "user_id" not in query:
            return await self._collections.blobs.file_ids(query["thread_id"], query["run_id"])
        with_blobs = await self._collections.events.find(
            {**query, BLOBS_FIELD: {"$exists": True}}, {BLOBS_FIELD: 1}
        ).to_list(None)
        return [file_id for doc in with_blobs for file_id in doc[BLOBS_FIELD].values()]
