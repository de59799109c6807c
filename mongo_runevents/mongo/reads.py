"""Reads: each checked query (:mod:`mongo_runevents.queries`) as one MongoDB command.

Every filter names the thread, so each read is served by one of the thread's
indexes and, on a cluster sharded by thread, goes to one shard. A document
the store wrote and marked is returned as it is; any other is validated, a
page at a time (:func:`~mongo_runevents.records.trust_marked`).
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from bson import Regex
from pymongo import ASCENDING, DESCENDING

from ..errors import StorageError
from ..models import AI_REPLY_TYPES, HIDDEN_CALLER_PREFIX, MESSAGE_CATEGORY
from ..queries import (
    EventCount,
    EventKey,
    LastVisibleReplies,
    MessagePage,
    MessageSeqs,
    RunEvents,
    ThreadCursor,
    ThreadEvents,
    ThreadList,
)
from ..records import plain_stored_records, stored_records, trust_marked
from . import compat
from .blobs import BLOBS_FIELD
from .codec import EXPIRES_AT_FIELD, IDENTITY_FIELD, from_document
from .driver_errors import translated
from .seqs import user_activity_path
from .setup import (
    GENERATION_FIELD,
    UPDATED_AT_FIELD,
    USER_ACTIVITY_FIELD,
    USERS_FIELD,
    Collections,
)

#: The largest first batch asked for; a reply is capped at 16 MiB anyway.
_MAX_BATCH = 100_000

#: How many identities one ``get_message_seqs`` query names (the rest go in the next).
_IDENTITIES_PER_QUERY = 1000

#: Fields never returned to callers.
#: ``source_seq``: an imported event's seq in its source (:mod:`.importer`), not a record field.
PROJECTION = {"_id": 0, EXPIRES_AT_FIELD: 0, IDENTITY_FIELD: 0, "source_seq": 0}

#: How often a read is tried again when an event's blob vanished under it.
_MISSING_BLOB_ATTEMPTS = 3


def owned(query: dict[str, Any], user_id: str | None) -> dict[str, Any]:
    """``query`` restricted to one user's events when ``user_id`` is given."""
    if user_id is not None:
        query["user_id"] = user_id
    return query


def page_filter(query: MessagePage) -> dict[str, Any]:
    """The filter of a page of messages (of a thread, or of one run)."""
    found: dict[str, Any] = {"thread_id": query.thread_id}
    if query.run_id is not None:
        found["run_id"] = query.run_id
    found["category"] = MESSAGE_CATEGORY
    bounds: dict[str, int] = {}
    if query.after_seq is not None:
        bounds["$gt"] = query.after_seq
    if query.before_seq is not None:
        bounds["$lt"] = query.before_seq
    if bounds:
        found["seq"] = bounds
    return owned(found, query.user_id)


def run_filter(query: RunEvents) -> dict[str, Any]:
    """The filter of a run's events."""
    found = owned({"thread_id": query.thread_id, "run_id": query.run_id}, query.user_id)
    if query.event_types is not None:
        found["event_type"] = {"$in": list(query.event_types)}
    if query.task_id is not None:
        # A scalar match only: MongoDB would also match a list holding the
        # value, which the Memory store (and DeerFlow's stores) do not.
        found["metadata.task_id"] = {"$eq": query.task_id, "$not": {"$type": "array"}}
    if query.after_seq is not None:
        found["seq"] = {"$gt": query.after_seq}
    return found


def after_filter(query: ThreadEvents) -> dict[str, Any]:
    """The filter of a thread's events after a seq."""
    found = owned({"thread_id": query.thread_id, "seq": {"$gt": query.after_seq}}, query.user_id)
    if query.category is not None:
        found["category"] = query.category
    return found


def count_filter(query: EventCount) -> dict[str, Any]:
    """The filter of a count."""
    found: dict[str, Any] = {"thread_id": query.thread_id}
    if query.run_id is not None:
        found["run_id"] = query.run_id
    if query.category is not None:
        found["category"] = query.category
    return owned(found, query.user_id)


#: A visible reply's caller: anything but a string starting with the hidden
#: prefix. A list is visible whatever it holds (MongoDB's own matching would
#: look inside it; the Memory store, like DeerFlow's, does not).
_VISIBLE_CALLER = {
    "$or": [
        {"metadata.caller": {"$not": Regex(f"^{re.escape(HIDDEN_CALLER_PREFIX)}")}},
        {"metadata.caller": {"$type": "array"}},
    ]
}


def replies_filter(query: LastVisibleReplies) -> dict[str, Any]:
    """The filter of the visible AI replies of some runs."""
    return owned(
        {
            "thread_id": query.thread_id,
            "run_id": {"$in": list(query.run_ids)},
            "category": MESSAGE_CATEGORY,
            "event_type": {"$in": list(AI_REPLY_TYPES)},
            **_VISIBLE_CALLER,
        },
        query.user_id,
    )


class Reader:
    """Runs the reads of one store on its collections."""

    def __init__(self, collections: Collections) -> None:
        self._events = collections.events
        self._counters = collections.counters
        self._blobs = collections.blobs

    async def find(
        self,
        query: dict[str, Any],
        sort: int,
        limit: int | None,
        action: str,
        session: Any = None,
    ) -> list[dict[str, Any]]:
        """Run one find, sorted by seq, and return validated records."""
        options: dict[str, Any] = {"sort": [("seq", sort)]}
        if limit is not None:
            # The whole page in the first reply: no getMore round trip. (The
            # driver overflows past 2**31 with both set; replies cap at 16 MiB
            # anyway.)
            options.update(limit=limit, batch_size=min(limit, _MAX_BATCH))
        for attempt in range(1, _MISSING_BLOB_ATTEMPTS + 1):
            with translated(action):
                documents = await self._events.find(
                    query, PROJECTION, session=session, **options
                ).to_list(None)
                try:
                    return await self.records(documents, session)
                except StorageError:
                    # A blob vanished: its event was deleted (or expired) while
                    # this read ran. Read again; the event is gone now. In a
                    # transaction the snapshot cannot change, so do not retry.
                    if session is not None or attempt == _MISSING_BLOB_ATTEMPTS:
                        raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def records(self, documents: list[dict[str, Any]], session: Any) -> list[dict[str, Any]]:
        """Records from stored documents: marked ones as they are, the others validated.

        Documents this version wrote and marked are records already
        (:func:`~mongo_runevents.records.trust_marked`). The others are
        validated together, in one call; if that fails (escaped keys or
        out-of-line fields: fields records have not), they are restored,
        their out-of-line fields read back in, and validated again.
        """
        untrusted = trust_marked(documents)
        if not untrusted:
            return documents
        checked = [documents[position] for position in untrusted]
        records = plain_stored_records(checked)
        if records is None:
            await self._blobs.fill(checked, session)
            records = stored_records([from_document(document) for document in checked])
        for position, record in zip(untrusted, records, strict=True):
            documents[position] = record
        return documents

    async def read_page(self, query: MessagePage) -> list[dict[str, Any]]:
        """The cursor rules of ``list_messages``: one find, ascending or newest-first then reversed."""
        action = "listing messages" if query.run_id is None else "listing a run's messages"
        if not query.newest_first:
            return await self.find(page_filter(query), ASCENDING, query.limit, action)
        newest_first = await self.find(page_filter(query), DESCENDING, query.limit, action)
        newest_first.reverse()
        return newest_first

    async def read_run(self, query: RunEvents) -> list[dict[str, Any]]:
        """A run's events, served by the (thread, run, seq) index."""
        return await self.find(run_filter(query), ASCENDING, query.limit, "listing events")

    async def read_after(self, query: ThreadEvents) -> list[dict[str, Any]]:
        """A thread's events after a seq, served by its seq (or category) index."""
        return await self.find(after_filter(query), ASCENDING, query.limit, "reading new events")

    async def get_event(self, query: EventKey) -> dict[str, Any] | None:
        """One event by (thread, seq); out-of-line fields left out unless asked for."""
        found = owned({"thread_id": query.thread_id, "seq": query.seq}, query.user_id)
        if query.load_large_fields:
            records = await self.find(found, ASCENDING, 1, "reading an event")
            return records[0] if records else None
        with translated("reading an event"):
            document = await self._events.find_one(found, PROJECTION)
            if document is None:
                return None
            references = document.pop(BLOBS_FIELD, {})
            sizes = (
                await self._blobs.sizes(query.thread_id, list(references.values()), None)
                if references
                else {}
            )
        [record] = await self.records([document], None)
        if references:
            record["large_fields"] = {
                name: sizes.get(file_id, 0) for name, file_id in references.items()
            }
            for name in references:
                record[name] = None
        return record

    async def count(self, query: EventCount) -> int:
        """How many events match, in one command."""
        action = "counting messages" if query.category == MESSAGE_CATEGORY else "counting events"
        with translated(action):
            count: int = await self._events.count_documents(count_filter(query))
        return count

    async def last_visible_replies(self, query: LastVisibleReplies) -> dict[str, int]:
        """Per run, the highest seq of a visible AI reply: one aggregation."""
        pipeline = [
            {"$match": replies_filter(query)},
            {"$group": {"_id": "$run_id", "seq": {"$max": "$seq"}}},
        ]
        with translated("finding the last visible AI replies"):
            # pymongo's async aggregate() is a coroutine, Motor's returns the cursor.
            cursor = await compat.resolve(self._events.aggregate(pipeline))
            rows = await cursor.to_list(None)
        return {row["_id"]: row["seq"] for row in rows}

    async def message_seqs(self, query: MessageSeqs) -> dict[str, int]:
        """The earliest seq of each identity: one index range per identity (``thread_identity_seq``)."""
        found: dict[str, int] = {}
        identities = list(query.identities)
        for start in range(0, len(identities), _IDENTITIES_PER_QUERY):
            wanted = identities[start : start + _IDENTITIES_PER_QUERY]
            # Only messages carry an identity (the codec sets it), so no category filter.
            match = owned(
                {"thread_id": query.thread_id, IDENTITY_FIELD: {"$in": wanted}}, query.user_id
            )
            with translated("finding message seqs"):
                rows = await self._events.find(
                    match, {"_id": 0, IDENTITY_FIELD: 1, "seq": 1}
                ).to_list(None)
            for row in rows:
                identity, seq = row[IDENTITY_FIELD], row["seq"]
                if identity not in found or seq < found[identity]:
                    found[identity] = seq
        return found

    async def list_threads(self, query: ThreadList) -> list[dict[str, Any]]:
        """A page of threads from their counters, newest activity first."""
        if query.user_id is not None:
            return await self._list_user_threads(query, query.user_id)
        # A thread reset by a delete keeps its counter at last_seq 0: not listed.
        found: dict[str, Any] = {"last_seq": {"$gt": 0}}
        if query.before is not None:
            when, thread_id = query.before.updated_at, query.before.thread_id
            found["$or"] = [
                {UPDATED_AT_FIELD: {"$lt": when}},
                {UPDATED_AT_FIELD: when, "_id": {"$lt": thread_id}},
            ]
        with translated("listing threads"):
            rows = await self._counters.find(
                found,
                {"last_seq": 1, UPDATED_AT_FIELD: 1},
                sort=[(UPDATED_AT_FIELD, DESCENDING), ("_id", DESCENDING)],
                limit=query.limit,
            ).to_list(None)
        threads = []
        for row in rows:
            updated_at = str(row.get(UPDATED_AT_FIELD, ""))
            threads.append(
                {
                    "thread_id": row["_id"],
                    "last_seq": int(row["last_seq"]),
                    "updated_at": updated_at,
                    "cursor": ThreadCursor(updated_at, row["_id"]).encode(),
                }
            )
        return threads

    async def _list_user_threads(self, query: ThreadList, user_id: str) -> list[dict[str, Any]]:
        """A page of one user's threads, by that user's own activity: nothing of another user's.

        ``updated_at`` is when the user last wrote to the thread (kept per user
        on its counter), ``last_seq`` the seq of the user's newest event in it.
        The user's threads are read from the counters' user index and sorted
        here: the cost grows with how many threads the user wrote to (an
        operator's or a viewer's call, not a request path of the agent server).
        """
        path = user_activity_path(user_id)
        key = path.split(".", 1)[1]
        with translated("listing threads"):
            rows = await self._counters.find(
                {USERS_FIELD: user_id, "last_seq": {"$gt": 0}}, {USER_ACTIVITY_FIELD: 1}
            ).to_list(None)
        candidates = sorted(
            ((str((row.get(USER_ACTIVITY_FIELD) or {}).get(key, "")), row["_id"]) for row in rows),
            reverse=True,
        )
        if query.before is not None:
            limit = (query.before.updated_at, query.before.thread_id)
            candidates = [candidate for candidate in candidates if candidate < limit]
        threads: list[dict[str, Any]] = []
        for start in range(0, len(candidates), query.limit):
            chunk = candidates[start : start + query.limit]
            with translated("listing threads"):
                newest = await asyncio.gather(
                    *(
                        self._events.find_one(
                            {"thread_id": thread_id, "user_id": user_id},
                            {"_id": 0, "seq": 1},
                            sort=[("seq", DESCENDING)],
                        )
                        for _, thread_id in chunk
                    )
                )
            for (updated_at, thread_id), last in zip(chunk, newest, strict=True):
                if last is None:
                    continue  # the user's events were deleted just now
                threads.append(
                    {
                        "thread_id": thread_id,
                        "last_seq": int(last["seq"]),
                        "updated_at": updated_at,
                        "cursor": ThreadCursor(updated_at, thread_id).encode(),
                    }
                )
                if len(threads) == query.limit:
                    return threads
        return threads

    async def thread_info(self, thread_id: str) -> dict[str, Any] | None:
        """The thread's counter: ``last_seq``, ``generation`` and ``updated_at`` (``None``: unknown)."""
        with translated("reading a thread"):
            row = await self._counters.find_one({"_id": thread_id})
        if row is None:
            return None
        return {
            "thread_id": thread_id,
            "last_seq": int(row.get("last_seq", 0)),
            "generation": int(row.get(GENERATION_FIELD, 0)),
            "updated_at": str(row.get(UPDATED_AT_FIELD, "")),
        }

    async def thread_ids(self, after: str | None, limit: int) -> list[str]:
        """Thread ids after ``after``, ascending, from the counters."""
        found: dict[str, Any] = {"last_seq": {"$gt": 0}}
        if after is not None:
            found["_id"] = {"$gt": after}
        with translated("listing threads"):
            rows = await self._counters.find(
                found, {"_id": 1}, sort=[("_id", ASCENDING)], limit=limit
            ).to_list(None)
        return [row["_id"] for row in rows]
