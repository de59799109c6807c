"""The store against hand-written pymongo doing the same commands, interleaved round by round."""

from __future__ import annotations

from typing import Any

from mongo_runevents.models import MESSAGE_CATEGORY
from mongo_runevents.mongo.blobs import BLOBS_FIELD

from .common import Bench, explain_delete, explain_find, journal_sides
from .payloads import BATCH_SIZE, batches, raw_template, retarget, small_event
from .timing import comparison, interleave

#: Page size of the message reads, as a chat UI asks.
PAGE = 50
#: Events of other runs kept in the thread the deletes run in.
BACKGROUND = 1000


async def writes(bench: Bench) -> list[dict[str, Any]]:
    """Journal batches (20 events per ``put_batch``) and single ``put`` calls."""
    rounds, per_round = (3, 5) if bench.quick else (9, 10)
    store = await bench.store(bench.database("writes_store"))
    raw = await bench.raw(bench.database("writes_raw"))
    store_batch, raw_batch = await journal_sides(
        bench, "writes_batches_store", "writes_batches_raw"
    )

    bench.log(f"journal batches: {rounds} rounds x {per_round} batches of {BATCH_SIZE}")
    stats = await interleave(
        {"store": store_batch, "raw": raw_batch}, rounds=rounds, ops_per_round=per_round
    )
    results = [
        comparison(
            "journal batch (put_batch, 20 events)",
            stats,
            unit="event",
            units_per_op=BATCH_SIZE,
            note="realistic events, ~140 KiB per batch",
        )
    ]

    singles = retarget(bench.events[:200], "puts")
    raw_singles = [[raw_template(event)] for event in singles]
    per_round *= 3

    async def store_put(i: int) -> None:
        await store.put(**singles[i % len(singles)])

    async def raw_put(i: int) -> None:
        await raw.write("puts", raw_singles[i % len(singles)])

    bench.log(f"single puts: {rounds} rounds x {per_round}")
    stats = await interleave(
        {"store": store_put, "raw": raw_put}, rounds=rounds, ops_per_round=per_round
    )
    results.append(comparison("single put", stats, unit="event", note="realistic events"))
    return results


async def reads(bench: Bench) -> list[dict[str, Any]]:
    """Newest page, paging back through a thread, polling, a run's events, counting."""
    rounds = 3 if bench.quick else 5
    messages_wanted = 300 if bench.quick else 600
    thread = "reads"
    database = bench.database("reads")
    store = await bench.store(database)
    raw = await bench.raw(database)  # the same collection: both sides read the same data
    events: list[dict[str, Any]] = []
    for event in bench.events:
        events.append(event)
        if sum(e["category"] == MESSAGE_CATEGORY for e in events) >= messages_wanted:
            break
    for batch in batches(retarget(events, thread)):
        await store.put_batch(batch)
    last_seq = await store.count_messages(thread)
    total = await raw.events.count_documents({"thread_id": thread})
    run_ids = list(dict.fromkeys(event["run_id"] for event in events))
    bench.log(f"reads: thread of {last_seq} messages ({total} events, {len(run_ids)} runs)")
    message_query: dict[str, Any] = {"thread_id": thread, "category": MESSAGE_CATEGORY}

    async def raw_newest(_: int) -> None:
        page = await raw.find(message_query, sort=-1, limit=PAGE)
        page.reverse()

    async def raw_page_back(_: int) -> None:
        before: int | None = None
        while True:
            query = dict(message_query)
            if before is not None:
                query["seq"] = {"$lt": before}
            page = await raw.find(query, sort=-1, limit=PAGE)
            if not page:
                return
            page.reverse()
            before = page[0]["seq"]

    async def raw_poll(i: int) -> None:
        query = {**message_query, "seq": {"$gt": total - i % 20}}
        await raw.find(query, sort=1, limit=PAGE)

    async def raw_run_events(i: int) -> None:
        await raw.find(
            {"thread_id": thread, "run_id": run_ids[i % len(run_ids)]}, sort=1, limit=500
        )

    async def raw_count(_: int) -> None:
        await raw.count(message_query)

    raw_side = {
        "newest": raw_newest,
        "page_back": raw_page_back,
        "poll": raw_poll,
        "run_events": raw_run_events,
        "count": raw_count,
    }

    async def store_newest(_: int) -> None:
        await store.list_messages(thread, limit=PAGE)

    async def store_page_back(_: int) -> None:
        before: int | None = None
        while True:
            page = await store.list_messages(thread, limit=PAGE, before_seq=before)
            if not page:
                return
            before = page[0]["seq"]

    async def store_poll(i: int) -> None:
        await store.list_messages(thread, limit=PAGE, after_seq=total - i % 20)

    async def store_run_events(i: int) -> None:
        await store.list_events(thread, run_ids[i % len(run_ids)], limit=500)

    async def store_count(_: int) -> None:
        await store.count_messages(thread)

    store_side = {
        "newest": store_newest,
        "page_back": store_page_back,
        "poll": store_poll,
        "run_events": store_run_events,
        "count": store_count,
    }
    labels = {
        "newest": (f"newest {PAGE} messages", 10),
        "page_back": (f"page back through {last_seq} messages (before_seq, {PAGE} a page)", 1),
        "poll": (f"poll for new messages (after_seq, limit {PAGE})", 10),
        "run_events": ("a run's events (list_events)", 10),
        "count": ("count_messages", 10),
    }
    results = []
    for key, (label, per_round) in labels.items():
        if bench.quick:
            per_round = max(1, per_round // 2)
        bench.log(f"reads: {label}")
        stats = await interleave(
            {"store": store_side[key], "raw": raw_side[key]},
            rounds=rounds,
            ops_per_round=per_round,
        )
        results.append(comparison(label, stats, note=f"thread of {total} realistic events"))
    return results


async def deletes(bench: Bench) -> list[dict[str, Any]]:
    """``delete_by_run`` against its own two commands, and against a lone ``delete_many``.

    Runs of 40 small events, deleted from a thread that also keeps
    ``BACKGROUND`` events of other runs (a thread's history does not vanish
    with one run). Each side has its own database with the same data.
    """
    rounds, per_round, run_size = (3, 5, 40) if bench.quick else (7, 10, 40)
    thread = "deletes"
    store = await bench.store(bench.database("deletes_store"))
    raw = await bench.raw(bench.database("deletes_raw"))
    lone = await bench.raw(bench.database("deletes_lone"))
    collections = {"store": store.events_collection, "raw": raw.events, "delete_many": lone.events}
    next_seq = dict.fromkeys(collections, 1)

    async def add(side: str, run_of: Any, count: int) -> None:
        documents = []
        for j in range(count):
            event = small_event(thread, j)
            documents.append({**raw_template(event), "run_id": run_of(j), "seq": next_seq[side]})
            next_seq[side] += 1
        await collections[side].insert_many(documents)

    for side in collections:
        await add(side, lambda j: f"keep-{j // run_size}", BACKGROUND)

    async def fill(round_number: int) -> None:
        first = round_number * per_round
        for side in collections:
            await add(side, lambda j: f"del-{first + j // run_size}", per_round * run_size)

    async def store_delete(i: int) -> None:
        deleted = await store.delete_by_run(thread, f"del-{i}")
        assert deleted == run_size, deleted

    async def raw_delete(i: int) -> None:
        deleted = await raw.delete_run({"thread_id": thread, "run_id": f"del-{i}"})
        assert deleted == run_size, deleted

    async def lone_delete(i: int) -> None:
        deleted = await lone.delete_many({"thread_id": thread, "run_id": f"del-{i}"})
        assert deleted == run_size, deleted

    bench.log(f"deletes: {rounds} rounds x {per_round} runs of {run_size} events")
    stats = await interleave(
        {"store": store_delete, "raw": raw_delete, "delete_many": lone_delete},
        rounds=rounds,
        ops_per_round=per_round,
        before_round=fill,
    )
    row = comparison(
        "delete_by_run",
        stats,
        note=f"runs of {run_size} small events, in a thread that keeps {BACKGROUND} others; "
        "raw: the store's read of the counter's blob flag + delete_many; "
        "delete_many: the delete alone",
        also_against="delete_many",
    )
    query = {"thread_id": thread, "run_id": "keep-0"}
    row["explain"] = [
        await explain_find(
            raw.events.database, {**query, BLOBS_FIELD: {"$exists": True}}, {BLOBS_FIELD: 1}
        ),
        await explain_delete(raw.events.database, query),
    ]
    return [row]
