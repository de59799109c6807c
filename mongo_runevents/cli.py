"""The ``mongo-runevents`` command line.

Every command works on a :class:`~mongo_runevents.MongoRunEventStore`. The
server is the one named by ``--uri`` (or the ``MONGODB_URI`` environment
variable); without either, an embedded SecantusDB server is started in
``--data-dir`` for the duration of the command (the ``embedded`` extra).

Commands live in the :data:`COMMANDS` table: each has a name, a help text, a
function adding its own options and an async function running it. To add a
command, write those two functions and add a :class:`Command` to the table.

Exit codes: 0 success, 1 a store error (one line on stderr, no traceback),
2 a usage error (reported by argparse), 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ._version import __version__
from .embedded import EmbeddedServer
from .errors import RunEventStoreError, StoreUnavailableError
from .models import MESSAGE_CATEGORY
from .mongo import MongoRunEventStore
from .workload import AgentThread, Journal, write_run

PROG = "mongo-runevents"
DEFAULT_DATABASE = "mongo_runevents_demo"
DEFAULT_DATA_DIR = "./.mongo-runevents-data"


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


@dataclass(frozen=True)
class Command:
    """One subcommand: its name, help text, options and the async function that runs it."""

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[Context], Awaitable[int]]


def _positive_int(text: str) -> int:
    """An argparse type: an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _non_empty(text: str) -> str:
    """An argparse type: a non-empty string."""
    if not text:
        raise argparse.ArgumentTypeError("must not be empty")
    return text


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
        help="print one machine-readable JSON object instead of text",
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
    command: Command = args.command_spec
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
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    finally:
        if server is not None:
            server.stop()


async def _run(command: Command, args: argparse.Namespace, uri: str, server: str) -> int:
    async with MongoRunEventStore.from_uri(uri, database=args.database) as store:
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


# --- demo ----------------------------------------------------------------------


def _preview(content: Any, width: int = 70) -> str:
    """A one-line preview of a message's content, at most ``width`` characters."""
    if isinstance(content, dict):
        text = content.get("content")
        calls = content.get("tool_calls") or []
        if not text and calls:
            text = "calls " + ", ".join(
                f"{call.get('name')}({json.dumps(call.get('args'))})" for call in calls
            )
        if content.get("type") == "tool":
            text = f"[{content.get('name')}] {text}"
    else:
        text = content
    if not isinstance(text, str):
        text = json.dumps(text)
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 3] + "..."


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


#: The subcommands, in the order ``--help`` lists them.
COMMANDS: Sequence[Command] = (
    Command(
        name="demo",
        help="write a realistic agent thread (several runs with tool calls) and read it back",
        add_arguments=_add_demo_arguments,
        run=run_demo,
    ),
)


if __name__ == "__main__":
    sys.exit(main())
