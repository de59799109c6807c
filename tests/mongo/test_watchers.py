"""Many live tails on one store: they share one change stream and never starve the store's other calls."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from mongo_runevents import MongoRunEventStore
from mongo_runevents.operations import TAIL_READS
from tests.commands import CommandLog
from tests.conftest import database_name
from tests.factories import event

#: The driver's pool in these tests: well below the number of tails.
POOL = 10
TAILS = 60


@pytest.fixture
async def small_pool_store(
    server_uri: str, mongo_client: AsyncMongoClient[Any]
) -> AsyncIterator[tuple[MongoRunEventStore, CommandLog]]:
    """A store whose client has a pool of :data:`POOL` connections, and its command log."""
    log = CommandLog()
    client: AsyncMongoClient[Any] = AsyncMongoClient(
        server_uri, maxPoolSize=POOL, event_listeners=[log]
    )
    name = database_name()
    store = MongoRunEventStore(client[name])
    await store.ensure_indexes()
    yield store, log
    await store.close()
    await client.close()
    await mongo_client.drop_database(name)


async def _follow(store: MongoRunEventStore, thread_id: str, seen: list[dict[str, Any]]) -> None:
    async for record in store.watch(thread_id, max_poll_interval=60):
        seen.append(record)


@pytest.mark.requires("transactions")
async def test_many_tails_share_one_stream_and_leave_the_pool_to_other_calls(
    small_pool_store: tuple[MongoRunEventStore, CommandLog],
) -> None:
    """60 tails on a pool of 10: put and list_messages answer at once, one change stream is open, tails wake."""
    store, log = small_pool_store
    seen: dict[str, list[dict[str, Any]]] = {f"t-{n}": [] for n in range(TAILS)}
    tails = [asyncio.create_task(_follow(store, thread, rows)) for thread, rows in seen.items()]
    try:
        await asyncio.sleep(2.0)  # every tail read its (empty) thread and waits
        written = await asyncio.wait_for(store.put(**event("unrelated")), timeout=10)
        page = await asyncio.wait_for(store.list_messages("unrelated"), timeout=10)
        assert [row["seq"] for row in page] == [written["seq"]]
        streams = [command for command in log.named("aggregate") if "$changeStream" in str(command)]
        assert len(streams) == 1
        # A write still wakes its tails at once (their longest wait is 60 s).
        await store.put_batch([event(thread) for thread in list(seen)[:20]])
        for _ in range(300):
            if all(seen[thread] for thread in list(seen)[:20]):
                break
            await asyncio.sleep(0.05)
        assert all(seen[thread] for thread in list(seen)[:20])
    finally:
        for tail in tails:
            tail.cancel()
        await asyncio.gather(*tails, return_exceptions=True)


async def test_tails_woken_together_read_at_most_tail_reads_at_once(
    small_pool_store: tuple[MongoRunEventStore, CommandLog],
) -> None:
    """A write waking 40 tails of one thread: no more than TAIL_READS of their reads run at once."""
    store, _ = small_pool_store
    running = peak = 0
    read_after = store._read_after

    async def counted(query: Any) -> list[dict[str, Any]]:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        try:
            await asyncio.sleep(0.01)
            return await read_after(query)
        finally:
            running -= 1

    store._read_after = counted  # type: ignore[method-assign]
    seen: list[dict[str, Any]] = []
    tails = [asyncio.create_task(_follow(store, "busy", seen)) for _ in range(40)]
    try:
        await asyncio.sleep(1.0)
        await store.put(**event("busy"))
        for _ in range(300):
            if len(seen) == 40:
                break
            await asyncio.sleep(0.05)
        assert len(seen) == 40
        assert 1 < peak <= TAIL_READS
    finally:
        for tail in tails:
            tail.cancel()
        await asyncio.gather(*tails, return_exceptions=True)
