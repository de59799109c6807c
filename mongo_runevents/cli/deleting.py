"""``delete``: a thread, or one run of it, after counting its events and asking."""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from .options import Context, add_thread_argument, add_user_argument, non_empty
from .output import print_json
from .runner import fail


def add_delete_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``delete``."""
    add_thread_argument(parser)
    add_user_argument(parser)
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
    """Ask ``question`` on stderr; true only for an answer of y or yes.

    Read on the main thread with Python's own Ctrl-C handler in place, so
    that Ctrl-C at the prompt interrupts at once (asyncio's handler would only
    cancel the task, after the line is read).
    """
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, signal.default_int_handler) if main else None
    try:
        print(question, end=" ", file=sys.stderr, flush=True)
        return sys.stdin.readline().strip().lower() in ("y", "yes")
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


async def run_delete(context: Context) -> int:
    """Delete a thread (or one run of it), after counting its events and asking."""
    args, store = context.args, context.store
    what = (
        f"thread {args.thread}" if args.run is None else f"run {args.run} of thread {args.thread}"
    )
    count = await store.count_events(args.thread, run_id=args.run, user_id=args.user)
    if count and not args.yes:
        if not sys.stdin.isatty():
            return fail(
                f"not deleting {count} events of {what} without confirmation: "
                "stdin is not a terminal, pass --yes",
                None,
            )
        # Nothing else runs meanwhile: asking on the loop's thread blocks nothing.
        if not _confirm(f"delete {count} events of {what}? [y/N]"):
            print("nothing deleted", file=sys.stderr)
            return 0
    if count == 0:
        deleted = 0
    elif args.run is None:
        deleted = await store.delete_by_thread(args.thread, user_id=args.user)
    else:
        deleted = await store.delete_by_run(args.thread, args.run, user_id=args.user)
    if args.json:
        print_json({"thread_id": args.thread, "run_id": args.run, "deleted": deleted})
    elif count == 0:
        print(f"{what} has no events; nothing to delete")
    else:
        print(f"deleted {deleted} events of {what}")
    return 0
