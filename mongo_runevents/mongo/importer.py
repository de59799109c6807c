"""Importing records exported elsewhere, keeping their seqs and timestamps.

Counters are raised to the highest imported seq first, so later writes
continue after it; then blobs (only for events not stored yet, so a re-run
leaves no orphans), then the events with one unordered ``insertMany``. A
record whose thread already holds its seq is counted as skipped (imported
before); one refused for an ``event_id`` held under another seq, as a conflict.
"""

from __future__ import annotations

from typing import Any

from pymongo.errors import BulkWriteError

from ..base import ImportResult
from ..models import NewEvent, utc_now_iso
from .driver_errors import DUPLICATE_KEY, translated
from .setup import UPDATED_AT_FIELD, USERS_FIELD, Collections, Deployment
from .writes import Prepared, Writer


def _key(item: Prepared) -> tuple[str, int]:
    return item.document["thread_id"], item.document["seq"]


async def import_records(
    collections: Collections,
    writer: Writer,
    records: list[tuple[NewEvent, int]],
    deployment: Deployment,
) -> ImportResult:
    """Store validated records with their seqs; see the module's description."""
    prepared = [
        writer.prepare(index, event, event.created_at or "", deployment)
        for index, (event, _) in enumerate(records)
    ]
    for (_, seq), item in zip(records, prepared, strict=True):
        item.document["seq"] = seq
    result = ImportResult()
    with translated("importing events"):
        for thread_id, update in _counter_updates(records, prepared).items():
            await collections.counters.update_one({"_id": thread_id}, update, upsert=True)
        with_blobs = [item for item in prepared if item.files]
        if with_blobs:
            stored = await _stored_seqs(collections, with_blobs)
            fresh = [item for item in with_blobs if _key(item) not in stored]
            files = [file for item in fresh for file in item.files]
            chunks = [chunk for item in fresh for chunk in item.chunks]
            await collections.blobs.insert(files, chunks, None)
        try:
            await collections.events.insert_many(
                [item.document for item in prepared], ordered=False
            )
            result.inserted = len(prepared)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(error.get("code") != DUPLICATE_KEY for error in errors):
                raise
            # A refused record whose seq its thread holds was imported before
            # (whichever unique index spoke first); one whose seq is free was
            # refused for an event_id held under another seq.
            refused = [prepared[error["index"]] for error in errors]
            taken = await _stored_seqs(collections, refused)
            result.conflicts = sum(_key(item) not in taken for item in refused)
            result.skipped = len(errors) - result.conflicts
            result.inserted = len(prepared) - len(errors)
    return result


def _counter_updates(
    records: list[tuple[NewEvent, int]], prepared: list[Prepared]
) -> dict[str, dict[str, Any]]:
    """Per thread, the counter update an import makes: last_seq raised to its highest seq.

    It also records the activity and the users, and marks the thread as
    having blobs when an imported event has some, so deletes remove them.
    """
    now = utc_now_iso()
    updates: dict[str, dict[str, Any]] = {}
    for (event, seq), item in zip(records, prepared, strict=True):
        update = updates.setdefault(
            event.thread_id,
            {"$max": {"last_seq": seq}, "$set": {UPDATED_AT_FIELD: now}},
        )
        update["$max"]["last_seq"] = max(update["$max"]["last_seq"], seq)
        if item.files:
            update["$set"]["has_blobs"] = True
        if event.user_id is not None:
            users = update.setdefault("$addToSet", {USERS_FIELD: {"$each": []}})[USERS_FIELD]
            if event.user_id not in users["$each"]:
                users["$each"].append(event.user_id)
    return dict(sorted(updates.items()))


async def _stored_seqs(collections: Collections, prepared: list[Prepared]) -> set[tuple[str, int]]:
    """Which (thread_id, seq) of ``prepared`` the collection already holds."""
    by_thread: dict[str, list[int]] = {}
    for item in prepared:
        by_thread.setdefault(item.document["thread_id"], []).append(item.document["seq"])
    found: set[tuple[str, int]] = set()
    for thread_id, seqs in by_thread.items():
        rows = await collections.events.find(
            {"thread_id": thread_id, "seq": {"$in": seqs}}, {"_id": 0, "seq": 1}
        ).to_list(None)
        found.update((thread_id, row["seq"]) for row in rows)
    return found
