"""Deletes: a thread's events, one run's, or one user's part of either, with their blobs.

Deleting a whole thread also resets its counter (to a new generation), so its
numbering starts again at 1; so does a per-user delete that leaves the thread
empty. In
transaction mode both run in one transaction. Blobs are found before their
events are deleted and deleted after them, so no reader ever meets an event
whose blob is gone for good; a crash in between leaves an orphan blob, never a
dangling reference.
"""

from __future__ import annotations

import functools
from typing import Any

from ..queries import Deletion
from .blobs import BLOBS_FIELD
from .driver_errors import translated
from .reads import owned
from .seqs import ThreadLocks, user_activity_path
from .setup import GENERATION_FIELD, USER_ACTIVITY_FIELD, USERS_FIELD, Collections, Deployment
from .transactions import TransactionRunner


class Deleter:
    """The deletes of one store."""

    def __init__(
        self, collections: Collections, runner: TransactionRunner, locks: ThreadLocks
    ) -> None:
        self._collections = collections
        self._runner = runner
        self._locks = locks

    async def delete(self, query: Deletion, deployment: Deployment) -> int:
        """Delete what ``query`` names; return how many events went."""
        found = {"thread_id": query.thread_id}
        if query.run_id is not None:
            found["run_id"] = query.run_id
        found = owned(found, query.user_id)
        if query.run_id is not None:
            return await self._delete_events(found)
        async with self._locks.hold([query.thread_id]):
            if query.user_id is not None:
                deleted = await self._delete_events(found)
                await self._in_mode(self._reset_if_empty, query.thread_id, deployment)
                return deleted
            result: int = await self._in_mode(self._delete_thread, query.thread_id, deployment)
            return result

    async def _in_mode(self, body: Any, thread_id: str, deployment: Deployment) -> Any:
        """``body(thread_id, session)`` in a transaction in transaction mode, else plainly."""
        if deployment.transactions:
            return await self._runner.run(
                functools.partial(body, thread_id),
                "deleting a thread",
                deployment.transaction_lifetime_seconds,
            )
        with translated("deleting a thread"):
            return await body(thread_id, None)

    async def _delete_thread(self, thread_id: str, session: Any) -> int:
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
        counter = await self._reset_counter(thread_id, session) if in_transaction else None
        result = await self._collections.events.delete_many(
            {"thread_id": thread_id}, session=session
        )
        if not in_transaction:
            counter = await self._reset_counter(thread_id, session)
        if counter is not None and counter.get("has_blobs"):
            await self._collections.blobs.delete(thread_id, None, session)
        deleted: int = result.deleted_count
        return deleted

    async def _reset_counter(
        self, thread_id: str, session: Any, last_seq: int | None = None
    ) -> dict[str, Any] | None:
        """The thread's counter as it was before being reset (``None``: nothing was reset).

        A thread already at ``last_seq: 0`` (reset before, or unknown) is left
        as it is: resetting nothing is no new generation, as on every store.
        With ``last_seq``, the counter is reset only if it still holds that
        value: a writer that reserved a seq since then keeps its numbering.
        """
        found: dict[str, Any] = {"_id": thread_id, "last_seq": {"$gt": 0}}
        if last_seq is not None:
            found["last_seq"] = last_seq
        counter: dict[str, Any] | None = await self._collections.counters.find_one_and_update(
            found,
            {
                "$set": {"last_seq": 0},
                "$inc": {GENERATION_FIELD: 1},
                "$unset": {"has_blobs": "", USERS_FIELD: "", USER_ACTIVITY_FIELD: ""},
            },
            session=session,
        )
        return counter

    async def _reset_if_empty(self, thread_id: str, session: Any) -> None:
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
        counter = await self._collections.counters.find_one(
            {"_id": thread_id}, {"last_seq": 1}, session=session
        )
        if counter is None or not counter.get("last_seq"):
            return
        remaining = await self._collections.events.find_one(
            {"thread_id": thread_id}, {"_id": 1}, session=session
        )
        if remaining is None:
            await self._reset_counter(thread_id, session, last_seq=counter["last_seq"])

    async def _delete_events(self, query: dict[str, Any]) -> int:
        """Delete the events matching ``query`` (within one thread) and their blobs."""
        events, counters = self._collections.events, self._collections.counters
        thread_id = query["thread_id"]
        with translated("deleting events"):
            # Only threads whose counter says they ever had blobs are searched
            # for them: reading the counter by _id is cheap on every server.
            counter = await counters.find_one({"_id": thread_id}, {"has_blobs": 1, USERS_FIELD: 1})
            flagged = counter is not None and counter.get("has_blobs")
            file_ids = await self._blob_ids(query) if flagged else []
            result = await events.delete_many(query)
            if file_ids:
                await self._collections.blobs.delete(thread_id, file_ids, None)
            users = list((counter or {}).get(USERS_FIELD) or [])
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
        counters = self._collections.counters
        for user in users:
            path = user_activity_path(user)
            counter = await counters.find_one({"_id": thread_id, USERS_FIELD: user}, {path: 1})
            if counter is None:
                continue
            remaining = await self._collections.events.find_one(
                {"thread_id": thread_id, "user_id": user}, {"_id": 1}
            )
            if remaining is not None:
                continue
            seen = counter.get(USER_ACTIVITY_FIELD, {}).get(path.split(".", 1)[1])
            await counters.update_one(
                {"_id": thread_id, USERS_FIELD: user, path: seen or {"$exists": False}},
                {"$pull": {USERS_FIELD: user}, "$unset": {path: ""}},
            )

    async def _blob_ids(self, query: dict[str, Any]) -> list[Any]:
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
