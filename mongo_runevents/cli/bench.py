"""``bench``: the benchmark of a checkout of the repository (``python -m benchmarks.run``)."""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from pathlib import Path

from ..uri import mask_uri
from .options import PROG


def add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``bench``: what follows ``--`` goes to the benchmark."""
    parser.add_argument(
        "bench_args",
        nargs=argparse.REMAINDER,
        metavar="-- ARGS",
        help="options for python -m benchmarks.run, after -- (e.g. -- --quick)",
    )


def run_bench(args: argparse.Namespace) -> int:
    """Run ``python -m benchmarks.run`` from a checkout, on the same --uri."""
    if not (Path.cwd() / "benchmarks" / "run.py").is_file():
        print(
            f"{PROG}: error: no benchmarks/ folder here. The benchmark ships with the source, "
            "not with the package: in a checkout of the repository, run "
            f"'{PROG} bench -- --quick' (or 'python -m benchmarks.run --help') from its root",
            file=sys.stderr,
        )
        return 1
    extra = list(args.bench_args)
    if extra[:1] == ["--"]:
        extra = extra[1:]
    uri_args = ["--uri", args.uri] if args.uri else []
    shown = ["python", "-m", "benchmarks.run", *(["--uri", mask_uri(args.uri)] if args.uri else [])]
    print(f"{PROG}: running {shlex.join([*shown, *extra])}", file=sys.stderr)
    command = [sys.executable, "-m", "benchmarks.run", *uri_args, *extra]
    return subprocess.run(command, check=False).returncode
