"""Run the benchmark and write its results.

    python -m benchmarks.run [--quick] [--uri URI] [--out DIR [--replace]]

Without ``--uri`` it starts an embedded SecantusDB (replica-set mode, so writes
run in transactions) in a temporary folder and stops it at the end. With
``--uri`` it uses that server, in databases named ``bench_*`` that it drops at
the end. ``--quick`` runs fewer rounds and stops the scale test at 10,000
events (under a minute); the full run takes about four minutes on two cores.

The results go to ``--out DIR``, or without it to a new temporary folder
(printed at the end): a run never replaces the committed results in
``docs/benchmarks`` by accident. A folder that already holds results is
refused unless ``--replace`` is given (that is how the committed results are
renewed: ``--out docs/benchmarks --replace``).

Needs the ``bench`` extra (matplotlib for the plots) and the ``embedded`` extra
(SecantusDB) unless ``--uri`` is given; the peers (``openai-agents[mongodb]``,
``langchain-mongodb``) are compared only when installed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pymongo
from pymongo import AsyncMongoClient

from mongo_runevents import __version__

from . import payloads, report
from .client_cpu import client_cpu
from .common import Bench
from .concurrency import concurrency
from .cpu import cpu
from .indexes import indexes
from .peers import peers
from .revision import package_revision
from .scale import scale
from .store_vs_raw import deletes, reads, writes


def _source_digest() -> str:
    """A short hash of the package's source as imported: tells two runs' code apart."""
    import hashlib

    import mongo_runevents

    digest = hashlib.sha256()
    for path in sorted(Path(mongo_runevents.__file__).parent.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


async def _run(uri: str, server: str, quick: bool, events: list[dict[str, Any]]) -> dict[str, Any]:
    store_client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri)
    raw_client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri)
    bench = Bench(uri, quick, store_client, raw_client, events)
    results: dict[str, Any] = {}
    try:
        build = await raw_client.admin.command("buildInfo")
        probe = await bench.store(bench.database("probe"))
        bench.transactions = probe.uses_transactions
        results["meta"] = {
            "server": f"{server}, reports MongoDB {build.get('version')}",
            "transactions": bench.transactions,
        }
        bench.log("client CPU per event")
        results["cpu"] = cpu(bench)
        results["client_cpu"] = await client_cpu(bench, 7 if quick else 15)
        results["indexes"] = await indexes(bench, 5 if quick else 15)
        results["store_vs_raw"] = await writes(bench)
        results["store_vs_raw"] += await reads(bench)
        results["store_vs_raw"] += await deletes(bench)
        results["peers"] = await peers(bench)
        results["concurrency"] = await concurrency(bench)
        results["scale"] = await scale(bench)
        return results
    finally:
        for database in bench.databases:
            await raw_client.drop_database(database)
        await store_client.close()
        await raw_client.close()


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, start the server if needed, run every section, write the results."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer rounds, scale up to 10,000")
    parser.add_argument("--uri", help="use this MongoDB instead of an embedded SecantusDB")
    parser.add_argument(
        "--out",
        help="folder for the results (default: a new temporary folder; never the committed "
        "docs/benchmarks unless named)",
    )
    parser.add_argument(
        "--replace",
        action="store_true",
        help="write over results already in --out (to renew docs/benchmarks)",
    )
    args = parser.parse_args(argv)
    out = _output_folder(args.out, replace=args.replace)
    if out is None:
        print(
            f"{args.out} already holds benchmark results; pass --replace to write over them, "
            "or another --out",
            file=sys.stderr,
        )
        return 2
    # The code state now, next to when the package was imported, not at the end.
    git, source = package_revision(), _source_digest()
    started = time.monotonic()
    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    print("generating realistic events...", file=sys.stderr, flush=True)
    events = payloads.agent_events(1200 if args.quick else 3000)
    if args.uri:
        results = asyncio.run(_run(args.uri, "given by --uri", args.quick, events))
    else:
        from mongo_runevents.embedded import EmbeddedServer

        with tempfile.TemporaryDirectory(prefix="bench-secantus-") as folder:
            version = _distribution_version("SecantusDB")
            with EmbeddedServer(Path(folder) / "data") as server:
                results = asyncio.run(
                    _run(server.uri, f"embedded SecantusDB {version}", args.quick, events)
                )
    command = "python -m benchmarks.run" + (" --quick" if args.quick else "")
    results["meta"].update(
        command=command,
        quick=args.quick,
        started_at=started_at,
        seconds=time.monotonic() - started,
        python=platform.python_version(),
        pymongo=pymongo.version,
        mongo_runevents=__version__,
        git=git,
        source_sha256=source,
        cpus=os.cpu_count(),
        platform=platform.platform(),
    )
    report.write(results, out)
    print(f"results in {out}/results.md", file=sys.stderr)
    return 0


def _output_folder(given: str | None, *, replace: bool) -> Path | None:
    """Where the results go: ``given`` (``None`` if it holds results and not ``replace``), else a temp folder."""
    if given is None:
        return Path(tempfile.mkdtemp(prefix="mongo-runevents-bench-"))
    out = Path(given)
    if (out / "results.json").exists() and not replace:
        return None
    return out


def _distribution_version(name: str) -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "(version unknown)"


if __name__ == "__main__":
    sys.exit(main())
