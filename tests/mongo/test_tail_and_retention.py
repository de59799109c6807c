"""The MongoDB store's live tail under faults, and retention by category (TTL)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from mongo_runevents import ConfigurationError, MongoRunEventStore
from mongo_runevents.embedded import EmbeddedServer
from tests.conformance.test_tail import collect
from tests.conftest import database_name
from tests.factories import event, seqs, trace
from tests.faults import fail_point, fail_point_off


@pytest.mark.requires("transactions", "fail_points")
async def test_watch_survives_a_dropped_change_stream(
    server_uri: str, mongo_client: AsyncMongoClient[Any]
) -> None:
    """When the server drops the tail's connection mid-stream, the tail goes on without loss or repeat."""
    name = database_name()
    app_name = "tail-under-test"
    reader_client: AsyncMongoClient[Any] = AsyncMongoClient(server_uri, appname=app_name)
    writer = MongoRunEventStore(mongo_client[name])
    reader = MongoRunEventStore(reader_client[name])
    try:
        await writer.put_batch([event(content=i) for i in range(3)])
        tail = asyncio.create_task(collect(reader.watch("thread-1", poll_interval=0.02), 33))
        await asyncio.sleep(0.2)
        await fail_point(
            mongo_client,
            app_name,
            {"times": 2},
            failCommands=["getMore", "find"],
            closeConnection=True,
        )
        for batch in range(3):
            await writer.put_batch([event(content=f"{batch}-{i}") for i in range(10)])
            await asyncio.sleep(0.05)
        assert seqs(await asyncio.wait_for(tail, timeout=60)) == list(range(1, 34))
    finally:
        await fail_point_off(mongo_client)
        await mongo_client.drop_database(name)
        await reader_client.close()


# --- retention -----------------------------------------------------------------------


async def test_retention_marks_only_the_listed_categories(mongo_database: Any) -> None:
    """Events of categories with a retention period get expires_at; the others are kept forever."""
    store = MongoRunEventStore(mongo_database, retention={"trace": timedelta(days=30)})
    before = datetime.now(timezone.utc)
    await store.put_batch([event(), trace()])
    raw = {doc["category"]: doc async for doc in mongo_database["run_events"].find({})}
    assert "expires_at" not in raw["message"]
    expires = raw["trace"]["expires_at"].replace(tzinfo=timezone.utc)
    assert (
        before + timedelta(days=30) - timedelta(seconds=5)
        <= expires
        <= datetime.now(timezone.utc) + timedelta(days=30)
    )
    info = await mongo_database["run_events"].index_information()
    assert info["expiry"]["expireAfterSeconds"] == 0
    assert "expires_at" not in (await store.list_events("thread-1", "run-1"))[1]


@pytest.mark.parametrize(
    "retention",
    [
        {"trace": 30},
        {"": timedelta(days=1)},
        {"trace": timedelta(0)},
        {"trace": timedelta(days=3_000_000)},
        [("trace", timedelta(days=1))],
    ],
)
def test_bad_retention_is_a_configuration_error(retention: Any) -> None:
    """Retention periods must be positive timedeltas keyed by category names."""
    from mongomock_motor import AsyncMongoMockClient

    with pytest.raises(ConfigurationError):
        MongoRunEventStore(AsyncMongoMockClient()["db"], retention=retention)


async def test_expired_traces_vanish_but_seqs_and_cursors_hold(tmp_path: Path) -> None:
    """The TTL monitor deletes expired traces; messages stay, seqs are never reused, cursors still work."""
    server = EmbeddedServer(tmp_path / "data", log_file=tmp_path / "log").start()
    client: AsyncMongoClient[Any] = AsyncMongoClient(server.uri)
    try:
        store = MongoRunEventStore(client["ttl"], retention={"trace": timedelta(milliseconds=200)})
        await store.put_batch([event(), trace(), trace(), event(), trace()])
        await asyncio.sleep(0.3)
        # SecantusDB's TTL monitor runs every 60 s; this SecantusDB command runs
        # the same monitor pass now.
        await client.admin.command("secantusAdmin.pruneTtl")
        assert seqs(await store.list_events("thread-1", "run-1")) == [1, 4]
        assert seqs(await store.list_messages("thread-1", after_seq=1)) == [4]
        assert (await store.put(**event()))["seq"] == 6
    finally:
        await client.close()
        server.stop()


async def test_retention_is_recorded_and_adopted_by_other_stores(mongo_database: Any) -> None:
    """A store given a retention records it; a store on the same collection given none adopts it."""
    operator = MongoRunEventStore(mongo_database, retention={"trace": timedelta(days=7)})
    await operator.ensure_indexes()
    server = MongoRunEventStore(mongo_database)
    await server.put_batch([event(), trace()])
    assert server.retention == {"trace": timedelta(days=7)}
    raw = {doc["category"]: doc async for doc in mongo_database["run_events"].find({})}
    assert "expires_at" in raw["trace"]
    assert "expires_at" not in raw["message"]
    cleared = MongoRunEventStore(mongo_database, retention={})
    await cleared.ensure_indexes()
    later = MongoRunEventStore(mongo_database)
    await later.ensure_indexes()
    assert later.retention == {}
