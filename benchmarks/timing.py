"""Interleaved timing: several implementations of one operation, round after round.

Each round runs a block of operations per side, one side after the other
(store, raw, store, raw, ...), so slow drift of the machine (a neighbour's
load, the server's caches, a growing collection) hits every side alike. The
first round is a warm-up and is not counted. A side's throughput is the median
over rounds of its block's ops/s; the headline ratio is the median over rounds
of the *paired* ratio side/baseline, which cancels what one round shares.

Each block's client CPU (``time.process_time``: this process only, so not an
embedded server, which runs as a child process) is recorded too, per operation.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

#: One operation of one side; it gets a running index (distinct data per call).
Op = Callable[[int], Awaitable[Any]]


@dataclass
class SideStats:
    """What one side's timed operations took."""

    #: Seconds per operation, every counted operation.
    latencies: list[float] = field(default_factory=list)
    #: Operations per second of each counted round's block.
    round_rates: list[float] = field(default_factory=list)
    #: Client CPU seconds per operation of each counted round's block.
    round_cpu: list[float] = field(default_factory=list)

    def summary(self, units_per_op: float = 1.0) -> dict[str, float]:
        """Medians (and the 90th percentile) of latency in ms, throughput, client CPU."""
        latencies = sorted(self.latencies)
        rate = statistics.median(self.round_rates)
        cpu = statistics.median(self.round_cpu) if self.round_cpu else 0.0
        return {
            "ops": len(latencies),
            "median_ms": statistics.median(latencies) * 1000,
            "p90_ms": latencies[min(len(latencies) - 1, int(0.9 * len(latencies)))] * 1000,
            "ops_per_s": rate,
            "units_per_s": rate * units_per_op,
            "client_cpu_ms_per_op": cpu * 1000,
            "client_cpu_us_per_unit": cpu / units_per_op * 1e6,
        }


def paired_ratio(side: SideStats, baseline: SideStats) -> float:
    """Median over rounds of side's throughput divided by baseline's (>1: side is faster)."""
    return statistics.median(
        a / b for a, b in zip(side.round_rates, baseline.round_rates, strict=True)
    )


async def interleave(
    sides: dict[str, Op],
    *,
    rounds: int,
    ops_per_round: int,
    warmup_rounds: int = 1,
    before_round: Callable[[int], Awaitable[None]] | None = None,
) -> dict[str, SideStats]:
    """Run ``rounds`` counted rounds (after the warm-up) of every side in turn."""
    stats = {name: SideStats() for name in sides}
    index = dict.fromkeys(sides, 0)
    for round_number in range(warmup_rounds + rounds):
        if before_round is not None:
            await before_round(round_number)
        counted = round_number >= warmup_rounds
        for name, op in sides.items():
            block_start = time.perf_counter()
            cpu_start = time.process_time()
            for _ in range(ops_per_round):
                start = time.perf_counter()
                await op(index[name])
                if counted:
                    stats[name].latencies.append(time.perf_counter() - start)
                index[name] += 1
            if counted:
                stats[name].round_rates.append(ops_per_round / (time.perf_counter() - block_start))
                stats[name].round_cpu.append((time.process_time() - cpu_start) / ops_per_round)
    return stats


def comparison(
    operation: str,
    stats: dict[str, SideStats],
    *,
    baseline: str = "raw",
    unit: str = "op",
    units_per_op: float = 1.0,
    note: str = "",
    also_against: str | None = None,
) -> dict[str, Any]:
    """One row of results: every side's summary and its paired ratio to ``baseline``.

    ``also_against`` names a second baseline: the row then also holds the
    store's paired ratio to it (``store_over_second``).
    """
    row: dict[str, Any] = {
        "operation": operation,
        "unit": unit,
        "units_per_op": units_per_op,
        "note": note,
        "sides": {name: side.summary(units_per_op) for name, side in stats.items()},
        "ratio_to": baseline,
        "ratios": {
            name: paired_ratio(side, stats[baseline])
            for name, side in stats.items()
            if name != baseline
        },
    }
    if also_against is not None:
        row["second_baseline"] = also_against
        row["store_over_second"] = paired_ratio(stats["store"], stats[also_against])
    return row
