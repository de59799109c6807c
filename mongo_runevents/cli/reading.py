"""``threads``, ``messages``, ``events``, ``count`` and ``tail``: reading the threads.

Each takes ``--user``: with it, only that user's events (and threads) are seen.
"""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Mapping
from contextlib import aclosing
from typing import Any

from ..models import MESSAGE_CATEGORY
from .options import (
    PROG,
    Context,
    add_thread_argument,
    add_user_argument,
    non_empty,
    non_negative_int,
    positive_int,
)
from .output import event_line, json_line, message_rows, print_json, print_messages

#: Records read per query when a command pages through a thread or a run.
PAGE_SIZE = 1000


def add_threads_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``threads``."""
    add_user_argument(parser)
    parser.add_argument(
        "--before",
        type=non_empty,
        metavar="CURSOR",
        help="the page after this one: the cursor the previous page printed",
    )
    parser.add_argument(
        "--limit",
        type=positive_int,
        default=50,
        help="at most this many threads (default: 50)",
    )


async def run_threads(context: Context) -> int:
    """A page of threads, newest activity first, and the cursor of the next page."""
    args = context.args
    threads = await context.store.list_threads(
        limit=args.limit, before=args.before, user_id=args.user
    )
    following = threads[-1]["cursor"] if len(threads) == args.limit else None
    if args.json:
        print_json({"threads": threads, "next": following})
        return 0
    if not threads:
        print("(no threads)")
    for row in threads:
        print(f"{row['updated_at'] or '-':<34} {row['last_seq']:>8}  {row['thread_id']}")
    if following is not None:
        # Quoted: a cursor holds "|", which a shell would take for a pipe.
        print(f"next page: --before {shlex.quote(following)}")
    return 0


def add_messages_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``messages``."""
    add_thread_argument(parser)
    add_user_argument(parser)
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
        args.thread,
        limit=args.limit,
        before_seq=args.before,
        after_seq=args.after,
        user_id=args.user,
    )
    if args.json:
        print_json({"thread_id": args.thread, "messages": messages})
        return 0
    print_messages(f"messages of thread {args.thread}:", message_rows(messages))
    if len(messages) == args.limit:
        if args.after is None:
            print(f"older: --before {messages[0]['seq']}")
        else:
            print(f"next page: --after {messages[-1]['seq']}")
    return 0


def add_events_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``events``."""
    add_thread_argument(parser)
    parser.add_argument("run", type=non_empty, metavar="RUN", help="run id")
    add_user_argument(parser)
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
        user_id=args.user,
    )
    if args.json:
        print_json({"thread_id": args.thread, "run_id": args.run, "events": events})
        return 0
    print(f"events of run {args.run} of thread {args.thread}:")
    if not events:
        print("  (none)")
    for event in events:
        print(event_line(event))
    if len(events) == args.limit:
        print(f"next page: --after {events[-1]['seq']}")
    return 0


def add_runs_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``runs``."""
    add_thread_argument(parser)
    add_user_argument(parser)


#: The events DeerFlow's journal ends a run with.
_RUN_END, _RUN_ERROR = "run.end", "run.error"


def _outcome(run: dict[str, Any], record: Mapping[str, Any]) -> None:
    """Note what ``record`` says about how its run ended, if anything."""
    metadata = record["metadata"] if isinstance(record["metadata"], dict) else {}
    if record["event_type"] == _RUN_ERROR:
        run["outcome"] = f"error ({metadata.get('error_type') or 'unknown'})"
    elif record["event_type"] == _RUN_END and not run["outcome"].startswith("error"):
        run["outcome"] = str(metadata.get("status") or "ended")


async def run_runs(context: Context) -> int:
    """The thread's runs, in order: outcome, events, messages, first and last time, run id."""
    args, store = context.args, context.store
    runs: dict[str, dict[str, Any]] = {}
    after = 0
    while True:
        page = await store.read_after(args.thread, after, user_id=args.user, limit=PAGE_SIZE)
        for record in page:
            run = runs.setdefault(
                record["run_id"],
                {
                    "run_id": record["run_id"],
                    "outcome": "no end",
                    "events": 0,
                    "messages": 0,
                    "first_seq": record["seq"],
                    "last_seq": record["seq"],
                    "started_at": record["created_at"],
                    "last_at": record["created_at"],
                },
            )
            run["events"] += 1
            run["messages"] += record["category"] == MESSAGE_CATEGORY
            run["last_seq"], run["last_at"] = record["seq"], record["created_at"]
            _outcome(run, record)
        if len(page) < PAGE_SIZE:
            break
        after = page[-1]["seq"]
    rows = list(runs.values())
    if args.json:
        print_json({"thread_id": args.thread, "runs": rows})
        return 0
    print(f"runs of thread {args.thread}:")
    if not rows:
        print("  (none)")
    for row in rows:
        print(
            f"  {row['started_at']:<32} {row['outcome']:<18} {row['events']:>6} events "
            f"{row['messages']:>5} messages  {row['run_id']}"
        )
    if rows:
        print(f"events of a run: {PROG} events {shlex.quote(args.thread)} RUN")
    return 0


async def run_count(context: Context) -> int:
    """The number of message events of a thread."""
    args = context.args
    count = await context.store.count_messages(args.thread, user_id=args.user)
    if args.json:
        print_json({"thread_id": args.thread, "messages": count})
    else:
        print(f"thread {args.thread}: {count} messages")
    return 0


def add_tail_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``tail``."""
    add_thread_argument(parser)
    add_user_argument(parser)
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

    def show(record: Mapping[str, Any]) -> None:
        text = json_line(record) if args.json else event_line(record)
        print(text, flush=True)

    if not args.follow:
        after = args.after
        while limit is None or printed < limit:
            page = await store.read_after(
                args.thread, after, category, user_id=args.user, limit=PAGE_SIZE
            )
            for record in page[: None if limit is None else limit - printed]:
                show(record)
                printed += 1
            if len(page) < PAGE_SIZE:
                break
            after = page[-1]["seq"]
        return 0

    watch = store.watch(args.thread, after_seq=args.after, category=category, user_id=args.user)
    async with aclosing(watch) as records:
        async for record in records:
            show(record)
            printed += 1
            if limit is not None and printed >= limit:
                break
    return 0
