"""``import``: records as ``export`` writes them, and DeerFlow's JSONL and SQL stores.

The import itself is :class:`mongo_runevents.source_import.SourceImport`;
this command prints what it did, every record named by file and line. It
exits 1 whenever a line was bad or a record skipped.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections import defaultdict
from typing import Any

from ..formats import FORMATS, SourceError
from ..importing import ON_CONFLICT
from ..source_import import LocatedConflict, LocatedRenumbering, SourceImport, SourceImportResult
from .options import PROG, Context, positive_int
from .output import json_line, number_of, print_json
from .progress import Progress
from .runner import fail


def add_import_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``import``."""
    parser.add_argument(
        "source",
        metavar="SOURCE",
        help="a file, a folder (DeerFlow's JSONL store, or a folder of .jsonl files), "
        "DeerFlow's database (sqlite:///path/deerflow.db, postgresql://user@host/db), "
        "or - for standard input (export ... | import -)",
    )
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="auto",
        help="jsonl: what export writes; deerflow-jsonl: DeerFlow's JSONL store folder "
        "(threads/<thread_id>/runs/<run_id>.jsonl); deerflow-db: DeerFlow's SQL store, its "
        "database URL or its rows as JSON Lines or a JSON array; auto (default): deerflow-db "
        "for a database URL or a .json file, deerflow-jsonl for a folder holding threads/, "
        "else jsonl (also for -)",
    )
    parser.add_argument(
        "--on-error",
        choices=("skip", "stop"),
        default="skip",
        help="at a bad line: report it and import the rest, exiting 1 at the end (skip, the "
        "default), or stop before anything is written (stop)",
    )
    parser.add_argument(
        "--on-conflict",
        choices=ON_CONFLICT,
        default="renumber",
        help="at a record whose seq holds another event (two writers of one thread, or a "
        "thread that already has events): keep every event, numbering the new records of "
        "that thread after its last seq in the order seq, created_at, file, line (renumber, "
        "the default); leave the record out and exit 1 (skip); or stop before anything is "
        "written (stop). A record whose thread holds the same event is already there",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="say what the import would do (inserted, already there, conflicts, new seqs) "
        "and write nothing",
    )
    parser.add_argument(
        "--mapping",
        metavar="FILE",
        help="write every renumbered record (file, line, thread, old seq, new seq) to FILE "
        "as JSON Lines",
    )
    parser.add_argument(
        "--owners",
        metavar="URL_OR_FILE",
        help="who owns each thread, for events that name no user_id (DeerFlow's JSONL lines "
        "never do, and its gateway reads by user): DeerFlow's database "
        "(sqlite:///.../deerflow.db or postgresql://..., its threads_meta table), or a file "
        "mapping thread to user (a JSON object, or CSV lines thread_id,user_id). Default for "
        "a DeerFlow database source: that database's threads_meta",
    )
    parser.add_argument(
        "--owner",
        metavar="USER_ID",
        help="the owner of every event that has none after --owners (a single-user "
        "deployment: DeerFlow's is 'default' without auth)",
    )
    parser.add_argument(
        "--batch",
        type=positive_int,
        default=500,
        metavar="N",
        help="records per import_events call, in whole threads (a larger thread is one "
        "call; default: 500)",
    )


async def run_import(context: Context) -> int:
    """Import records from files or standard input, thread by thread; never lose an event."""
    args = context.args
    progress = Progress("reading", unit="line")
    job = SourceImport(
        context.store,
        args.source,
        format=args.format,
        owners=args.owners,
        owner=args.owner,
        on_error=args.on_error,
        on_conflict=args.on_conflict,
        dry_run=args.dry_run,
        batch=args.batch,
        progress=progress,
        on_bad_line=lambda bad: progress.note(f"{PROG}: skipped {bad}"),
    )
    try:
        result = await job.run()
    except SourceError as exc:
        return fail(str(exc), None)
    except (KeyboardInterrupt, asyncio.CancelledError):
        progress.finish()
        if job.phase == "importing":
            print(
                f"{PROG}: interrupted after {number_of(job.result.inserted, 'event')} inserted "
                f"and {job.result.already_there:,} already there, of {job.result.records:,} "
                "read; the call in flight may have partly landed. Running the same import "
                "again completes it: what landed is found already there",
                file=sys.stderr,
                flush=True,
            )
        raise
    if not args.json and job.phase != "reading":
        _notes(result, args)
    return _report(args, result)


def stopped_message(result: SourceImportResult, args: argparse.Namespace) -> str | None:
    """Why the import stopped before writing anything, in words, or ``None``."""
    if result.stopped == "bad_line":
        return (
            f"stopped at a bad line (--on-error stop): {result.bad_lines[-1]}; nothing was "
            "written; fix it and run the import again"
        )
    if result.stopped == "conflict":
        first = result.conflicts[0]
        return (
            f"stopped: {number_of(len(result.conflicts), 'record')} collide with other events "
            f"(--on-conflict stop), the first {first.position} "
            f"(thread {first.thread_id!r}, seq {first.seq}): {first.reason}; "
            + ("this was a dry run" if args.dry_run else "nothing was written")
        )
    return None


def summary_json(result: SourceImportResult, args: argparse.Namespace) -> dict[str, Any]:
    """What ``import --json`` prints: the counts, then every conflict, renumbering and bad line."""
    return {
        "source": result.source,
        "format": result.format,
        "files": result.files,
        "lines": result.lines,
        "inserted": result.inserted,
        "already_there": result.already_there,
        "conflicts": len(result.conflicts),
        "renumbered": len(result.renumbered),
        "skipped": result.skipped,
        "bad": len(result.bad_lines),
        "owners_set": result.owners_set,
        "unowned": result.unowned,
        "dry_run": result.dry_run,
        "stopped_at": stopped_message(result, args),
        "conflict_list": [_conflict_json(conflict) for conflict in result.conflicts],
        "renumbered_list": [_renumbering_json(change) for change in result.renumbered],
        "bad_list": [
            {"source": bad.path, "line": bad.line_number, "reason": bad.reason}
            for bad in result.bad_lines
        ],
    }


def _conflict_json(conflict: LocatedConflict) -> dict[str, Any]:
    return {
        "source": conflict.position.source,
        "line": conflict.position.line,
        "thread_id": conflict.thread_id,
        "seq": conflict.seq,
        "reason": conflict.reason,
        "outcome": conflict.outcome,
    }


def _renumbering_json(change: LocatedRenumbering) -> dict[str, Any]:
    return {
        "source": change.position.source,
        "line": change.position.line,
        "thread_id": change.thread_id,
        "old_seq": change.old_seq,
        "new_seq": change.new_seq,
    }


#: How many renumbered records a thread's line on stderr spells out.
_SHOWN_PER_THREAD = 5


def _notes(result: SourceImportResult, args: argparse.Namespace) -> None:
    """Print each skipped (or, with stop, conflicting) record and, per thread, the renumbering."""
    dry_run = result.dry_run or result.stopped is not None
    for conflict in result.conflicts:
        if conflict.outcome == "skipped" or args.on_conflict != "renumber":
            verb = "would skip" if dry_run else "skipped"
            if args.on_conflict == "stop":
                verb = "conflict at"
            print(
                f"{PROG}: {verb} {conflict.position} (thread {conflict.thread_id!r}, "
                f"seq {conflict.seq}): {conflict.reason}",
                file=sys.stderr,
            )
    if args.on_conflict != "renumber":
        return
    by_thread: defaultdict[str, list[LocatedRenumbering]] = defaultdict(list)
    for change in result.renumbered:
        by_thread[change.thread_id].append(change)
    verb = "would renumber" if dry_run else "renumbered"
    for thread_id, changes in by_thread.items():
        shown = ", ".join(
            f"{change.position} seq {change.old_seq} -> {change.new_seq}"
            for change in changes[:_SHOWN_PER_THREAD]
        )
        more = len(changes) - _SHOWN_PER_THREAD
        rest = f" and {more:,} more (--mapping FILE lists them all)" if more > 0 else ""
        print(
            f"{PROG}: {verb} {number_of(len(changes), 'record')} of thread {thread_id!r}: "
            f"{shown}{rest}",
            file=sys.stderr,
        )


def _write_mapping(path: str, renumbered: list[LocatedRenumbering]) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as file:
        for change in renumbered:
            file.write(json_line(_renumbering_json(change)) + "\n")


def _report(args: argparse.Namespace, result: SourceImportResult) -> int:
    """Print the summary; exit 1 when a line was skipped or refused, or the import stopped."""
    if args.mapping and result.renumbered:
        try:
            _write_mapping(args.mapping, result.renumbered)
        except OSError as exc:
            return fail(f"cannot write {args.mapping}: {exc.strerror or exc}", None)
    bad = len(result.bad_lines)
    if args.json:
        print_json(summary_json(result, args))
    else:
        prefix = "dry run, nothing written: " if result.dry_run else ""
        text = (
            f"{prefix}read {number_of(result.files, 'file')} ({result.format}), "
            f"{number_of(result.lines, 'line')}: {result.inserted:,} inserted, "
            f"{result.already_there:,} already there, {bad:,} bad"
        )
        if result.owners_set:
            text += f"; owner set on {number_of(result.owners_set, 'event')}"
        if result.conflicts or result.skipped:
            text += (
                f"; {number_of(len(result.conflicts), 'conflict')}: "
                f"{len(result.renumbered):,} renumbered, {result.skipped:,} skipped"
            )
        print(text)
    if result.unowned and not args.json:
        print(
            f"{PROG}: {number_of(result.unowned, 'event')} have no owner (no user_id): a "
            "gateway that reads by user (DeerFlow's) shows them to nobody; give --owners "
            "(DeerFlow's database, or a thread-to-user file) or --owner USER_ID and run the "
            "import again",
            file=sys.stderr,
        )
    stopped = stopped_message(result, args)
    if stopped is not None:
        return fail(stopped, None)
    refused = bad + result.skipped
    if refused:
        return fail(
            f"{number_of(refused, 'line')} not imported ({bad:,} bad, "
            f"{result.skipped:,} skipped for a conflict); see above",
            None,
        )
    return 0
