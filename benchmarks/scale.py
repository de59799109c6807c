"""Read latency as a thread grows, with the server's own account of each read (``explain``).

One thread grows from 1,000 to 10,000 to 100,000 small events (half of them
messages), written with ``put_batch`` in batches of 1,000; a second, small
thread of 100 events sits beside it. At each size the benchmark times the
newest page of 50 messages, a ``before_seq`` page from the middle of the
thread, and the newest page of the small thread, three ways: as the store
sends it (no hint), as the same raw ``find``, and as that ``find`` with a hint
naming the index the planner should pick (``thread_category_seq``): what the
store's hints did on SecantusDB before they were dropped. It then asks the
server to ``explain`` (executionStats) the plain and the hinted find.

It also times ``delete_by_run``'s two commands on the big thread and on the
small one: the blob look-up (a ``find`` of one run's events with out-of-line
fields, none here) and a ``delete`` of a run the thread does not hold (nothing
deleted). Which of them grows with the big thread, and whether the small
thread's do, tells how the server serves them, whatever ``explain`` says.
"""

from __future__ import annotations

from typing import Any

from mongo_runevents.models import MESSAGE_CATEGORY
from mongo_runevents.mongo import BY_CATEGORY
from mongo_runevents.mongo.blobs import BLOBS_FIELD

from .common import PROJECTION, Bench, explain_delete, explain_find
from .payloads import small_event
from .timing import interleave

SIZES = (1_000, 10_000, 100_000)
PAGE = 50
NEIGHBOUR_EVENTS = 100


async def scale(bench: Bench) -> dict[str, Any]:
    """Latency of the newest and a middle page, and explain stats, at each thread size."""
    sizes = SIZES[:2] if bench.quick else SIZES
    database = bench.database("scale")
    store = await bench.store(database)
    raw = await bench.raw(database)
    handle = bench.raw_client[database]
    big, neighbour = "big", "neighbour"
    await store.put_batch([small_event(neighbour, i) for i in range(NEIGHBOUR_EVENTS)])
    written = 0
    points = []
    for size in sizes:
        while written < size:
            count = min(1000, size - written)
            await store.put_batch([small_event(big, written + k) for k in range(count)])
            written += count
        middle = size // 2
        queries: dict[str, tuple[dict[str, Any], str, int | None]] = {
            "newest": ({"thread_id": big, "category": MESSAGE_CATEGORY}, big, None),
            "middle": (
                {"thread_id": big, "category": MESSAGE_CATEGORY, "seq": {"$lt": middle}},
                big,
                middle,
            ),
            "neighbour": ({"thread_id": neighbour, "category": MESSAGE_CATEGORY}, neighbour, None),
        }
        rounds = 3 if size >= 100_000 else 5
        warmup = 0 if size >= 100_000 else 1
        point: dict[str, Any] = {"events": size, "collection_events": size + NEIGHBOUR_EVENTS}
        for name, (query, thread, before) in queries.items():

            def ops(query: dict[str, Any], thread: str, before: int | None) -> dict[str, Any]:
                async def by_store(_: int) -> None:
                    page = await store.list_messages(thread, limit=PAGE, before_seq=before)
                    assert len(page) == PAGE

                async def by_raw(_: int) -> None:
                    await raw.find(query, sort=-1, limit=PAGE)

                async def by_raw_hinted(_: int) -> None:
                    await raw.find(query, sort=-1, limit=PAGE, hint=BY_CATEGORY)

                return {"store": by_store, "raw": by_raw, "raw_hinted": by_raw_hinted}

            stats = await interleave(
                ops(query, thread, before), rounds=rounds, ops_per_round=1, warmup_rounds=warmup
            )
            point[name] = {
                "median_ms": {side: s.summary()["median_ms"] for side, s in stats.items()},
                "explain": [
                    await explain_find(handle, query, PROJECTION, sort=-1, limit=PAGE),
                    await explain_find(
                        handle, query, PROJECTION, sort=-1, limit=PAGE, hint=BY_CATEGORY
                    ),
                ],
            }
        point["blob_lookup"] = {}
        for thread in (big, neighbour):
            # delete_by_run's first command, for a run of 50 events of ``thread``.
            lookup = {"thread_id": thread, "run_id": "run-000000", BLOBS_FIELD: {"$exists": True}}

            async def look_up(_: int, lookup: dict[str, Any] = lookup) -> None:
                await raw.events.find(lookup, {BLOBS_FIELD: 1}).to_list(None)

            stats = await interleave(
                {"raw": look_up}, rounds=rounds, ops_per_round=1, warmup_rounds=warmup
            )
            point["blob_lookup"][thread] = {
                "median_ms": stats["raw"].summary()["median_ms"],
                "explain": await explain_find(handle, lookup, {BLOBS_FIELD: 1}),
            }
        point["delete_absent"] = {}
        for thread in (big, neighbour):
            # delete_by_run's second command, for a run the thread does not hold:
            # what finding the run's events costs the delete, nothing deleted.
            absent = {"thread_id": thread, "run_id": "no-such-run"}

            async def delete(_: int, absent: dict[str, Any] = absent) -> None:
                await raw.events.delete_many(absent)

            stats = await interleave(
                {"raw": delete}, rounds=rounds, ops_per_round=1, warmup_rounds=warmup
            )
            point["delete_absent"][thread] = {
                "median_ms": stats["raw"].summary()["median_ms"],
                "explain": await explain_delete(handle, absent),
            }
        bench.log(
            "scale: "
            + ", ".join(
                f"{name} {point[name]['median_ms']['store']:.1f} ms (store) / "
                f"{point[name]['median_ms']['raw_hinted']:.1f} ms (hinted)"
                for name in queries
            )
            + f", blob look-up {point['blob_lookup'][big]['median_ms']:.1f} ms (big) / "
            f"{point['blob_lookup'][neighbour]['median_ms']:.1f} ms (small) at {size} events"
        )
        points.append(point)
    return {"page": PAGE, "neighbour_events": NEIGHBOUR_EVENTS, "points": points}
