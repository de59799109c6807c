"""Events larger than a MongoDB document: stored out of line, read back whole, deleted with their event.

Most tests lower ``inline_limit_bytes`` to 64 KiB so that small payloads take
the out-of-line path; one writes a real 17 MiB ``run.end`` with the defaults.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.errors import BulkWriteError, DocumentTooLarge, OperationFailure

from mongo_runevents import (
    EventTooLargeError,
    IntegrityError,
    InvalidEventError,
    MongoRunEventStore,
    RunEventStore,
)
from mongo_runevents.mongo import Deployment
from mongo_runevents.mongo.driver_errors import refuses_as_too_large
from tests.backends import Connection
from tests.conftest import database_name
from tests.factories import event, seqs

KIB = 1024
SMALL_LIMIT = 64 * KIB


def big_state(size: int, seed: str = "x") -> dict[str, Any]:
    """A final graph state of about ``size`` bytes, with odd keys to show they survive."""
    line = f"{seed} " + "tool output line with some text in it\n"
    return {
        "messages": [
            {"type": "tool", "content": line * (size // len(line) // 4)} for _ in range(4)
        ],
        "title": "a.b $c %d",
        "dotted.key": {"$op": [1, 2.5, None, True]},
    }


@pytest.fixture
def mongo_store(mongo_connection: Connection) -> tuple[RunEventStore, Any]:
    """A MongoDB store with a 64 KiB inline limit, and its database, on each MongoDB backend."""
    return mongo_connection.store(inline_limit_bytes=SMALL_LIMIT), mongo_connection.raw


async def blob_counts(database: Any) -> tuple[int, int]:
    """How many GridFS files and chunks the bucket holds."""
    files = await database["run_events_blobs.files"].count_documents({})
    chunks = await database["run_events_blobs.chunks"].count_documents({})
    return files, chunks


async def test_large_content_round_trips_through_every_read(mongo_store: Any) -> None:
    """Content over the inline limit is stored out of line and every read returns it whole."""
    store, database = mongo_store
    state = big_state(300 * KIB)
    written = await store.put_batch(
        [
            event(event_type="llm.ai.response", content="small"),
            event(
                event_type="run.end",
                category="lifecycle",
                content=state,
                metadata={"k.1": 1},
                event_id="end",
            ),
            event(content={"after": True}),
        ]
    )
    assert seqs(written) == [1, 2, 3]
    assert written[1]["content"] == state
    [end] = await store.list_events("thread-1", "run-1", event_types=["run.end"])
    assert end["content"] == state
    assert end["metadata"] == {"k.1": 1}
    assert (await store.list_events("thread-1", "run-1"))[1] == end
    raw = await database["run_events"].find_one({"seq": 2})
    assert raw["content"] is None
    assert set(raw["blobs"]) == {"content"}
    file = await database["run_events_blobs.files"].find_one({"_id": raw["blobs"]["content"]})
    assert file["metadata"] == {"thread_id": "thread-1", "run_id": "run-1", "field": "content"}
    assert file["length"] > 300 * KIB
    assert file["chunkSize"] > 0
    # A retry with the same event id returns the out-of-line record, unchanged.
    again = await store.put(
        **event(
            event_type="run.end",
            category="lifecycle",
            content=state,
            metadata={"k.1": 1},
            event_id="end",
        )
    )
    assert again == end


async def test_large_metadata_also_goes_out_of_line(mongo_store: Any) -> None:
    """When content alone does not make room, metadata is moved out of line too."""
    store, database = mongo_store
    metadata = {"diff": "+ changed line\n" * (200 * KIB // 15), "task_id": "t1"}
    await store.put(**event(content=big_state(200 * KIB), metadata=metadata))
    [stored] = await store.list_messages("thread-1")
    assert stored["metadata"] == metadata
    assert await blob_counts(database) >= (2, 2)


async def test_event_over_the_hard_cap_is_refused_before_writing(mongo_store: Any) -> None:
    """Above max_event_bytes the event raises EventTooLargeError (an InvalidEventError) and nothing is written."""
    _, database = mongo_store
    capped = MongoRunEventStore(database, inline_limit_bytes=SMALL_LIMIT, max_event_bytes=200 * KIB)
    with pytest.raises(EventTooLargeError, match="event 1") as caught:
        await capped.put_batch([event(), event(content=big_state(400 * KIB))])
    assert isinstance(caught.value, InvalidEventError)
    assert await capped.count_messages("thread-1") == 0
    assert await blob_counts(database) == (0, 0)
    assert (await capped.put(**event()))["seq"] == 1


async def test_deletes_remove_blobs_of_deleted_events_only(mongo_store: Any) -> None:
    """delete_by_run and delete_by_thread delete their events' blobs and leave other threads' alone."""
    store, database = mongo_store
    await store.put_batch(
        [
            event("a", "r1", content=big_state(100 * KIB, "a1")),
            event("a", "r2", content=big_state(100 * KIB, "a2")),
            event("b", "r1", content=big_state(100 * KIB, "b1")),
        ]
    )
    assert (await blob_counts(database))[0] == 3
    assert await store.delete_by_run("a", "r1") == 1
    assert (await blob_counts(database))[0] == 2
    assert (await store.list_messages("a"))[0]["content"] == big_state(100 * KIB, "a2")
    assert await store.delete_by_thread("a") == 1
    assert (await blob_counts(database))[0] == 1
    assert (await store.list_messages("b"))[0]["content"] == big_state(100 * KIB, "b1")
    chunks = await database["run_events_blobs.chunks"].distinct("thread_id")
    assert chunks == ["b"]


async def test_failed_batch_leaves_no_orphan_blobs(mongo_store: Any) -> None:
    """A batch that fails after its blobs were sent leaves neither events nor blobs behind."""
    store, database = mongo_store
    await store.ensure_indexes()
    await database["run_events"].insert_one(
        {"thread_id": "thread-1", "run_id": "x", "event_type": "x", "category": "x", "seq": 2}
    )
    with pytest.raises(IntegrityError):
        await store.put_batch(
            [event(content=big_state(100 * KIB)), event(content=big_state(100 * KIB))]
        )
    assert await blob_counts(database) == (0, 0)
    assert await database["run_events"].count_documents({}) == 1


async def test_a_run_end_over_16_mib_is_stored_with_the_defaults(server_uri: str) -> None:
    """With default settings a 17 MiB final state, past MongoDB's document limit, round-trips."""
    name = database_name()
    client: AsyncMongoClient[Any] = AsyncMongoClient(server_uri)
    try:
        store = MongoRunEventStore(client[name])
        state = big_state(17 * 1024 * KIB)
        record = await store.put(**event(event_type="run.end", category="lifecycle", content=state))
        [stored] = await store.list_events("thread-1", "run-1")
        assert stored == record
        assert stored["content"] == state
        assert await store.delete_by_thread("thread-1") == 1
        assert await client[name]["run_events_blobs.chunks"].count_documents({}) == 0
    finally:
        await client.drop_database(name)
        await client.close()


@pytest.mark.parametrize(
    "size",
    [
        pytest.param(17 * 1024 * KIB, id="refused-by-the-driver"),
        # Past 16 MiB by less than the driver's allowance for command overhead:
        # the server refuses it (BSONObjectTooLarge).
        pytest.param(16 * 1024 * KIB + 2 * KIB, id="refused-by-the-server"),
    ],
)
async def test_a_batch_refused_as_too_large_is_written_again_measured(
    server_uri: str, size: int
) -> None:
    """An unmeasured batch whose event passes the document limit lands whole, with no seq gap."""
    name = database_name()
    client: AsyncMongoClient[Any] = AsyncMongoClient(server_uri)
    try:
        store = MongoRunEventStore(client[name])
        content = {"output": "x" * size}
        written = await store.put_batch(
            [event(content="before"), event(content=content), event(content="after")]
        )
        assert seqs(written) == [1, 2, 3]
        assert await store.list_events("thread-1", "run-1") == written
        assert await client[name]["run_events"].count_documents({}) == 3
        assert await client[name]["run_events_blobs.files"].count_documents({}) == 1
        assert (await store.put(**event()))["seq"] == 4
    finally:
        await client.drop_database(name)
        await client.close()


async def test_an_event_under_the_server_limit_is_stored_whole(server_uri: str) -> None:
    """With the defaults the inline limit is the server's own: 15.9 MiB stays in its document."""
    name = database_name()
    client: AsyncMongoClient[Any] = AsyncMongoClient(server_uri)
    try:
        store = MongoRunEventStore(client[name])
        content = {"output": "x" * (16 * 1024 * KIB - 100 * KIB)}
        record = await store.put(**event(content=content))
        assert await store.list_events("thread-1", "run-1") == [record]
        assert await blob_counts(client[name]) == (0, 0)
    finally:
        await client.drop_database(name)
        await client.close()


def test_only_writes_in_a_transaction_with_the_default_limits_go_unmeasured() -> None:
    """Measuring is skipped only where a refused batch leaves nothing and no limit is lower."""
    database = AsyncMongoClient(connect=False)["unmeasured"]
    default = MongoRunEventStore(database)._documents
    replica_set = Deployment(transactions=True, change_streams=True, bson_server=True)
    assert not default.measures(replica_set)
    assert default.measures(replace(replica_set, transactions=False))
    assert default.measures(replace(replica_set, bson_server=False))
    # A server that takes larger documents than the store keeps whole.
    assert default.measures(replace(replica_set, max_document_bytes=32 * 1024 * KIB))
    # A smaller one refuses what passes its limit, and the batch is then measured.
    assert not default.measures(replace(replica_set, max_document_bytes=8 * 1024 * KIB))
    for limits in ({"inline_limit_bytes": SMALL_LIMIT}, {"max_event_bytes": SMALL_LIMIT}):
        assert MongoRunEventStore(database, **limits)._documents.measures(replica_set)


async def test_out_of_line_metadata_stays_queryable(mongo_store: Any) -> None:
    """Metadata moved to a blob keeps task_id and caller inline: filters and hidden replies still work."""
    store, _ = mongo_store
    bulky = {"task_id": "t1", "caller": "middleware:title", "diff": "x" * (2 * SMALL_LIMIT)}
    await store.put_batch(
        [event(run_id="r1"), event(run_id="r1", metadata=bulky), event(run_id="r2", metadata=bulky)]
    )
    [found] = await store.list_events("thread-1", "r1", task_id="t1")
    assert found["metadata"] == bulky
    assert await store.get_last_visible_ai_seq_by_run("thread-1", ["r1", "r2"]) == {"r1": 1}


async def test_imported_large_events_leave_no_orphan_blobs(mongo_connection: Connection) -> None:
    """An imported event stored out of line is deleted with its blobs (its thread is marked)."""
    store = mongo_connection.store("imported", inline_limit_bytes=SMALL_LIMIT)
    record = {
        **event(content=big_state(2 * SMALL_LIMIT)),
        "seq": 3,
        "created_at": "2025-01-01T00:00:00Z",
    }
    assert (await store.import_events([record])).inserted == 1
    database = mongo_connection.raw
    assert await database["imported_blobs.files"].count_documents({}) == 1
    assert await store.delete_by_thread("thread-1") == 1
    assert await database["imported_blobs.files"].count_documents({}) == 0
    assert await database["imported_blobs.chunks"].count_documents({}) == 0


@pytest.mark.parametrize(
    ("refusal", "too_large"),
    [
        (DocumentTooLarge("BSON document too large"), True),
        (BulkWriteError({"writeErrors": [{"index": 0, "code": 10334, "errmsg": "x"}]}), True),
        (
            BulkWriteError(
                {
                    "writeErrors": [
                        {
                            "index": 0,
                            "code": 2,
                            "errmsg": "object to insert too large. size in bytes: 16777300",
                        }
                    ]
                }
            ),
            True,
        ),
        (BulkWriteError({"writeErrors": [{"index": 0, "code": 11000, "errmsg": "dup"}]}), False),
        (OperationFailure("not master", code=10107), False),
    ],
)
def test_refusals_as_too_large_are_told_from_other_errors(
    refusal: Exception, too_large: bool
) -> None:
    """The driver's and both servers' ways of refusing a large document start a measured retry."""
    assert refuses_as_too_large(refusal) is too_large
