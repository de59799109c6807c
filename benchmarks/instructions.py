"""Client instructions per event, store against hand-written pymongo, counted by callgrind.

    python -m benchmarks.instructions [--calls N] [--uri URI] [--only write|read]

Times on a shared machine move by tens of percent from run to run; the
number of instructions the client executes hardly moves. Each measurement
runs one side's workload in a child process under ``valgrind
--tool=callgrind`` (the server, a separate process, is not counted), once
with no measured calls and once with ``N``: the difference, over the events
written or read, is that side's instructions per event, driver, event loop
and all. Both children do the same set-up and warm-up, so it cancels out.
The driver's heartbeats (a ``hello`` to each server every 10 seconds by
default, and far more often in wall-clock terms under valgrind's slowdown)
would land in the measured window of the longer child only, adding up to
7,400 instructions per event of noise: the children's client checks its
servers once an hour instead, so every heartbeat falls in the set-up, which
both children share.

The workloads are those of :mod:`benchmarks.client_cpu`: journal batches
(``put_batch`` of 20 realistic events, against the raw baseline's
transaction of ``findOneAndUpdate`` and ``insert``) and newest-page reads of
50 messages (against the same raw ``find``). Instructions are not time (a
cache miss costs more than an add), so this complements the CPU-time ratios
rather than replacing them. Needs ``valgrind`` on the ``PATH``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from pymongo import AsyncMongoClient

from .common import Bench, journal_sides, newest_page_sides
from .payloads import BATCH_SIZE, agent_events

#: Page size of the message reads, as in ``benchmarks.client_cpu``.
PAGE = 50
WORKLOADS = {"put_batch of 20": ("write", BATCH_SIZE), f"newest {PAGE} messages": ("read", PAGE)}
_WARM_UP = 10
#: The children's heartbeat interval: longer than any measurement, so none runs in the window.
_HEARTBEAT_MS = 3_600_000


async def _child(
    uri: str, side: str, workload: str, calls: int, events: list[dict[str, Any]]
) -> None:
    """Set up one side's workload, warm it up, then make ``calls`` measured calls."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        uri, heartbeatFrequencyMS=_HEARTBEAT_MS
    )
    bench = Bench(uri, False, client, client, events)
    try:
        probe = await bench.store(bench.database("instructions_probe"))
        bench.transactions = probe.uses_transactions
        if workload == "write":
            sides = await journal_sides(bench, "instructions_store", "instructions_raw")
        else:
            sides = await newest_page_sides(bench, "instructions_reads", PAGE)
        call = sides[0] if side == "store" else sides[1]
        for i in range(_WARM_UP):
            await call(i)
        for i in range(calls):
            await call(_WARM_UP + i)
    finally:
        for name in bench.databases:
            await client.drop_database(name)
        await client.close()


def _count(uri: str, side: str, workload: str, calls: int) -> int:
    """The instructions a child executes (callgrind's total)."""
    command = [
        "valgrind",
        "--tool=callgrind",
        "--callgrind-out-file=/dev/null",
        sys.executable,
        "-m",
        "benchmarks.instructions",
        "--child",
        side,
        workload,
        str(calls),
        "--uri",
        uri,
    ]
    # A fixed hash seed: the same dict and set layouts in every child.
    environment = {**os.environ, "PYTHONHASHSEED": "0"}
    done = subprocess.run(
        command, capture_output=True, text=True, env=environment, timeout=900, check=False
    )
    found = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode != 0 or found is None:
        raise RuntimeError(f"the callgrind child failed:\n{done.stderr[-2000:]}")
    return int(found.group(1))


def measure(uri: str, calls: int, only: str | None = None) -> dict[str, dict[str, float]]:
    """Store and raw instructions per event for each workload (or ``only`` one), and their ratio."""
    results: dict[str, dict[str, float]] = {}
    for name, (workload, units) in WORKLOADS.items():
        if only is not None and workload != only:
            continue
        row: dict[str, float] = {}
        for side in ("store", "raw"):
            base = _count(uri, side, workload, 0)
            total = _count(uri, side, workload, calls)
            row[f"{side}_per_event"] = (total - base) / (calls * units)
        row["ratio"] = row["store_per_event"] / row["raw_per_event"]
        results[name] = row
        print(
            f"{name:22} store {row['store_per_event']:9,.0f}  raw {row['raw_per_event']:9,.0f} "
            f"instructions/event  store/raw {row['ratio']:.3f}",
            flush=True,
        )
    return results


def main(argv: list[str] | None = None) -> int:
    """Count both sides' instructions per event and print the ratios."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.instructions", description=__doc__)
    parser.add_argument("--calls", type=int, default=40, help="measured calls per side")
    parser.add_argument("--uri", help="use this MongoDB instead of an embedded SecantusDB")
    parser.add_argument(
        "--only", choices=("write", "read"), help="measure the writes or the reads alone"
    )
    parser.add_argument(
        "--child", nargs=3, metavar=("SIDE", "WORKLOAD", "CALLS"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.child:
        side, workload, calls = args.child
        asyncio.run(_child(args.uri, side, workload, int(calls), agent_events(1200)))
        return 0
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (Debian: apt-get install valgrind)", file=sys.stderr)
        return 1
    if args.uri:
        measure(args.uri, args.calls, args.only)
        return 0
    from mongo_runevents.embedded import EmbeddedServer

    with (
        tempfile.TemporaryDirectory(prefix="bench-secantus-") as folder,
        EmbeddedServer(Path(folder) / "data") as server,
    ):
        measure(server.uri, args.calls, args.only)
    return 0


if __name__ == "__main__":
    sys.exit(main())
