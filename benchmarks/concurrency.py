"""Concurrent writers: separate store objects on separate clients, as separate processes would be.

Writers of one thread conflict on its counter document; in transaction mode the
loser's transaction is aborted and retried by the store. Writers of separate
threads should not conflict at all. Each writer writes the same number of
realistic 20-event batches; the result is events per second over the whole
wall time, plus how many transactions were aborted and why.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import Counter
from typing import Any

from pymongo import AsyncMongoClient
from pymongo.monitoring import CommandFailedEvent, CommandListener

from mongo_runevents import MongoRunEventStore

from .common import Bench
from .payloads import BATCH_SIZE, batches, retarget

WRITERS = (1, 2, 4, 8)


class _Outcomes(CommandListener):
    """Counts commands and failed commands by name and error."""

    def __init__(self) -> None:
        self.sent: Counter[str] = Counter()
        self.failed_with: Counter[str] = Counter()

    def started(self, event: Any) -> None:
        self.sent[event.command_name] += 1

    def succeeded(self, event: Any) -> None:
        pass

    def failed(self, event: CommandFailedEvent) -> None:
        code = event.failure.get("codeName") or event.failure.get("code") or "?"
        self.failed_with[f"{event.command_name}: {code}"] += 1


async def _one(bench: Bench, writers: int, shared: bool, per_writer: int) -> dict[str, Any]:
    outcomes = _Outcomes()
    clients: list[AsyncMongoClient[dict[str, Any]]] = [
        AsyncMongoClient(bench.uri, event_listeners=[outcomes]) for _ in range(writers)
    ]
    database = bench.database(f"conc_{'one' if shared else 'sep'}_{writers}_{time.monotonic_ns()}")
    pool = batches(bench.events)
    try:
        stores = [MongoRunEventStore(client[database]) for client in clients]
        for store in stores:
            await store.ensure_indexes()
        outcomes.sent.clear()

        errors: Counter[str] = Counter()
        written = 0

        async def write(k: int, store: MongoRunEventStore) -> None:
            nonlocal written
            thread = "shared" if shared else f"writer-{k}"
            for b in range(per_writer):
                try:
                    await store.put_batch(retarget(pool[(k * per_writer + b) % len(pool)], thread))
                except Exception as exc:  # a failed write is reported, not fatal to the run
                    errors[f"{type(exc).__name__}: {exc}"[:200]] += 1
                else:
                    written += BATCH_SIZE

        start = time.perf_counter()
        await asyncio.gather(*(write(k, store) for k, store in enumerate(stores)))
        seconds = time.perf_counter() - start
        gap_free = None
        if shared:
            seqs = sorted(
                [
                    d["seq"]
                    async for d in stores[0].events_collection.find(
                        {"thread_id": "shared"}, {"seq": 1}
                    )
                ]
            )
            gap_free = seqs == list(range(1, written + 1))
        return {
            "seconds": seconds,
            "events_per_s": written / seconds,
            "commits": outcomes.sent["commitTransaction"],
            "aborts": outcomes.sent["abortTransaction"],
            "failed": dict(outcomes.failed_with),
            "errors": dict(errors),
            "gap_free": gap_free,
        }
    finally:
        await bench.store_client.drop_database(database)
        for client in clients:
            await client.close()


async def concurrency(bench: Bench) -> dict[str, Any]:
    """Events/s for 1, 2, 4 and 8 writers, on one thread and on a thread each."""
    per_writer = 4 if bench.quick else 10
    repeats = 1 if bench.quick else 2
    results: dict[str, Any] = {"per_writer_batches": per_writer, "modes": {}}
    for mode, shared in (("one thread", True), ("separate threads", False)):
        rows = []
        for writers in WRITERS:
            runs = []
            for _ in range(repeats):
                runs.append(await _one(bench, writers, shared, per_writer))
            failed: Counter[str] = Counter()
            errors: Counter[str] = Counter()
            for run in runs:
                failed.update(run["failed"])
                errors.update(run["errors"])
            rows.append(
                {
                    "writers": writers,
                    "events_per_s": statistics.median(run["events_per_s"] for run in runs),
                    "aborts": sum(run["aborts"] for run in runs),
                    "commits": sum(run["commits"] for run in runs),
                    "failed": dict(failed),
                    "errors": dict(errors),
                    "gap_free": None if not shared else all(run["gap_free"] for run in runs),
                    "repeats": repeats,
                }
            )
            bench.log(
                f"concurrency, {mode}: {writers} writers, "
                f"{rows[-1]['events_per_s']:.0f} events/s, {rows[-1]['aborts']} aborts"
            )
        results["modes"][mode] = rows
    return results
