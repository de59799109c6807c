"""What every benchmark section shares: the server, the clients, and the raw baseline."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Any

from pymongo import AsyncMongoClient, ReturnDocument

from mongo_runevents import MongoRunEventStore
from mongo_runevents.mongo import EVENT_INDEXES

#: The collections the store uses by default, and the raw baseline too.
EVENTS, COUNTERS = "run_events", "run_events_counters"

#: The projection every read uses.
PROJECTION = {"_id": 0}


@dataclass
class Bench:
    """The run's settings and connections."""

    uri: str
    quick: bool
    #: The client every store section uses.
    store_client: AsyncMongoClient[dict[str, Any]]
    #: The client of the hand-written baseline (a separate pool, same settings).
    raw_client: AsyncMongoClient[dict[str, Any]]
    #: The realistic events, generated once and reused by the sections.
    events: list[dict[str, Any]]
    #: Whether the server runs transactions (decided by the store's set-up).
    transactions: bool = True
    databases: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def database(self, name: str) -> str:
        """A database name for this run (dropped at the end)."""
        full = f"bench_{name}"
        self.databases.append(full)
        return full

    async def store(self, database: str) -> MongoRunEventStore:
        """A set-up store in ``database`` on the store client."""
        store = MongoRunEventStore(self.store_client[database])
        await store.ensure_indexes()
        return store

    async def raw(self, database: str) -> Raw:
        """A set-up raw baseline in ``database`` on the raw client."""
        raw = Raw(self.raw_client, database, self.transactions)
        await raw.events.create_indexes(list(EVENT_INDEXES))
        return raw

    def log(self, message: str) -> None:
        """Progress to stderr, with the time since the start."""
        print(f"[{time.monotonic() - self.started:6.1f}s] {message}", file=sys.stderr, flush=True)


class Raw:
    """Hand-written pymongo doing what the store does, with nothing around it.

    Writes: in a transaction (when the server has them), one
    ``find_one_and_update`` with ``$inc`` on the thread's counter document, then
    one insert of documents prepared in advance (only ``seq`` is filled in).
    Reads: the store's ``find`` (same filter, sort, limit, batch size, hint and
    projection), the documents turned into plain dicts, nothing validated.
    """

    def __init__(
        self, client: AsyncMongoClient[dict[str, Any]], database: str, transactions: bool
    ) -> None:
        self.client = client
        self.events = client[database][EVENTS]
        self.counters = client[database][COUNTERS]
        self.transactions = transactions

    async def _reserve(self, thread_id: str, count: int, session: Any) -> int:
        counter = await self.counters.find_one_and_update(
            {"_id": thread_id},
            {"$inc": {"last_seq": count}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
            session=session,
        )
        last: int = counter["last_seq"]
        return last - count + 1

    async def _write(self, thread_id: str, templates: list[dict[str, Any]], session: Any) -> None:
        first = await self._reserve(thread_id, len(templates), session)
        if len(templates) == 1:
            await self.events.insert_one({**templates[0], "seq": first}, session=session)
            return
        documents = [{**template, "seq": first + k} for k, template in enumerate(templates)]
        await self.events.insert_many(documents, ordered=True, session=session)

    async def write(self, thread_id: str, templates: list[dict[str, Any]]) -> None:
        """Reserve seqs and insert ``templates`` (documents without ``seq``) in one transaction."""
        if not self.transactions:
            await self._write(thread_id, templates, None)
            return
        async with self.client.start_session() as session:
            await session.start_transaction()
            try:
                await self._write(thread_id, templates, session)
            except BaseException:
                await session.abort_transaction()
                raise
            await session.commit_transaction()

    async def find(
        self,
        query: dict[str, Any],
        *,
        index: str | None,
        sort: int,
        limit: int | None,
    ) -> list[dict[str, Any]]:
        """The store's find, as plain dicts; ``index=None`` leaves the choice to the planner."""
        options: dict[str, Any] = {"sort": [("seq", sort)]}
        if index is not None:
            options["hint"] = index
        if limit is not None:
            options.update(limit=limit, batch_size=limit)
        documents = await self.events.find(query, PROJECTION, **options).to_list(None)
        return [dict(document) for document in documents]
