"""``demo``: write a realistic agent thread through a buffered journal, then read it back."""

from __future__ import annotations

import argparse
import json
import random
import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any, TextIO

from ..models import MESSAGE_CATEGORY
from .options import Context, non_empty, positive_int
from .output import message_rows, print_messages

#: About how long one demo step takes on the simulated clock (it starts that much per step before now).
DEMO_STEP_SPAN = timedelta(seconds=12)


def add_demo_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``demo``."""
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
    # Imported here, so that no other command (nor --help) loads the generator.
    from .workload import AgentThread, Journal, write_run

    args = context.args
    store = context.store
    thread_id = args.thread or f"demo-{uuid.uuid4().hex[:8]}"
    # The timing of a real run: seconds per model call, ending about now.
    span = (DEMO_STEP_SPAN * args.steps + DEMO_STEP_SPAN) * args.runs
    journal = Journal(store, clock=datetime.now(timezone.utc) - span)
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


async def write_demo_if_empty(store: Any, out: TextIO) -> str | None:
    """Write the demo's thread when the store holds no thread yet; return its id.

    The thread is shaped as DeerFlow's journal writes one (:mod:`.journal_runs`):
    a run that succeeds, one that fails, one cut off with no end.
    """
    if await store.list_threads(limit=1):
        return None
    from .journal_runs import write_journal_thread

    thread_id = f"demo-{uuid.uuid4().hex[:8]}"
    await write_journal_thread(store, thread_id)
    print(f"the database was empty: wrote the demo thread {thread_id}", file=out)
    return thread_id
