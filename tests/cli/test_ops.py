"""The installed ``mongo-runevents`` console script, run as an operator runs it, on the suite's server."""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient

from mongo_runevents import MongoRunEventStore
from mongo_runevents.deerflow.config import DEFAULT_DATABASE as DEERFLOW_DATABASE
from mongo_runevents.embedded import free_port
from mongo_runevents.mongo import DEFAULT_DATABASE
from tests.backends import database_name
from tests.factories import event, trace

SCRIPT = Path(sys.executable).with_name("mongo-runevents")


@dataclass(frozen=True)
class Run:
    """What one run of the console script did."""

    code: int
    out: str
    err: str
    seconds: float


def run(*argv: str, stdin: str | None = None, timeout: float = 120) -> Run:
    """Run the console script with ``argv`` (no MONGODB_URI from the environment)."""
    env = {name: value for name, value in os.environ.items() if name != "MONGODB_URI"}
    started = time.monotonic()
    done = subprocess.run(
        [str(SCRIPT), *argv],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )
    return Run(done.returncode, done.stdout, done.stderr, time.monotonic() - started)


@pytest.fixture
def database(server_uri: str) -> Iterator[str]:
    """A fresh database name on the suite's server, dropped afterwards."""
    name = database_name()
    yield name
    with MongoClient(server_uri) as client:
        client.drop_database(name)


def put(uri: str, database: str, events: list[dict[str, Any]]) -> None:
    """Write ``events`` with one put_batch."""

    async def write() -> None:
        async with MongoRunEventStore.from_uri(uri, database=database) as store:
            await store.put_batch(events)

    asyncio.run(write())


# --- failing fast and clearly ----------------------------------------------------------


def test_an_unreachable_server_fails_within_the_default_timeout_with_one_line() -> None:
    """No server: exit 1 within seconds, one error line saying what to check, no stray log lines."""
    result = run("--uri", f"mongodb://127.0.0.1:{free_port()}/", "stats")
    assert result.code == 1
    assert result.seconds < 15
    using, error = result.err.splitlines()
    assert using.startswith("mongo-runevents: using mongodb://127.0.0.1:")
    assert error.startswith("mongo-runevents: error: ")
    assert "no server answered within 5 s" in error
    assert "check that the server is running and that --uri (or MONGODB_URI) names it" in error
    assert "Topology" not in error
    assert result.out == ""


def test_timeout_sets_how_long_a_command_waits() -> None:
    """--timeout 1 gives up after about a second and says so."""
    result = run("--timeout", "1", "--uri", f"mongodb://127.0.0.1:{free_port()}/", "count", "t")
    assert result.code == 1
    assert result.seconds < 10
    assert "no server answered within 1 s" in result.err
    assert len(result.err.splitlines()) == 2


def test_a_bad_uri_is_one_line_without_the_password_or_a_traceback() -> None:
    """A password holding an unescaped / is masked everywhere; the error says how to escape it."""
    result = run("--uri", "mongodb://u:Pa55/word@127.0.0.1:27017/", "stats")
    assert result.code == 1
    assert "Pa55" not in result.err + result.out
    assert "Traceback" not in result.err
    using, error = result.err.splitlines()
    assert using == "mongo-runevents: using mongodb://u:***@127.0.0.1:27017/"
    assert error.startswith(
        "mongo-runevents: error: cannot use the MongoDB URI mongodb://u:***@127.0.0.1:27017/: "
    )
    assert "quote_plus" in error  # how to escape it: ours, or pymongo's own hint


def test_the_cli_from_uri_and_deerflow_share_one_default_database() -> None:
    """The CLI, from_uri and the DeerFlow settings all default to the database mongo_runevents."""
    from_uri_default = inspect.signature(MongoRunEventStore.connect).parameters["database"].default
    assert DEFAULT_DATABASE == "mongo_runevents"
    assert from_uri_default == DEERFLOW_DATABASE == DEFAULT_DATABASE
    assert f"(default: {DEFAULT_DATABASE})" in run("stats", "--help").out


# --- stats, threads and --user --------------------------------------------------------


def test_stats_on_a_fresh_database_counts_zero_and_creates_nothing(
    server_uri: str, database: str
) -> None:
    """`stats` on a database that does not exist yet reports zeros and leaves it empty."""
    result = run("--uri", server_uri, "--database", database, "--json", "stats")
    assert result.code == 0, result.err
    stats = json.loads(result.out)
    assert (stats["threads"], stats["events"], stats["events_by_category"]) == (0, 0, {})
    with MongoClient(server_uri) as client:
        assert client[database].list_collection_names() == []


def test_threads_pages_newest_first_and_filters_by_user(server_uri: str, database: str) -> None:
    """`threads` lists newest activity first, pages with --before and keeps --user's threads."""
    for index, name in enumerate(["t-old", "t-mid", "t-new"]):
        put(server_uri, database, [event(name, user_id="alice" if index != 1 else "bob")])
    base = ["--uri", server_uri, "--database", database]

    first = run(*base, "--json", "threads", "--limit", "2")
    assert first.code == 0, first.err
    page = json.loads(first.out)
    assert [row["thread_id"] for row in page["threads"]] == ["t-new", "t-mid"]
    assert page["next"] == page["threads"][-1]["cursor"]
    second = json.loads(run(*base, "--json", "threads", "--before", page["next"]).out)
    assert [row["thread_id"] for row in second["threads"]] == ["t-old"]
    assert second["next"] is None

    alice = run(*base, "threads", "--user", "alice")
    assert [line.split()[-1] for line in alice.out.splitlines()] == ["t-new", "t-old"]
    text = run(*base, "threads", "--limit", "1")
    assert text.out.splitlines()[-1].startswith("next page: --before ")

    bad = run(*base, "threads", "--before", "not-a-cursor")
    assert bad.code == 1
    assert len(bad.err.splitlines()) == 2


def test_user_filters_every_read_command(server_uri: str, database: str) -> None:
    """--user on messages, events, count, tail and delete sees only that user's events."""
    put(
        server_uri,
        database,
        [
            event(content="alice says", user_id="alice"),
            trace(user_id="alice"),
            event(content="bob says", user_id="bob"),
        ],
    )
    base = ["--uri", server_uri, "--database", database, "--json"]

    messages = json.loads(run(*base, "messages", "thread-1", "--user", "bob").out)["messages"]
    assert [m["content"] for m in messages] == ["bob says"]
    events = json.loads(run(*base, "events", "thread-1", "run-1", "--user", "alice").out)["events"]
    assert [e["seq"] for e in events] == [1, 2]
    assert json.loads(run(*base, "count", "thread-1", "--user", "alice").out)["messages"] == 1
    tail = run(*base, "tail", "thread-1", "--user", "bob").out.splitlines()
    assert [json.loads(line)["seq"] for line in tail] == [3]
    deleted = run(*base, "delete", "thread-1", "--user", "bob", "--yes")
    assert json.loads(deleted.out)["deleted"] == 1
    assert json.loads(run(*base, "count", "thread-1").out)["messages"] == 1


# --- import never loses an event ------------------------------------------------------


def _deerflow_two_writers(root: Path) -> Path:
    """DeerFlow's JSONL store after two processes each numbered thread t-1 from 1 to 3."""
    runs = root / "threads" / "t-1" / "runs"
    runs.mkdir(parents=True)
    for offset, run_id in enumerate(["r1", "r2"]):
        lines = [
            json.dumps(
                {
                    "event_type": "llm.ai.response",
                    "category": "message",
                    "content": f"{run_id} #{seq}",
                    "metadata": {},
                    "seq": seq,
                    "created_at": f"2025-07-01T12:00:{2 * seq + offset:02d}+00:00",
                }
            )
            for seq in (1, 2, 3)
        ]
        (runs / f"{run_id}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def _contents(uri: str, database: str, thread: str = "t-1") -> list[tuple[int, Any]]:
    result = run("--uri", uri, "--database", database, "--json", "tail", thread)
    assert result.code == 0, result.err
    return [(r["seq"], r["content"]) for r in map(json.loads, result.out.splitlines())]


def test_two_writers_of_one_thread_import_renumbered_and_a_rerun_finds_them_there(
    server_uri: str, database: str, tmp_path: Path
) -> None:
    """Colliding seqs are kept, renumbered in the stable order, reported, and written to --mapping."""
    root = _deerflow_two_writers(tmp_path / ".deer-flow")
    mapping = tmp_path / "mapping.jsonl"
    base = ["--uri", server_uri, "--database", database]

    result = run(*base, "import", str(root), "--mapping", str(mapping))

    assert result.code == 0, result.err
    assert result.out == (
        "read 2 files (deerflow-jsonl), 6 lines: 6 inserted, 0 already there, 0 bad; "
        "3 conflicts: 5 renumbered, 0 skipped\n"
    )
    r1, r2 = root / "threads/t-1/runs/r1.jsonl", root / "threads/t-1/runs/r2.jsonl"
    assert (
        f"mongo-runevents: renumbered 5 records of thread 't-1': {r2}:1 seq 1 -> 2, "
        f"{r1}:2 seq 2 -> 3, {r2}:2 seq 2 -> 4, {r1}:3 seq 3 -> 5, {r2}:3 seq 3 -> 6"
    ) in result.err
    assert _contents(server_uri, database) == [
        (1, "r1 #1"),
        (2, "r2 #1"),
        (3, "r1 #2"),
        (4, "r2 #2"),
        (5, "r1 #3"),
        (6, "r2 #3"),
    ]
    lines = [json.loads(line) for line in mapping.read_text().splitlines()]
    assert lines[0] == {
        "source": str(r2),
        "line": 1,
        "thread_id": "t-1",
        "old_seq": 1,
        "new_seq": 2,
    }
    assert len(lines) == 5

    again = run(*base, "import", str(root))
    assert again.code == 0, again.err
    assert (
        again.out == "read 2 files (deerflow-jsonl), 6 lines: 0 inserted, 6 already there, 0 bad\n"
    )


def test_skip_leaves_conflicts_out_and_exits_1_with_the_summary(
    server_uri: str, database: str, tmp_path: Path
) -> None:
    """--on-conflict skip stores the first record of each seq, names each skipped line, exits 1."""
    root = _deerflow_two_writers(tmp_path / ".deer-flow")
    result = run(
        "--uri", server_uri, "--database", database, "import", str(root), "--on-conflict", "skip"
    )
    assert result.code == 1
    assert result.out == (
        "read 2 files (deerflow-jsonl), 6 lines: 3 inserted, 0 already there, 0 bad; "
        "3 conflicts: 0 renumbered, 3 skipped\n"
    )
    r2 = root / "threads/t-1/runs/r2.jsonl"
    assert (
        f"mongo-runevents: skipped {r2}:1 (thread 't-1', seq 1): record 0 of the input"
        not in result.err
    )
    assert f"mongo-runevents: skipped {r2}:1 (thread 't-1', seq 1): " in result.err
    assert result.err.splitlines()[-1] == (
        "mongo-runevents: error: 3 lines not imported (0 bad, 3 skipped for a conflict); see above"
    )
    assert [c for _, c in _contents(server_uri, database)] == ["r1 #1", "r1 #2", "r1 #3"]


def test_stop_writes_nothing_when_any_record_collides(
    server_uri: str, database: str, tmp_path: Path
) -> None:
    """--on-conflict stop checks every batch first and writes nothing at all on a conflict."""
    root = _deerflow_two_writers(tmp_path / ".deer-flow")
    (root / "threads" / "t-0" / "runs").mkdir(parents=True)
    line = {
        "event_type": "run.start",
        "category": "lifecycle",
        "seq": 1,
        "created_at": "2025-07-01",
    }
    (root / "threads" / "t-0" / "runs" / "r0.jsonl").write_text(json.dumps(line) + "\n")
    result = run(
        "--uri", server_uri, "--database", database, "import", str(root),
        "--on-conflict", "stop", "--batch", "1",
    )  # fmt: skip
    assert result.code == 1
    assert "mongo-runevents: error: stopped: 3 records collide with other events" in result.err
    assert result.out.startswith("read 3 files (deerflow-jsonl), 7 lines: 0 inserted")
    assert result.err.rstrip().endswith("nothing was written")
    assert _contents(server_uri, database, "t-0") == []
    assert _contents(server_uri, database) == []


def test_a_dry_run_reports_what_would_happen_and_writes_nothing(
    server_uri: str, database: str, tmp_path: Path
) -> None:
    """--dry-run prints the summary and the renumbering an import would do; the database stays empty."""
    root = _deerflow_two_writers(tmp_path / ".deer-flow")
    result = run("--uri", server_uri, "--database", database, "import", str(root), "--dry-run")
    assert result.code == 0, result.err
    assert result.out.startswith(
        "dry run, nothing written: read 2 files (deerflow-jsonl), 6 lines: 6 inserted"
    )
    assert "mongo-runevents: would renumber 5 records of thread 't-1': " in result.err
    assert _contents(server_uri, database) == []


def test_an_import_into_a_thread_with_events_follows_them(
    server_uri: str, database: str, tmp_path: Path
) -> None:
    """Records colliding with a thread's events are numbered after them, in their own order."""
    put(server_uri, database, [event("t-1", content="live 1"), event("t-1", content="live 2")])
    root = _deerflow_two_writers(tmp_path / ".deer-flow")
    result = run("--uri", server_uri, "--database", database, "import", str(root))
    assert result.code == 0, result.err
    assert [c for _, c in _contents(server_uri, database)] == [
        "live 1", "live 2", "r1 #1", "r2 #1", "r1 #2", "r2 #2", "r1 #3", "r2 #3",
    ]  # fmt: skip


def test_export_piped_into_import_moves_a_history_between_servers(
    server_uri: str, standalone_uri: str, database: str
) -> None:
    """`export | import -` copies every thread from one server to another, exactly."""
    put(server_uri, database, [event("a", content=n) for n in range(5)] + [trace("b")])
    pipeline = (
        f"{SCRIPT} --uri '{server_uri}' --database {database} export | "
        f"{SCRIPT} --uri '{standalone_uri}' --database {database} --json import -"
    )
    try:
        done = subprocess.run(
            ["bash", "-o", "pipefail", "-c", pipeline],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        summary = json.loads(done.stdout)
        assert (summary["format"], summary["lines"], summary["inserted"]) == ("jsonl", 6, 6)
        assert "exported 6 events of 2 threads to stdout" in done.stderr
        source = run("--uri", server_uri, "--database", database, "export").out
        copied = run("--uri", standalone_uri, "--database", database, "export").out
        assert copied == source
    finally:
        with MongoClient(standalone_uri) as client:
            client.drop_database(database)


def test_progress_on_a_terminal_shows_totals_and_rates(
    server_uri: str, database: str, tmp_path: Path
) -> None:
    """On a terminal, import shows reading and importing progress: counts, percentage, rate."""
    import pty

    path = tmp_path / "events.jsonl"
    path.write_text(
        "".join(
            json.dumps({**event(content=n), "seq": n, "created_at": "2025-07-01"}) + "\n"
            for n in range(1, 41)
        )
    )
    leader, follower = pty.openpty()
    env = {name: value for name, value in os.environ.items() if name != "MONGODB_URI"}
    env["COLUMNS"] = "200"
    try:
        done = subprocess.run(
            [str(SCRIPT), "--uri", server_uri, "--database", database, "import", str(path)],
            stdout=subprocess.PIPE, stderr=follower, text=True, timeout=120, env=env, check=False,
        )  # fmt: skip
        os.close(follower)
        shown = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(leader)
    assert done.returncode == 0
    text = shown.decode("utf-8", "replace")
    assert "reading 40 lines (100.0%)" in text
    assert "importing 40 of 40 events (100.0%)" in text
    assert " events/s" in text


def test_ctrl_c_during_an_import_says_what_landed_and_a_rerun_completes_it(
    server_uri: str, database: str, tmp_path: Path
) -> None:
    """SIGINT mid-import exits 130 saying how much landed; the same import again completes it."""
    total = 3000
    path = tmp_path / "many.jsonl"
    path.write_text(
        "".join(
            json.dumps({**event(f"t-{n % 300}", content=n), "seq": n, "created_at": "2025-07-01"})
            + "\n"
            for n in range(1, total + 1)
        )
    )
    env = {name: value for name, value in os.environ.items() if name != "MONGODB_URI"}
    argv = [str(SCRIPT), "--uri", server_uri, "--database", database, "import", str(path)]
    process = subprocess.Popen(
        [*argv, "--batch", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        with MongoClient(server_uri) as client:
            deadline = time.monotonic() + 60
            while client[database]["run_events"].estimated_document_count() < 50:
                assert time.monotonic() < deadline, "the import did not start"
                time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 130, err
    assert "Traceback" not in err
    [note] = [line for line in err.splitlines() if "interrupted after" in line]
    landed = int(note.split("interrupted after ")[1].split(" events")[0].replace(",", ""))
    assert 0 < landed < total
    assert err.splitlines()[-1] == "mongo-runevents: interrupted"

    rerun = run(*argv[1:], "--json")
    summary = json.loads(rerun.out)
    assert rerun.code == 0, rerun.err
    assert summary["inserted"] + summary["already_there"] == total
    assert summary["already_there"] >= landed
    with MongoClient(server_uri) as client:
        assert client[database]["run_events"].count_documents({}) == total


# --- the embedded server, shared by the commands on one data folder -----------------------


def _embedded(data_dir: Path, *argv: str) -> subprocess.Popen[str]:
    """Start the console script on the embedded server of ``data_dir`` (no URI)."""
    env = {name: value for name, value in os.environ.items() if name != "MONGODB_URI"}
    return subprocess.Popen(
        [str(SCRIPT), "--data-dir", str(data_dir), *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _port_closed(port: int) -> bool:
    import socket

    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def _wait_for_server_line(process: subprocess.Popen[str]) -> str:
    """The "using embedded SecantusDB ..." line a command prints first."""
    assert process.stderr is not None
    line = process.stderr.readline()
    assert "using embedded SecantusDB" in line, line
    return line


def test_a_second_command_shares_the_server_a_following_tail_runs(tmp_path: Path) -> None:
    """While `tail --follow` runs, `count` on the same folder uses its server; the last one out stops it."""
    data_dir = tmp_path / "data"
    tail = _embedded(data_dir, "tail", "t-1", "--follow")
    try:
        first = _wait_for_server_line(tail)
        assert "started)" in first
        port = int(first.split("(port ")[1].split(",")[0])

        second = run("--data-dir", str(data_dir), "--json", "count", "t-1")
        assert second.code == 0, second.err
        assert f"(port {port}, shared with another command (pid {tail.pid}))" in second.err
        assert json.loads(second.out)["messages"] == 0
        assert tail.poll() is None
        assert not _port_closed(port)
    finally:
        tail.send_signal(signal.SIGINT)
        tail.communicate(timeout=60)
    assert tail.returncode == 130
    assert _port_closed(port)
    assert not (data_dir / "mongo-runevents-server.json").exists()


def test_a_server_left_by_a_killed_command_is_reused_then_stopped(tmp_path: Path) -> None:
    """After a SIGKILLed `tail --follow`, the next command finds its server, says so, and stops it."""
    data_dir = tmp_path / "data"
    tail = _embedded(data_dir, "tail", "t-1", "--follow")
    try:
        first = _wait_for_server_line(tail)
    finally:
        tail.kill()
        tail.communicate(timeout=60)
    port = int(first.split("(port ")[1].split(",")[0])
    assert not _port_closed(port)

    result = run("--data-dir", str(data_dir), "count", "t-1")
    assert result.code == 0, result.err
    assert f"(port {port}, left running by a command that was killed; reusing it)" in result.err
    assert _port_closed(port)


def test_a_stale_record_is_replaced_by_a_new_server(tmp_path: Path) -> None:
    """A record naming a server that is gone is replaced; the command starts its own and says so."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    record = {"pid": 2**22 + 12345, "port": free_port(), "standalone": False, "users": [1]}
    (data_dir / "mongo-runevents-server.json").write_text(json.dumps(record))

    result = run("--data-dir", str(data_dir), "count", "t-1")
    assert result.code == 0, result.err
    assert "started; replaced a stale record of a server that is gone)" in result.err
    assert not (data_dir / "mongo-runevents-server.json").exists()


# --- bench never writes over the committed results -------------------------------------


def test_bench_results_go_to_a_temporary_folder_unless_one_is_given(tmp_path: Path) -> None:
    """Without --out the results go to a new temporary folder, never to docs/benchmarks."""
    from benchmarks.run import _output_folder

    default = _output_folder(None, replace=False)
    assert default is not None
    assert default.is_dir()
    assert "docs" not in default.parts
    default.rmdir()
    assert _output_folder(str(tmp_path / "new"), replace=False) == tmp_path / "new"


def test_bench_refuses_a_folder_holding_results_unless_told_to_replace(tmp_path: Path) -> None:
    """--out naming a folder with results exits 2 and leaves them; --replace is needed to renew."""
    from benchmarks.run import _output_folder, main

    (tmp_path / "results.json").write_text("{}")
    assert main(["--out", str(tmp_path)]) == 2
    assert (tmp_path / "results.json").read_text() == "{}"
    assert _output_folder(str(tmp_path), replace=True) == tmp_path
