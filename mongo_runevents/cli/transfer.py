"""``export`` and ``import``: records as JSON Lines, and DeerFlow's JSONL and SQL stores."""

from __future__ import annotations

import argparse
import itertools
import sys
from collections.abc import AsyncGenerator, Iterator
from contextlib import aclosing
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TextIO

from ..transfer import FORMATS, BadLine, Item, SourceError, detect_format, read_file, source_files
from .options import PROG, Context, non_empty, positive_int
from .output import Progress, json_line, number_of, print_json
from .runner import fail


def add_export_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``export``."""
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


def add_import_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``import``."""
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
