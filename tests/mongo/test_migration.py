"""A DeerFlow team's migration, end to end, while its new gateway is live.

DeerFlow's JSONL folder and its SQLite database, shaped as its code writes them
(:mod:`tests.deerflow_sources`), are imported with the command line while a
live writer appends to the same threads and ``watch()`` follows each of them:
nothing may be lost, changed or skipped, owners must be set, ``verify`` must
agree, and running everything again must change nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path
from typing import Any

import pytest

from mongo_runevents import MongoRunEventStore
from mongo_runevents.cli import main
from tests.deerflow_sources import deerflow_db_reads_back, write_jsonl_store, write_sqlite_store

OWNERS = {"chat-a": "alice", "chat-b": "bob", "chat-db": "carol", "chat-db-2": "alice"}
_START = "2026-05-04T09:00:00"


def _time(n: int) -> str:
    return f"{_START}.{n:06d}+00:00"


def _event(thread_id: str, run_id: str, n: int, **fields: Any) -> dict[str, Any]:
    return {
        "thread_id": thread_id,
        "run_id": run_id,
        "event_type": "llm.ai.response",
        "category": "message",
        "content": {"type": "ai", "content": f"answer {n}", "tool_calls": [], "id": f"m{n}"},
        "metadata": {"caller": "lead_agent", "usage": {"total_tokens": n}},
        "created_at": _time(n),
        **fields,
    }


def _jsonl_batches() -> list[list[dict[str, Any]]]:
    """Two threads: runs of journal batches, a thread's repeated message, seeds of two runs in one file."""
    batches = []
    n = 0
    for thread_id in ("chat-a", "chat-b"):
        for run in range(3):
            batch = []
            for _ in range(20):
                n += 1
                category = "message" if n % 3 else "trace"
                batch.append(_event(thread_id, f"{thread_id}-run-{run}", n, category=category))
            batches.append(batch)
    # The same message three times (same content and time, seqs in a row).
    same = _event("chat-a", "chat-a-run-3", 999, content="again")
    batches.append([dict(same) for _ in range(3)])
    # A branch seed: events of two runs written by one put_batch, in the first run's file.
    batches.append(
        [
            _event("chat-b", "seed-run-x", 1001, event_type="run.seed", category="lifecycle"),
            _event("chat-b", "seed-run-y", 1002, content="seeded", event_type="llm.human.input"),
        ]
    )
    return batches


def _db_events() -> list[dict[str, Any]]:
    """Rows whose values DeerFlow's SQL store marks or converts: text that looks like JSON, scalars."""
    tricky: list[Any] = ['{"answer": 42}', 5, None, True, "5", "null", [1, "two"], {"k": [1.5]}]
    events = [
        _event("chat-db", "db-run", 2000 + i, content=value, user_id=None if i % 2 else "carol")
        for i, value in enumerate(tricky)
    ]
    events += [_event("chat-db-2", "db-run-2", 3000 + i) for i in range(30)]
    # An offset other than UTC: SQLite drops it, DeerFlow serves the clock time as UTC.
    events.append(_event("chat-db-2", "db-run-2", 3100, created_at="2026-05-04T11:00:00.5+02:00"))
    return events


def _run_cli(uri: str, database: str, *argv: str) -> int:
    return main(["--uri", uri, "--database", database, *argv])


async def _migrate_while_live(
    uri: str, database: str, commands: list[list[str]], threads: list[str]
) -> tuple[list[int], dict[str, list[dict[str, Any]]]]:
    """Run the commands while a live writer appends to ``threads`` and watchers follow them."""
    async with MongoRunEventStore.from_uri(uri, database=database) as live:
        seen: dict[str, list[dict[str, Any]]] = {thread: [] for thread in threads}
        stop = asyncio.Event()

        async def follow(thread_id: str) -> None:
            async for record in live.watch(thread_id, after_seq=0, poll_interval=0.05):
                seen[thread_id].append(record)

        wrote_once = asyncio.Event()

        async def write() -> None:
            n = 0
            while not stop.is_set():
                for thread_id in threads:
                    n += 1
                    await live.put_batch(
                        [
                            _event(
                                thread_id,
                                "live-run",
                                n,
                                content=f"live {n}",
                                created_at=None,
                                user_id=OWNERS[thread_id],
                            )
                        ]
                    )
                wrote_once.set()
                await asyncio.sleep(0.01)

        watchers = [asyncio.create_task(follow(thread)) for thread in threads]
        writer = asyncio.create_task(write())
        await wrote_once.wait()  # the new gateway serves every thread before the import
        codes = []
        for argv in commands:
            codes.append(await asyncio.to_thread(_run_cli, uri, database, *argv))
        stop.set()
        await writer
        # The watchers catch up with everything stored, then stop.
        stored = {}
        for thread_id in threads:
            stored[thread_id] = [r async for r in live.export_events(thread_id)]
        for _ in range(200):
            if all(len(seen[t]) >= len(stored[t]) for t in threads):
                break
            await asyncio.sleep(0.05)
        for task in watchers:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for thread in threads:
            assert seen[thread] == stored[thread], f"the watcher of {thread} skipped or reordered"
        return codes, stored


async def test_a_deerflow_migration_while_live_loses_changes_and_skips_nothing(
    server_uri: str, mongo_database: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """JSONL folder and SQLite database imported while live: all kept, owners set, verify agrees, rerun idle."""
    database = mongo_database.name
    folder = tmp_path / ".deer-flow"
    batches = _jsonl_batches()
    write_jsonl_store(folder, batches)
    db_file = tmp_path / "deerflow.db"
    db_events = write_sqlite_store(db_file, _db_events(), OWNERS)
    db_url = f"sqlite:///{db_file}"
    threads = sorted(OWNERS)
    commands = [
        ["import", str(folder), "--owners", db_url],
        ["import", db_url],
        ["verify", str(folder), "--owners", db_url],
        ["verify", db_url],
    ]

    codes, stored = await _migrate_while_live(server_uri, database, commands, threads)
    captured = capsys.readouterr()
    assert codes == [0, 0, 0, 0], captured.err
    # The gateway was live: it wrote before the import (which then renumbered) and after.
    for thread_id in threads:
        runs = [r["run_id"] for r in stored[thread_id]]
        assert runs[0] == "live-run"
        assert runs[-1] == "live-run"
    assert "renumbered" in captured.err

    # Nothing lost: every source event is stored once, in the source's order, with its owner.
    jsonl_lines = [
        json.loads(line)
        for path in sorted(folder.glob("threads/*/runs/*.jsonl"))
        for line in path.read_text(encoding="utf-8").splitlines()
    ]
    assert len(jsonl_lines) == sum(len(batch) for batch in batches) == 125

    def imported(thread_id: str) -> list[dict[str, Any]]:
        return [r for r in stored[thread_id] if r["run_id"] != "live-run"]

    for thread_id in ("chat-a", "chat-b"):
        source = sorted(
            (line for line in jsonl_lines if line["thread_id"] == thread_id),
            key=lambda line: line["seq"],
        )
        mine = imported(thread_id)
        keys = ("run_id", "event_type", "category", "content", "metadata", "created_at")
        assert [{k: r[k] for k in keys} for r in mine] == [{k: s[k] for k in keys} for s in source]
        assert {r["user_id"] for r in mine} == {OWNERS[thread_id]}
    assert [r["content"] for r in imported("chat-a")].count("again") == 3
    assert {r["run_id"] for r in imported("chat-b")} >= {"seed-run-x", "seed-run-y"}

    # Nothing changed: each DB row reads back as DeerFlow's DbRunEventStore returns it.
    for thread_id in ("chat-db", "chat-db-2"):
        expected = [deerflow_db_reads_back(e) for e in db_events if e["thread_id"] == thread_id]
        mine = imported(thread_id)
        for record, want in zip(mine, expected, strict=True):
            assert {k: record[k] for k in want if k != "seq"} == {
                k: v for k, v in want.items() if k != "seq"
            }
        assert {r["user_id"] for r in mine} == {OWNERS[thread_id]}
    tricky = [r["content"] for r in imported("chat-db")]
    assert tricky == ['{"answer": 42}', 5, None, True, "5", "null", [1, "two"], {"k": [1.5]}]
    assert imported("chat-db-2")[-1]["created_at"] == "2026-05-04T11:00:00.500000+00:00"

    # Owners: each owner's UI reads show the imported messages.
    async with MongoRunEventStore.from_uri(server_uri, database=database) as store:
        for thread_id, owner in OWNERS.items():
            messages = await store.list_messages(thread_id, limit=1000, user_id=owner)
            wanted = [r for r in stored[thread_id] if r["category"] == "message"]
            assert messages == wanted

    # Run again: nothing changes.
    again = [await asyncio.to_thread(_run_cli, server_uri, database, *argv) for argv in commands]
    out = capsys.readouterr().out
    assert again == [0, 0, 0, 0]
    assert out.count(" 0 inserted") == 2
    async with MongoRunEventStore.from_uri(server_uri, database=database) as store:
        for thread_id in threads:
            again_stored = [r async for r in store.export_events(thread_id)]
            assert again_stored == stored[thread_id]
