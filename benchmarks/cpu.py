r"""Client CPU per event, in process, no server: what the store adds to the driver's own work.

The write path, step by step as ``put_batch`` runs it:

- validation: ``models.new_events`` on batches of 20 (the pydantic-core fast
  path for plain-JSON events, the full validation for the others);
- the Python walk alone (``_json.storable`` on content and metadata), what
  the full validation adds to Pydantic for every event that needs it;
- ``DocumentBuilder.prepare``: the validated fields completed into documents
  in place (layout, new ``ObjectId``\ s) and each one ``bson.encode``, which
  measures it;
- ``Prepared.sent``: the encoded document with its seq patched in, as the
  insert sends it (the driver then copies the bytes instead of encoding);
- ``Prepared.finished``: the record ``put_batch`` returns (its document, the
  fields only the store keeps taken off);
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
from mongo_runevents.mongo.codec import Prepared, from_document
from mongo_runevents.records import stored_records

from .common import Bench
from .payloads import BATCH_SIZE, batches, small_event
from .profile_writes import profile_write_path, write_path

#: What the write path is handed on a replica set (the benchmark's server).
DEPLOYMENT = Deployment(transactions=True, change_streams=True, bson_server=True)


def _per_event_us(
    run: Callable[[Any], Any],
    events: int,
    repeats: int,
    fresh: Callable[[], Any] = lambda: None,
) -> float:
    """The best of ``repeats`` runs of ``run``, in microseconds per event.

    The best, not the median: the machine is shared, and a micro-benchmark's
    noise only ever adds time. ``run`` is given what ``fresh()`` makes,
    untimed, before each run (the write steps change what they are given).
    """
    times = []
    for _ in range(repeats):
        given = fresh()
        gc.collect()
        start = time.perf_counter()
        run(given)
        times.append(time.perf_counter() - start)
    return min(times) / events * 1e6


def _profile(
    store: MongoRunEventStore, events: list[dict[str, Any]], repeats: int
) -> dict[str, Any]:
    groups = batches(events, BATCH_SIZE)
    count = len(groups) * BATCH_SIZE
    now = utc_now_iso()

    def validated() -> list[list[dict[str, Any]]]:
        """Each batch's validated fields, its times set: what prepare is given."""
        fresh = [new_events(group) for group in groups]
        for batch in fresh:
            for fields in batch:
                fields["created_at"] = fields["created_at"] or now
        return fresh

    def prepared() -> list[Prepared]:
        """Each batch prepared and given its seqs: what sent and record are given."""
        fresh = [store._documents.prepare(batch, DEPLOYMENT) for batch in validated()]
        for batch in fresh:
            for seq, document in enumerate(batch.documents, 1):
                document["seq"] = seq
        return fresh

    documents = [dict(document) for batch in prepared() for document in batch.documents]
    encoded = [bson.encode(document) for document in documents]

    def validate(_: None) -> None:
        for group in groups:
            new_events(group)

    def python_walk(_: None) -> None:
        for group in groups:
            for event in group:
                storable(event.get("content", ""), "content")
                storable(event.get("metadata") or {}, "metadata")

    def prepare(batches: list[list[dict[str, Any]]]) -> None:
        for batch in batches:
            store._documents.prepare(batch, DEPLOYMENT)

    def sent(batches: list[Prepared]) -> None:
        for batch in batches:
            for index in range(len(batch.documents)):
                batch.sent(index)

    def records(batches: list[Prepared]) -> None:
        for batch in batches:
            batch.finished(list(range(len(batch.documents))))

    def store_path(_: None) -> None:
        write_path(store, groups)

    def bson_encode(_: None) -> None:
        for document in documents:
            bson.encode(document)

    def bson_decode(_: None) -> None:
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
            "prepare (documents, bson.encode)": _per_event_us(prepare, count, repeats, validated),
            "Prepared.sent (seq patched in)": _per_event_us(sent, count, repeats, prepared),
            "Prepared.finished": _per_event_us(records, count, repeats, prepared),
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
