"""Availability under faults: stuck transactions, starved deletes, vanishing blobs, lost replies."""

from __future__ import annotations

import asyncio
import signal
import sys
import textwrap
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import AutoReconnect, OperationFailure

from mongo_runevents import ConfigurationError, MongoRunEventStore, StorageError
from mongo_runevents.embedded import EmbeddedServer
from mongo_runevents.mongo.blobs import Blobs
from tests.conftest import database_name
from tests.factories import event, seqs
from tests.faults import fail_point, fail_point_off


@pytest.fixture
async def database(mongo_client: AsyncMongoClient[Any]) -> Any:
    """A fresh database name on the replica-set-capable server, dropped afterwards."""
    name = database_name()
    yield name
    await mongo_client.drop_database(name)


@pytest.mark.requires("transactions", "fail_points")
async def test_a_commit_that_failed_does_not_block_the_thread(
    server_uri: str, mongo_client: AsyncMongoClient[Any], database: str
) -> None:
    """After a commit fails with a definite outcome, another writer of the thread goes on at once.

    The driver leaves such a transaction open on the server, where it would
    block the thread's counter for a minute; the store kills its session.
    """
    app_name = f"commit-{uuid.uuid4().hex[:8]}"
    failing: AsyncMongoClient[Any] = AsyncMongoClient(server_uri, appname=app_name)
    other: AsyncMongoClient[Any] = AsyncMongoClient(server_uri)
    try:
        first = MongoRunEventStore(failing[database])
        second = MongoRunEventStore(other[database], transaction_retry_seconds=5)
        await first.put(**event())
        await fail_point(
            mongo_client, app_name, {"times": 1}, failCommands=["commitTransaction"], errorCode=2
        )
        try:
            with pytest.raises(StorageError):
                await first.put(**event())
        finally:
            await fail_point_off(mongo_client)
        started = time.monotonic()
        record = await second.put(**event())
        assert time.monotonic() - started < 5
        assert record["seq"] == 2
    finally:
        await failing.close()
        await other.close()


@pytest.mark.requires("transactions")
async def test_delete_by_thread_wins_against_steady_writers(server_uri: str, database: str) -> None:
    """A whole-thread delete succeeds while other processes write to the thread without pause."""
    clients: list[AsyncMongoClient[Any]] = [AsyncMongoClient(server_uri) for _ in range(3)]
    writers = [MongoRunEventStore(client[database]) for client in clients[:2]]
    deleter = MongoRunEventStore(clients[2][database], transaction_retry_seconds=20)
    stop = asyncio.Event()
    written = 0

    async def write(store: MongoRunEventStore) -> None:
        nonlocal written
        while not stop.is_set():
            await store.put_batch([event(content=n) for n in range(5)])
            written += 1

    try:
        tasks = [asyncio.create_task(write(store)) for store in writers]
        await asyncio.sleep(0.5)
        for _ in range(3):
            await deleter.delete_by_thread("thread-1")
            await asyncio.sleep(0.2)
        stop.set()
        await asyncio.gather(*tasks)
        assert written > 0
        remaining = await deleter.list_messages("thread-1", limit=10_000)
        assert seqs(remaining) == list(range(1, len(remaining) + 1))
    finally:
        stop.set()
        for client in clients:
            await client.close()


@pytest.mark.slow
@pytest.mark.requires("transactions", "fail_points")
async def test_a_killed_writer_delays_the_thread_but_fails_no_one(
    server_uri: str, mongo_client: AsyncMongoClient[Any], database: str
) -> None:
    """A writer killed while holding the thread's counter in a transaction: the others' writes still land.

    The server ends the abandoned transaction after its lifetime (60 s by
    default, shorter on the suite's own server); the default retry budget
    outlasts it.
    """
    app_name = f"killed-{uuid.uuid4().hex[:8]}"
    writer = textwrap.dedent(
        f"""
        import asyncio
        from pymongo import AsyncMongoClient
        from mongo_runevents import MongoRunEventStore

        async def main():
            client = AsyncMongoClient({server_uri!r}, appname={app_name!r})
            store = MongoRunEventStore(client[{database!r}])
            await store.ensure_indexes()
            print("ready", flush=True)
            await store.put(thread_id="thread-1", run_id="run-1",
                            event_type="llm.ai.response", category="message")

        asyncio.run(main())
        """
    )
    store = MongoRunEventStore(mongo_client[database])
    await store.put(**event())
    # The killed writer's insert hangs: it has reserved a seq inside its transaction.
    await fail_point(
        mongo_client,
        app_name,
        {"times": 1},
        failCommands=["insert"],
        blockConnection=True,
        blockTimeMS=120_000,
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", writer, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        assert (await asyncio.wait_for(process.stdout.readline(), 60)).strip() == b"ready"
        await asyncio.sleep(1.5)
        process.send_signal(signal.SIGKILL)
        await asyncio.wait_for(process.wait(), 10)
    finally:
        await fail_point_off(mongo_client)
    record = await store.put(**event())
    assert record["seq"] == 2
    assert seqs(await store.list_messages("thread-1")) == [1, 2]


async def test_the_embedded_server_ends_a_transaction_idle_past_its_lifetime(
    tmp_path: Path,
) -> None:
    """EmbeddedServer(transaction_lifetime_seconds=1): a transaction left idle 2.5 s is aborted."""
    with EmbeddedServer(
        tmp_path / "data", log_file=tmp_path / "log", transaction_lifetime_seconds=1
    ) as server:
        client: AsyncMongoClient[Any] = AsyncMongoClient(server.uri)
        try:
            collection = client["db"]["events"]
            async with client.start_session() as session:
                await session.start_transaction()
                await collection.insert_one({"_id": 1}, session=session)
                await session.commit_transaction()
                await session.start_transaction()
                await collection.insert_one({"_id": 2}, session=session)
                await asyncio.sleep(2.5)
                with pytest.raises(OperationFailure) as failure:
                    await session.commit_transaction()
            assert failure.value.code == 251  # NoSuchTransaction
            assert [doc["_id"] async for doc in collection.find()] == [1]
        finally:
            await client.close()


@pytest.mark.parametrize("seconds", [0, -1, float("nan")])
def test_the_embedded_server_refuses_a_lifetime_that_is_not_positive(
    tmp_path: Path, seconds: float
) -> None:
    """A transaction lifetime of zero, below zero or NaN is a configuration error."""
    with pytest.raises(ConfigurationError, match="transaction_lifetime_seconds"):
        EmbeddedServer(tmp_path, transaction_lifetime_seconds=seconds)


async def test_a_reader_skips_a_large_event_deleted_under_it(
    mongo_database: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read that meets a large event whose blob vanished (deleted meanwhile) reads again and skips it."""
    store = MongoRunEventStore(mongo_database, inline_limit_bytes=64 * 1024)
    await store.put_batch([event(content="small"), event(content="x" * 200_000), event()])
    fill = Blobs.fill
    deleted = False

    async def delete_first(self: Blobs, documents: list[dict[str, Any]], session: Any) -> None:
        nonlocal deleted
        if not deleted and any("blobs" in document for document in documents):
            deleted = True
            # What a concurrent delete_by_run or TTL expiry does meanwhile.
            await store.events_collection.delete_many({"seq": 2})
            await self.chunks.delete_many({})
        await fill(self, documents, session)

    monkeypatch.setattr(Blobs, "fill", delete_first)
    assert seqs(await store.list_messages("thread-1")) == [1, 3]
    assert deleted


async def test_standalone_write_whose_reply_was_lost_is_kept_not_repeated(
    standalone_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Plain mode: an insert applied whole whose reply was lost is the write; no reader sees it twice."""
    client: AsyncMongoClient[Any] = AsyncMongoClient(standalone_uri)
    name = database_name()
    insert_many = AsyncCollection.insert_many
    lost = False

    async def reply_lost(
        self: AsyncCollection[Any], documents: Any, *args: Any, **kwargs: Any
    ) -> Any:
        nonlocal lost
        result = await insert_many(self, documents, *args, **kwargs)
        if self.name == "run_events" and not lost:
            lost = True
            raise AutoReconnect("connection closed before the reply")
        return result

    try:
        store = MongoRunEventStore(client[name])
        await store.ensure_indexes()
        monkeypatch.setattr(AsyncCollection, "insert_many", reply_lost)
        records = await store.put_batch([event(content=n) for n in range(5)])
        assert lost
        assert seqs(records) == [1, 2, 3, 4, 5]
        assert [m["content"] for m in await store.list_messages("thread-1")] == list(range(5))
    finally:
        await client.drop_database(name)
        await client.close()
