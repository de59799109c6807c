"""``export``: the records of one thread, or of all, as JSON Lines (what ``import`` reads back)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import AsyncGenerator
from contextlib import aclosing
from pathlib import Path
from typing import TextIO

from ..records import StoredRecord
from .options import Context, non_empty
from .output import json_line, number_of, print_json
from .progress import Progress
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
    records: AsyncGenerator[StoredRecord, None], stream: TextIO, progress: Progress
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
    progress = Progress("exporting")
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
