"""Operating the MongoDB store: export, import, statistics, the schema validator, sharding helpers."""

from __future__ import annotations

from typing import Any

import pytest
from pymongo.errors import PyMongoError

from mongo_runevents import InvalidEventError, MongoRunEventStore
from mongo_runevents.admin import (
    apply_schema_validator,
    collect_stats,
    shard_collections,
    zone_boundaries,
)
from mongo_runevents.errors import ConfigurationError
from tests.factories import event, seqs, trace


async def all_records(
    store: MongoRunEventStore, thread_id: str | None = None
) -> list[dict[str, Any]]:
    return [record async for record in store.export_events(thread_id, page_size=7)]


async def test_export_then_import_reproduces_the_history(mongo_database: Any) -> None:
    """Exported records imported into another collection keep seqs, times, ids and content; numbering continues."""
    source = MongoRunEventStore(mongo_database, collection="source")
    target = MongoRunEventStore(mongo_database, collection="target")
    await source.put_batch([event("a", content=i, event_id=f"e{i}") for i in range(10)])
    await source.put_batch([trace("b", user_id="u1"), event("b", metadata={"x.y": 1})])
    await source.delete_by_run("a", "nope")
    exported = await all_records(source)
    assert [(r["thread_id"], r["seq"]) for r in exported] == [("a", n) for n in range(1, 11)] + [
        ("b", 1),
        ("b", 2),
    ]
    result = await target.import_events(exported)
    assert (result.inserted, result.already_there, result.conflicts) == (12, 0, [])
    assert await all_records(target) == exported
    assert (await target.put(**event("a")))["seq"] == 11


async def test_import_is_idempotent(mongo_database: Any) -> None:
    """Running the same import twice stores each record once."""
    store = MongoRunEventStore(mongo_database)
    records = [
        {**event(content=n), "seq": n, "created_at": f"2025-01-01T00:00:{n:02d}Z"}
        for n in (3, 5, 9)
    ]
    assert (await store.import_events(records)).inserted == 3
    again = await store.import_events(records)
    assert (again.inserted, again.already_there) == (0, 3)
    assert seqs(await store.list_messages("thread-1")) == [3, 5, 9]
    assert (await store.put(**event()))["seq"] == 10


@pytest.mark.parametrize(
    "record",
    [
        {**event(), "created_at": "2025-01-01T00:00:00Z"},
        {**event(), "seq": 0, "created_at": "2025-01-01T00:00:00Z"},
        {**event(), "seq": 1},
        {**event(), "seq": 1, "created_at": "2025-01-01T00:00:00Z", "content": "\udc00"},
        "not a record",
    ],
)
async def test_import_refuses_bad_records_before_writing(mongo_database: Any, record: Any) -> None:
    """A bad record anywhere in an import raises InvalidEventError naming its index; nothing is written."""
    store = MongoRunEventStore(mongo_database)
    good = {**event(), "seq": 1, "created_at": "2025-01-01T00:00:00Z"}
    with pytest.raises(InvalidEventError, match="event 1"):
        await store.import_events([good, record])
    assert await store.count_messages("thread-1") == 0


async def test_stats_count_threads_categories_and_sizes(mongo_database: Any) -> None:
    """collect_stats reports threads, events per category and collection sizes."""
    store = MongoRunEventStore(mongo_database)
    await store.put_batch([event("a"), trace("a"), event("b"), trace("b"), trace("b")])
    stats = await collect_stats(store)
    assert stats.threads == 2
    assert stats.events == 5
    assert stats.events_by_category == {"message": 2, "trace": 3}
    assert stats.collections["run_events"]["count"] == 5
    assert stats.collections["run_events"]["index_bytes"] > 0


async def test_schema_validator_refuses_malformed_documents(mongo_database: Any) -> None:
    """With the validator on, a document without the fixed fields is refused by the server; the store still writes."""
    store = MongoRunEventStore(mongo_database)
    await apply_schema_validator(store)
    await apply_schema_validator(store)
    with pytest.raises(PyMongoError):
        await store.events_collection.insert_one({"thread_id": "t", "seq": "1"})
    big = {"k": "v" * 100}
    assert (await store.put(**event(content=big, metadata={"$odd.key": 1})))["seq"] == 1


def test_zone_boundaries_split_hex_ids_evenly() -> None:
    """Zone split points divide UUID-like thread ids evenly among shards."""
    assert zone_boundaries(1) == []
    assert zone_boundaries(2) == ["8"]
    assert zone_boundaries(4) == ["4", "8", "c"]
    with pytest.raises(ConfigurationError):
        zone_boundaries(0)


@pytest.mark.requires("not sharded")
async def test_sharding_needs_mongos(mongo_database: Any) -> None:
    """shard_collections refuses, with a clear error, to run against anything but mongos."""
    with pytest.raises(ConfigurationError, match="mongos"):
        await shard_collections(MongoRunEventStore(mongo_database))


async def test_count_events_counts_a_thread_a_run_or_a_category(mongo_database: Any) -> None:
    """count_events counts all of a thread's events, or one run's, or one category's."""
    store = MongoRunEventStore(mongo_database)
    await store.put_batch(
        [event(run_id="r1"), trace(run_id="r1"), trace(run_id="r2"), event("other")]
    )
    assert await store.count_events("thread-1") == 3
    assert await store.count_events("thread-1", run_id="r1") == 2
    assert await store.count_events("thread-1", category="trace") == 2
    assert await store.count_events("nope") == 0
    with pytest.raises(InvalidEventError):
        await store.count_events("thread-1", run_id={"$ne": ""})


async def test_import_skips_event_id_clashes_and_renumbers_seq_clashes(mongo_database: Any) -> None:
    """A reused event_id is skipped; the thread with a taken seq is renumbered after its last seq."""
    store = MongoRunEventStore(mongo_database)
    await store.put(**event(event_id="e1"))
    result = await store.import_events(
        [
            {**event(event_id="e1"), "seq": 7, "created_at": "2025-01-01T00:00:00Z"},
            {**event(event_id="e2"), "seq": 8, "created_at": "2025-01-01T00:00:00Z"},
            {**event(), "seq": 1, "created_at": "2025-01-01T00:00:00Z"},
        ]
    )
    assert (result.inserted, result.already_there, len(result.conflicts)) == (2, 0, 2)
    assert [(c.index, c.seq) for c in result.skipped] == [(0, 7)]
    assert [(r.index, r.old_seq, r.new_seq) for r in result.renumbered] == [(2, 1, 2), (1, 8, 3)]
