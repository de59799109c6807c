"""Client CPU per event, in process, no server: what the store adds to the driver's own work.

- validation: ``models.new_events`` on batches of 20 (Pydantic plus the JSON
  check that walks content and metadata);
- JSON check alone: ``_json.check_json_value`` on content and metadata, the
  part of validation that grows with the payload;
- encoding: ``_codec.to_document`` (document layout, key-escaping check);
- decoding: ``_codec.from_document(...).as_dict()``, what every read does per
  record (Pydantic validation of the stored record);
- for scale: the driver's own ``bson.encode`` / ``bson.decode`` of the same
  documents, which every write and read pays with or without the store.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from typing import Any

import bson

from mongo_runevents._codec import from_document, to_document
from mongo_runevents._json import check_json_value
from mongo_runevents.models import new_events, utc_now_iso

from .common import Bench
from .payloads import BATCH_SIZE, batches, small_event


def _per_event_us(run: Callable[[], Any], events: int, repeats: int) -> float:
    """Median over ``repeats`` of the time ``run`` takes, in microseconds per event."""
    times = []
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times) / events * 1e6


def _profile(events: list[dict[str, Any]], repeats: int) -> dict[str, Any]:
    groups = batches(events, BATCH_SIZE)
    count = len(groups) * BATCH_SIZE
    validated = [event for group in groups for event in new_events(group)]
    now = utc_now_iso()
    documents = [to_document(event, seq, now) for seq, event in enumerate(validated, 1)]
    encoded = [bson.encode(document) for document in documents]

    def validate() -> None:
        for group in groups:
            new_events(group)

    def check_json() -> None:
        for group in groups:
            for event in group:
                check_json_value(event["content"], "content")
                check_json_value(event["metadata"], "metadata")

    def encode() -> None:
        for seq, event in enumerate(validated, 1):
            to_document(event, seq, now)

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
        for document in fresh:
            from_document(document).as_dict()
        decode_times.append(time.perf_counter() - start)
    sizes = [len(blob) for blob in encoded]
    return {
        "events": count,
        "mean_bson_bytes": statistics.mean(sizes),
        "us_per_event": {
            "validation (new_events)": _per_event_us(validate, count, repeats),
            "of which JSON check": _per_event_us(check_json, count, repeats),
            "encoding (to_document)": _per_event_us(encode, count, repeats),
            "decoding (from_document + as_dict)": statistics.median(decode_times) / count * 1e6,
            "driver: bson.encode": _per_event_us(bson_encode, count, repeats),
            "driver: bson.decode": _per_event_us(bson_decode, count, repeats),
        },
    }


def cpu(bench: Bench) -> dict[str, Any]:
    """Per-event client CPU for realistic and for small events."""
    count, repeats = (600, 3) if bench.quick else (2000, 7)
    realistic = bench.events[:count]
    small = [small_event("cpu", i) for i in range(count)]
    return {
        "realistic events": _profile(realistic, repeats),
        "small events": _profile(small, repeats),
    }
