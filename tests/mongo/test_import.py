"""Imports on MongoDB: events stored out of line are compared whole, renumbered and cleaned up."""

from __future__ import annotations

from typing import Any

from mongo_runevents import MongoRunEventStore
from tests.factories import event

BIG = "x" * (17 * 1024 * 1024)


def big_record(seq: int, run_id: str) -> dict[str, Any]:
    """A record of thread-1 whose content passes MongoDB's 16 MiB document limit."""
    return {
        **event(run_id=run_id, content=BIG + run_id),
        "seq": seq,
        "created_at": f"2025-07-01T12:00:0{seq}Z",
    }


async def test_large_imported_events_are_renumbered_found_again_and_deleted_whole(
    mongo_database: Any,
) -> None:
    """Events past 16 MiB: a colliding one is renumbered, a re-run finds both, a delete leaves no blob."""
    store = MongoRunEventStore(mongo_database)
    records = [big_record(1, "run-a"), big_record(1, "run-b")]
    first = await store.import_events(records)
    assert (first.inserted, len(first.renumbered)) == (2, 1)
    again = await store.import_events(records)
    assert (again.inserted, again.already_there) == (0, 2)
    files, chunks = store.blob_collections
    assert await files.count_documents({}) == 2
    assert await store.delete_by_thread("thread-1") == 2
    assert await files.count_documents({}) == 0
    assert await chunks.count_documents({}) == 0
