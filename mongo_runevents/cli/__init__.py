"""The ``mongo-runevents`` command line.

Every command but ``bench`` works on a :class:`~mongo_runevents.MongoRunEventStore`.
The server is the one named by ``--uri`` (or the ``MONGODB_URI`` environment
variable); without either, an embedded SecantusDB server is started in
``--data-dir`` for the duration of the command (the ``embedded`` extra).

The package:

- ``options``: the global options, argument types, URI masking, the
  :class:`Command` types and the parser built from a table of them;
- ``output``: JSON, JSON Lines, previews, event lines, sizes; ``progress``: the
  import's progress display;
- ``runner``: running a command: the embedded server, the store, error
  messages and exit codes;
- one module per group of commands: ``demo`` (with ``workload``, its synthetic
  agent thread, imported only when the demo runs), ``setup`` (init, stats),
  ``reading`` (threads, messages, events, count, tail), ``deleting`` (delete),
  ``exporting`` (export), ``importing`` (import: what
  :mod:`mongo_runevents.source_import` did, printed), ``verifying`` (verify),
  ``serve`` (the web viewer) and ``bench``.

Commands live in the :data:`COMMANDS` table below: each has a name, a help
text, a function adding its own options and an async function running it on a
store (:class:`Command`), or a plain function running it without one
(:class:`LocalCommand`). To add a command, write those two functions in the
module of its group (or a new one beside them) and add an entry to the table.

Exit codes: 0 success (a declined ``delete`` too); 1 a store error, a bad
input file, a database without events for a read command, or a refused
operation (one line on stderr, no traceback); 2 a usage error (reported by
argparse); 130 interrupted.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from ..mongo import DEFAULT_DATABASE
from ..uri import mask_uri
from .bench import add_bench_arguments, run_bench
from .deleting import add_delete_arguments, run_delete
from .demo import add_demo_arguments, run_demo
from .exporting import add_export_arguments, run_export
from .importing import add_import_arguments, run_import
from .options import (
    DEFAULT_DATA_DIR,
    PROG,
    Command,
    Context,
    LocalCommand,
    add_thread_and_user_arguments,
    make_parser,
)
from .progress import Progress
from .reading import (
    PAGE_SIZE,
    add_events_arguments,
    add_messages_arguments,
    add_runs_arguments,
    add_tail_arguments,
    add_threads_arguments,
    run_count,
    run_events,
    run_messages,
    run_runs,
    run_tail,
    run_threads,
)
from .runner import run_command
from .serve import add_serve_arguments, run_serve
from .setup import (
    add_init_arguments,
    add_stats_arguments,
    init_store_options,
    run_init,
    run_stats,
)
from .verifying import add_verify_arguments, run_verify

__all__ = [
    "COMMANDS",
    "DEFAULT_DATABASE",
    "DEFAULT_DATA_DIR",
    "PAGE_SIZE",
    "PROG",
    "Command",
    "Context",
    "LocalCommand",
    "Progress",
    "build_parser",
    "main",
    "mask_uri",
    "run_bench",
    "run_count",
    "run_delete",
    "run_demo",
    "run_events",
    "run_export",
    "run_import",
    "run_init",
    "run_messages",
    "run_runs",
    "run_serve",
    "run_stats",
    "run_tail",
    "run_threads",
    "run_verify",
]


#: The subcommands, in the order ``--help`` lists them.
COMMANDS: Sequence[Command | LocalCommand] = (
    Command(
        name="demo",
        help="write a realistic agent thread (several runs with tool calls) and read it back",
        add_arguments=add_demo_arguments,
        run=run_demo,
    ),
    Command(
        name="init",
        help="create the indexes; optionally a schema validator, retention (TTL) and sharding",
        add_arguments=add_init_arguments,
        run=run_init,
        store_options=init_store_options,
    ),
    Command(
        name="stats",
        help="threads, events per category, collection and index sizes",
        add_arguments=add_stats_arguments,
        run=run_stats,
    ),
    Command(
        name="threads",
        help="a page of threads, newest activity first (--before CURSOR for the next page)",
        add_arguments=add_threads_arguments,
        run=run_threads,
        reads_events=True,
    ),
    Command(
        name="messages",
        help="a page of a thread's messages (newest first page, or around --before / --after)",
        add_arguments=add_messages_arguments,
        run=run_messages,
        reads_events=True,
    ),
    Command(
        name="runs",
        help="the runs of a thread: outcome, events, time and the run id `events` takes",
        add_arguments=add_runs_arguments,
        run=run_runs,
        reads_events=True,
    ),
    Command(
        name="events",
        help="the events of one run, every category, optionally filtered",
        add_arguments=add_events_arguments,
        run=run_events,
        reads_events=True,
    ),
    Command(
        name="count",
        help="the number of message events of a thread",
        add_arguments=add_thread_and_user_arguments,
        run=run_count,
        reads_events=True,
    ),
    Command(
        name="tail",
        help="print a thread's events; with --follow, keep printing new ones until Ctrl-C",
        add_arguments=add_tail_arguments,
        run=run_tail,
    ),
    Command(
        name="delete",
        help="delete a thread, or one run of it (asks first unless --yes)",
        add_arguments=add_delete_arguments,
        run=run_delete,
        reads_events=True,
    ),
    Command(
        name="export",
        help="write the records of one thread, or of all, as JSON Lines",
        add_arguments=add_export_arguments,
        run=run_export,
    ),
    Command(
        name="import",
        help="import records (export's JSON Lines, or DeerFlow's JSONL or SQL store); "
        "re-running never duplicates",
        add_arguments=add_import_arguments,
        run=run_import,
    ),
    Command(
        name="verify",
        help="compare every thread of a source (export, DeerFlow's JSONL or database) with "
        "the store; exit 0 only when they agree",
        add_arguments=add_verify_arguments,
        run=run_verify,
    ),
    Command(
        name="serve",
        help="serve a read-only web viewer of threads, runs and events (the web extra)",
        add_arguments=add_serve_arguments,
        run=run_serve,
    ),
    LocalCommand(
        name="bench",
        help="run the benchmark (python -m benchmarks.run) from a checkout of the repository",
        add_arguments=add_bench_arguments,
        run=run_bench,
    ),
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser: global options and one subparser per entry of :data:`COMMANDS`."""
    return make_parser(COMMANDS)


def main(argv: list[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    args = build_parser().parse_args(argv)
    return run_command(args.command_spec, args)
