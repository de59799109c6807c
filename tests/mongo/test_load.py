"""A small multi-process load test: writer processes and tailing readers on one server.

The workload and the checks are those of ``python -m benchmarks.load`` (see
its docstring and ``docs/load.md``), kept small enough for CI: 1,200 events
from 4 writer processes, 2 reader processes, a few seconds on two cores. Each
process has its own ``AsyncMongoClient``; everything targets the servers the
suite started on 127.0.0.1 (or ``MONGODB_URI``).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from benchmarks.load import LoadPlan, LoadResult, drop_database, run_load
from tests.conftest import database_name

pytestmark = pytest.mark.slow

#: The whole test, start-up of six processes included, must stay well inside this.
BUDGET_SECONDS = 60


def run_small_load(uri: str) -> LoadResult:
    """4 writers and 2 readers, 1,200 events in batches of 20, bounded in time; the database is dropped."""
    plan = LoadPlan(
        uri=uri,
        database=database_name(),
        processes=4,
        readers=2,
        events=1200,
        batch=20,
        timeout=40,
    )
    started = time.monotonic()
    try:
        result = run_load(plan)
    finally:
        asyncio.run(drop_database(uri, plan.database))
    assert time.monotonic() - started < BUDGET_SECONDS
    return result


@pytest.mark.requires("transactions")
def test_writer_processes_and_tailing_readers_lose_and_duplicate_nothing(server_uri: str) -> None:
    """With transactions, 4 writer processes and 2 tailing readers: each event once, gap-free seqs, readers miss nothing."""
    result = run_small_load(server_uri)
    figures = result.figures()
    assert result.transactions
    assert result.problems == [], "\n".join(result.problems)
    assert result.notes == []
    assert figures["events"] == figures["stored"] == 1200
    # Half the events go to the shared thread; every reader saw all of them.
    assert figures["reader_events_seen"] == [600, 600]
    assert figures["failed_batch_attempts"] == 0


def test_writer_processes_on_a_standalone_server_lose_and_duplicate_nothing(
    secantus_standalone: Any,
) -> None:
    """Without transactions, 4 writer processes: each event once, unique seqs in write order (gaps and reader skips allowed)."""
    result = run_small_load(secantus_standalone.uri)
    assert not result.transactions
    assert result.problems == [], "\n".join(result.problems)
    assert result.figures()["stored"] == 1200
    # Plain mode promises no gap-free numbering across processes and no
    # ordered visibility: those findings are notes, never duplicates or losses.
    assert all("gaps" in note or "plain mode" in note for note in result.notes)
