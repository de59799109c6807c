"""``import``: records as ``export`` writes them, and DeerFlow's JSONL and SQL stores.

``import`` reads every source into a stage (:mod:`.staging`), then imports
whole threads per ``import_events`` call in the stable order, so that the
library's rules for conflicts (:mod:`mongo_runevents.importing`) apply to
each whole thread. It exits 1 whenever a line was bad or a record skipped.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..deerflow_db import DeerFlowDatabase, read_database
from ..importing import ON_CONFLICT, ImportResult, OnConflict
from ..transfer import (
    FORMATS,
    BadLine,
    Item,
    Owners,
    SourceError,
    checked_owner,
    detect_format,
    is_database_url,
    read_file,
    read_owner_map,
    source_files,
)
from .options import PROG, Context, positive_int
from .output import json_line, number_of, print_json
from .progress import Progress
from .runner import fail
from .staging import Stage, Staged


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


@dataclass
class ImportSummary:
    """What ``import`` did: files and lines read, records inserted, already there, skipped, bad."""

    source: str
    format: str
    files: int = 0
    lines: int = 0
    inserted: int = 0
    already_there: int = 0
    conflicts: int = 0
    renumbered: int = 0
    skipped: int = 0
    bad: int = 0
    #: Records that had no ``user_id`` and got one from --owners / --owner.
    owners_set: int = 0
    #: Records left without any owner (a gateway reading by user shows them to nobody).
    unowned: int = 0
    dry_run: bool = False
    stopped_at: str | None = None
    #: Every record that collided: source, line, thread_id, seq, reason, outcome.
    conflict_list: list[dict[str, Any]] = field(default_factory=list)
    #: Every record stored (or, in a dry run, to be stored) under a new seq.
    renumbered_list: list[dict[str, Any]] = field(default_factory=list)
    #: Every bad line: source, line, reason.
    bad_list: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class _Where:
    """Where an import call's records came from: (file label, line) per position."""

    labels: list[str]
    places: list[tuple[int, int]]

    def __call__(self, index: int) -> str:
        source, line = self.places[index]
        return f"{self.labels[source]}:{line}"


@dataclass
class Source:
    """What ``import`` reads: its files (or database), their labels, its format and owners."""

    fmt: str
    files: list[Path] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    database: DeerFlowDatabase | None = None


def open_source(source: str, fmt: str, spool: Path) -> Source:
    """The files or database to read; standard input is copied to ``spool``."""
    if source == "-":
        fmt = "jsonl" if fmt == "auto" else fmt
        if fmt == "deerflow-jsonl":
            raise SourceError("deerflow-jsonl needs a folder; standard input holds one file")
        target = spool / ("stdin.json" if fmt == "deerflow-db" else "stdin.jsonl")
        with target.open("wb") as copy:
            shutil.copyfileobj(sys.stdin.buffer, copy, 1 << 20)
        return Source(fmt, [target], ["<stdin>"])
    fmt = detect_format(source) if fmt == "auto" else fmt
    if is_database_url(source):
        if fmt != "deerflow-db":
            raise SourceError(f"a database URL is read as deerflow-db, not {fmt}")
        database = DeerFlowDatabase(source)
        return Source(fmt, labels=[database.label], database=database)
    files = source_files(Path(source), fmt)
    return Source(fmt, files, [str(file) for file in files])


def load_owners(args: argparse.Namespace, source: Source) -> Owners:
    """The owners ``--owners`` and ``--owner`` give (a database source's own by default)."""
    by_thread: dict[str, str] = {}
    given = args.owners
    if given is not None and is_database_url(given):
        with DeerFlowDatabase(given) as database:
            by_thread = database.owners()
    elif given is not None:
        by_thread = read_owner_map(Path(given))
    elif source.database is not None:
        by_thread = source.database.owners()
    default = None if args.owner is None else checked_owner(args.owner, "--owner")
    return Owners(by_thread, default)


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


async def run_import(context: Context) -> int:
    """Import records from files or standard input, thread by thread; never lose an event."""
    args = context.args
    summary = ImportSummary(source=args.source, format=args.format, dry_run=args.dry_run)
    progress = Progress("reading", unit="line")
    with tempfile.TemporaryDirectory(prefix="mongo-runevents-import-") as folder:
        stage = Stage(Path(folder))
        source: Source | None = None
        try:
            try:
                source = open_source(args.source, args.format, Path(folder))
                owners = load_owners(args, source)
                labels = read_sources(args, source, owners, stage, summary, progress)
            except (SourceError, OSError) as exc:
                progress.finish()
                return fail(str(exc), None)
            progress.finish()
            if summary.stopped_at is None:
                await _import_staged(context, stage, labels, summary, progress)
        finally:
            stage.close()
            if source is not None and source.database is not None:
                source.database.close()
    return _report(args, summary)


def read_sources(
    args: argparse.Namespace,
    source: Source,
    owners: Owners,
    stage: Stage,
    summary: ImportSummary,
    progress: Progress,
) -> list[str]:
    """Read and check every line (or row) into ``stage``, owners set; return the labels."""
    summary.format = source.fmt
    summary.files = len(source.labels)
    sizes = [_file_size(path) for path in source.files]
    progress.totals(size=sum(sizes), files=len(source.labels))
    readers: list[Iterator[Item]] = (
        [read_database(source.database)]
        if source.database is not None
        else [read_file(path, source.fmt) for path in source.files]
    )
    done_bytes = 0
    for number, (reader, label) in enumerate(zip(readers, source.labels, strict=True)):
        size = sizes[number] if number < len(sizes) else 0
        in_file = 0
        for item in reader:
            summary.lines += 1
            if isinstance(item, BadLine):
                bad = BadLine(label, item.line_number, item.reason)
                summary.bad += 1
                summary.bad_list.append(
                    {"source": label, "line": item.line_number, "reason": item.reason}
                )
                if args.on_error == "stop":
                    summary.stopped_at = (
                        f"stopped at a bad line (--on-error stop): {bad}; nothing was written; "
                        "fix it and run the import again"
                    )
                    return source.labels
                progress.note(f"{PROG}: skipped {bad}")
                progress.advance()
                continue
            had_owner = item.record.get("user_id") is not None
            if owners.apply(item.record):
                summary.owners_set += not had_owner
            else:
                summary.unowned += 1
            in_file += stage.add(number, item.line_number, item.record)
            progress.tally.size = done_bytes + min(in_file, size)
            progress.advance()
        done_bytes += size
        progress.tally.size = done_bytes
        progress.advance(0, files=1)
    return source.labels


async def _import_staged(
    context: Context, stage: Stage, labels: list[str], summary: ImportSummary, progress: Progress
) -> None:
    """Import the staged records in batches of whole threads, as ``--on-conflict`` says."""
    args, store = context.args, context.store
    # A dry run, and --on-conflict stop (which writes nothing if any record
    # collides), plan every batch first; stop plans as skip, to list the conflicts.
    if args.dry_run or args.on_conflict == "stop":
        planned_as: OnConflict = "skip" if args.on_conflict == "stop" else args.on_conflict
        progress.restart("checking", total=stage.count, unit="event")
        for batch in stage.batches(args.batch):
            result = await store.import_events(
                [item.record for item in batch], on_conflict=planned_as, dry_run=True
            )
            _tally(summary, result, _where(batch, labels))
            progress.advance(len(batch), size=sum(item.size for item in batch))
        progress.finish()
        if args.on_conflict == "stop" and summary.conflicts:
            first = summary.conflict_list[0]
            summary.inserted = summary.skipped = 0  # stopping, nothing is written
            summary.stopped_at = (
                f"stopped: {number_of(summary.conflicts, 'record')} collide with other events "
                f"(--on-conflict stop), the first {first['source']}:{first['line']} "
                f"(thread {first['thread_id']!r}, seq {first['seq']}): {first['reason']}; "
                + ("this was a dry run" if args.dry_run else "nothing was written")
            )
        if args.dry_run or summary.stopped_at is not None:
            _notes(summary, args, dry_run=True)
            return
        summary.inserted = summary.already_there = summary.conflicts = 0
        summary.renumbered = summary.skipped = 0
        summary.conflict_list.clear()
        summary.renumbered_list.clear()
    progress.restart("importing", total=stage.count, unit="event")
    try:
        for batch in stage.batches(args.batch):
            result = await store.import_events(
                [item.record for item in batch], on_conflict=args.on_conflict
            )
            _tally(summary, result, _where(batch, labels))
            progress.advance(len(batch), size=sum(item.size for item in batch))
    except (KeyboardInterrupt, asyncio.CancelledError):
        progress.finish()
        print(
            f"{PROG}: interrupted after {number_of(summary.inserted, 'event')} inserted and "
            f"{summary.already_there:,} already there, of {stage.count:,} read; the call in "
            "flight may have partly landed. Running the same import again completes it: what "
            "landed is found already there",
            file=sys.stderr,
            flush=True,
        )
        raise
    progress.finish()
    _notes(summary, args, dry_run=False)


def _where(batch: list[Staged], labels: list[str]) -> _Where:
    return _Where(labels, [(item.source, item.line) for item in batch])


def _tally(summary: ImportSummary, result: ImportResult, where: _Where) -> None:
    """Add one call's result to the summary, with each conflict and renumbering located."""
    summary.inserted += result.inserted
    summary.already_there += result.already_there
    summary.conflicts += len(result.conflicts)
    summary.renumbered += len(result.renumbered)
    summary.skipped += len(result.skipped)
    skipped = {item.index for item in result.skipped}
    for conflict in result.conflicts:
        source, line = where(conflict.index).rsplit(":", 1)
        reason = conflict.reason
        if conflict.other is not None:
            # The library names the other record by its position in the call.
            reason = (
                f"{where(conflict.other)} has seq {conflict.seq} too"
                if "event_id" not in reason
                else reason.replace(f"(record {conflict.other})", f"({where(conflict.other)})")
            )
        summary.conflict_list.append(
            {
                "source": source,
                "line": int(line),
                "thread_id": conflict.thread_id,
                "seq": conflict.seq,
                "reason": reason,
                "outcome": "skipped" if conflict.index in skipped else "renumbered",
            }
        )
    for change in result.renumbered:
        source, line = where(change.index).rsplit(":", 1)
        summary.renumbered_list.append(
            {
                "source": source,
                "line": int(line),
                "thread_id": change.thread_id,
                "old_seq": change.old_seq,
                "new_seq": change.new_seq,
            }
        )


#: How many renumbered records a thread's line on stderr spells out.
_SHOWN_PER_THREAD = 5


def _notes(summary: ImportSummary, args: argparse.Namespace, *, dry_run: bool) -> None:
    """Print each skipped (or, with stop, conflicting) record and, per thread, the renumbering."""
    if args.json:
        return
    for conflict in summary.conflict_list:
        if conflict["outcome"] == "skipped" or args.on_conflict != "renumber":
            verb = "would skip" if dry_run else "skipped"
            if args.on_conflict == "stop":
                verb = "conflict at"
            print(
                f"{PROG}: {verb} {conflict['source']}:{conflict['line']} "
                f"(thread {conflict['thread_id']!r}, seq {conflict['seq']}): {conflict['reason']}",
                file=sys.stderr,
            )
    if args.on_conflict != "renumber":
        return
    by_thread: dict[str, list[dict[str, Any]]] = {}
    for change in summary.renumbered_list:
        by_thread.setdefault(change["thread_id"], []).append(change)
    verb = "would renumber" if dry_run else "renumbered"
    for thread_id, changes in by_thread.items():
        shown = ", ".join(
            f"{c['source']}:{c['line']} seq {c['old_seq']} -> {c['new_seq']}"
            for c in changes[:_SHOWN_PER_THREAD]
        )
        more = len(changes) - _SHOWN_PER_THREAD
        rest = f" and {more:,} more (--mapping FILE lists them all)" if more > 0 else ""
        print(
            f"{PROG}: {verb} {number_of(len(changes), 'record')} of thread {thread_id!r}: "
            f"{shown}{rest}",
            file=sys.stderr,
        )


def _write_mapping(path: str, renumbered: list[dict[str, Any]]) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as file:
        for change in renumbered:
            file.write(json_line(change) + "\n")


def _report(args: argparse.Namespace, summary: ImportSummary) -> int:
    """Print the summary; exit 1 when a line was skipped or refused, or the import stopped."""
    if args.mapping and summary.renumbered_list:
        try:
            _write_mapping(args.mapping, summary.renumbered_list)
        except OSError as exc:
            return fail(f"cannot write {args.mapping}: {exc.strerror or exc}", None)
    if args.json:
        print_json(asdict(summary))
    else:
        prefix = "dry run, nothing written: " if summary.dry_run else ""
        text = (
            f"{prefix}read {number_of(summary.files, 'file')} ({summary.format}), "
            f"{number_of(summary.lines, 'line')}: {summary.inserted:,} inserted, "
            f"{summary.already_there:,} already there, {summary.bad:,} bad"
        )
        if summary.owners_set:
            text += f"; owner set on {number_of(summary.owners_set, 'event')}"
        if summary.conflicts or summary.skipped:
            text += (
                f"; {number_of(summary.conflicts, 'conflict')}: "
                f"{summary.renumbered:,} renumbered, {summary.skipped:,} skipped"
            )
        print(text)
    if summary.unowned and not args.json:
        print(
            f"{PROG}: {number_of(summary.unowned, 'event')} have no owner (no user_id): a "
            "gateway that reads by user (DeerFlow's) shows them to nobody; give --owners "
            "(DeerFlow's database, or a thread-to-user file) or --owner USER_ID and run the "
            "import again",
            file=sys.stderr,
        )
    if summary.stopped_at is not None:
        return fail(summary.stopped_at, None)
    refused = summary.bad + summary.skipped
    if refused:
        return fail(
            f"{number_of(refused, 'line')} not imported ({summary.bad:,} bad, "
            f"{summary.skipped:,} skipped for a conflict); see above",
            None,
        )
    return 0
