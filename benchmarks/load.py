"""A multi-process load test: writer processes and tailing readers on one server.

    python -m benchmarks.load --processes 8 --events 20000 [--uri URI] [--readers 2]

Each writer process has its own ``AsyncMongoClient`` and store, as separate
agent-server processes would. It writes its share of the events in batches
(20 by default, a run journal's flush): a third of its batches go to one
thread that every writer shares, a third to a thread of its own, and a third
mix both threads in one batch. Reader processes tail the shared thread the way
a chat UI polls: ``list_messages(after_seq=last_seen)``.

Every event carries a unique id in its content. At the end the script reads
everything back and checks that each event exists exactly once; that each
thread's seqs are unique, follow each writer's write order, are consecutive
within a batch and, in transaction mode, have no gaps; and that every reader
saw every event of the shared thread exactly once, in seq order. It prints the
figures and exits with status 1 if a check failed.

Without ``--uri`` it starts an embedded SecantusDB (``--standalone`` for a
standalone one: no transactions) in a temporary folder, on 127.0.0.1. With
``--uri`` it writes into a database named ``load_<random>``, dropped at the end
unless ``--keep``. Transaction retries are counted from the store's DEBUG log
lines (``mongo_runevents.mongo``: "transient error ... retrying").
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import logging
import multiprocessing
import os
import queue
import statistics
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

#: The category the readers tail and the kinds of batch a writer cycles through.
MESSAGE = "message"
BATCH_KINDS = ("shared", "own", "mixed")


@dataclass(frozen=True)
class LoadPlan:
    """What to run: who writes what, where, and the bounds."""

    uri: str
    database: str
    processes: int = 4
    readers: int = 2
    events: int = 2000
    batch: int = 20
    collection: str = "run_events"
    #: The whole run (writes and reads) must finish within this many seconds.
    timeout: float = 120.0
    #: A reader's pause after a poll that found nothing new.
    poll_interval: float = 0.01
    #: A reader's page size.
    page: int = 100
    shared_thread: str = "shared"

    def own_thread(self, writer: int) -> str:
        """The thread only ``writer`` writes to."""
        return f"own-{writer}"

    def run_id(self, writer: int) -> str:
        """The run id of every event ``writer`` writes."""
        return f"run-{writer}"

    def share(self, writer: int) -> int:
        """How many events ``writer`` writes."""
        base, extra = divmod(self.events, self.processes)
        return base + (1 if writer < extra else 0)

    def batches(self, writer: int) -> list[list[dict[str, Any]]]:
        """The batches ``writer`` writes, in order (deterministic but for timestamps)."""
        batches: list[list[dict[str, Any]]] = []
        count = self.share(writer)
        for number, start in enumerate(range(0, count, self.batch)):
            kind = BATCH_KINDS[number % len(BATCH_KINDS)]
            batch = []
            for n in range(start, min(start + self.batch, count)):
                shared = kind == "shared" or (kind == "mixed" and n % 2 == 0)
                thread = self.shared_thread if shared else self.own_thread(writer)
                # The shared thread holds only messages; own threads mix in traces.
                category = MESSAGE if shared or n % 4 else "trace"
                batch.append(
                    {
                        "thread_id": thread,
                        "run_id": self.run_id(writer),
                        "event_type": "llm.ai.response" if category == MESSAGE else "llm.end",
                        "category": category,
                        "content": {
                            "id": f"w{writer}-{n}",
                            "type": "ai",
                            "content": f"event {n} of writer {writer}",
                        },
                        "metadata": {"writer": writer, "n": n, "batch": number},
                    }
                )
            batches.append(batch)
        return batches

    def threads(self) -> list[str]:
        """Every thread the run writes to."""
        return [self.shared_thread, *(self.own_thread(w) for w in range(self.processes))]


# --- counting the store's transaction retries ---------------------------------


class RetryCounter(logging.Handler):
    """Counts the store's "transient error ... retrying" DEBUG lines, by server error name."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.by_reason: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        if "transient error" not in record.getMessage():
            return
        reason = "unknown"
        for arg in record.args if isinstance(record.args, tuple) else ():
            if isinstance(arg, BaseException):
                error = arg if getattr(arg, "details", None) else (arg.__cause__ or arg)
                details = getattr(error, "details", None) or {}
                reason = str(details.get("codeName") or type(error).__name__)
        self.by_reason[reason] += 1

    @classmethod
    def install(cls) -> RetryCounter:
        """Attach a counter to the store's logger (DEBUG, not propagated)."""
        counter = cls()
        # The per-call records of the package logger would repeat, line by line,
        # what the figures count (failed attempts); keep only its errors.
        logging.getLogger("mongo_runevents").setLevel(logging.ERROR)
        store_logger = logging.getLogger("mongo_runevents.mongo")
        store_logger.setLevel(logging.DEBUG)
        store_logger.propagate = False
        store_logger.addHandler(counter)
        return counter


# --- the processes ------------------------------------------------------------------


def _describe(exc: BaseException) -> str:
    """An error and where it was raised (the innermost frame), on one line."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = (
        f" (at {frames[-1].filename}:{frames[-1].lineno} in {frames[-1].name})" if frames else ""
    )
    return f"{type(exc).__name__}: {exc}{where}"


async def _open_store(plan: LoadPlan) -> tuple[Any, Any]:
    from pymongo import AsyncMongoClient

    from mongo_runevents import MongoRunEventStore

    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(plan.uri)
    store = MongoRunEventStore(client[plan.database], collection=plan.collection)
    await store.ensure_indexes()
    return client, store


async def _write(plan: LoadPlan, writer: int, start: Any, counter: RetryCounter) -> dict[str, Any]:
    from mongo_runevents import StorageError

    batches = plan.batches(writer)
    report: dict[str, Any] = {"role": "writer", "index": writer, "errors": []}
    latencies: list[float] = []
    written = failed_attempts = 0
    client, store = await _open_store(plan)
    try:
        await asyncio.to_thread(start.wait, plan.timeout)
        began = time.monotonic()
        deadline = began + plan.timeout
        for batch in batches:
            while True:
                sent = time.time()
                for event in batch:
                    event["metadata"]["sent_at"] = sent
                try:
                    t0 = time.perf_counter()
                    await store.put_batch(batch)
                    latencies.append(time.perf_counter() - t0)
                    written += len(batch)
                    break
                except StorageError as exc:
                    # What a run journal does: put the batch back and try again.
                    # Only safe when the failed attempt wrote nothing; the store's
                    # transactions make a failure all-or-nothing.
                    failed_attempts += 1
                    if not exc.retryable or time.monotonic() > deadline:
                        report["errors"].append(_describe(exc))
                        raise
            if time.monotonic() > deadline:
                report["errors"].append("timed out")
                break
        report["seconds"] = time.monotonic() - began
    except Exception as exc:  # reported to the parent, which fails the run
        if not report["errors"]:
            report["errors"].append(_describe(exc))
    finally:
        report["transactions"] = store.uses_transactions
        await client.close()
    report.update(
        events=written,
        batches=len(latencies),
        latencies=latencies,
        failed_attempts=failed_attempts,
        retries=dict(counter.by_reason),
    )
    return report


async def _read(plan: LoadPlan, reader: int, start: Any, writers_done: Any) -> dict[str, Any]:
    client, store = await _open_store(plan)
    seen: list[tuple[int, str]] = []
    lags: list[float] = []
    polls = empty_polls = 0
    timed_out = False
    report: dict[str, Any] = {"role": "reader", "index": reader, "errors": []}
    try:
        await asyncio.to_thread(start.wait, plan.timeout)
        deadline = time.monotonic() + plan.timeout
        last = 0
        while True:
            # Read the flag before polling: an empty poll after the writers
            # finished means the reader has caught up with everything.
            done = writers_done.is_set()
            page = await store.list_messages(plan.shared_thread, after_seq=last, limit=plan.page)
            polls += 1
            now = time.time()
            if page:
                for row in page:
                    seen.append((row["seq"], row["content"]["id"]))
                    lags.append(now - row["metadata"]["sent_at"])
                last = page[-1]["seq"]
                continue
            empty_polls += 1
            if done:
                break
            if time.monotonic() > deadline:
                timed_out = True
                break
            await asyncio.sleep(plan.poll_interval)
    except Exception as exc:  # reported to the parent, which fails the run
        report["errors"].append(_describe(exc))
    finally:
        await client.close()
    report.update(seen=seen, lags=lags, polls=polls, empty_polls=empty_polls, timed_out=timed_out)
    return report


def _writer_process(plan: LoadPlan, writer: int, start: Any, results: Any) -> None:
    counter = RetryCounter.install()
    try:
        report = asyncio.run(_write(plan, writer, start, counter))
    except BaseException as exc:
        report = {"role": "writer", "index": writer, "errors": [_describe(exc)]}
    results.put(report)


def _reader_process(
    plan: LoadPlan, reader: int, start: Any, writers_done: Any, results: Any
) -> None:
    try:
        report = asyncio.run(_read(plan, reader, start, writers_done))
    except BaseException as exc:
        report = {"role": "reader", "index": reader, "errors": [_describe(exc)]}
    results.put(report)


# --- running and checking ------------------------------------------------------------


@dataclass
class LoadResult:
    """The figures of a run and the problems found."""

    plan: LoadPlan
    transactions: bool = False
    seconds: float = 0.0
    writers: list[dict[str, Any]] = field(default_factory=list)
    readers: list[dict[str, Any]] = field(default_factory=list)
    stored: int = 0
    #: Broken guarantees: the run failed.
    problems: list[str] = field(default_factory=list)
    #: Findings that the write mode allows (plain mode: gaps, readers skipping).
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether every check passed."""
        return not self.problems

    def figures(self) -> dict[str, Any]:
        """The numbers worth printing."""
        latencies = sorted(x for w in self.writers for x in w.get("latencies", []))
        retries: Counter[str] = Counter()
        for writer in self.writers:
            retries.update(writer.get("retries", {}))
        written = sum(w.get("events", 0) for w in self.writers)
        return {
            "processes": self.plan.processes,
            "readers": self.plan.readers,
            "events": written,
            "batch": self.plan.batch,
            "batches": len(latencies),
            "seconds": round(self.seconds, 2),
            "events_per_second": round(written / self.seconds) if self.seconds else 0,
            "batch_ms_p50": _ms(_quantile(latencies, 0.5)),
            "batch_ms_p95": _ms(_quantile(latencies, 0.95)),
            "batch_ms_max": _ms(latencies[-1] if latencies else 0.0),
            "transactions": self.transactions,
            "transaction_retries": sum(retries.values()),
            "retries_by_reason": dict(retries),
            "failed_batch_attempts": sum(w.get("failed_attempts", 0) for w in self.writers),
            "stored": self.stored,
            "reader_events_seen": [len(r.get("seen", [])) for r in self.readers],
            "reader_polls": [r.get("polls", 0) for r in self.readers],
            "reader_empty_polls": [r.get("empty_polls", 0) for r in self.readers],
            "reader_lag_ms_p50": _ms(
                _quantile(sorted(x for r in self.readers for x in r.get("lags", [])), 0.5)
            ),
            "reader_lag_ms_p95": _ms(
                _quantile(sorted(x for r in self.readers for x in r.get("lags", [])), 0.95)
            ),
            "problems": len(self.problems),
        }


def _quantile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1]


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def run_load(plan: LoadPlan) -> LoadResult:
    """Run the writers and readers of ``plan`` in their own processes, then check everything."""
    result = LoadResult(plan)
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(plan.processes + plan.readers + 1)
    writers_done = context.Event()
    results: Any = context.Queue()
    asyncio.run(_prepare(plan))
    readers = [
        context.Process(
            target=_reader_process,
            args=(plan, i, start, writers_done, results),
            name=f"load-reader-{i}",
        )
        for i in range(plan.readers)
    ]
    writers = [
        context.Process(
            target=_writer_process, args=(plan, i, start, results), name=f"load-writer-{i}"
        )
        for i in range(plan.processes)
    ]
    processes = readers + writers
    for process in processes:
        process.start()
    deadline = time.monotonic() + plan.timeout + 60  # + start-up of the processes
    try:
        start.wait(timeout=max(1.0, deadline - time.monotonic()))
        began = time.monotonic()
        reports = []
        while len(reports) < len(processes) and time.monotonic() < deadline:
            try:
                report = results.get(timeout=min(1.0, max(0.01, deadline - time.monotonic())))
            except queue.Empty:
                if not any(p.is_alive() for p in writers):
                    writers_done.set()  # a writer that died reports nothing
                if not any(p.is_alive() for p in processes) and results.empty():
                    break
                continue
            reports.append(report)
            if (
                report["role"] == "writer"
                and sum(r["role"] == "writer" for r in reports) == plan.processes
            ):
                result.seconds = time.monotonic() - began
                writers_done.set()
        writers_done.set()
    except threading.BrokenBarrierError as exc:
        result.problems.append(f"the processes did not all start in time ({exc!r})")
        reports = []
    finally:
        for process in processes:
            process.join(timeout=max(0.1, deadline - time.monotonic()))
        for process in processes:
            if process.is_alive():  # only ever our own children
                result.problems.append(f"{process.name} did not finish in time; terminated")
                process.terminate()
                process.join(5)
    result.writers = sorted((r for r in reports if r["role"] == "writer"), key=lambda r: r["index"])
    result.readers = sorted((r for r in reports if r["role"] == "reader"), key=lambda r: r["index"])
    if not result.seconds:
        result.seconds = max((w.get("seconds", 0.0) for w in result.writers), default=0.0)
    for report in reports:
        for error in report.get("errors", []):
            result.problems.append(f"{report['role']} {report['index']}: {error}")
    for role, expected, got in (
        ("writer", plan.processes, result.writers),
        ("reader", plan.readers, result.readers),
    ):
        if len(got) != expected:
            result.problems.append(f"{expected - len(got)} {role}(s) reported nothing")
    result.transactions = all(w.get("transactions", False) for w in result.writers)
    asyncio.run(_verify(plan, result))
    return result


async def _prepare(plan: LoadPlan) -> None:
    """Create the collection and its indexes before the processes race to do it."""
    client, _ = await _open_store(plan)
    await client.close()


async def _verify(plan: LoadPlan, result: LoadResult) -> None:
    """Read everything back through the store and check every guarantee."""
    client, store = await _open_store(plan)
    problems, notes = result.problems, result.notes
    try:
        expected: dict[str, dict[str, tuple[int, int, int]]] = {t: {} for t in plan.threads()}
        for writer in range(plan.processes):
            for number, batch in enumerate(plan.batches(writer)):
                for event in batch:
                    content = event["content"]
                    expected[event["thread_id"]][content["id"]] = (
                        writer,
                        event["metadata"]["n"],
                        number,
                    )
        rows_by_thread: dict[str, list[dict[str, Any]]] = {}
        for thread in plan.threads():
            rows: list[dict[str, Any]] = []
            for writer in range(plan.processes):
                rows += await store.list_events(thread, plan.run_id(writer), limit=plan.events + 1)
            rows.sort(key=lambda row: row["seq"])
            rows_by_thread[thread] = rows
            result.stored += len(rows)
            _check_thread(thread, rows, expected[thread], result.transactions, problems, notes)
        shared = [(row["seq"], row["content"]["id"]) for row in rows_by_thread[plan.shared_thread]]
        for reader in result.readers:
            seen = [tuple(item) for item in reader.get("seen", [])]
            name = f"reader {reader['index']}"
            if reader.get("timed_out"):
                problems.append(f"{name} timed out")
            if seen == shared:
                continue
            missing = sorted(set(shared) - set(seen))
            duplicates = len(seen) - len(set(seen))
            out_of_order = sum(1 for a, b in itertools.pairwise(seen) if b[0] <= a[0])
            message = (
                f"{name} saw {len(seen)} of {len(shared)} shared events: "
                f"{len(missing)} missing (first {missing[:3]}), {duplicates} twice, "
                f"{out_of_order} out of order"
            )
            if result.transactions or duplicates or out_of_order:
                problems.append(message)
            else:
                notes.append(
                    message
                    + " (plain mode: writers in other processes may commit out of seq order)"
                )
    finally:
        await client.close()


def _check_thread(
    thread: str,
    rows: list[dict[str, Any]],
    expected: dict[str, tuple[int, int, int]],
    transactions: bool,
    problems: list[str],
    notes: list[str],
) -> None:
    """Each event once; seqs unique, in write order, consecutive in a batch, gap-free with transactions."""
    ids = [row["content"]["id"] for row in rows]
    counts = Counter(ids)
    twice = sorted(i for i, n in counts.items() if n > 1)
    missing = sorted(set(expected) - set(counts))
    unknown = sorted(set(counts) - set(expected))
    for label, items in (
        ("stored more than once", twice),
        ("missing", missing),
        ("unexpected", unknown),
    ):
        if items:
            problems.append(f"{thread}: {len(items)} events {label}, e.g. {items[:3]}")
    seqs = [row["seq"] for row in rows]
    if len(set(seqs)) != len(seqs):
        problems.append(f"{thread}: duplicate seqs")
    if seqs != list(range(1, len(seqs) + 1)):
        gaps = sorted(set(range(1, (seqs[-1] if seqs else 0) + 1)) - set(seqs))
        message = f"{thread}: {len(gaps)} seq gaps, e.g. {gaps[:5]}"
        (problems if transactions else notes).append(message)
    by_writer: dict[int, list[tuple[int, int]]] = {}
    by_batch: dict[tuple[int, int], list[int]] = {}
    for row in rows:
        if row["content"]["id"] not in expected:
            continue
        writer, n, number = expected[row["content"]["id"]]
        by_writer.setdefault(writer, []).append((n, row["seq"]))
        by_batch.setdefault((writer, number), []).append(row["seq"])
    for writer, pairs in by_writer.items():
        in_write_order = [seq for _, seq in sorted(pairs)]
        if in_write_order != sorted(in_write_order):
            problems.append(f"{thread}: writer {writer}'s events are not in write order")
    for (writer, number), batch_seqs in by_batch.items():
        if batch_seqs != list(range(batch_seqs[0], batch_seqs[0] + len(batch_seqs))):
            problems.append(f"{thread}: batch {number} of writer {writer} is not consecutive")


# --- the command line ------------------------------------------------------------------


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.load", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--processes", type=int, default=4, help="writer processes (default 4)")
    parser.add_argument(
        "--readers", type=int, default=2, help="tailing reader processes (default 2)"
    )
    parser.add_argument("--events", type=int, default=2000, help="events in all (default 2000)")
    parser.add_argument("--batch", type=int, default=20, help="events per put_batch (default 20)")
    parser.add_argument("--uri", help="a MongoDB server to use instead of an embedded SecantusDB")
    parser.add_argument(
        "--standalone",
        action="store_true",
        help="start the embedded server standalone (no transactions)",
    )
    parser.add_argument(
        "--timeout", type=float, default=600.0, help="seconds the run may take (default 600)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    arguments = parser.parse_args(argv)
    if (
        arguments.processes < 1
        or arguments.readers < 0
        or arguments.events < 1
        or arguments.batch < 1
    ):
        parser.error("--processes, --events and --batch must be at least 1, --readers at least 0")
    return arguments


async def drop_database(uri: str, database: str) -> None:
    """Drop ``database`` on ``uri`` with a client of its own (after a run)."""
    from pymongo import AsyncMongoClient

    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri)
    try:
        await client.drop_database(database)
    finally:
        await client.close()


def main(argv: list[str] | None = None) -> int:
    """Run the load test from the command line; 0 if every check passed."""
    arguments = _arguments(argv)
    with tempfile.TemporaryDirectory(prefix="runevents-load-") as folder:
        server = None
        uri = arguments.uri
        if uri is None:
            from mongo_runevents.embedded import EmbeddedServer

            server = EmbeddedServer(os.path.join(folder, "data"), standalone=arguments.standalone)
            server.start()
            uri = server.uri
        plan = LoadPlan(
            uri=uri,
            database=f"load_{uuid.uuid4().hex[:12]}",
            processes=arguments.processes,
            readers=arguments.readers,
            events=arguments.events,
            batch=arguments.batch,
            timeout=arguments.timeout,
        )
        try:
            result = run_load(plan)
        finally:
            if not arguments.keep:
                asyncio.run(drop_database(uri, plan.database))
            if server is not None:
                server.stop()
    figures = result.figures()
    if arguments.json:
        print(
            json.dumps(
                {"figures": figures, "problems": result.problems, "notes": result.notes}, indent=2
            )
        )
    else:
        where = (
            "embedded SecantusDB" + (" (standalone)" if arguments.standalone else "")
            if arguments.uri is None
            else "--uri server"
        )
        print(f"load test on {where}")
        for name, value in figures.items():
            print(f"  {name:24} {value}")
        for note in result.notes:
            print(f"note: {note}")
        for problem in result.problems:
            print(f"PROBLEM: {problem}")
        print("all checks passed" if result.ok else f"{len(result.problems)} problem(s)")
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
