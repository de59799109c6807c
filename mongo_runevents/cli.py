"""The ``mongo-runevents`` command line.

Every command but ``bench`` works on a :class:`~mongo_runevents.MongoRunEventStore`.
The server is the one named by ``--uri`` (or the ``MONGODB_URI`` environment
variable); without either, an embedded SecantusDB server is started in
``--data-dir`` for the duration of the command (the ``embedded`` extra).

Commands live in the :data:`COMMANDS` table: each has a name, a help text, a
function adding its own options and an async function running it on a store
(:class:`Command`), or a plain function running it without one
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
import os
import random
import re
import shlex
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator, Sequence
from contextlib import aclosing
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, TextIO

from ._version import __version__
from .admin import apply_schema_validator, collect_stats, shard_collections
from .embedded import EmbeddedServer
from .errors import RunEventStoreError, StoreUnavailableError
from .models import MESSAGE_CATEGORY
from .mongo import MongoRunEventStore
from .transfer import FORMATS, BadLine, Item, SourceError, detect_format, read_file, source_files
from .workload import AgentThread, Journal, write_run

PROG = "mongo-runevents"
DEFAULT_DATABASE = "mongo_runevents_demo"
DEFAULT_DATA_DIR = "./.mongo-runevents-data"

#: Records read per query when a command pages through a thread or a run.
PAGE_SIZE = 1000


# --- hiding passwords -----------------------------------------------------------

_PASSWORD_OPTION = re.compile(r"([?&][^=&#]*password[^=&#]*=)[^&#]*", re.IGNORECASE)


def _split_userinfo(uri: str) -> tuple[str, str, str] | None:
    """``uri`` as (text before the password, password, text after), if it holds a password.

    The host part is found the way pymongo finds it: up to the first ``/``
    after the scheme, and the user info ends at the last ``@`` in it.
    """
    scheme_end = uri.find("://")
    start = scheme_end + 3 if scheme_end >= 0 else 0
    slash = uri.find("/", start)
    host_end = slash if slash >= 0 else len(uri)
    at = uri.rfind("@", start, host_end)
    if at < 0:
        return None
    colon = uri.find(":", start, at)
    if colon < 0:
        return None
    return uri[: colon + 1], uri[colon + 1 : at], uri[at:]


def mask_uri(uri: str) -> str:
    """``uri`` with its password, and any ``...password=`` option, replaced by ``***``."""
    parts = _split_userinfo(uri)
    if parts is not None:
        before, _password, after = parts
        uri = f"{before}***{after}"
    return _PASSWORD_OPTION.sub(r"\1***", uri)


def _redact(text: str, uri: str | None) -> str:
    """``text`` with the password of ``uri`` (if any) replaced by ``***``: a second safety net."""
    parts = _split_userinfo(uri) if uri else None
    if parts is not None and parts[1]:
        text = text.replace(parts[1], "***")
    return text


# --- the command table ----------------------------------------------------------


@dataclass(frozen=True)
class Context:
    """What a command runs with: the parsed arguments, the store and a description of the server."""

    args: argparse.Namespace
    store: MongoRunEventStore
    server: str


def _no_store_options(args: argparse.Namespace) -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class Command:
    """One subcommand working on a store: its name, help text, options and the function running it.

    ``store_options`` turns the arguments into keyword arguments of the
    store's constructor (``init --retention`` uses it).
    """

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[Context], Awaitable[int]]
    store_options: Callable[[argparse.Namespace], dict[str, Any]] = _no_store_options


@dataclass(frozen=True)
class LocalCommand:
    """A subcommand that needs no store: no server is started or contacted for it."""

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def _positive_int(text: str) -> int:
    """An argparse type: an integer of at least 1."""
    value = _integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    """An argparse type: an integer of at least 0 (a seq cursor)."""
    value = _integer(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {value}")
    return value


def _integer(text: str) -> int:
    """An integer that fits in 64 bits, as every seq and limit must."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if not -(2**63) <= value < 2**63:
        raise argparse.ArgumentTypeError(f"{text} does not fit in 64 bits")
    return value


def _non_empty(text: str) -> str:
    """An argparse type: a non-empty string of valid Unicode (an id, a category, an event type)."""
    if not text:
        raise argparse.ArgumentTypeError("must not be empty")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # Bytes that are not UTF-8 in argv arrive as lone surrogates.
        raise argparse.ArgumentTypeError(f"{text!r} is not valid UTF-8") from None
    return text


def _retention_item(text: str) -> tuple[str, int]:
    """An argparse type: ``CATEGORY=DAYS``, a category and a whole number of days of at least 1."""
    category, equals, days = text.partition("=")
    if not equals or not category:
        raise argparse.ArgumentTypeError(f"expected CATEGORY=DAYS (e.g. trace=30), got {text!r}")
    return _non_empty(category), _positive_int(days)


def _add_global_options(parser: argparse.ArgumentParser, *, in_subcommand: bool) -> None:
    """Add the options every command shares.

    They are accepted before and after the command name. In a subcommand's
    parser their default is ``SUPPRESS``, so that a value given before the
    command name is not overwritten by the subcommand's default.
    """

    def default(value: Any) -> Any:
        return argparse.SUPPRESS if in_subcommand else value

    group = parser.add_argument_group("server and output options")
    group.add_argument(
        "--uri",
        default=default(os.environ.get("MONGODB_URI") or None),
        help="MongoDB connection string (default: $MONGODB_URI; without either, "
        "an embedded SecantusDB server is started in --data-dir)",
    )
    group.add_argument(
        "--database",
        default=default(DEFAULT_DATABASE),
        help=f"database holding the events (default: {DEFAULT_DATABASE})",
    )
    group.add_argument(
        "--data-dir",
        default=default(DEFAULT_DATA_DIR),
        help=f"data folder of the embedded server, used when no URI is given "
        f"(default: {DEFAULT_DATA_DIR})",
    )
    group.add_argument(
        "--json",
        action="store_true",
        default=default(False),
        help="print machine-readable JSON instead of text "
        "(one object; one record per line for tail)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser: global options and one subparser per entry of :data:`COMMANDS`."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Store and inspect the event streams of AI-agent runs in MongoDB.",
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {__version__}", help="show the version"
    )
    _add_global_options(parser, in_subcommand=False)
    subparsers = parser.add_subparsers(
        title="commands", dest="command", metavar="COMMAND", required=True
    )
    for command in COMMANDS:
        subparser = subparsers.add_parser(command.name, help=command.help, description=command.help)
        command.add_arguments(subparser)
        _add_global_options(subparser, in_subcommand=True)
        subparser.set_defaults(command_spec=command)
    return parser


# --- running --------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    args = build_parser().parse_args(argv)
    command: Command | LocalCommand = args.command_spec
    try:
        if isinstance(command, LocalCommand):
            return command.run(args)
        return _run_on_store(command, args)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # Whoever read the output stopped (`... | head`): stop quietly.
        _discard_stdout()
        return 1


def _run_on_store(command: Command, args: argparse.Namespace) -> int:
    """Start the embedded server if no URI is given, then run ``command`` on a store."""
    uri: str | None = args.uri
    server: EmbeddedServer | None = None
    try:
        if uri is None:
            server = EmbeddedServer(args.data_dir)
            try:
                server.start()
            except OSError as exc:
                return _fail(f"could not start the embedded server: {exc}", None)
            description = f"embedded SecantusDB at {args.data_dir} (port {server.port})"
            uri = server.uri
        else:
            description = mask_uri(uri)
        print(f"{PROG}: using {description}", file=sys.stderr)
        return asyncio.run(_run(command, args, uri, description))
    except RunEventStoreError as exc:
        if server is None:
            return _fail(_error_message(exc, hint=True), uri)
        return _fail(_error_message(exc, hint=False), None)
    finally:
        if server is not None:
            server.stop()


async def _run(command: Command, args: argparse.Namespace, uri: str, server: str) -> int:
    options = command.store_options(args)
    async with MongoRunEventStore.from_uri(uri, database=args.database, **options) as store:
        return await command.run(Context(args=args, store=store, server=server))


def _error_message(exc: RunEventStoreError, *, hint: bool) -> str:
    """The text of ``exc``, with a hint about the URI when the server could not be reached."""
    message = str(exc) or type(exc).__name__
    # pymongo appends its whole topology description to a server selection
    # time-out; the part before it already says what went wrong.
    message = message.split(", Topology Description:")[0]
    if hint and isinstance(exc, StoreUnavailableError):
        message += " (is the server running and the URI right? see --uri / MONGODB_URI)"
    return message


def _fail(message: str, uri: str | None) -> int:
    """Print ``message`` as one line on stderr, without any password; return exit code 1."""
    one_line = " ".join(_redact(message, uri).split())
    print(f"{PROG}: error: {one_line}", file=sys.stderr)
    return 1


def _discard_stdout() -> None:
    """Point stdout at the null device, so that flushing it at exit raises nothing more."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


# --- output ---------------------------------------------------------------------


def _print_json(value: Any, stream: TextIO | None = None) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False), file=stream or sys.stdout)


#: Characters that JSON leaves raw in strings but that some line splitters (Python's
#: ``str.splitlines``, JavaScript) take for line ends; escaped in JSON Lines output.
_LINE_BREAKS = str.maketrans({"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})


def _json_line(record: dict[str, Any]) -> str:
    """``record`` as one line of JSON Lines: UTF-8 text, with no character any reader splits on."""
    return json.dumps(record, ensure_ascii=False).translate(_LINE_BREAKS)


def _preview(content: Any, width: int = 70) -> str:
    """A one-line preview of an event's content, at most ``width`` characters."""
    line = " ".join(_content_text(content).split())
    return line if len(line) <= width else line[: width - 3] + "..."


def _content_text(content: Any) -> str:
    """The readable part of a content value: a message's text or tool calls, else its JSON."""
    if isinstance(content, str):
        return content
    if isinstance(content, dict) and ("content" in content or "tool_calls" in content):
        text = content.get("content")
        calls = content.get("tool_calls")
        if not text and isinstance(calls, list) and calls:
            text = "calls " + ", ".join(
                f"{call.get('name')}({json.dumps(call.get('args'))})"
                if isinstance(call, dict)
                else json.dumps(call)
                for call in calls
            )
        if not isinstance(text, str):
            text = json.dumps(text, ensure_ascii=False)
        if content.get("type") == "tool":
            text = f"[{content.get('name')}] {text}"
        return text
    return json.dumps(content, ensure_ascii=False)


def _event_line(record: dict[str, Any]) -> str:
    """One event on one line: seq, category, event type and a preview of the content."""
    return (
        f"{record['seq']:>6}  {record['category']:<10} {record['event_type']:<22} "
        f"{_preview(record['content'], 60)}"
    )


def _number_of(count: int, noun: str) -> str:
    """``1 file``, ``2 files``: a count and a noun, plural unless the count is 1."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _human_size(size: float) -> str:
    """A byte count as a person reads it: ``512 B``, ``1.5 KiB``, ``3.2 GiB``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


class Progress:
    """A running count on stderr, rewritten in place (carriage return) every ``every`` items.

    Shown only when the stream is a terminal, so that logs and pipes never
    receive it.
    """

    def __init__(self, label: str, *, every: int = 1000, stream: TextIO | None = None) -> None:
        self.label = label
        self.every = every
        self.stream = sys.stderr if stream is None else stream
        self.enabled = self.stream.isatty()
        self.count = 0
        self._started = False  # whether a count was ever shown
        self._on_screen = 0  # length of the progress line now shown, 0 if none

    def advance(self, items: int = 1) -> None:
        """Count ``items`` more, and show the count if it passed a multiple of ``every``."""
        before, self.count = self.count, self.count + items
        if self.enabled and self.count // self.every > before // self.every:
            self._show(f"{self.label} {self.count:,} ...")

    def note(self, message: str) -> None:
        """Print ``message`` on a line of its own, erasing the progress line first."""
        self._erase()
        print(message, file=self.stream)

    def finish(self) -> None:
        """End the progress line with the final count (if a count was ever shown)."""
        if self._started:
            self._show(f"{self.label} {self.count:,}")
            self.stream.write("\n")
            self.stream.flush()
            self._on_screen = 0
            self._started = False

    def _show(self, text: str) -> None:
        self._erase()
        self.stream.write(text)
        self.stream.flush()
        self._on_screen = len(text)
        self._started = True

    def _erase(self) -> None:
        if self._on_screen:
            self.stream.write("\r" + " " * self._on_screen + "\r")
            self._on_screen = 0


# --- demo ----------------------------------------------------------------------


def _message_rows(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"seq": m["seq"], "event_type": m["event_type"], "preview": _preview(m["content"])}
        for m in messages
    ]


def _print_messages(title: str, rows: list[dict[str, Any]]) -> None:
    print(title)
    if not rows:
        print("  (none)")
    for row in rows:
        print(f"  {row['seq']:>5}  {row['event_type']:<16} {row['preview']}")


def _add_demo_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--thread",
        type=_non_empty,
        help="thread id to write to (default: a fresh demo-<uuid8>)",
    )
    parser.add_argument(
        "--runs", type=_positive_int, default=3, help="number of agent runs (default: 3)"
    )
    parser.add_argument(
        "--steps",
        type=_positive_int,
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
        "newest_messages": _message_rows(newest),
        "before_seq": newest[0]["seq"],
        "older_messages": _message_rows(older),
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
    _print_messages("newest messages (list_messages limit=5):", result["newest_messages"])
    _print_messages(f"one page back (before_seq={result['before_seq']}):", result["older_messages"])
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


# --- init and stats -------------------------------------------------------------


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
        type=_retention_item,
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
    return _number_of(days, "day")


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
        _print_json(result)
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
        _print_json(asdict(stats))
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
            f"{name:<28} {info['count']:>10} {_human_size(info['size_bytes']):>11} "
            f"{_human_size(info['storage_bytes']):>11} {_human_size(info['index_bytes']):>11}"
        )
    print("index sizes:")
    for name, info in stats.collections.items():
        for index, size in info["indexes"].items():
            print(f"  {name + '.' + index:<50} {_human_size(size):>11}")
    return 0


# --- reading --------------------------------------------------------------------


def _add_thread_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("thread", type=_non_empty, metavar="THREAD", help="thread id")


def _add_messages_arguments(parser: argparse.ArgumentParser) -> None:
    _add_thread_argument(parser)
    parser.add_argument(
        "--before",
        type=_non_negative_int,
        metavar="SEQ",
        help="the last --limit messages before seq SEQ (the page before it)",
    )
    parser.add_argument(
        "--after",
        type=_non_negative_int,
        metavar="SEQ",
        help="the first --limit messages after seq SEQ (the page after it)",
    )
    parser.add_argument(
        "--limit",
        type=_positive_int,
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
        _print_json({"thread_id": args.thread, "messages": messages})
        return 0
    _print_messages(f"messages of thread {args.thread}:", _message_rows(messages))
    return 0


def _add_events_arguments(parser: argparse.ArgumentParser) -> None:
    _add_thread_argument(parser)
    parser.add_argument("run", type=_non_empty, metavar="RUN", help="run id")
    parser.add_argument(
        "--type",
        dest="types",
        type=_non_empty,
        action="append",
        metavar="TYPE",
        help="only events of this event type (repeatable)",
    )
    parser.add_argument("--task", type=_non_empty, metavar="ID", help="only events of this task_id")
    parser.add_argument(
        "--after", type=_non_negative_int, metavar="SEQ", help="only events after seq SEQ"
    )
    parser.add_argument(
        "--limit", type=_positive_int, default=500, help="at most this many events (default: 500)"
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
        _print_json({"thread_id": args.thread, "run_id": args.run, "events": events})
        return 0
    print(f"events of run {args.run} of thread {args.thread}:")
    if not events:
        print("  (none)")
    for event in events:
        print(_event_line(event))
    return 0


async def run_count(context: Context) -> int:
    """The number of message events of a thread."""
    args = context.args
    count = await context.store.count_messages(args.thread)
    if args.json:
        _print_json({"thread_id": args.thread, "messages": count})
    else:
        print(f"thread {args.thread}: {count} messages")
    return 0


def _add_tail_arguments(parser: argparse.ArgumentParser) -> None:
    _add_thread_argument(parser)
    parser.add_argument(
        "-f",
        "--follow",
        action="store_true",
        help="keep printing new events as they are written, until Ctrl-C",
    )
    parser.add_argument(
        "--after",
        type=_non_negative_int,
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
    parser.add_argument("--max-events", type=_positive_int, metavar="N", help=argparse.SUPPRESS)


async def run_tail(context: Context) -> int:
    """Print a thread's events after --after; with --follow, then new ones as they come."""
    args, store = context.args, context.store
    category = MESSAGE_CATEGORY if args.messages_only else None
    limit: int | None = args.max_events
    printed = 0

    def show(record: dict[str, Any]) -> None:
        text = _json_line(record) if args.json else _event_line(record)
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


# --- delete ---------------------------------------------------------------------


def _add_delete_arguments(parser: argparse.ArgumentParser) -> None:
    _add_thread_argument(parser)
    parser.add_argument(
        "--run",
        type=_non_empty,
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
            return _fail(
                f"not deleting {count} events of {what} without confirmation: "
                "stdin is not a terminal, pass --yes",
                None,
            )
        answered = await asyncio.to_thread(_confirm, f"delete {count} events of {what}? [y/N]")
        if not answered:
            return _fail("nothing deleted", None)
    if count == 0:
        deleted = 0
    elif args.run is None:
        deleted = await store.delete_by_thread(args.thread)
    else:
        deleted = await store.delete_by_run(args.thread, args.run)
    if args.json:
        _print_json({"thread_id": args.thread, "run_id": args.run, "deleted": deleted})
    elif count == 0:
        print(f"{what} has no events; nothing to delete")
    else:
        print(f"deleted {deleted} events of {what}")
    return 0


# --- export and import ----------------------------------------------------------


def _add_export_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "thread",
        nargs="?",
        type=_non_empty,
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
            stream.write(_json_line(record) + "\n")
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
            return _fail(f"cannot write {args.out}: {exc.strerror or exc}", None)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
    progress.finish()
    summary = {"out": args.out, "events": progress.count, "threads": len(threads)}
    where = sys.stderr if to_stdout else sys.stdout
    if args.json:
        _print_json(summary, where)
    else:
        target_name = "stdout" if to_stdout else args.out
        print(
            f"exported {_number_of(progress.count, 'event')} of "
            f"{_number_of(len(threads), 'thread')} to {target_name}",
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
        type=_positive_int,
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
        return _fail(str(exc), None)
    progress.finish()

    if args.json:
        _print_json(asdict(summary))
    else:
        print(
            f"read {_number_of(summary.files, 'file')} ({fmt}), "
            f"{_number_of(summary.lines, 'line')}: {summary.inserted} inserted, "
            f"{summary.skipped} skipped (already there), {summary.bad} bad"
            + (
                f", {summary.conflicts} not stored (their event_id is held by another event)"
                if summary.conflicts
                else ""
            )
        )
    if summary.stopped_at is not None:
        return _fail(
            f"stopped at a bad line (--on-error stop): {summary.stopped_at}; nothing of its batch "
            "was written, earlier batches were; fix it and run the import again "
            "(records already stored are skipped)",
            None,
        )
    return 0


# --- bench ----------------------------------------------------------------------


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
        add_arguments=_add_thread_argument,
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


if __name__ == "__main__":
    sys.exit(main())
