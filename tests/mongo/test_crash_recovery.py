"""A server killed (SIGKILL) in the middle of a stream of batches, and restarted on its data.

Each test starts its own SecantusDB daemon on 127.0.0.1, so killing it
disturbs nothing else. Skipped when SecantusDB is not installed.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from mongo_runevents import MongoRunEventStore, StorageError, embedded
from mongo_runevents.embedded import EmbeddedServer
from tests.factories import event, seqs

pytestmark = pytest.mark.skipif(not embedded.available(), reason="SecantusDB is not installed")

BATCHES = 30
BATCH_SIZE = 10


async def write_stream(
    store: MongoRunEventStore, written: list[int], errors: list[StorageError]
) -> None:
    """A run journal: write batches with event ids, retrying each failed batch until it lands."""
    for batch_number in range(BATCHES):
        batch = [
            event(content=f"{batch_number}-{i}", event_id=f"b{batch_number}-{i}")
            for i in range(BATCH_SIZE)
        ]
        while True:
            try:
                records = await store.put_batch(batch)
            except StorageError as exc:
                errors.append(exc)
                await asyncio.sleep(0.1)
                continue
            written.append(batch_number)
            assert [r["content"] for r in records] == [e["content"] for e in batch]
            break


async def kill_during_stream(
    tmp_path: Path, *, standalone: bool
) -> tuple[list[dict[str, Any]], list[StorageError]]:
    """Write the stream, SIGKILL the server in the middle of a write, restart it, finish the stream."""
    # --sync-on-commit: an acknowledged commit is on disk (mongod's j: true).
    # Without it SecantusDB loses acknowledged writes to a crash (measured: all
    # of them since the last checkpoint), which no store can repair.
    server = EmbeddedServer(
        tmp_path / "data",
        standalone=standalone,
        test_commands=True,
        extra_args=("--sync-on-commit",),
        log_file=tmp_path / "server.log",
    ).start()
    app_name = "crash-writer"
    client: AsyncMongoClient[Any] = AsyncMongoClient(
        server.uri, appname=app_name, serverSelectionTimeoutMS=1500, connectTimeoutMS=1000
    )
    control: AsyncMongoClient[Any] = AsyncMongoClient(server.uri, serverSelectionTimeoutMS=1500)
    try:
        store = MongoRunEventStore(client["crash"])
        written: list[int] = []
        errors: list[StorageError] = []
        writer = asyncio.create_task(write_stream(store, written, errors))
        while len(written) < BATCHES // 3 and not writer.done():  # noqa: ASYNC110 (polls a list)
            await asyncio.sleep(0.005)
        # The next insert stalls at the server, so the kill lands mid-write
        # (inside a transaction, in transaction mode), deterministically.
        await control.admin.command(
            "configureFailPoint",
            "failCommand",
            mode={"times": 1},
            data={
                "appName": app_name,
                "failCommands": ["insert"],
                "blockConnection": True,
                "blockTimeMS": 5000,
            },
        )
        await asyncio.sleep(0.3)
        server.kill()
        await asyncio.sleep(0.3)
        server.start()
        await asyncio.wait_for(writer, timeout=120)
        stored = await store.list_messages("thread-1", limit=10 * BATCHES * BATCH_SIZE)
        return stored, errors
    finally:
        await client.close()
        await control.close()
        server.stop()


async def test_kill_and_restart_in_transaction_mode_loses_and_duplicates_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Every event lands exactly once, seqs are 1..n with no gap, and the same store object recovers."""
    caplog.set_level(logging.DEBUG, logger="mongo_runevents.mongo")
    stored, errors = await kill_during_stream(tmp_path, standalone=False)
    total = BATCHES * BATCH_SIZE
    assert seqs(stored) == list(range(1, total + 1))
    assert sorted(r["event_id"] for r in stored) == sorted(
        f"b{b}-{i}" for b in range(BATCHES) for i in range(BATCH_SIZE)
    )
    # Batches are atomic: each batch's events are consecutive.
    for start in range(0, total, BATCH_SIZE):
        assert len({r["event_id"].split("-")[0] for r in stored[start : start + BATCH_SIZE]}) == 1
    # The interrupted transaction was retried, inside the store or by the caller.
    assert errors or "transient error" in caplog.text
    assert all(error.retryable for error in errors)


async def test_kill_and_restart_in_standalone_mode_keeps_each_event_once(tmp_path: Path) -> None:
    """Without transactions, retrying with event ids still leaves each event once (seq gaps allowed)."""
    stored, errors = await kill_during_stream(tmp_path, standalone=True)
    assert len(stored) == BATCHES * BATCH_SIZE
    assert seqs(stored) == sorted(set(seqs(stored)))
    assert len({r["event_id"] for r in stored}) == BATCHES * BATCH_SIZE
    assert all(error.retryable for error in errors)
