"""Walking a whole thread, one bounded read at a time: the one paging loop of the package."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace

from .queries import ThreadEvents
from .records import StoredRecord

#: A store's read of a thread's events after a seq (``RunEventStore._read_after``).
ThreadRead = Callable[[ThreadEvents], Awaitable[list[StoredRecord]]]


async def walk(read: ThreadRead, query: ThreadEvents) -> AsyncIterator[StoredRecord]:
    """Every event after ``query.after_seq``, in seq order, ``query.limit`` per read.

    Stops after the first short page: events written later are the live
    tail's business (:mod:`mongo_runevents.tail`).
    """
    while True:
        page = await read(query)
        for record in page:
            yield record
        if len(page) < query.limit:
            return
        query = replace(query, after_seq=page[-1]["seq"])


async def single(item: str) -> AsyncIterator[str]:
    """An async iterator over one item (so one thread and all threads are walked alike)."""
    yield item
