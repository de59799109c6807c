"""What every benchmark section shares: the server, the clients, and the raw baseline."""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pymongo import AsyncMongoClient, IndexModel, ReturnDocument
from pymongo.errors import PyMongoError

from mongo_runevents import MongoRunEventStore
from mongo_runevents.mongo import EVENT_INDEXES
from mongo_runevents.mongo.events import PROJECTION as _PROJECTION

#: The collections the store uses by default, and the raw baseline too.
EVENTS, COUNTERS = "run_events", "run_events_counters"

#: The projection of every read the store sends (and so of the raw baseline's).
PROJECTION: dict[str, Any] = dict(_PROJECTION)

T = TypeVar("T")


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

    async def raw(self, database: str, indexes: list[IndexModel] | None = None) -> Raw:
        """A set-up raw baseline in ``database`` on the raw client, with the store's indexes.

        ``indexes``: other indexes instead (``[]`` for ``_id`` only).
        """
        raw = Raw(self.raw_client, database, self.transactions)
        chosen = list(EVENT_INDEXES) if indexes is None else indexes
        if chosen:
            await raw.events.create_indexes(chosen)
        else:
            await raw.client[database].create_collection(EVENTS)
        return raw

    def log(self, message: str) -> None:
        """Progress to stderr, with the time since the start."""
        print(f"[{time.monotonic() - self.started:6.1f}s] {message}", file=sys.stderr, flush=True)


class Raw:
    """Hand-written pymongo doing what the store does, with nothing around it.

    Writes: in a transaction (when the server has them), one
    ``find_one_and_update`` with ``$inc`` on the thread's counter document, then
    one insert of documents prepared in advance (only ``seq`` is filled in).
    Reads: the store's ``find`` (same filter, sort, limit, batch size and
    projection, no hint: the server's planner chooses the index, as for the
    store), the documents turned into plain dicts, nothing validated. Deleting
    a run: the store's two commands, a ``find`` of the run's events with
    out-of-line fields (served on MongoDB by the small partial index
    ``thread_run_blobs``) and one ``delete``.
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
        assert counter is not None
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
        sort: int,
        limit: int | None,
        hint: str | None = None,
    ) -> list[dict[str, Any]]:
        """The store's find, as plain dicts.

        ``hint`` is only for the scale section's comparison: the store sends none.
        """
        options: dict[str, Any] = {"sort": [("seq", sort)]}
        if hint is not None:
            options["hint"] = hint
        if limit is not None:
            options.update(limit=limit, batch_size=limit)
        documents = await self.events.find(query, PROJECTION, **options).to_list(None)
        return [dict(document) for document in documents]

    async def count(self, query: dict[str, Any]) -> int:
        """The store's count: ``count_documents`` (an ``aggregate``), no hint."""
        count: int = await self.events.count_documents(query)
        return count

    async def delete_run(self, query: dict[str, Any]) -> int:
        """The store's ``delete_by_run`` commands: the counter's blob flag, then one ``delete``.

        The thread has no out-of-line fields here (as nearly every thread), so
        its counter carries no ``has_blobs`` flag and no blob is looked up.
        """
        flagged = await self.counters.find_one(
            {"_id": query["thread_id"], "has_blobs": True}, {"_id": 1}
        )
        assert flagged is None
        result = await self.events.delete_many(query)
        deleted: int = result.deleted_count
        return deleted

    async def delete_many(self, query: dict[str, Any]) -> int:
        """One ``delete``, nothing looked up first: the second baseline of the deletes."""
        result = await self.events.delete_many(query)
        deleted: int = result.deleted_count
        return deleted


def _stages(plan: dict[str, Any]) -> str:
    """A plan's stages from the top, e.g. ``SORT > FETCH > IXSCAN thread_category_seq``."""
    names = []
    node: dict[str, Any] | None = plan
    while node is not None:
        name = node.get("stage", "?")
        if "indexName" in node:
            name += f" {node['indexName']}"
        names.append(name)
        node = node.get("inputStage")
    return " > ".join(names)


async def _explain(database: Any, command: dict[str, Any]) -> dict[str, Any]:
    """``explain`` (executionStats) of ``command``: the plan and the server's counters."""
    try:
        reply = await database.command("explain", command, verbosity="executionStats")
    except PyMongoError as exc:
        return {"error": str(exc)[:200]}
    stats = reply.get("executionStats", {})
    return {
        "plan": _stages(reply.get("queryPlanner", {}).get("winningPlan", {})),
        "nReturned": stats.get("nReturned"),
        "totalKeysExamined": stats.get("totalKeysExamined"),
        "totalDocsExamined": stats.get("totalDocsExamined"),
        "executionTimeMillis": stats.get("executionTimeMillis"),
    }


async def explain_find(
    database: Any,
    query: dict[str, Any],
    projection: dict[str, Any],
    *,
    sort: int | None = None,
    limit: int | None = None,
    hint: str | None = None,
) -> dict[str, Any]:
    """``explain`` of a ``find`` on the events collection, as the store (or a hint) sends it."""
    command: dict[str, Any] = {"find": EVENTS, "filter": query, "projection": projection}
    if sort is not None:
        command["sort"] = {"seq": sort}
    if limit is not None:
        command.update(limit=limit, batchSize=limit)
    if hint is not None:
        command["hint"] = hint
    return {"command": "find", "hint": hint, **await _explain(database, command)}


async def explain_delete(database: Any, query: dict[str, Any]) -> dict[str, Any]:
    """``explain`` of a ``delete`` of every event matching ``query``."""
    command = {"delete": EVENTS, "deletes": [{"q": query, "limit": 0}]}
    return {"command": "delete", "hint": None, **await _explain(database, command)}


async def journal_sides(
    bench: Bench, store_database: str, raw_database: str
) -> tuple[Callable[[int], Awaitable[None]], Callable[[int], Awaitable[None]]]:
    """The store's and the raw baseline's journal flush: ``put_batch`` of 20 realistic events.

    Each side writes thread ``journal`` in its own database; call ``i`` writes
    batch ``i`` of 40, round and round.
    """
    from .payloads import batches, raw_template, retarget

    store = await bench.store(bench.database(store_database))
    raw = await bench.raw(bench.database(raw_database))
    pool = batches(bench.events)[:40]
    store_batches = [retarget(batch, "journal") for batch in pool]
    raw_batches = [[raw_template(event) for event in retarget(batch, "journal")] for batch in pool]

    async def store_batch(i: int) -> None:
        await store.put_batch(store_batches[i % len(pool)])

    async def raw_batch(i: int) -> None:
        await raw.write("journal", raw_batches[i % len(pool)])

    return store_batch, raw_batch


async def newest_page_sides(
    bench: Bench, database_name: str, page: int
) -> tuple[Callable[[int], Awaitable[None]], Callable[[int], Awaitable[None]]]:
    """The store's and the raw baseline's newest-page read of ``page`` messages.

    The store writes 200 realistic messages to thread ``reads`` of its own
    database first; both sides read that thread.
    """
    from mongo_runevents.models import MESSAGE_CATEGORY

    from .payloads import batches, retarget

    database = bench.database(database_name)
    reader = await bench.store(database)
    raw_reader = await bench.raw(database)
    messages = [event for event in bench.events if event["category"] == MESSAGE_CATEGORY]
    for batch in batches(retarget(messages[:200], "reads")):
        await reader.put_batch(batch)
    query = {"thread_id": "reads", "category": MESSAGE_CATEGORY}

    async def store_newest(_: int) -> None:
        assert len(await reader.list_messages("reads", limit=page)) == page

    async def raw_newest(_: int) -> None:
        documents = await raw_reader.find(query, sort=-1, limit=page)
        documents.reverse()

    return store_newest, raw_newest


def run_alone(
    argv: list[str] | None,
    prog: str,
    description: str | None,
    section: Callable[[Bench, int], Awaitable[T]],
    rounds: int,
) -> T:
    """Run one section on its own, as ``prog [--rounds N] [--uri URI]``.

    On ``--uri``, or on an embedded SecantusDB started for it; with the
    realistic events the full run uses.
    """
    import argparse

    from .payloads import agent_events

    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--rounds", type=int, default=rounds, help="counted rounds")
    parser.add_argument("--uri", help="use this MongoDB instead of an embedded SecantusDB")
    args = parser.parse_args(argv)
    events = agent_events(1200)

    async def run(uri: str) -> T:
        store_client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri)
        raw_client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri)
        bench = Bench(uri, False, store_client, raw_client, events)
        try:
            probe = await bench.store(bench.database("probe"))
            bench.transactions = probe.uses_transactions
            return await section(bench, args.rounds)
        finally:
            for name in bench.databases:
                await raw_client.drop_database(name)
            await store_client.close()
            await raw_client.close()

    if args.uri:
        return asyncio.run(run(args.uri))
    from mongo_runevents.embedded import EmbeddedServer

    with (
        tempfile.TemporaryDirectory(prefix="bench-secantus-") as folder,
        EmbeddedServer(Path(folder) / "data") as server,
    ):
        return asyncio.run(run(server.uri))
