"""Client CPU per event, in process, no server: what the store adds to the driver's own work.

The write path, step by step as ``put_batch`` runs it:

- validation: ``models.new_events`` on batches of 20 (the pydantic-core fast
  path for plain-JSON events, the full validation for the others);
- the Python walk alone (``_json.storable`` on content and metadata), what
  the full validation adds to Pydantic for every event that needs it;
- ``DocumentBuilder.prepare``: ``codec.to_document`` (document layout, a new
  ``ObjectId``) and its one ``bson.encode``, which measures it;
- ``Prepared.raw``: the encoded document with its seq patched in, as the
  insert sends it (the driver then copies the bytes instead of encoding);
- ``NewEvent.to_record``: the record ``put_batch`` returns;
- the store's write path: all of the above together;
- pymongo's ``bson.encode`` of the documents, what the driver does for the
  hand-written baseline's ``insert_many``.

The read path: ``codec.from_document`` on each document, then
``models.stored_records`` on the page (pydantic-core validation of the whole
page in one call), next to pymongo's ``bson.decode``.

A cProfile of the write path (``benchmarks.profile_writes``) says how it
splits by function. The client CPU of whole calls against the server is in
each row of the store-vs-raw section (``client_cpu_us_per_unit``) and in
``benchmarks.client_cpu``.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from typing import Any

import bson

from mongo_runevents import MongoRunEventStore
from mongo_runevents._json import storable
from mongo_runevents.models import new_events, utc_now_iso
from mongo_runevents.mongo import Deployment
from mongo_runevents.mongo.codec import from_document, to_document
from mongo_runevents.records import stored_records

from .common import Bench
from .payloads import BATCH_SIZE, batches, small_event
from .profile_writes import profile_write_path, write_path

#: What the write path is handed on a replica set (the benchmark's server).
DEPLOYMENT = Deployment(transactions=True, change_streams=True, bson_server=True)


def _per_event_us(run: Callable[[], Any], events: int, repeats: int) -> float:
    """The best of ``repeats`` runs of ``run``, in microseconds per event.

    The best, not the median: the machine is shared, and a micro-benchmark's
    noise only ever adds time.
    """
    times = []
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times) / events * 1e6


def _profile(
    store: MongoRunEventStore, events: list[dict[str, Any]], repeats: int
) -> dict[str, Any]:
    groups = batches(events, BATCH_SIZE)
    count = len(groups) * BATCH_SIZE
    validated = [event for group in groups for event in new_events(group)]
    now = utc_now_iso()
    documents = [to_document(event, seq, now) for seq, event in enumerate(validated, 1)]
    encoded = [bson.encode(document) for document in documents]

    def validate() -> None:
        for group in groups:
            new_events(group)

    def python_walk() -> None:
        for group in groups:
            for event in group:
                storable(event.get("content", ""), "content")
                storable(event.get("metadata") or {}, "metadata")

    prepared = [
        store._documents.prepare(index, event, now, DEPLOYMENT)
        for index, event in enumerate(validated)
    ]
    for seq, item in enumerate(prepared, 1):
        item.document["seq"] = seq

    def prepare() -> None:
        for index, event in enumerate(validated):
            store._documents.prepare(index, event, now, DEPLOYMENT)

    def raw() -> None:
        for item in prepared:
            item.raw()

    def records() -> None:
        for seq, event in enumerate(validated, 1):
            event.to_record(seq, now)

    def store_path() -> None:
        write_path(store, groups)

    def bson_encode() -> None:
        for document in documents:
            bson.encode(document)

    def bson_decode() -> None:
        for blob in encoded:
            bson.decode(blob)

    # from_document takes the documents a read returns (``_id`` projected
    # away) and may change them, so each repeat gets fresh copies, made untimed.
    decode_times = []
    for _ in range(repeats):
        fresh = [bson.decode(blob) for blob in encoded]
        for document in fresh:
            del document["_id"]
        gc.collect()
        start = time.perf_counter()
        stored_records([from_document(document) for document in fresh])
        decode_times.append(time.perf_counter() - start)
    sizes = [len(blob) for blob in encoded]
    return {
        "events": count,
        "mean_bson_bytes": statistics.mean(sizes),
        "us_per_event": {
            "validation (new_events)": _per_event_us(validate, count, repeats),
            "the Python walk, for events that need it": _per_event_us(python_walk, count, repeats),
            "prepare (to_document, bson.encode)": _per_event_us(prepare, count, repeats),
            "Prepared.raw (seq patched in)": _per_event_us(raw, count, repeats),
            "to_record": _per_event_us(records, count, repeats),
            "store write path (all of the above)": _per_event_us(store_path, count, repeats),
            "driver: bson.encode": _per_event_us(bson_encode, count, repeats),
            "decoding (from_document + stored_records)": min(decode_times) / count * 1e6,
            "driver: bson.decode": _per_event_us(bson_decode, count, repeats),
        },
    }


def cpu(bench: Bench) -> dict[str, Any]:
    """Per-event client CPU for realistic and for small events, and a profile of the write path."""
    count, repeats = (600, 3) if bench.quick else (2000, 7)
    realistic = bench.events[:count]
    small = [small_event("cpu", i) for i in range(count)]
    # _prepare needs a store; it does no I/O, and this one is never set up.
    store = MongoRunEventStore(bench.store_client["bench_cpu_unused"])
    return {
        "steps": {
            "realistic events": _profile(store, realistic, repeats),
            "small events": _profile(store, small, repeats),
        },
        "write_path_profile": profile_write_path(store, realistic),
    }
