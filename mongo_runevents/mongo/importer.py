"""The MongoDB side of an import: the look-up, the renumbering reservation, the insert.

What to do with each record is decided once for every store
(:mod:`mongo_runevents.importing`); this module only answers the look-up and
stores what the plan says. Counters are raised to the highest imported seq
first, so later writes continue after it; then blobs, then the events with one
unordered ``insertMany``. A record that the unique indexes refuse all the same
(a concurrent writer took its seq or its ``event_id`` after the look-up) is
reported back, and its blobs are removed again.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pymongo import ASCENDING, ReturnDocument
from pymongo.errors import BulkWriteError, DuplicateKeyError

from ..importing import ImportLookup, ThreadHoldings, matches
from ..models import NewEvent, utc_now_iso
from .driver_errors import DUPLICATE_KEY, translated
from .reads import Reader
from .seqs import user_activity_path
from .setup import GENERATION_FIELD, UPDATED_AT_FIELD, USERS_FIELD, Collections, Deployment
from .writes import Prepared, Writer

#: Set on a thread's counter, to the counter's generation, once an import
#: renumbered some of its events: a later import then looks for its records at
#: other seqs too. A reset of the thread (a new generation) makes it stale.
RENUMBERED_FIELD = "renumbered_by_import"


def _renumbered(counter: dict[str, Any]) -> bool:
    """Whether an import renumbered events of the thread in its current generation."""
    mark = counter.get(RENUMBERED_FIELD)
    return (
        isinstance(mark, int)
        and not isinstance(mark, bool)
        and mark == counter.get(GENERATION_FIELD, 0)
    )


def _lookup_filters(lookup: ImportLookup) -> list[dict[str, Any]]:
    """The finds of one thread that ``lookup`` asks for, each one served by an index.

    Separate finds rather than one ``$or``: some servers (SecantusDB) scan the
    whole collection for an ``$or``.
    """
    thread = {"thread_id": lookup.thread_id}
    filters: list[dict[str, Any]] = []
    if lookup.seqs:
        low, high = min(lookup.seqs), max(lookup.seqs)
        if high - low < 4 * len(lookup.seqs):
            # Dense seqs (an export, a run file): one range of the (thread, seq)
            # index, fast everywhere; the seqs not asked for are left out later.
            filters.append({**thread, "seq": {"$gte": low, "$lte": high}})
        else:
            filters.append({**thread, "seq": {"$in": sorted(lookup.seqs)}})
    if lookup.event_ids:
        filters.append({**thread, "event_id": {"$in": sorted(lookup.event_ids)}})
    if lookup.times:
        filters.append(
            {
                **thread,
                "run_id": {"$in": sorted({run for run, _ in lookup.times})},
                "created_at": {"$in": sorted({time for _, time in lookup.times})},
            }
        )
    return filters


async def look_up(
    collections: Collections, reader: Reader, lookups: list[ImportLookup]
) -> dict[str, ThreadHoldings]:
    """What the collection holds of each looked-up thread: its counter and the matching events."""
    threads = [lookup.thread_id for lookup in lookups]
    with translated("looking up imported events"):
        counters = await collections.counters.find(
            {"_id": {"$in": threads}}, {"last_seq": 1, RENUMBERED_FIELD: 1, GENERATION_FIELD: 1}
        ).to_list(None)

    async def matching(lookup: ImportLookup) -> list[dict[str, Any]]:
        found: dict[int, dict[str, Any]] = {}
        for query in _lookup_filters(lookup):
            for record in await reader.find(query, ASCENDING, None, "looking up imported events"):
                if matches(record, lookup):
                    found[record["seq"]] = record
        return [found[seq] for seq in sorted(found)]

    records = await asyncio.gather(*(matching(lookup) for lookup in lookups))
    by_id = {counter["_id"]: counter for counter in counters}
    held = {}
    for lookup, rows in zip(lookups, records, strict=True):
        thread_id = lookup.thread_id
        counter = by_id.get(thread_id, {})
        held[thread_id] = ThreadHoldings(
            int(counter.get("last_seq", 0)),
            _renumbered(counter),
            tuple(rows),
        )
    return held


async def reserve_renumbered(collections: Collections, thread_id: str, count: int) -> int:
    """Reserve ``count`` seqs after the thread's last for renumbered records; the first of them."""
    update = {"$inc": {"last_seq": count}, "$set": {UPDATED_AT_FIELD: utc_now_iso()}}
    with translated("reserving seqs for renumbered records"):
        for attempt in (1, 2):
            try:
                counter = await collections.counters.find_one_and_update(
                    {"_id": thread_id}, update, upsert=True, return_document=ReturnDocument.AFTER
                )
                break
            except DuplicateKeyError:
                # Another writer created the thread's counter at the same moment.
                if attempt == 2:
                    raise
        if not _renumbered(counter):
            await collections.counters.update_one(
                {"_id": thread_id}, {"$set": {RENUMBERED_FIELD: counter.get(GENERATION_FIELD, 0)}}
            )
    last: int = counter["last_seq"]
    return last - count + 1


async def import_records(
    collections: Collections,
    writer: Writer,
    records: list[tuple[NewEvent, int]],
    deployment: Deployment,
) -> list[int]:
    """Store validated records with their seqs; the positions of those the indexes refused."""
    prepared = [
        writer.prepare(index, event, event.created_at or "", deployment)
        for index, (event, _) in enumerate(records)
    ]
    for (_, seq), item in zip(records, prepared, strict=True):
        item.document["seq"] = seq
    refused: list[int] = []
    with translated("importing events"):
        for thread_id, update in _counter_updates(records, prepared).items():
            await collections.counters.update_one({"_id": thread_id}, update, upsert=True)
        files = [file for item in prepared for file in item.files]
        chunks = [chunk for item in prepared for chunk in item.chunks]
        await collections.blobs.insert(files, chunks, None)
        try:
            await collections.events.insert_many(
                [item.document for item in prepared], ordered=False
            )
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(error.get("code") != DUPLICATE_KEY for error in errors):
                raise
            refused = sorted(error["index"] for error in errors)
            await _remove_blobs(collections, [prepared[index] for index in refused])
    return refused


async def _remove_blobs(collections: Collections, refused: list[Prepared]) -> None:
    """Delete the blobs written for refused records, so that nothing is left without its event."""
    by_thread: dict[str, list[Any]] = {}
    for item in refused:
        if item.files:
            by_thread.setdefault(item.document["thread_id"], []).extend(
                file["_id"] for file in item.files
            )
    for thread_id, file_ids in by_thread.items():
        await collections.blobs.delete(thread_id, file_ids, None)


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
            update["$set"][user_activity_path(event.user_id)] = now
    return dict(sorted(updates.items()))
