r"""Where the client's CPU goes when it writes events: cProfile of the write path.

    python -m benchmarks.profile_writes [--events N] [--server] [--top N]

In process, no server: the store's own steps for each batch of 20 realistic
events, as ``put_batch`` runs them:

- ``models.new_events`` (validation: the pydantic-core fast path for
  plain-JSON events, Pydantic plus the Python walk for the others);
- ``DocumentBuilder.prepare`` (the fields completed into documents in place,
  new ``ObjectId``\ s; each one ``bson.encode``, which also measures it);
- ``Prepared.sent`` (the encoded document with its seq, what ``insert_many``
  is given; the driver copies its bytes);
- ``Prepared.finished`` (the records ``put_batch`` returns: the documents
  without the fields only the store keeps).

With ``--server``, also ``put_batch`` itself against an embedded SecantusDB
(a child process, so not in this profile), profiled by CPU time
(``time.process_time``) rather than wall time: the driver's command building,
the transaction and the event loop on top of the steps above.

Profiling slows Python calls down, the many small ones most: the per-event
figures of ``benchmarks.cpu`` (no profiler) are the ones to quote; the
profile says how they split.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from mongo_runevents import MongoRunEventStore
from mongo_runevents.models import new_events, utc_now_iso
from mongo_runevents.mongo import Deployment

from .payloads import BATCH_SIZE, agent_events, batches, retarget

#: What the write path is handed on a replica set (the benchmark's server).
DEPLOYMENT = Deployment(transactions=True, change_streams=True, bson_server=True)


def write_path(store: MongoRunEventStore, groups: list[list[dict[str, Any]]]) -> None:
    """The store's client-side work for ``groups`` (batches), as a measured ``put_batch`` does it."""
    for group in groups:
        now = utc_now_iso()
        events = new_events(group)
        for fields in events:
            if fields["created_at"] is None:
                fields["created_at"] = now
        prepared = store._documents.prepare(events, DEPLOYMENT)
        for index, document in enumerate(prepared.documents):
            document["seq"] = index + 1
            prepared.sent(index)
        prepared.finished(list(range(len(events))))


def _where(key: tuple[str, int, str]) -> str:
    """A function as ``file:line(name)``, the path shortened to the package or library."""
    path, line, name = key
    for marker in ("site-packages/", "mongo_runevents/", "lib/python3"):
        if marker in path:
            path = path[path.index(marker) :].removeprefix("site-packages/")
            break
    return f"{path}:{line}({name})" if line else name


def top_costs(profile: cProfile.Profile, events: int, top: int) -> list[dict[str, Any]]:
    """The ``top`` functions by own time, in microseconds per event (profiler included)."""
    stats = pstats.Stats(profile)
    rows = []
    for key, (_, calls, own, cumulative, _) in stats.stats.items():  # type: ignore[attr-defined]
        rows.append(
            {
                "function": _where(key),
                "calls_per_event": calls / events,
                "own_us_per_event": own / events * 1e6,
                "cumulative_us_per_event": cumulative / events * 1e6,
            }
        )
    rows.sort(key=lambda row: row["own_us_per_event"], reverse=True)
    return rows[:top]


def profile_write_path(
    store: MongoRunEventStore, events: list[dict[str, Any]], top: int = 12
) -> dict[str, Any]:
    """cProfile of :func:`write_path` over ``events`` (after one unprofiled pass)."""
    groups = batches(retarget(events, "profile"), BATCH_SIZE)
    count = len(groups) * BATCH_SIZE
    write_path(store, groups)
    profile = cProfile.Profile()
    profile.enable()
    write_path(store, groups)
    profile.disable()
    total = sum(row[2] for row in pstats.Stats(profile).stats.values())  # type: ignore[attr-defined]
    return {
        "events": count,
        "profiled_us_per_event": total / count * 1e6,
        "top": top_costs(profile, count, top),
    }


async def _profile_put_batch(uri: str, events: list[dict[str, Any]], top: int) -> dict[str, Any]:
    from pymongo import AsyncMongoClient

    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri)
    try:
        store = MongoRunEventStore(client["bench_profile"])
        await store.ensure_indexes()
        groups = batches(retarget(events, "profile"), BATCH_SIZE)
        count = len(groups) * BATCH_SIZE
        for group in groups[:5]:
            await store.put_batch(group)
        profile = cProfile.Profile(time.process_time)
        profile.enable()
        for group in groups:
            await store.put_batch(group)
        profile.disable()
        total = sum(row[2] for row in pstats.Stats(profile).stats.values())  # type: ignore[attr-defined]
        return {
            "events": count,
            "profiled_cpu_us_per_event": total / count * 1e6,
            "top": top_costs(profile, count, top),
        }
    finally:
        await client.drop_database("bench_profile")
        await client.close()


def _print(title: str, result: dict[str, Any]) -> None:
    print(f"\n{title}")
    print(f"{'own us/event':>13} {'cum us/event':>13} {'calls/event':>12}  function")
    for row in result["top"]:
        print(
            f"{row['own_us_per_event']:13.2f} {row['cumulative_us_per_event']:13.2f} "
            f"{row['calls_per_event']:12.2f}  {row['function']}"
        )


def main(argv: list[str] | None = None) -> int:
    """Profile the write path and print the top costs per event."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.profile_writes", description=__doc__
    )
    parser.add_argument("--events", type=int, default=2000, help="realistic events to write")
    parser.add_argument("--top", type=int, default=15, help="functions to list")
    parser.add_argument("--server", action="store_true", help="also profile put_batch (SecantusDB)")
    args = parser.parse_args(argv)
    events = agent_events(args.events)
    from pymongo import AsyncMongoClient

    # No I/O: a store is only needed for _prepare, and the client never connects.
    offline: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(connect=False)
    result = profile_write_path(MongoRunEventStore(offline["bench_profile"]), events, args.top)
    _print(
        f"write path in process (cProfile, wall time): "
        f"{result['profiled_us_per_event']:.1f} us/event profiled",
        result,
    )
    if args.server:
        from mongo_runevents.embedded import EmbeddedServer

        with (
            tempfile.TemporaryDirectory(prefix="bench-secantus-") as folder,
            EmbeddedServer(Path(folder) / "data") as server,
        ):
            result = asyncio.run(_profile_put_batch(server.uri, events, args.top))
        _print(
            f"put_batch against SecantusDB (cProfile, client CPU time): "
            f"{result['profiled_cpu_us_per_event']:.1f} us/event profiled",
            result,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
