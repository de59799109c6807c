"""Read latency as a thread grows, with the server's own account of each read (``explain``).

One thread grows from 1,000 to 10,000 to 100,000 small events (half of them
messages), written with ``put_batch`` in batches of 1,000; a second, small
thread of 100 events sits beside it. At each size the benchmark times the
newest page of 50 messages, a ``before_seq`` page from the middle of the
thread, and the newest page of the small thread; each as the store sends it
(with its index hint), as the same raw ``find``, and as the raw ``find``
without the hint, so the server's planner chooses. It then asks the server to
``explain`` (executionStats) the hinted and the unhinted query.
"""

from __future__ import annotations

from typing import Any

from mongo_runevents.models import MESSAGE_CATEGORY
from mongo_runevents.mongo import BY_CATEGORY

from .common import EVENTS, PROJECTION, Bench
from .payloads import small_event
from .timing import interleave

SIZES = (1_000, 10_000, 100_000)
PAGE = 50
NEIGHBOUR_EVENTS = 100


def _stages(plan: dict[str, Any]) -> str:
    """The plan's stages from the top, e.g. ``SORT > FETCH > IXSCAN thread_category_seq``."""
    names = []
    node: dict[str, Any] | None = plan
    while node is not None:
        name = node.get("stage", "?")
        if "indexName" in node:
            name += f" {node['indexName']}"
        names.append(name)
        node = node.get("inputStage")
    return " > ".join(names)


async def _explain(bench: Bench, database: str, query: dict[str, Any], hint: str | None) -> Any:
    command: dict[str, Any] = {
        "find": EVENTS,
        "filter": query,
        "projection": PROJECTION,
        "sort": {"seq": -1},
        "limit": PAGE,
    }
    if hint is not None:
        command["hint"] = hint
    reply = await bench.raw_client[database].command("explain", command, verbosity="executionStats")
    stats = reply.get("executionStats", {})
    return {
        "hint": hint,
        "plan": _stages(reply.get("queryPlanner", {}).get("winningPlan", {})),
        "nReturned": stats.get("nReturned"),
        "totalKeysExamined": stats.get("totalKeysExamined"),
        "totalDocsExamined": stats.get("totalDocsExamined"),
        "executionTimeMillis": stats.get("executionTimeMillis"),
    }


async def scale(bench: Bench) -> dict[str, Any]:
    """Latency of the newest and a middle page, and explain stats, at each thread size."""
    sizes = SIZES[:2] if bench.quick else SIZES
    database = bench.database("scale")
    store = await bench.store(database)
    raw = await bench.raw(database)
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
        queries = {
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
                    await raw.find(query, index=BY_CATEGORY, sort=-1, limit=PAGE)

                async def by_raw_no_hint(_: int) -> None:
                    await raw.find(query, index=None, sort=-1, limit=PAGE)

                return {"store": by_store, "raw": by_raw, "raw_no_hint": by_raw_no_hint}

            stats = await interleave(
                ops(query, thread, before), rounds=rounds, ops_per_round=1, warmup_rounds=warmup
            )
            point[name] = {
                "median_ms": {side: s.summary()["median_ms"] for side, s in stats.items()},
                "explain": [
                    await _explain(bench, database, query, BY_CATEGORY),
                    await _explain(bench, database, query, None),
                ],
            }
        bench.log(
            "scale: "
            + ", ".join(
                f"{name} {point[name]['median_ms']['store']:.1f} ms (store) / "
                f"{point[name]['median_ms']['raw_no_hint']:.1f} ms (no hint)"
                for name in queries
            )
            + f" at {size} events"
        )
        points.append(point)
    return {"page": PAGE, "neighbour_events": NEIGHBOUR_EVENTS, "points": points}
