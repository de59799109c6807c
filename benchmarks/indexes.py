"""What each index of the events collection costs a write, and the store against the mandated set.

    python -m benchmarks.indexes [--rounds N] [--uri URI]

Hand-written pymongo writes the same journal batches (20 realistic events, a
counter ``$inc`` and an ``insert_many`` in a transaction) into collections
that differ only in their secondary indexes; the store writes them into its
own collection, with the indexes its set-up creates. The two partial
indexes that earlier versions created are measured too. The sides run in
alternating rounds, one block each per round, in one process against one
server. Each ratio is the median over rounds of one side's throughput over
the baseline's in the same round: the *mandated* set, the two indexes the
user asked for (unique ``(thread_id, seq)`` and ``(thread_id, category,
seq)``).
"""

from __future__ import annotations

import statistics
import sys
import time
from typing import Any

from pymongo import ASCENDING, IndexModel

from mongo_runevents.mongo import EVENT_INDEXES

from .common import Bench, run_alone
from .payloads import BATCH_SIZE, batches, raw_template, retarget

#: The store's indexes, and the two partial ones earlier versions also created
#: (set-up now drops them: event ids use a deterministic ``_id``, blobs are
#: found through the bucket's index), defined here as they were.
_BY_NAME = {index.document["name"]: index for index in EVENT_INDEXES}
_FORMER = {
    "thread_run_blobs": IndexModel(
        [("thread_id", ASCENDING), ("run_id", ASCENDING)],
        name="thread_run_blobs",
        partialFilterExpression={"blobs": {"$exists": True}},
    ),
    "thread_event_id": IndexModel(
        [("thread_id", ASCENDING), ("event_id", ASCENDING)],
        name="thread_event_id",
        unique=True,
        partialFilterExpression={"event_id": {"$exists": True}},
    ),
}
_ALL = {**_BY_NAME, **_FORMER}
MANDATED = ["thread_seq", "thread_category_seq"]

#: The raw sides: a name and the indexes its collection has besides ``_id``.
INDEX_SETS: dict[str, list[str]] = {
    "_id only": [],
    "mandated": MANDATED,
    **{f"mandated + {name}": [*MANDATED, name] for name in _ALL if name not in MANDATED},
    "the store's set": list(_BY_NAME),
    "the store's former set (with both partial indexes)": list(_ALL),
}


async def indexes(bench: Bench, rounds: int = 9, per_round: int = 8) -> dict[str, Any]:
    """Write throughput of every index set and of the store, relative to the mandated set."""
    pool = batches(bench.events)[:40]
    templates = [[raw_template(event) for event in retarget(batch, "journal")] for batch in pool]
    store = await bench.store(bench.database("index_store"))
    store_batches = [retarget(batch, "journal") for batch in pool]
    sides: dict[str, Any] = {}
    for number, (label, names) in enumerate(INDEX_SETS.items()):
        models: list[IndexModel] = [_ALL[name] for name in names]
        raw = await bench.raw(bench.database(f"index_raw_{number}"), models)

        async def write(i: int, raw: Any = raw) -> None:
            await raw.write("journal", templates[i % len(pool)])

        sides[label] = write

    async def store_write(i: int) -> None:
        await store.put_batch(store_batches[i % len(pool)])

    sides["store"] = store_write
    rates: dict[str, list[float]] = {name: [] for name in sides}
    cpu: dict[str, list[float]] = {name: [] for name in sides}
    bench.log(f"indexes: {len(sides)} sides, {rounds} rounds x {per_round} batches")
    index = 0
    for round_number in range(rounds + 1):
        for name, op in sides.items():
            start, cpu_start = time.perf_counter(), time.process_time()
            for k in range(per_round):
                await op(index + k)
            if round_number:
                rates[name].append(per_round * BATCH_SIZE / (time.perf_counter() - start))
                cpu[name].append((time.process_time() - cpu_start) / (per_round * BATCH_SIZE))
        index += per_round
    baseline = rates["mandated"]
    return {
        "baseline": "mandated",
        "rounds": rounds,
        "sides": {
            name: {
                "indexes": INDEX_SETS.get(name, list(_BY_NAME)),
                "events_per_s": statistics.median(rates[name]),
                "client_cpu_us_per_event": statistics.median(cpu[name]) * 1e6,
                "over_mandated": statistics.median(
                    a / b for a, b in zip(rates[name], baseline, strict=True)
                ),
            }
            for name in sides
        },
    }


def main(argv: list[str] | None = None) -> int:
    """Run every index set and print its throughput relative to the mandated set."""
    result = run_alone(argv, "python -m benchmarks.indexes", __doc__, indexes, 9)
    for name, side in result["sides"].items():
        print(
            f"{name:55} {side['events_per_s']:7.0f} events/s  "
            f"{side['over_mandated']:.3f} of mandated  "
            f"client CPU {side['client_cpu_us_per_event']:5.1f} us/event"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
