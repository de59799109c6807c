"""The ``mongo-runevents`` command line.

Every command but ``bench`` works on a :class:`~mongo_runevents.MongoRunEventStore`.
The server is the one named by ``--uri`` (or the ``MONGODB_URI`` environment
variable); without either, an embedded SecantusDB server is started in
``--data-dir`` for the duration of the command (the ``embedded`` extra).

The package:

- ``options``: the global options, argument types, URI masking, the
  :class:`Command` types and the parser built from a table of them;
- ``output``: JSON, JSON Lines, previews, event lines, sizes, the progress line;
- ``runner``: running a command: the embedded server, the store, error
  messages and exit codes;
- the commands themselves, below (for now).

Commands live in the :data:`COMMANDS` table below: each has a name, a help
text, a function adding its own options and an async function running it on a
store (:class:`Command`), or a plain function running it without one
(:class:`LocalCommand`). To add a command, write those two functions and add
an entry to the table.

Exit codes: 0 success; 1 a store error, a bad input file or a refused or
declined operation (one line on stderr, no traceback); 2 a usage error
(reported by argparse); 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import random
import shlex
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncGenerator, Iterator, Sequence
from contextlib import aclosing
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, TextIO

from ..admin import apply_schema_validator, collect_stats, shard_collections
from ..models import MESSAGE_CATEGORY
from ..transfer import FORMATS, BadLine, Item, SourceError, detect_format, read_file, source_files
from ..workload import AgentThread, Journal, write_run
from .options import (
    DEFAULT_DATA_DIR,
    DEFAULT_DATABASE,
    PROG,
    Command,
    Context,
    LocalCommand,
    add_thread_argument,
    make_parser,
    mask_uri,
    non_empty,
    non_negative_int,
    positive_int,
    retention_item,
)
from .output import (
    Progress,
    event_line,
    human_size,
    json_line,
    message_rows,
    number_of,
    print_json,
    print_messages,
)
from .runner import fail, run_command

__all__ = [
    "COMMANDS",
    "DEFAULT_DATABASE",
    "DEFAULT_DATA_DIR",
    "PAGE_SIZE",
    "PROG",
    "Command",
    "Context",
    "ImportSummary",
    "LocalCommand",
    "Progress",
    "build_parser",
    "main",
    "mask_uri",
]


def _add_demo_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--thread",
        type=non_empty,
        help="thread id to write to (default: a fresh demo-<uuid8>)",
    )
    parser.add_argument(
        "--runs", type=positive_int, default=3, help="number of agent runs (default: 3)"
    )
    parser.add_argument(
        "--steps",
        type=positive_int,
        default=4,
        help="tool-calling steps per run (default: 4)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=7,
        help="seed of the generated content, token counts and latencies (default: 7)",
    )
    keep = parser.add_mutually_exclusive_group()
    keep.add_argument(
        "--keep",
        dest="cleanup",
        action="store_false",
        help="keep the demo thread in the database afterwards (the default)",
    )
    keep.add_argument(
        "--cleanup",
        dest="cleanup",
        action="store_true",
        help="delete the demo thread at the end",
    )
    parser.set_defaults(cleanup=False)


async def run_demo(context: Context) -> int:
    """Write a DeerFlow-style thread through a buffered journal, then read it back."""
    args = context.args
    store = context.store
    thread_id = args.thread or f"demo-{uuid.uuid4().hex[:8]}"
    journal = Journal(store)
    thread = AgentThread(thread_id=thread_id, rng=random.Random(args.seed), journal=journal)

    started = time.perf_counter()
    run_ids = [await write_run(thread, number, args.steps) for number in range(args.runs)]
    seconds = time.perf_counter() - started

    newest = await store.list_messages(thread_id, limit=5)
    older = await store.list_messages(thread_id, limit=5, before_seq=newest[0]["seq"])
    last_run_events = await store.list_events(thread_id, run_ids[-1], limit=20)
    message_count = await store.count_messages(thread_id)
    deleted = await store.delete_by_thread(thread_id) if args.cleanup else None

    result: dict[str, Any] = {
        "server": context.server,
        "database": args.database,
        "thread_id": thread_id,
        "run_ids": run_ids,
        "runs": args.runs,
        "steps": args.steps,
        "events_written": journal.events_written,
        "events_by_category": dict(sorted(journal.by_category.items())),
        "message_events_written": journal.by_category.get(MESSAGE_CATEGORY, 0),
        "tool_output_bytes": thread.tool_output_bytes,
        "batches": journal.batches,
        "seconds": round(seconds, 3),
        "events_per_second": round(journal.events_written / seconds, 1) if seconds else None,
        "uses_transactions": store.uses_transactions,
        "newest_messages": message_rows(newest),
        "before_seq": newest[0]["seq"],
        "older_messages": message_rows(older),
        "last_run_events": [
            {"seq": e["seq"], "category": e["category"], "event_type": e["event_type"]}
            for e in last_run_events
        ],
        "count_messages": message_count,
        "deleted_events": deleted,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0

    print(f"thread {thread_id}: {args.runs} runs of {args.steps} tool steps each")
    print_messages("newest messages (list_messages limit=5):", result["newest_messages"])
    print_messages(f"one page back (before_seq={result['before_seq']}):", result["older_messages"])
    print(f"events of the last run {run_ids[-1]} (list_events limit=20):")
    for event in result["last_run_events"]:
        print(f"  {event['seq']:>5}  {event['category']:<10} {event['event_type']}")
    print(f"count_messages: {message_count}")
    rate = result["events_per_second"]
    print(
        f"wrote {journal.events_written} events ({thread.tool_output_bytes / 1024:.0f} KiB "
        f"of tool output) in {journal.batches} batches in {seconds:.2f} s "
        f"({rate} events/s); transactions: {'yes' if store.uses_transactions else 'no'}"
    )
    if deleted is not None:
        print(f"deleted thread {thread_id} ({deleted} events)")
    else:
        print(f"kept thread {thread_id} in database {args.database} (--cleanup deletes it)")
    return 0


def _add_init_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--validator",
        action="store_true",
        help="also install a $jsonSchema validator: the server then refuses event documents "
        "whose fixed fields are missing or mistyped, whoever writes them",
    )
    parser.add_argument(
        "--retention",
        metavar="CATEGORY=DAYS",
        type=retention_item,
        action="append",
        default=[],
        help="events of CATEGORY expire DAYS days after they are written, e.g. trace=30 "
        "(repeatable); creates the TTL index. Other categories are kept",
    )
    parser.add_argument(
        "--shard",
        action="store_true",
        help="shard the collections (needs a sharded cluster, reached through mongos)",
    )
    parser.add_argument(
        "--no-zones",
        dest="zones",
        action="store_false",
        help="with --shard: no zones keeping a thread's counter and events on one shard "
        "(writes then may become distributed transactions)",
    )


def _init_store_options(args: argparse.Namespace) -> dict[str, Any]:
    """``init --retention`` builds the store with a retention, so that the TTL index is created."""
    if not args.retention:
        return {}
    return {"retention": {category: timedelta(days=days) for category, days in args.retention}}


def _days(days: int) -> str:
    return number_of(days, "day")


async def run_init(context: Context) -> int:
    """Create the indexes, and optionally the validator, the TTL index and the sharding."""
    args, store = context.args, context.store
    await store.ensure_indexes()
    if args.validator:
        await apply_schema_validator(store)
    steps = (await shard_collections(store, aligned_zones=args.zones)).steps if args.shard else None
    events = store.events_collection
    indexes = sorted(await events.index_information())
    retention = dict(args.retention)
    result = {
        "database": args.database,
        "collection": events.name,
        "indexes": indexes,
        "transactions": store.uses_transactions,
        "validator": args.validator,
        "retention_days": retention,
        "sharding_steps": steps,
    }
    if args.json:
        print_json(result)
        return 0

    print(f"{args.database}.{events.name}: indexes ready ({', '.join(indexes)})")
    print(f"writes use transactions: {'yes' if store.uses_transactions else 'no'}")
    if args.validator:
        print(
            "schema validator: on; the server refuses event documents with missing or mistyped fields"
        )
    if retention:
        expiring = "; ".join(
            f"{category!r} events expire {_days(days)} after they are written"
            for category, days in sorted(retention.items())
        )
        print(f"retention: {expiring}; events of every other category are kept")
        print(
            "  recorded for the collection: stores created without a retention adopt it when "
            "they start; the TTL index 'expiry' deletes expired events; events written "
            "before carry no expiry and are kept"
        )
    else:
        print(
            "retention: none set (--retention CATEGORY=DAYS sets one); events are kept "
            "unless written by a store configured with a retention"
        )
    if steps is not None:
        print("sharding:")
        for step in steps:
            print(f"  {step}")
    return 0


def _add_stats_arguments(parser: argparse.ArgumentParser) -> None:
    """``stats`` has no options of its own."""


async def run_stats(context: Context) -> int:
    """Threads, events per category, and the sizes of the collections and their indexes."""
    stats = await collect_stats(context.store)
    if context.args.json:
        print_json(asdict(stats))
        return 0
    print(f"threads: {stats.threads}")
    print(f"events:  {stats.events}")
    for category, count in stats.events_by_category.items():
        print(f"  {category:<20} {count:>12}")
    if not stats.collections:
        return 0
    print(f"{'collection':<28} {'documents':>10} {'data':>11} {'storage':>11} {'indexes':>11}")
    for name, info in stats.collections.items():
        print(
            f"{name:<28} {info['count']:>10} {human_size(info['size_bytes']):>11} "
            f"{human_size(info['storage_bytes']):>11} {human_size(info['index_bytes']):>11}"
        )
    print("index sizes:")
    for name, info in stats.collections.items():
        for index, size in info["indexes"].items():
            print(f"  {name + '.' + index:<50} {human_size(size):>11}")
    return 0


#: Records read per query when a command pages through a thread or a run.
PAGE_SIZE = 1000


def _add_messages_arguments(parser: argparse.ArgumentParser) -> None:
    add_thread_argument(parser)
    parser.add_argument(
        "--before",
        type=non_negative_int,
        metavar="SEQ",
        help="the last --limit messages before seq SEQ (the page before it)",
    )
    parser.add_argument(
        "--after",
        type=non_negative_int,
        metavar="SEQ",
        help="the first --limit messages after seq SEQ (the page after it)",
    )
    parser.add_argument(
        "--limit",
        type=positive_int,
        default=50,
        help="at most this many messages; without --after, the newest ones (default: 50)",
    )


async def run_messages(context: Context) -> int:
    """A page of the thread's messages (what a chat UI shows), in seq order."""
    args = context.args
    messages = await context.store.list_messages(
        args.thread, limit=args.limit, before_seq=args.before, after_seq=args.after
    )
    if args.json:
        print_json({"thread_id": args.thread, "messages": messages})
        return 0
    print_messages(f"messages of thread {args.thread}:", message_rows(messages))
    return 0


def _add_events_arguments(parser: argparse.ArgumentParser) -> None:
    add_thread_argument(parser)
    parser.add_argument("run", type=non_empty, metavar="RUN", help="run id")
    parser.add_argument(
        "--type",
        dest="types",
        type=non_empty,
        action="append",
        metavar="TYPE",
        help="only events of this event type (repeatable)",
    )
    parser.add_argument("--task", type=non_empty, metavar="ID", help="only events of this task_id")
    parser.add_argument(
        "--after", type=non_negative_int, metavar="SEQ", help="only events after seq SEQ"
    )
    parser.add_argument(
        "--limit", type=positive_int, default=500, help="at most this many events (default: 500)"
    )


async def run_events(context: Context) -> int:
    """The events of one run, every category, in seq order."""
    args = context.args
    events = await context.store.list_events(
        args.thread,
        args.run,
        event_types=args.types,
        task_id=args.task,
        after_seq=args.after,
        limit=args.limit,
    )
    if args.json:
        print_json({"thread_id": args.thread, "run_id": args.run, "events": events})
        return 0
    print(f"events of run {args.run} of thread {args.thread}:")
    if not events:
        print("  (none)")
    for event in events:
        print(event_line(event))
    return 0


async def run_count(context: Context) -> int:
    """The number of message events of a thread."""
    args = context.args
    count = await context.store.count_messages(args.thread)
    if args.json:
        print_json({"thread_id": args.thread, "messages": count})
    else:
        print(f"thread {args.thread}: {count} messages")
    return 0


def _add_tail_arguments(parser: argparse.ArgumentParser) -> None:
    add_thread_argument(parser)
    parser.add_argument(
        "-f",
        "--follow",
        action="store_true",
        help="keep printing new events as they are written, until Ctrl-C",
    )
    parser.add_argument(
        "--after",
        type=non_negative_int,
        default=0,
        metavar="SEQ",
        help="start after seq SEQ (default: 0, the whole thread)",
    )
    parser.add_argument(
        "--messages-only",
        action="store_true",
        help="only message events (what a chat UI shows)",
    )
    # For tests and scripts: stop after N events, also with --follow.
    parser.add_argument("--max-events", type=positive_int, metavar="N", help=argparse.SUPPRESS)


async def run_tail(context: Context) -> int:
    """Print a thread's events after --after; with --follow, then new ones as they come."""
    args, store = context.args, context.store
    category = MESSAGE_CATEGORY if args.messages_only else None
    limit: int | None = args.max_events
    printed = 0

    def show(record: dict[str, Any]) -> None:
        text = json_line(record) if args.json else event_line(record)
        print(text, flush=True)

    if not args.follow:
        after = args.after
        while limit is None or printed < limit:
            page = await store.read_after(args.thread, after, category, limit=PAGE_SIZE)
            for record in page[: None if limit is None else limit - printed]:
                show(record)
                printed += 1
            if len(page) < PAGE_SIZE:
                break
            after = page[-1]["seq"]
        return 0

    watch = store.watch(args.thread, after_seq=args.after, category=category)
    async with aclosing(watch) as records:
        async for record in records:
            show(record)
            printed += 1
            if limit is not None and printed >= limit:
                break
    return 0


def _add_delete_arguments(parser: argparse.ArgumentParser) -> None:
    add_thread_argument(parser)
    parser.add_argument(
        "--run",
        type=non_empty,
        metavar="RUN",
        help="delete only this run's events (the thread's numbering goes on)",
    )
    parser.add_argument(
        "-y",
        "--yes",
        action="store_true",
        help="do not ask for confirmation (required when stdin is not a terminal)",
    )


def _confirm(question: str) -> bool:
    """Ask ``question`` on stderr; true only for an answer of y or yes."""
    print(question, end=" ", file=sys.stderr, flush=True)
    return sys.stdin.readline().strip().lower() in ("y", "yes")


async def run_delete(context: Context) -> int:
    """Delete a thread (or one run of it), after counting its events and asking."""
    args, store = context.args, context.store
    what = (
        f"thread {args.thread}" if args.run is None else f"run {args.run} of thread {args.thread}"
    )
    count = await store.count_events(args.thread, run_id=args.run)
    if count and not args.yes:
        if not sys.stdin.isatty():
            return fail(
                f"not deleting {count} events of {what} without confirmation: "
                "stdin is not a terminal, pass --yes",
                None,
            )
        answered = await asyncio.to_thread(_confirm, f"delete {count} events of {what}? [y/N]")
        if not answered:
            return fail("nothing deleted", None)
    if count == 0:
        deleted = 0
    elif args.run is None:
        deleted = await store.delete_by_thread(args.thread)
    else:
        deleted = await store.delete_by_run(args.thread, args.run)
    if args.json:
        print_json({"thread_id": args.thread, "run_id": args.run, "deleted": deleted})
    elif count == 0:
        print(f"{what} has no events; nothing to delete")
    else:
        print(f"deleted {deleted} events of {what}")
    return 0


def _add_export_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "thread",
        nargs="?",
        type=non_empty,
        metavar="THREAD",
        help="the thread to export (default: every thread)",
    )
    parser.add_argument(
        "--out",
        default="-",
        metavar="FILE",
        help="write to FILE (replaced only once the export is complete) "
        "instead of stdout (-, the default)",
    )


async def _write_records(
    records: AsyncGenerator[dict[str, Any], None], stream: TextIO, progress: Progress
) -> set[str]:
    """Write ``records`` to ``stream`` as JSON Lines; return the thread ids seen."""
    threads: set[str] = set()
    async with aclosing(records):
        async for record in records:
            stream.write(json_line(record) + "\n")
            threads.add(record["thread_id"])
            progress.advance()
    return threads


async def run_export(context: Context) -> int:
    """Every record of one thread, or of all threads, as JSON Lines in (thread, seq) order."""
    args = context.args
    records = context.store.export_events(args.thread)
    progress = Progress("exported")
    to_stdout = args.out == "-"
    if to_stdout:
        threads = await _write_records(records, sys.stdout, progress)
        sys.stdout.flush()
    else:
        target = Path(args.out)
        partial = target.with_name(target.name + ".partial")
        try:
            with partial.open("w", encoding="utf-8", newline="\n") as file:
                threads = await _write_records(records, file, progress)
            partial.replace(target)
        except OSError as exc:
            partial.unlink(missing_ok=True)
            return fail(f"cannot write {args.out}: {exc.strerror or exc}", None)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
    progress.finish()
    summary = {"out": args.out, "events": progress.count, "threads": len(threads)}
    where = sys.stderr if to_stdout else sys.stdout
    if args.json:
        print_json(summary, where)
    else:
        target_name = "stdout" if to_stdout else args.out
        print(
            f"exported {number_of(progress.count, 'event')} of "
            f"{number_of(len(threads), 'thread')} to {target_name}",
            file=where,
        )
    return 0


def _add_import_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "source",
        metavar="FILE_OR_DIR",
        help="a file, or a folder (DeerFlow's JSONL store, or a folder of .jsonl files)",
    )
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="auto",
        help="jsonl: what export writes; deerflow-jsonl: DeerFlow's JSONL store folder "
        "(threads/<thread_id>/runs/<run_id>.jsonl); deerflow-db: rows of DeerFlow's SQL store "
        "(JSON Lines or a JSON array); auto (default): deerflow-jsonl for a folder holding "
        "threads/, deerflow-db for a .json file, else jsonl",
    )
    parser.add_argument(
        "--on-error",
        choices=("skip", "stop"),
        default="skip",
        help="at a bad line: report it on stderr and go on (skip, the default), or stop "
        "with exit code 1 before anything of its batch is written (stop)",
    )
    parser.add_argument(
        "--batch",
        type=positive_int,
        default=500,
        metavar="N",
        help="records per import_events call (default: 500)",
    )


@dataclass
class ImportSummary:
    """What ``import`` did: files and lines read, records inserted and skipped, bad lines."""

    source: str
    format: str
    files: int = 0
    lines: int = 0
    inserted: int = 0
    skipped: int = 0
    conflicts: int = 0
    bad: int = 0
    stopped_at: str | None = None


async def run_import(context: Context) -> int:
    """Import records from files, in batches; records already stored are skipped."""
    args, store = context.args, context.store
    source = Path(args.source)
    fmt = detect_format(source) if args.format == "auto" else args.format
    summary = ImportSummary(source=args.source, format=fmt)
    progress = Progress("read")
    batch: list[dict[str, Any]] = []

    async def flush() -> None:
        result = await store.import_events(batch)
        summary.inserted += result.inserted
        summary.skipped += result.skipped
        summary.conflicts += result.conflicts
        batch.clear()

    try:
        files = source_files(source, fmt)
        summary.files = len(files)
        items: Iterator[Item] = itertools.chain.from_iterable(
            read_file(path, fmt) for path in files
        )
        for item in items:
            summary.lines += 1
            progress.advance()
            if isinstance(item, BadLine):
                summary.bad += 1
                if args.on_error == "stop":
                    summary.stopped_at = str(item)
                    break
                progress.note(f"{PROG}: skipped {item}")
                continue
            batch.append(item.record)
            if len(batch) >= args.batch:
                await flush()
        else:
            if batch:
                await flush()
    except (SourceError, OSError) as exc:
        progress.finish()
        return fail(str(exc), None)
    progress.finish()

    if args.json:
        print_json(asdict(summary))
    else:
        print(
            f"read {number_of(summary.files, 'file')} ({fmt}), "
            f"{number_of(summary.lines, 'line')}: {summary.inserted} inserted, "
            f"{summary.skipped} skipped (already there), {summary.bad} bad"
            + (
                f", {summary.conflicts} not stored (their event_id is held by another event)"
                if summary.conflicts
                else ""
            )
        )
    if summary.stopped_at is not None:
        return fail(
            f"stopped at a bad line (--on-error stop): {summary.stopped_at}; nothing of its batch "
            "was written, earlier batches were; fix it and run the import again "
            "(records already stored are skipped)",
            None,
        )
    return 0


def _add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "bench_args",
        nargs=argparse.REMAINDER,
        metavar="-- ARGS",
        help="options for python -m benchmarks.run, after -- (e.g. -- --quick)",
    )


def run_bench(args: argparse.Namespace) -> int:
    """Run ``python -m benchmarks.run`` from a checkout, on the same --uri."""
    if not (Path.cwd() / "benchmarks" / "run.py").is_file():
        print(
            f"{PROG}: error: no benchmarks/ folder here. The benchmark ships with the source, "
            "not with the package: in a checkout of the repository, run "
            f"'{PROG} bench -- --quick' (or 'python -m benchmarks.run --help') from its root",
            file=sys.stderr,
        )
        return 1
    extra = list(args.bench_args)
    if extra[:1] == ["--"]:
        extra = extra[1:]
    uri_args = ["--uri", args.uri] if args.uri else []
    shown = ["python", "-m", "benchmarks.run", *(["--uri", mask_uri(args.uri)] if args.uri else [])]
    print(f"{PROG}: running {shlex.join([*shown, *extra])}", file=sys.stderr)
    command = [sys.executable, "-m", "benchmarks.run", *uri_args, *extra]
    return subprocess.run(command, check=False).returncode


#: The subcommands, in the order ``--help`` lists them.
COMMANDS: Sequence[Command | LocalCommand] = (
    Command(
        name="demo",
        help="write a realistic agent thread (several runs with tool calls) and read it back",
        add_arguments=_add_demo_arguments,
        run=run_demo,
    ),
    Command(
        name="init",
        help="create the indexes; optionally a schema validator, retention (TTL) and sharding",
        add_arguments=_add_init_arguments,
        run=run_init,
        store_options=_init_store_options,
    ),
    Command(
        name="stats",
        help="threads, events per category, collection and index sizes",
        add_arguments=_add_stats_arguments,
        run=run_stats,
    ),
    Command(
        name="messages",
        help="a page of a thread's messages (newest first page, or around --before / --after)",
        add_arguments=_add_messages_arguments,
        run=run_messages,
    ),
    Command(
        name="events",
        help="the events of one run, every category, optionally filtered",
        add_arguments=_add_events_arguments,
        run=run_events,
    ),
    Command(
        name="count",
        help="the number of message events of a thread",
        add_arguments=add_thread_argument,
        run=run_count,
    ),
    Command(
        name="tail",
        help="print a thread's events; with --follow, keep printing new ones until Ctrl-C",
        add_arguments=_add_tail_arguments,
        run=run_tail,
    ),
    Command(
        name="delete",
        help="delete a thread, or one run of it (asks first unless --yes)",
        add_arguments=_add_delete_arguments,
        run=run_delete,
    ),
    Command(
        name="export",
        help="write the records of one thread, or of all, as JSON Lines",
        add_arguments=_add_export_arguments,
        run=run_export,
    ),
    Command(
        name="import",
        help="import records (export's JSON Lines, or DeerFlow's JSONL or SQL store); "
        "re-running never duplicates",
        add_arguments=_add_import_arguments,
        run=run_import,
    ),
    LocalCommand(
        name="bench",
        help="run the benchmark (python -m benchmarks.run) from a checkout of the repository",
        add_arguments=_add_bench_arguments,
        run=run_bench,
    ),
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser: global options and one subparser per entry of :data:`COMMANDS`."""
    return make_parser(COMMANDS)


def main(argv: list[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    args = build_parser().parse_args(argv)
    return run_command(args.command_spec, args)
