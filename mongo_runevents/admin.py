"""Operating a MongoDB store: statistics, a schema validator, sharding.

These are for operators and the ``mongo-runevents`` command line, not for the
agent server's hot path. Each takes a :class:`~mongo_runevents.MongoRunEventStore`
and works on its collections.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bson import MaxKey, MinKey
from pymongo.errors import OperationFailure

from .errors import ConfigurationError
from .mongo.compat import resolve
from .mongo.driver_errors import translated

if TYPE_CHECKING:
    from .mongo import MongoRunEventStore

#: The server's code for a collection that does not exist.
NAMESPACE_NOT_FOUND = 26

#: The ``$jsonSchema`` of an event document: the fixed fields and their types.
#: Content and metadata stay free-form; out-of-line fields leave content null.
EVENT_SCHEMA: dict[str, Any] = {
    "bsonType": "object",
    "required": ["thread_id", "run_id", "event_type", "category", "seq", "created_at", "metadata"],
    "properties": {
        "thread_id": {"bsonType": "string", "minLength": 1},
        "run_id": {"bsonType": "string", "minLength": 1},
        "event_type": {"bsonType": "string", "minLength": 1},
        "category": {"bsonType": "string", "minLength": 1},
        "seq": {"bsonType": ["int", "long"], "minimum": 1},
        "created_at": {"bsonType": "string", "minLength": 10},
        "metadata": {"bsonType": "object"},
        "event_id": {"bsonType": "string", "minLength": 1},
        "user_id": {"bsonType": "string", "minLength": 1},
        "escaped_keys": {"bsonType": "bool"},
        "expires_at": {"bsonType": "date"},
        "blobs": {"bsonType": "object"},
    },
}


async def apply_schema_validator(store: MongoRunEventStore) -> None:
    """Make the server refuse event documents whose fixed fields are missing or mistyped.

    A second line of defence behind the store's own validation, for anything
    else that writes to the collection. Idempotent.
    """
    await store.ensure_indexes()
    collection = store.events_collection
    with translated("setting the schema validator"):
        await collection.database.command(
            "collMod",
            collection.name,
            validator={"$jsonSchema": EVENT_SCHEMA},
            validationLevel="strict",
            validationAction="error",
        )


@dataclass
class StoreStats:
    """What ``mongo-runevents stats`` reports."""

    threads: int
    events: int
    events_by_category: dict[str, int]
    collections: dict[str, dict[str, Any]] = field(default_factory=dict)


async def collect_stats(store: MongoRunEventStore) -> StoreStats:
    """Threads, events per category, and sizes of every collection the store uses.

    Counting per category reads the category index of every thread: fine for
    an operator's command, not for a request path. It reads only: on a fresh
    database, missing collections count as empty and nothing is created.
    """
    events = store.events_collection
    with translated("collecting statistics"):
        threads = await store.counters_collection.count_documents({})
        cursor = await resolve(
            events.aggregate([{"$group": {"_id": "$category", "events": {"$sum": 1}}}])
        )
        by_category = {row["_id"]: row["events"] for row in await cursor.to_list(None)}
        sizes: dict[str, dict[str, Any]] = {}
        for collection in (events, store.counters_collection, *store.blob_collections):
            try:
                raw = await collection.database.command("collStats", collection.name)
            except NotImplementedError:  # mongomock
                continue
            except OperationFailure as exc:
                if exc.code != NAMESPACE_NOT_FOUND:
                    raise
                raw = {}  # the collection does not exist yet
            sizes[collection.name] = {
                "count": raw.get("count", 0),
                "size_bytes": raw.get("size", 0),
                "storage_bytes": raw.get("storageSize", 0),
                "index_bytes": raw.get("totalIndexSize", 0),
                "indexes": dict(raw.get("indexSizes", {})),
            }
    return StoreStats(
        threads=threads,
        events=sum(by_category.values()),
        events_by_category=dict(sorted(by_category.items())),
        collections=sizes,
    )


# --- sharding ------------------------------------------------------------------------

#: The shard keys, and why.
#:
#: - events ``{thread_id: 1}`` (ranged): every call names one thread, so every
#:   call goes to the one shard holding that thread's range; the unique
#:   ``(thread_id, seq)`` and ``(thread_id, event_id)`` indexes have the shard
#:   key as prefix, which a sharded collection requires of unique indexes, and
#:   MongoDB documents that guarantee for ranged shard keys only;
#: - counters ``{_id: 1}`` (``_id`` is the thread id): the same ranges;
#: - blob chunks ``{files_id: 1, n: 1}``: the usual GridFS key (the unique
#:   ``(files_id, n)`` index needs it); blob files stay unsharded.
SHARD_KEYS: dict[str, dict[str, Any]] = {
    "events": {"thread_id": 1},
    "counters": {"_id": 1},
    "chunks": {"files_id": 1, "n": 1},
}


@dataclass
class ShardingReport:
    """What :func:`shard_collections` did, step by step, for a person to read."""

    steps: list[str] = field(default_factory=list)


def zone_boundaries(count: int, alphabet: str = string.hexdigits[:16]) -> list[str]:
    """``count - 1`` split points that cut ids starting with ``alphabet`` characters evenly.

    DeerFlow's thread ids are UUID-4 strings, uniformly spread over hex digits.
    """
    if count < 1:
        raise ConfigurationError("there must be at least one shard")
    return [alphabet[len(alphabet) * index // count] for index in range(1, count)]


async def shard_collections(
    store: MongoRunEventStore, *, aligned_zones: bool = True
) -> ShardingReport:
    """Shard the store's collections on a cluster (through ``mongos``), explaining each step.

    With ``aligned_zones``, each shard gets a zone covering the same range of
    thread ids in the events and the counters collections, so a thread's
    counter and events always live on one shard and a write is a single-shard
    transaction. Without it the balancer places each collection's chunks on
    its own, and a write whose counter and events landed on different shards
    becomes a (slower) distributed transaction; still correct.
    """
    report = ShardingReport()
    database = store.events_collection.database
    admin = database.client.admin
    with translated("connecting"):
        hello = await admin.command("hello")
    if hello.get("msg") != "isdbgrid":
        raise ConfigurationError("sharding needs a connection to mongos (a sharded cluster)")
    await store.ensure_indexes()
    events, counters = store.events_collection, store.counters_collection
    chunks = store.blob_collections[1]
    with translated("sharding"):
        await admin.command("enableSharding", database.name)
        report.steps.append(f"enabled sharding on database {database.name!r}")
        for collection, key in (
            (events, SHARD_KEYS["events"]),
            (counters, SHARD_KEYS["counters"]),
            (chunks, SHARD_KEYS["chunks"]),
        ):
            namespace = f"{database.name}.{collection.name}"
            await admin.command("shardCollection", namespace, key=key)
            report.steps.append(f"sharded {namespace} on {key}")
        if aligned_zones:
            shards = (await admin.command("listShards"))["shards"]
            bounds: list[Any] = [MinKey(), *zone_boundaries(len(shards)), MaxKey()]
            for index, shard in enumerate(shards):
                zone = f"run_events_{index}"
                await admin.command("addShardToZone", shard["_id"], zone=zone)
                low, high = bounds[index], bounds[index + 1]
                for collection, field_name in ((events, "thread_id"), (counters, "_id")):
                    await admin.command(
                        "updateZoneKeyRange",
                        f"{database.name}.{collection.name}",
                        min={field_name: low},
                        max={field_name: high},
                        zone=zone,
                    )
                report.steps.append(
                    f"zone {zone} on shard {shard['_id']}: thread ids from {low!r} to {high!r}, "
                    "events and counters alike"
                )
    return report
