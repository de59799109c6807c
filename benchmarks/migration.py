"""How fast ``import`` and ``verify`` move a DeerFlow JSONL store, and how much memory they take.

    python -m benchmarks.migration [--events 20000] [--threads 20] [--uri URI]

Writes a DeerFlow-shaped JSONL folder (journal batches of 20: human input,
AI replies with tool calls, tool results, traces), then runs ``mongo-runevents
import`` and ``verify`` as separate processes under ``/usr/bin/time -v`` and
prints events per second and each command's peak resident memory. Without
``--uri`` it starts an embedded SecantusDB server (a one-member replica set:
every chunk is a transaction) in a temporary folder.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from tests.deerflow_sources import write_jsonl_store


def _batches(events: int, threads: int) -> list[list[dict[str, object]]]:
    per_thread = events // threads
    batches = []
    for t in range(threads):
        thread_id = f"thread-{t:03d}"
        batch: list[dict[str, object]] = []
        for n in range(per_thread):
            kind = n % 4
            batch.append(
                {
                    "thread_id": thread_id,
                    "run_id": f"run-{n // 200}",
                    "event_type": ("llm.ai.response", "llm.tool.result", "llm.request", "run.step")[
                        kind
                    ],
                    "category": ("message", "message", "trace", "trace")[kind],
                    "content": {
                        "type": "ai" if kind == 0 else "tool",
                        "content": "lorem ipsum dolor sit amet " * 12,
                        "tool_calls": [
                            {"name": "web_search", "args": {"q": f"query {n}"}, "id": f"c{n}"}
                        ],
                        "usage_metadata": {"input_tokens": 1200 + n, "output_tokens": 80},
                    },
                    "metadata": {"caller": "lead_agent", "latency_ms": 812.5},
                    "created_at": f"2026-05-04T09:{n // 6000 % 60:02d}:{n // 100 % 60:02d}.{n:06d}+00:00",
                }
            )
            if len(batch) == 20:
                batches.append(batch)
                batch = []
        if batch:
            batches.append(batch)
    return batches


@contextlib.contextmanager
def _server(folder: Path) -> Iterator[str]:
    from mongo_runevents.embedded import EmbeddedServer

    with EmbeddedServer(folder / "db") as server:
        yield server.uri


def _timed(argv: list[str]) -> tuple[float, int, str]:
    """Seconds, peak resident KiB and standard output of a command."""
    started = time.perf_counter()
    done = subprocess.run(
        ["/usr/bin/time", "-v", *argv], capture_output=True, text=True, check=False
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{argv[3:5]} failed ({done.returncode}): {done.stderr[-2000:]}")
    peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)
    return elapsed, int(peak.group(1)) if peak else 0, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--threads", type=int, default=20)
    parser.add_argument("--uri")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-migration-") as name:
        folder = Path(name)
        source = folder / ".deer-flow"
        write_jsonl_store(source, _batches(args.events, args.threads))
        size = sum(p.stat().st_size for p in source.rglob("*.jsonl"))
        with contextlib.ExitStack() as stack:
            uri = args.uri or stack.enter_context(_server(folder))
            cli = [
                sys.executable,
                "-m",
                "mongo_runevents.cli",
                "--uri",
                uri,
                "--database",
                "bench_migration",
            ]
            results = {}
            for name_, command in (
                ("import", ["import", str(source), "--owner", "default"]),
                ("verify", ["verify", str(source), "--owner", "default"]),
                ("import again", ["import", str(source), "--owner", "default"]),
            ):
                seconds, peak, out = _timed([*cli, *command])
                results[name_] = {
                    "seconds": round(seconds, 2),
                    "events_per_second": round(args.events / seconds),
                    "peak_rss_mib": round(peak / 1024, 1),
                    "summary": out.strip().splitlines()[-1] if out.strip() else "",
                }
        print(
            json.dumps(
                {
                    "events": args.events,
                    "threads": args.threads,
                    "source_mib": round(size / 2**20, 1),
                    **results,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
