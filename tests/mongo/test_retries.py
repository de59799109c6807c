"""The one retry policy of writes, and the depth of the write path to its first round trip."""

from __future__ import annotations

import os
import traceback
from typing import Any

import pytest
from pymongo import AsyncMongoClient, monitoring
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import (
    BulkWriteError,
    DocumentTooLarge,
    DuplicateKeyError,
    OperationFailure,
)

import mongo_runevents
from mongo_runevents import MongoRunEventStore
from mongo_runevents.mongo.counters import CounterRace
from mongo_runevents.mongo.transactions import Retry, retry_reason
from tests.conftest import database_name
from tests.factories import event, seqs

PACKAGE = os.path.dirname(mongo_runevents.__file__)


def labelled(label: str) -> OperationFailure:
    error = OperationFailure("WriteConflict", code=112)
    error._add_error_label(label)
    return error


def duplicate_id() -> BulkWriteError:
    return BulkWriteError(
        {
            "writeErrors": [
                {
                    "index": 0,
                    "code": 11000,
                    "errmsg": "E11000 index: _id_",
                    "keyPattern": {"_id": 1},
                }
            ]
        }
    )


@pytest.mark.parametrize(
    ("error", "options", "reason"),
    [
        (labelled("TransientTransactionError"), {}, Retry.TRANSIENT),
        (labelled("UnknownTransactionCommitResult"), {"committing": True}, Retry.COMMIT_UNKNOWN),
        (labelled("UnknownTransactionCommitResult"), {}, None),
        (DocumentTooLarge("too large"), {"measured": False}, Retry.UNMEASURED_TOO_LARGE),
        (DocumentTooLarge("too large"), {}, None),
        (duplicate_id(), {"keyed": True}, Retry.EVENT_ID_TAKEN),
        (duplicate_id(), {}, None),
        (CounterRace("t"), {}, Retry.COUNTER_RACE),
        (OperationFailure("bad", code=2), {"keyed": True, "measured": False}, None),
        (ValueError("not a driver error"), {"keyed": True}, None),
    ],
)
def test_one_function_names_every_reason_a_write_is_retried(
    error: Exception, options: dict[str, bool], reason: Retry | None
) -> None:
    """retry_reason says why a failed write may run again, and None where it may not."""
    given = {"committing": False, "measured": True, "keyed": False, **options}
    assert retry_reason(error, **given) is reason


@pytest.mark.parametrize("backend_uri", ["server_uri", "standalone_uri"])
async def test_a_counter_upsert_that_lost_a_race_is_written_again(
    backend_uri: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A duplicate key on a thread's first counter (another writer created it) retries the write, in both modes."""
    client: AsyncMongoClient[Any] = AsyncMongoClient(request.getfixturevalue(backend_uri))
    name = database_name()
    find_one_and_update = AsyncCollection.find_one_and_update
    lost = 0

    async def loses_once(self: AsyncCollection[Any], *args: Any, **kwargs: Any) -> Any:
        nonlocal lost
        if self.name.endswith("_counters") and kwargs.get("upsert") and not lost:
            lost += 1
            # The other writer's upsert, in a process (and session) of its own.
            await find_one_and_update(self, *args, **{**kwargs, "session": None})
            raise DuplicateKeyError("E11000 duplicate key error index: _id_", 11000)
        return await find_one_and_update(self, *args, **kwargs)

    try:
        store = MongoRunEventStore(client[name])
        await store.ensure_indexes()
        monkeypatch.setattr(AsyncCollection, "find_one_and_update", loses_once)
        records = await store.put_batch([event(content=n) for n in range(3)])
        monkeypatch.undo()
        assert lost == 1
        # The lost attempt reserved seqs 1-3 (the "other writer"), so this write follows them.
        assert seqs(records) == [4, 5, 6]
        assert seqs(await store.list_messages("thread-1")) == [4, 5, 6]
    finally:
        await client.drop_database(name)
        await client.close()


async def test_a_batch_of_two_threads_whose_counter_upsert_lost_a_race_is_written_again(
    mongo_database: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In a transaction, several threads' counters are upserted in one bulk write; a lost race there retries too."""
    bulk_write = AsyncCollection.bulk_write
    lost = 0

    async def loses_once(self: AsyncCollection[Any], requests: Any, **kwargs: Any) -> Any:
        nonlocal lost
        if self.name.endswith("_counters") and not lost:
            lost += 1
            await bulk_write(self, requests, **{**kwargs, "session": None})  # the other writer
            raise BulkWriteError(
                {"writeErrors": [{"index": 0, "code": 11000, "errmsg": "E11000 index: _id_"}]}
            )
        return await bulk_write(self, requests, **kwargs)

    store = MongoRunEventStore(mongo_database)
    await store.ensure_indexes()
    if not store.uses_transactions:
        pytest.skip("several threads' counters are upserted in one bulk write only in transactions")
    monkeypatch.setattr(AsyncCollection, "bulk_write", loses_once)
    batch = [event(thread_id="a", content=1), event(thread_id="b", content=2)]
    records = await store.put_batch(batch)
    monkeypatch.undo()
    assert lost == 1
    assert [(r["thread_id"], r["seq"]) for r in records] == [("a", 2), ("b", 2)]


class FirstCommand(monitoring.CommandListener):
    """Keeps the package's frames on the stack when the first command is sent after arming."""

    def __init__(self) -> None:
        self.armed = False
        self.stack: list[traceback.FrameSummary] | None = None

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if self.armed and self.stack is None:
            self.stack = [f for f in traceback.extract_stack() if f.filename.startswith(PACKAGE)]

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


@pytest.mark.parametrize("backend_uri", ["server_uri", "standalone_uri"])
async def test_put_batch_reaches_its_first_round_trip_in_five_frames(
    backend_uri: str, request: pytest.FixtureRequest
) -> None:
    """From put_batch to its first command: at most 5 of the package's frames, in at most 6 modules."""
    listener = FirstCommand()
    client: AsyncMongoClient[Any] = AsyncMongoClient(
        request.getfixturevalue(backend_uri), event_listeners=[listener]
    )
    name = database_name()
    try:
        store = MongoRunEventStore(client[name])
        await store.put_batch([event(content=0)])  # set-up done
        listener.armed = True
        await store.put_batch([event(content=n) for n in range(20)])
        assert listener.stack is not None
        shown = [f"{f.filename}:{f.lineno} {f.name}" for f in listener.stack]
        assert len(listener.stack) <= 5, shown
        assert len({f.filename for f in listener.stack}) <= 6, shown
    finally:
        await client.drop_database(name)
        await client.close()
