"""Client CPU per event, store against hand-written pymongo, in one process against one server.

    python -m benchmarks.client_cpu [--rounds N] [--uri URI]

The two workloads of issue 12: journal batches (``put_batch`` of 20 realistic
events: dict content with nesting, metadata) and newest-page reads of 50
messages. Each side runs a block of calls per round, store then raw, round
after round (after one warm-up round), and each block's CPU time
(``time.process_time``: this process only; the server is a child process) is
divided by its events. The *CPU ratio* is the median over rounds of the
store's CPU per event divided by raw's in the same round, so the machine's
drift between rounds cancels out. The throughput ratio (raw's time over the
store's) is reported beside it.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from .common import Bench, journal_sides, newest_page_sides, run_alone
from .payloads import BATCH_SIZE

#: Page size of the message reads, as a chat UI asks.
PAGE = 50

Op = Callable[[int], Awaitable[Any]]


async def _paired(
    store: Op, raw: Op, *, rounds: int, per_round: int, units: int
) -> dict[str, float]:
    """Alternating blocks of ``store`` and ``raw``; per-round CPU and wall time per unit."""
    cpu: dict[str, list[float]] = {"store": [], "raw": []}
    wall: dict[str, list[float]] = {"store": [], "raw": []}
    index = 0
    for round_number in range(rounds + 1):
        for name, op in (("store", store), ("raw", raw)):
            wall_start, cpu_start = time.perf_counter(), time.process_time()
            for k in range(per_round):
                await op(index + k)
            if round_number:
                cpu[name].append((time.process_time() - cpu_start) / (per_round * units))
                wall[name].append((time.perf_counter() - wall_start) / (per_round * units))
        index += per_round
    return {
        "store_cpu_us": statistics.median(cpu["store"]) * 1e6,
        "raw_cpu_us": statistics.median(cpu["raw"]) * 1e6,
        "cpu_ratio": statistics.median(
            s / r for s, r in zip(cpu["store"], cpu["raw"], strict=True)
        ),
        "throughput_ratio": statistics.median(
            r / s for s, r in zip(wall["store"], wall["raw"], strict=True)
        ),
        "rounds": rounds,
    }


async def client_cpu(bench: Bench, rounds: int = 15) -> dict[str, Any]:
    """Store/raw client CPU per event for journal batches and newest-page reads."""
    store_batch, raw_batch = await journal_sides(bench, "cpu_writes_store", "cpu_writes_raw")

    bench.log(f"client CPU: journal batches, {rounds} rounds")
    results = {
        "put_batch of 20": await _paired(
            store_batch, raw_batch, rounds=rounds, per_round=10, units=BATCH_SIZE
        )
    }

    store_newest, raw_newest = await newest_page_sides(bench, "cpu_reads", PAGE)

    bench.log(f"client CPU: newest {PAGE} messages, {rounds} rounds")
    results[f"newest {PAGE} messages"] = await _paired(
        store_newest, raw_newest, rounds=rounds, per_round=10, units=PAGE
    )
    return results


def main(argv: list[str] | None = None) -> int:
    """Run both workloads and print the ratios."""
    results = run_alone(argv, "python -m benchmarks.client_cpu", __doc__, client_cpu, 15)
    for name, row in results.items():
        print(
            f"{name:22} store {row['store_cpu_us']:6.1f} us  raw {row['raw_cpu_us']:6.1f} us  "
            f"CPU store/raw {row['cpu_ratio']:.3f}  throughput store/raw "
            f"{row['throughput_ratio']:.3f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
