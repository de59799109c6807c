"""``verify``: compare every thread of a source with the store, after (or during) a migration.

The source is read exactly as ``import`` reads it (same formats, same owners
from ``--owners`` / ``--owner``), staged, and checked a batch of whole threads
at a time (:func:`mongo_runevents.verify.verify_threads`). It exits 0 only when
the store holds every record and every owner's UI pages show every message;
each difference is listed (all of them with ``--json``).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..formats import FORMATS, SourceError
from ..source_import import SourceImportResult, read_into_stage
from ..staging import Stage
from ..transfer import Source, load_owners, open_source
from ..verify import Difference, VerifyResult, verify_threads
from .options import PROG, Context, positive_int
from .output import number_of, print_json
from .progress import Progress
from .runner import fail

#: Differences printed to standard error (``--json`` lists them all).
_SHOWN = 50


def add_verify_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``verify``."""
    parser.add_argument(
        "source",
        metavar="SOURCE",
        help="what was imported: a file, a folder (DeerFlow's JSONL store, or .jsonl files), "
        "DeerFlow's database (sqlite:///path/deerflow.db, postgresql://...), or - for "
        "standard input",
    )
    parser.add_argument(
        "--format", choices=FORMATS, default="auto", help="as for import (default: auto)"
    )
    parser.add_argument(
        "--owners",
        metavar="URL_OR_FILE",
        help="the owners the import was given (as for import): each event is expected "
        "with that owner",
    )
    parser.add_argument("--owner", metavar="USER_ID", help="the default owner the import was given")
    parser.add_argument(
        "--batch",
        type=positive_int,
        default=2000,
        metavar="N",
        help="records compared per step, in whole threads (default: 2000)",
    )


async def run_verify(context: Context) -> int:
    """Compare the source with the store; exit 0 only when they agree."""
    args = context.args
    read = SourceImportResult(source=args.source, format=args.format)
    total = VerifyResult()
    progress = Progress("reading", unit="line")
    with tempfile.TemporaryDirectory(prefix="mongo-runevents-verify-") as folder:
        stage = Stage(Path(folder))
        source: Source | None = None
        try:
            try:
                source = open_source(args.source, args.format, Path(folder))
                owners = load_owners(args.owners, args.owner, source)
                # A bad line is a difference, listed; reading goes on.
                read_into_stage(source, owners, stage, read, progress=progress)
            except (SourceError, OSError) as exc:
                progress.finish()
                return fail(str(exc), None)
            progress.finish()
            progress.restart("verifying", total=stage.count, unit="event")
            labels = source.labels
            for batch in stage.batches(args.batch):

                def where(index: int, batch: list[Any] = batch) -> str:
                    return f"{labels[batch[index].source]}:{batch[index].line}"

                found = await verify_threads(context.store, [item.record for item in batch], where)
                total.add(found)
                progress.advance(len(batch), size=sum(item.size for item in batch))
            progress.finish()
        finally:
            stage.close()
            if source is not None:
                source.close()
    for bad in read.bad_lines:
        total.differences.insert(
            0, Difference("", None, "unreadable", bad.reason, str(bad.position))
        )
    return _report(args, read, total)


def _report(args: argparse.Namespace, summary: SourceImportResult, result: VerifyResult) -> int:
    if args.json:
        print_json(
            {
                "source": summary.source,
                "format": summary.format,
                "agrees": result.agrees,
                "lines": summary.lines,
                "bad": len(summary.bad_lines),
                "threads": result.threads,
                "records": result.records,
                "matched": result.matched,
                "renumbered": result.renumbered,
                "store_only": result.store_only,
                "pages": result.pages,
                "differences": [asdict(d) for d in result.differences],
            }
        )
    else:
        for difference in result.differences[:_SHOWN]:
            print(f"{PROG}: {difference}", file=sys.stderr)
        if len(result.differences) > _SHOWN:
            more = len(result.differences) - _SHOWN
            print(f"{PROG}: and {more:,} more differences (--json lists them all)", file=sys.stderr)
        print(
            f"{number_of(result.threads, 'thread')}, {number_of(result.records, 'record')} of "
            f"{summary.format}: {result.matched:,} held as in the source "
            f"({result.renumbered:,} messages under new seqs), {result.store_only:,} events "
            f"in the store beyond the source, {number_of(result.pages, 'UI page')} read; "
            f"{number_of(len(result.differences), 'difference')}"
        )
    if result.differences:
        return fail(
            f"the store differs from {summary.source}: "
            f"{number_of(len(result.differences), 'difference')}",
            None,
        )
    return 0
