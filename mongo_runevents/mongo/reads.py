"""Reads: each checked query (:mod:`mongo_runevents.queries`) as one command on one collection.

The filters are the events collection's (:mod:`.events`), the thread listings
read the counters (:mod:`.counters`). Driver errors leave as raised: the store
facade translates them.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from pymongo import ASCENDING, DESCENDING

from ..queries import (
    EventCount,
    EventKey,
    LastVisibleReplies,
    MessagePage,
    MessageSeqs,
    RunEvents,
    ThreadEvents,
    ThreadList,
)
from ..records import LookedUpRecord, StoredRecord
from . import compat, counters, events
from .blobs import BLOBS_FIELD
from .codec import IDENTITY_FIELD
from .compat import Document
from .setup import Collections

#: How many identities one ``get_message_seqs`` query names (the rest go in the next).
_IDENTITIES_PER_QUERY = 1000


async def read_page(collections: Collections, query: MessagePage) -> list[StoredRecord]:
    """The cursor rules of ``list_messages``: one find, ascending or newest-first then reversed."""
    found = events.page_filter(query)
    sort = DESCENDING if query.newest_first else ASCENDING
    page = await events.find_records(
        collections.events, collections.blobs, found, sort, query.limit
    )
    if query.newest_first:
        page.reverse()
    return page


async def read_run(collections: Collections, query: RunEvents) -> list[StoredRecord]:
    """A run's events, served by the (thread, run, seq) index."""
    found = events.run_filter(query)
    return await events.find_records(
        collections.events, collections.blobs, found, ASCENDING, query.limit
    )


async def read_after(collections: Collections, query: ThreadEvents) -> list[StoredRecord]:
    """A thread's events after a seq, served by its seq (or category) index."""
    found = events.after_filter(query)
    return await events.find_records(
        collections.events, collections.blobs, found, ASCENDING, query.limit
    )


async def get_event(collections: Collections, query: EventKey) -> LookedUpRecord | None:
    """One event by (thread, seq); out-of-line fields left out unless asked for."""
    found = events.owned({"thread_id": query.thread_id, "seq": query.seq}, query.user_id)
    if query.load_large_fields:
        page = await events.find_records(collections.events, collections.blobs, found, limit=1)
        return cast(LookedUpRecord, page[0]) if page else None  # whole: no large_fields
    document = await collections.events.find_one(found, events.PROJECTION)
    if document is None:
        return None
    references = document.pop(BLOBS_FIELD, {})
    sizes = (
        await collections.blobs.sizes(query.thread_id, list(references.values()), None)
        if references
        else {}
    )
    [record] = await events.records([document], collections.blobs, None)
    looked_up: dict[str, Any] = cast("dict[str, Any]", record)  # its fields named at run time
    if references:
        looked_up["large_fields"] = {
            name: sizes.get(file_id, 0) for name, file_id in references.items()
        }
        for name in references:
            looked_up[name] = None
    return cast(LookedUpRecord, looked_up)


async def count(collections: Collections, query: EventCount) -> int:
    """How many events match, in one command."""
    counted: int = await collections.events.count_documents(events.count_filter(query))
    return counted


async def last_visible_replies(
    collections: Collections, query: LastVisibleReplies
) -> dict[str, int]:
    """Per run, the highest seq of a visible AI reply: one aggregation."""
    pipeline: list[Document] = [
        {"$match": events.replies_filter(query)},
        {"$group": {"_id": "$run_id", "seq": {"$max": "$seq"}}},
    ]
    # pymongo's async aggregate() is a coroutine, Motor's returns the cursor.
    cursor = await compat.resolve(collections.events.aggregate(pipeline))
    rows = await cursor.to_list(None)
    return {row["_id"]: row["seq"] for row in rows}


async def message_seqs(collections: Collections, query: MessageSeqs) -> dict[str, int]:
    """The earliest seq of each identity: one index range per identity (``thread_identity_seq``)."""
    found: dict[str, int] = {}
    identities = list(query.identities)
    for start in range(0, len(identities), _IDENTITIES_PER_QUERY):
        wanted = identities[start : start + _IDENTITIES_PER_QUERY]
        match = events.identities_filter(query.thread_id, wanted, query.user_id)
        rows = await collections.events.find(
            match, {"_id": 0, IDENTITY_FIELD: 1, "seq": 1}
        ).to_list(None)
        for row in rows:
            identity, seq = row[IDENTITY_FIELD], row["seq"]
            if identity not in found or seq < found[identity]:
                found[identity] = seq
    return found


async def list_threads(collections: Collections, query: ThreadList) -> list[Document]:
    """A page of threads from their counters, newest activity first."""
    if query.user_id is None:
        return await counters.list_threads(collections.counters, query)
    return await _list_user_threads(collections, query, query.user_id)


async def _list_user_threads(
    collections: Collections, query: ThreadList, user_id: str
) -> list[Document]:
    """A page of one user's threads, by that user's own activity: nothing of another user's.

    ``updated_at`` is when the user last wrote to the thread (kept per user
    on its counter), ``last_seq`` the seq of the user's newest event in it.
    The user's threads are read from the counters' user index and sorted
    here: the cost grows with how many threads the user wrote to (an
    operator's or a viewer's call, not a request path of the agent server).
    """
    candidates = await counters.user_threads(collections.counters, query, user_id)
    threads: list[Document] = []
    for start in range(0, len(candidates), query.limit):
        chunk = candidates[start : start + query.limit]
        newest = await asyncio.gather(
            *(
                collections.events.find_one(
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
            threads.append(counters.listed_thread(thread_id, int(last["seq"]), updated_at))
            if len(threads) == query.limit:
                return threads
    return threads
