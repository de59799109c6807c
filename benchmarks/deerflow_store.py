"""This store against DeerFlow's own database store: client CPU per call and event-loop stalls.

    python -m benchmarks.deerflow_store --deerflow PATH [--postgres DSN] [--rounds N]
        [--uri URI] [--revision REV] [--json FILE]

A DeerFlow team that does not take this store keeps its events in DeerFlow's
``DbRunEventStore`` (SQLAlchemy) on SQLite or PostgreSQL. This benchmark runs
that store, from the DeerFlow checkout at ``--deerflow PATH``, beside this
one, in one process, on the same calls:

- *journal*: ``put_batch`` of 20 realistic events (a run journal's flush);
- *run.end N*: ``put_batch`` of 19 realistic events and the ``run.end`` that
  ends every successful DeerFlow run, whose content is the graph state,
  ``{"messages": [N LangChain messages], "title": ...}``, with N = 10, 100
  and 400 (human, AI with a tool call and usage, tool result, in turn);
- *newest 50* and *older 50*: ``list_messages(limit=50)`` of a thread of
  2,000 messages, with no cursor and with ``before_seq=1000``.

Each round runs a block of calls on every side in turn (this store, SQLite,
PostgreSQL), after one warm-up round, and takes the block's CPU time
(``time.process_time``: this process, SQLite's thread included; the MongoDB
and PostgreSQL servers are other processes). The *ratio* of a workload is
the median over rounds of this store's CPU per call over the other's in the
same round, with the smallest and largest round beside it: the machine's
drift between rounds cancels out, its noise within a round does not.

*Loop stall*: while one ``put_batch`` holding a ``run.end`` of N messages
runs, a ticker task sleeps 1 ms at a time and records how late each wake-up
is; the longest delay is that call's stall (the median over rounds, and the
worst). Time spent waiting for a server leaves the loop free; conversions
and encoding on the loop hold it.

This store runs on an embedded SecantusDB replica set (or ``--uri``), with
``max_trace_content=10240`` as DeerFlow's store keeps traces, so both keep
the same content. Both stores convert values that are not JSON as
``json.dumps(value, default=str)`` does: a LangChain message becomes
``str(message)`` in both.

DeerFlow is not on the package index: run this with a Python that has
DeerFlow's dependencies (its backend's virtual environment, plus ``asyncpg``
for PostgreSQL) and this package, e.g.
``PYTHONPATH=. /path/to/deer-flow/backend/.venv/bin/python -m
benchmarks.deerflow_store --deerflow /path/to/deer-flow``. Without
``--deerflow``, or when DeerFlow cannot be imported, the benchmark says so
and exits 0 (skipped); without ``--postgres DSN`` (a SQLAlchemy URL such as
``postgresql+asyncpg://user@127.0.0.1:5432/db``) PostgreSQL is skipped. The
PostgreSQL side works in a schema of its own that it drops at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .revision import package_revision

#: The sizes of the graph state's message list in the ``run.end`` workloads.
MESSAGE_COUNTS = (10, 100, 400)
#: DeerFlow's store cuts trace content at this many bytes; this store is set the same.
TRACE_LIMIT = 10240
#: Messages in the thread the reads page through, and the older page's cursor.
THREAD_MESSAGES = 2000
OLDER_CURSOR = 1000
PAGE = 50
#: Calls per side in each round, per workload (fewer where one call costs more).
CALLS = {"journal": 10, "run.end 10": 6, "run.end 100": 3, "run.end 400": 2, "read": 10}
#: How often the loop-stall ticker asks to wake up.
TICK_SECONDS = 0.001

Call = Callable[[int], Awaitable[Any]]


@dataclass
class Side:
    """One store under test: its name, its calls, and how to close it."""

    name: str
    put_batch: Callable[[list[dict[str, Any]]], Awaitable[Any]]
    list_messages: Callable[..., Awaitable[list[dict[str, Any]]]]
    close: Callable[[], Awaitable[None]]


@dataclass
class Results:
    """What a run measured, and what it ran against."""

    deerflow_revision: str
    sides: list[str]
    skipped: dict[str, str] = field(default_factory=dict)
    cpu: dict[str, dict[str, Any]] = field(default_factory=dict)
    stalls: dict[str, dict[str, Any]] = field(default_factory=dict)


# --- the data ----------------------------------------------------------------------


def langchain_messages(count: int) -> list[Any]:
    """``count`` LangChain messages as a graph state holds them: human, AI with a tool call, tool."""
    from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

    messages: list[Any] = []
    for index in range(count):
        if index % 3 == 0:
            messages.append(
                HumanMessage(
                    content=f"Question {index}: what changed in the quarterly report? " * 3,
                    id=f"human-{index}",
                )
            )
        elif index % 3 == 1:
            messages.append(
                AIMessage(
                    content=f"Looking it up ({index}). " * 10,
                    id=f"ai-{index}",
                    tool_calls=[
                        {
                            "name": "web_search",
                            "args": {"query": f"report {index}"},
                            "id": f"c{index}",
                        }
                    ],
                    usage_metadata={
                        "input_tokens": 1200,
                        "output_tokens": 80,
                        "total_tokens": 1280,
                    },
                    response_metadata={"model_name": "gpt-4o", "finish_reason": "tool_calls"},
                )
            )
        else:
            messages.append(
                ToolMessage(
                    content=f"Result {index}: revenue up 4 %, costs flat. " * 12,
                    tool_call_id=f"c{index - 1}",
                    name="web_search",
                    id=f"tool-{index}",
                )
            )
    return messages


def run_end(thread_id: str, run_id: str, messages: list[Any]) -> dict[str, Any]:
    """The ``run.end`` event DeerFlow's journal writes at the end of a successful run."""
    return {
        "thread_id": thread_id,
        "run_id": run_id,
        "event_type": "run.end",
        "category": "outputs",
        "content": {"messages": messages, "title": "Quarterly report"},
        "metadata": {"status": "success"},
    }


def _message_events(events: list[dict[str, Any]], thread_id: str) -> list[dict[str, Any]]:
    """``THREAD_MESSAGES`` realistic messages in ``thread_id`` (the generated ones, reused)."""
    from .payloads import messages_only, retarget

    messages = messages_only(events)
    return retarget([messages[i % len(messages)] for i in range(THREAD_MESSAGES)], thread_id)


# --- the sides ---------------------------------------------------------------------


def _import_deerflow(checkout: Path) -> Any:
    """DeerFlow's store and engine modules from ``checkout`` (its harness package on the path)."""
    for package in ("harness", "extension-api"):
        folder = checkout / "backend" / "packages" / package
        if folder.is_dir() and str(folder) not in sys.path:
            sys.path.append(str(folder))
    from deerflow.persistence import engine
    from deerflow.runtime.events.store.db import DbRunEventStore

    return engine, DbRunEventStore


def deerflow_revision(checkout: Path, given: str | None) -> str:
    """``--revision``, else the checkout's commit, else say it is not known."""
    if given:
        return given
    try:
        return subprocess.run(
            ["git", "-C", str(checkout), "rev-parse", "--short=9", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout; pass --revision)"


async def _deerflow_side(
    name: str, engine: Any, store_class: Any, backend: str, url: str, **options: Any
) -> Side:
    """DeerFlow's ``DbRunEventStore`` on an engine DeerFlow's own set-up builds."""
    await engine.init_engine(backend, url=url, **options)
    sql_engine = engine.get_engine()
    store = store_class(engine.get_session_factory())

    async def list_messages(thread_id: str, **cursor: Any) -> list[dict[str, Any]]:
        # user_id=None: no owner filter, as this store's reads without one.
        result: list[dict[str, Any]] = await store.list_messages(thread_id, user_id=None, **cursor)
        return result

    async def close() -> None:
        if backend == "postgres" and options.get("postgres_schema"):
            from sqlalchemy import text

            async with sql_engine.begin() as connection:
                await connection.execute(
                    text(f'DROP SCHEMA IF EXISTS "{options["postgres_schema"]}" CASCADE')
                )
        await sql_engine.dispose()

    return Side(name, store.put_batch, list_messages, close)


async def _our_side(uri: str) -> tuple[Side, Any]:
    """This store, in a database of its own that it drops on close."""
    from pymongo import AsyncMongoClient

    from mongo_runevents import MongoRunEventStore

    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri)
    database = f"bench_deerflow_{uuid.uuid4().hex[:8]}"
    store = MongoRunEventStore(client[database], max_trace_content=TRACE_LIMIT)
    await store.ensure_indexes()

    async def close() -> None:
        await client.drop_database(database)
        await client.close()

    return Side("ours", store.put_batch, store.list_messages, close), store


# --- the measurements --------------------------------------------------------------


def _summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


async def _cpu(
    sides: list[Side], calls: dict[str, Call], *, rounds: int, per_round: int
) -> dict[str, Any]:
    """Alternating blocks of ``per_round`` calls per side; CPU per call and ratios to ours."""
    cpu: dict[str, list[float]] = {side.name: [] for side in sides}
    index = 0
    for round_number in range(rounds + 1):
        for side in sides:
            start = time.process_time()
            for k in range(per_round):
                await calls[side.name](index + k)
            if round_number:
                cpu[side.name].append((time.process_time() - start) / per_round)
        index += per_round
    result: dict[str, Any] = {
        "rounds": rounds,
        "calls_per_round": per_round,
        "cpu_ms": {name: statistics.median(values) * 1e3 for name, values in cpu.items()},
    }
    ours = cpu["ours"]
    result["ratio"] = {
        name: _summary([o / t for o, t in zip(ours, theirs, strict=True)])
        for name, theirs in cpu.items()
        if name != "ours"
    }
    return result


async def _stall(call: Callable[[], Awaitable[Any]]) -> float:
    """The longest the loop was held while ``call`` ran, in seconds (a ticker's latest wake-up)."""
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    longest = 0.0

    async def ticker() -> None:
        nonlocal longest
        while not done.is_set():
            asked = loop.time()
            await asyncio.sleep(TICK_SECONDS)
            longest = max(longest, loop.time() - asked - TICK_SECONDS)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(TICK_SECONDS)  # the ticker is waiting before the call starts
    try:
        await call()
    finally:
        done.set()
        await task
    return longest


async def _stalls(
    sides: list[Side], batches: Callable[[str, int], list[dict[str, Any]]], rounds: int
) -> dict[str, Any]:
    """Each side's loop stall on one ``put_batch`` per round, sides in turn."""
    stalls: dict[str, list[float]] = {side.name: [] for side in sides}
    for round_number in range(rounds + 1):
        for side in sides:
            batch = batches(side.name, round_number)
            stall = await _stall(lambda: side.put_batch(batch))  # noqa: B023
            if round_number:
                stalls[side.name].append(stall * 1e3)
    return {name: _summary(values) for name, values in stalls.items()}


async def measure(
    sides: list[Side], events: list[dict[str, Any]], rounds: int, log: Callable[[str], None]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Every workload on every side: the CPU figures and the loop stalls."""
    from .payloads import batches, retarget

    pool = batches(events)[:40]
    cpu: dict[str, Any] = {}

    def journal_call(side: Side) -> Call:
        prepared = [retarget(batch, f"journal-{side.name}") for batch in pool]
        return lambda i: side.put_batch(prepared[i % len(prepared)])

    log(f"journal batches, {rounds} rounds")
    cpu["journal"] = await _cpu(
        sides,
        {side.name: journal_call(side) for side in sides},
        rounds=rounds,
        per_round=CALLS["journal"],
    )

    def with_run_end(
        side_name: str, count: int, messages: list[Any], i: int
    ) -> list[dict[str, Any]]:
        thread_id = f"run-end-{count}-{side_name}"
        batch = retarget(pool[i % len(pool)][:19], thread_id)
        batch.append(run_end(thread_id, f"run-{i}", messages))
        return batch

    stalls: dict[str, Any] = {}
    for count in MESSAGE_COUNTS:
        messages = langchain_messages(count)
        name = f"run.end {count}"
        log(f"batches with a run.end of {count} messages, {rounds} rounds")

        def run_end_call(side: Side, count: int = count, messages: list[Any] = messages) -> Call:
            return lambda i: side.put_batch(with_run_end(side.name, count, messages, i))

        cpu[name] = await _cpu(
            sides,
            {side.name: run_end_call(side) for side in sides},
            rounds=rounds,
            per_round=CALLS[name],
        )
        log(f"loop stall, run.end of {count} messages, {rounds} rounds")
        stalls[name] = await _stalls(
            sides,
            lambda side_name, i, count=count, messages=messages: with_run_end(  # type: ignore[misc]
                side_name, count, messages, 1000 + i
            ),
            rounds,
        )

    log(f"filling a thread of {THREAD_MESSAGES} messages on every side")
    for side in sides:
        messages = _message_events(events, f"reads-{side.name}")
        for start in range(0, len(messages), 100):
            await side.put_batch(messages[start : start + 100])

    def read_call(side: Side, **cursor: Any) -> Call:
        async def read(_: int) -> None:
            page = await side.list_messages(f"reads-{side.name}", limit=PAGE, **cursor)
            assert len(page) == PAGE, (side.name, len(page))

        return read

    log(f"newest {PAGE} messages, {rounds} rounds")
    cpu[f"newest {PAGE}"] = await _cpu(
        sides,
        {side.name: read_call(side) for side in sides},
        rounds=rounds,
        per_round=CALLS["read"],
    )
    log(f"{PAGE} messages before seq {OLDER_CURSOR}, {rounds} rounds")
    cpu[f"older {PAGE}"] = await _cpu(
        sides,
        {side.name: read_call(side, before_seq=OLDER_CURSOR) for side in sides},
        rounds=rounds,
        per_round=CALLS["read"],
    )
    return cpu, stalls


# --- the run -----------------------------------------------------------------------


async def _run(
    args: argparse.Namespace, uri: str, events: list[dict[str, Any]], results: Results
) -> None:
    engine, store_class = _import_deerflow(Path(args.deerflow))
    started = time.monotonic()

    def log(message: str) -> None:
        print(f"[{time.monotonic() - started:6.1f}s] {message}", file=sys.stderr, flush=True)

    sides: list[Side] = []
    try:
        ours, store = await _our_side(uri)
        sides.append(ours)
        if not store.uses_transactions:
            results.skipped["transactions"] = "the server has no transactions (not a replica set)"
        with tempfile.TemporaryDirectory(prefix="bench-deerflow-sqlite-") as folder:
            sides.append(
                await _deerflow_side(
                    "sqlite",
                    engine,
                    store_class,
                    "sqlite",
                    f"sqlite+aiosqlite:///{Path(folder) / 'deerflow.db'}",
                    sqlite_dir=folder,
                )
            )
            if args.postgres:
                schema = f"bench_{uuid.uuid4().hex[:8]}"
                try:
                    sides.append(
                        await _deerflow_side(
                            "postgres",
                            engine,
                            store_class,
                            "postgres",
                            args.postgres,
                            postgres_schema=schema,
                        )
                    )
                except ImportError as exc:
                    results.skipped["postgres"] = str(exc).splitlines()[0]
            else:
                results.skipped["postgres"] = "no --postgres DSN given"
            results.sides = [side.name for side in sides]
            results.cpu, results.stalls = await measure(sides, events, args.rounds, log)
            for side in sides:
                await side.close()
            sides = []
    finally:
        for side in sides:
            await side.close()


def _print(results: Results) -> None:
    print(f"DeerFlow {results.deerflow_revision}; sides: {', '.join(results.sides)}")
    for what, reason in results.skipped.items():
        print(f"  skipped {what}: {reason}")
    others = [name for name in results.sides if name != "ours"]
    print("\nClient CPU per call (ms, median) and ours/theirs (median, min-max over rounds)")
    for workload, row in results.cpu.items():
        cells = [f"ours {row['cpu_ms']['ours']:7.2f}"]
        for name in others:
            ratio = row["ratio"][name]
            cells.append(
                f"{name} {row['cpu_ms'][name]:7.2f} ratio {ratio['median']:.2f} "
                f"({ratio['min']:.2f}-{ratio['max']:.2f})"
            )
        print(f"  {workload:14} " + "  ".join(cells))
    print("\nLoop stall during one put_batch (ms, median and worst over rounds)")
    for workload, row in results.stalls.items():
        cells = [f"{name} {row[name]['median']:6.1f} ({row[name]['max']:6.1f})" for name in row]
        print(f"  {workload:14} " + "  ".join(cells))


def main(argv: list[str] | None = None) -> int:
    """Run the comparison, or say why it is skipped."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.deerflow_store", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--deerflow", help="a DeerFlow checkout (the folder holding backend/)")
    parser.add_argument("--postgres", help="SQLAlchemy URL of a PostgreSQL for DeerFlow's store")
    parser.add_argument("--rounds", type=int, default=7, help="counted rounds (default 7)")
    parser.add_argument("--uri", help="MongoDB for this store instead of an embedded SecantusDB")
    parser.add_argument("--revision", help="the DeerFlow revision to record (default: git's)")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)
    if not args.deerflow:
        print("skipped: no DeerFlow checkout given (--deerflow PATH)")
        return 0
    checkout = Path(args.deerflow)
    try:
        _import_deerflow(checkout)
    except ImportError as exc:
        print(f"skipped: DeerFlow's store cannot be imported from {checkout}: {exc}")
        return 0
    from .payloads import agent_events

    results = Results(deerflow_revision(checkout, args.revision), [])
    events = agent_events(1200)
    if args.uri:
        asyncio.run(_run(args, args.uri, events, results))
    else:
        from mongo_runevents.embedded import EmbeddedServer

        with (
            tempfile.TemporaryDirectory(prefix="bench-secantus-") as folder,
            EmbeddedServer(Path(folder) / "data") as server,
        ):
            asyncio.run(_run(args, server.uri, events, results))
    _print(results)
    if args.json:
        document = {
            "commit": package_revision(),
            "python": platform.python_version(),
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            **results.__dict__,
        }
        Path(args.json).write_text(json.dumps(document, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
