"""Tests of the ``mongo-runevents`` command line, run in-process through ``main``."""

from __future__ import annotations

import asyncio
import io
import json
import math
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient

from mongo_runevents import MongoRunEventStore
from mongo_runevents.cli import Progress, main, mask_uri
from mongo_runevents.cli import progress as progress_module
from mongo_runevents.cli.progress import Tally, duration, progress_text
from mongo_runevents.cli.workload import JOURNAL_BATCH_SIZE
from mongo_runevents.embedded import free_port
from tests.conftest import database_name
from tests.factories import event, trace


def _closed_port_uri(userinfo: str = "") -> str:
    return f"mongodb://{userinfo}127.0.0.1:{free_port()}/?serverSelectionTimeoutMS=500"


def test_demo_on_embedded_server_reports_consistent_counts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`demo --json` on the embedded server exits 0 and its counts agree with each other."""
    monkeypatch.delenv("MONGODB_URI", raising=False)
    data_dir = tmp_path / "data"

    code = main(["demo", "--data-dir", str(data_dir), "--runs", "1", "--steps", "2", "--json"])

    captured = capsys.readouterr()
    assert code == 0, captured.err
    result = json.loads(captured.out)
    assert result["thread_id"].startswith("demo-")
    assert len(result["run_ids"]) == 1
    assert result["events_written"] == sum(result["events_by_category"].values())
    assert result["count_messages"] == result["message_events_written"]
    assert result["message_events_written"] == result["events_by_category"]["message"]
    # One human input, then an AI message and a tool result per step, then the answer.
    assert result["message_events_written"] == 1 + 2 * 2 + 1
    assert result["batches"] == math.ceil(result["events_written"] / JOURNAL_BATCH_SIZE)
    assert result["uses_transactions"] is True
    assert 1 <= len(result["newest_messages"]) <= 5
    assert result["before_seq"] == result["newest_messages"][0]["seq"]
    assert all(row["seq"] < result["before_seq"] for row in result["older_messages"])
    assert all(len(row["preview"]) <= 70 for row in result["newest_messages"])
    assert [e["event_type"] for e in result["last_run_events"]][:2] == [
        "run.start",
        "llm.human.input",
    ]
    assert result["deleted_events"] is None
    assert f"embedded SecantusDB at {data_dir}" in captured.err


def test_demo_text_output_and_cleanup_stop_the_embedded_server(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`demo --cleanup` prints the summary, deletes the thread and stops the server it started."""
    monkeypatch.delenv("MONGODB_URI", raising=False)

    code = main(["--data-dir", str(tmp_path / "data"), "demo", "--runs", "1", "--cleanup"])

    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "count_messages: " in captured.out
    assert "transactions: yes" in captured.out
    assert "deleted thread demo-" in captured.out
    port = int(captured.err.split("(port ")[1].split(",")[0])
    with (
        pytest.raises(ConnectionRefusedError),
        socket.create_connection(("127.0.0.1", port), timeout=1),
    ):
        pass


def test_unreachable_server_exits_1_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    """An unreachable `--uri` exits 1 with a one-line error and no traceback."""
    code = main(["--uri", _closed_port_uri(), "demo", "--runs", "1"])

    captured = capsys.readouterr()
    assert code == 1
    assert "Traceback" not in captured.err
    server_line, error_line = captured.err.splitlines()
    assert server_line.startswith("mongo-runevents: using mongodb://127.0.0.1:")
    assert error_line.startswith("mongo-runevents: error: ")
    assert captured.out == ""


def test_password_never_printed(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A password in `MONGODB_URI` appears neither in the server line nor in the error."""
    monkeypatch.setenv("MONGODB_URI", _closed_port_uri("u:secret@"))

    code = main(["demo"])

    captured = capsys.readouterr()
    assert code == 1
    assert "secret" not in captured.err + captured.out
    assert "u:***@127.0.0.1" in captured.err


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("mongodb://u:secret@h/", "mongodb://u:***@h/"),
        (
            "mongodb+srv://admin:s%40cret@cluster.example.net",
            "mongodb+srv://admin:***@cluster.example.net",
        ),
        ("mongodb://u:p@ss@h1,h2/db?tls=true", "mongodb://u:***@h1,h2/db?tls=true"),
        ("mongodb://user@h/", "mongodb://user@h/"),
        ("mongodb://h:27017/db", "mongodb://h:27017/db"),
        (
            "mongodb://h/?tls=true&tlsCertificateKeyFilePassword=secret",
            "mongodb://h/?tls=true&tlsCertificateKeyFilePassword=***",
        ),
    ],
)
def test_mask_uri_hides_passwords(uri: str, expected: str) -> None:
    """`mask_uri` replaces the password (and password options) by `***` and keeps the rest."""
    masked = mask_uri(uri)
    assert masked == expected
    assert "secret" not in masked


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["demo", "--runs", "0"],
        ["demo", "--steps", "x"],
        ["nope"],
        ["init", "--retention", "trace"],
        ["init", "--retention", "trace=0"],
        ["init", "--retention", "trace=3000000"],
        ["init", "--retention", "=30"],
        ["messages"],
        ["messages", "t", "--before", "-1"],
        ["messages", "t", "--limit", str(2**63)],
        ["messages", "t\udcff"],
        ["events", "t"],
        ["tail", "t", "--max-events", "0"],
        ["import", "x", "--format", "csv"],
        ["import", "x", "--on-error", "ignore"],
        ["import", "x", "--batch", "0"],
        ["bench", "--quick"],
    ],
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """Bad command lines are usage errors: argparse exits with code 2."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert "usage:" in capsys.readouterr().err


# --- the store commands, on the suite's server ---------------------------------------


@dataclass(frozen=True)
class Result:
    """What one run of the command line did."""

    code: int
    out: str
    err: str


Cli = Callable[..., Result]


class _Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


@pytest.fixture
def new_database(server_uri: str) -> Iterator[Callable[[], str]]:
    """Makes fresh database names; drops every one of them afterwards."""
    names: list[str] = []

    def make() -> str:
        names.append(database_name())
        return names[-1]

    yield make
    client: MongoClient[dict[str, Any]] = MongoClient(server_uri)
    with client:
        for name in names:
            client.drop_database(name)


@pytest.fixture
def database(new_database: Callable[[], str]) -> str:
    """A fresh database for one test, dropped afterwards."""
    return new_database()


@pytest.fixture
def cli(server_uri: str, database: str, capsys: pytest.CaptureFixture[str]) -> Cli:
    """Runs ``main`` on the suite's server and the test's database (or ``database=...``)."""

    def run(*argv: str, database: str = database) -> Result:
        code = main(["--uri", server_uri, "--database", database, *argv])
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


def _sample(thread_id: str = "thread-1") -> list[dict[str, Any]]:
    """Two runs: messages at seqs 1, 3 and 5, traces at 2 and 4."""
    return [
        event(
            thread_id,
            event_type="llm.human.input",
            content={"type": "human", "content": "What is 2+2?"},
            created_at="2025-07-01T12:00:00.000001+00:00",
        ),
        trace(thread_id, metadata={"task_id": "task-1"}, content={"model": "m", "tokens": 12}),
        event(
            thread_id,
            content={"type": "ai", "content": "4", "tool_calls": []},
            metadata={"task_id": "task-1", "usage": {"cost": 1.5, "big": 2**62}},
        ),
        event(
            thread_id,
            "run-2",
            event_type="llm.end",
            category="trace",
            content={"a.b": {"$c": "é ✓ \u2028"}},
        ),
        event(thread_id, "run-2", content="plain reply", event_id="evt-1", user_id="user-1"),
    ]


def _put(uri: str, database: str, events: list[dict[str, Any]]) -> None:
    async def write() -> None:
        async with MongoRunEventStore.from_uri(uri, database=database) as store:
            await store.put_batch(events)

    asyncio.run(write())


def _seqs_of_lines(text: str) -> list[int]:
    return [int(line.split()[0]) for line in text.splitlines()]


def test_init_creates_indexes_validator_and_ttl(cli: Cli, server_uri: str, database: str) -> None:
    """`init --validator --retention` creates the indexes, the TTL index and the validator."""
    result = cli("init", "--validator", "--retention", "trace=30", "--retention", "debug=1")

    assert result.code == 0, result.err
    assert "'debug' events expire 1 day after they are written" in result.out
    assert "'trace' events expire 30 days after they are written" in result.out
    assert "events of every other category are kept" in result.out
    assert "schema validator: on" in result.out
    client: MongoClient[dict[str, Any]] = MongoClient(server_uri)
    with client:
        indexes = client[database]["run_events"].index_information()
        (options,) = [
            info["options"]
            for info in client[database].list_collections(filter={"name": "run_events"})
        ]
    assert {"thread_seq", "thread_category_seq", "thread_run_seq", "expiry"} <= set(indexes)
    assert indexes["expiry"]["expireAfterSeconds"] == 0
    assert "$jsonSchema" in options["validator"]

    again = cli("--json", "init")
    assert again.code == 0, again.err
    report = json.loads(again.out)
    assert report["validator"] is False
    assert report["retention_days"] == {}
    assert report["sharding_steps"] is None
    assert "thread_seq" in report["indexes"]


@pytest.mark.requires("not sharded")
def test_init_shard_outside_a_cluster_exits_1(cli: Cli) -> None:
    """`init --shard` on a server that is not mongos fails with one line saying so."""
    result = cli("init", "--shard")

    assert result.code == 1
    assert result.err.splitlines()[-1].startswith("mongo-runevents: error: sharding needs")
    assert "Traceback" not in result.err


def test_stats_reports_threads_categories_and_sizes(
    cli: Cli, server_uri: str, database: str
) -> None:
    """`stats` counts threads and events per category and shows sizes readably."""
    _put(server_uri, database, _sample("thread-1") + _sample("thread-2"))

    text = cli("stats")
    data = cli("--json", "stats")

    assert text.code == data.code == 0
    assert "threads: 2" in text.out
    assert re.search(r"message\s+6\b", text.out)
    assert re.search(r"trace\s+4\b", text.out)
    stats = json.loads(data.out)
    assert stats["threads"] == 2
    assert stats["events"] == 10
    assert stats["events_by_category"] == {"message": 6, "trace": 4}
    if stats["collections"]:
        assert stats["collections"]["run_events"]["count"] == 10
        assert re.search(r"run_events\s+10\s+\d+(\.\d)? (B|KiB|MiB)", text.out)
        assert "run_events.thread_seq" in text.out


def test_messages_events_and_count(cli: Cli, server_uri: str, database: str) -> None:
    """`messages`, `events` and `count` print readable pages, and the records with --json."""
    _put(server_uri, database, _sample())

    messages = cli("messages", "thread-1")
    assert messages.code == 0, messages.err
    assert "What is 2+2?" in messages.out
    lines = messages.out.splitlines()[1:]
    assert [int(line.split()[0]) for line in lines if not line.startswith("  run ")] == [1, 3, 5]
    assert [line for line in lines if line.startswith("  run ")] == ["  run run-1", "  run run-2"]

    def message_seqs(*options: str) -> list[int]:
        result = cli("--json", "messages", "thread-1", *options)
        assert result.code == 0, result.err
        return [record["seq"] for record in json.loads(result.out)["messages"]]

    assert message_seqs("--limit", "1") == [5]
    assert message_seqs("--before", "5", "--limit", "1") == [3]
    assert message_seqs("--after", "1", "--limit", "1") == [3]

    records = json.loads(cli("--json", "messages", "thread-1").out)["messages"]
    assert records[1]["metadata"] == {"task_id": "task-1", "usage": {"cost": 1.5, "big": 2**62}}
    assert records[2]["event_id"] == "evt-1"

    events = cli("events", "thread-1", "run-1")
    assert events.code == 0, events.err
    lines = events.out.splitlines()
    assert lines[0] == "events of run run-1 of thread thread-1:"
    assert _seqs_of_lines("\n".join(lines[1:])) == [1, 2, 3]
    assert "llm.start" in lines[2]
    assert "trace" in lines[2]

    def event_seqs(*options: str) -> list[int]:
        result = cli("--json", "events", "thread-1", "run-1", *options)
        assert result.code == 0, result.err
        return [record["seq"] for record in json.loads(result.out)["events"]]

    assert event_seqs("--type", "llm.start", "--type", "llm.human.input") == [1, 2]
    assert event_seqs("--task", "task-1") == [2, 3]
    assert event_seqs("--after", "1", "--limit", "1") == [2]
    assert "(none)" in cli("events", "thread-1", "no-such-run").out

    assert cli("count", "thread-1").out == "thread thread-1: 3 messages\n"
    assert json.loads(cli("--json", "count", "thread-1").out) == {
        "thread_id": "thread-1",
        "messages": 3,
    }
    assert json.loads(cli("--json", "count", "unknown").out)["messages"] == 0


def test_delete_refuses_without_yes_when_stdin_is_not_a_terminal(
    cli: Cli, server_uri: str, database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --yes and without a terminal to ask on, `delete` exits 1 and deletes nothing."""
    _put(server_uri, database, _sample())
    monkeypatch.setattr(sys, "stdin", io.StringIO("y\n"))

    result = cli("delete", "thread-1")

    assert result.code == 1
    assert "not deleting 5 events of thread thread-1" in result.err
    assert "pass --yes" in result.err
    assert "3 messages" in cli("count", "thread-1").out


def test_delete_asks_on_a_terminal(
    cli: Cli, server_uri: str, database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a terminal `delete` asks with the count; only y deletes."""
    _put(server_uri, database, _sample())

    monkeypatch.setattr(sys, "stdin", _Terminal("n\n"))
    declined = cli("delete", "thread-1")
    assert declined.code == 0
    assert "error" not in declined.err
    assert "delete 5 events of thread thread-1? [y/N]" in declined.err
    assert "nothing deleted" in declined.err
    assert "3 messages" in cli("count", "thread-1").out

    monkeypatch.setattr(sys, "stdin", _Terminal("y\n"))
    accepted = cli("delete", "thread-1", "--run", "run-2")
    assert accepted.code == 0, accepted.err
    assert "delete 2 events of run run-2 of thread thread-1? [y/N]" in accepted.err
    assert accepted.out == "deleted 2 events of run run-2 of thread thread-1\n"
    assert "2 messages" in cli("count", "thread-1").out


def test_delete_with_yes(cli: Cli, server_uri: str, database: str) -> None:
    """`delete --yes` deletes without asking; a thread without events is nothing to delete."""
    _put(server_uri, database, _sample())

    result = cli("--json", "delete", "thread-1", "--yes")

    assert result.code == 0, result.err
    assert json.loads(result.out) == {"thread_id": "thread-1", "run_id": None, "deleted": 5}
    again = cli("delete", "thread-1")
    assert again.code == 0
    assert again.out == "thread thread-1 has no events; nothing to delete\n"


def test_tail_without_follow_prints_what_is_there(cli: Cli, server_uri: str, database: str) -> None:
    """`tail` prints the events after --after, one line each (JSON lines with --json), and exits."""
    _put(server_uri, database, _sample())

    everything = cli("tail", "thread-1")
    assert everything.code == 0, everything.err
    assert _seqs_of_lines(everything.out) == [1, 2, 3, 4, 5]
    assert everything.out.splitlines()[1].split()[1:3] == ["trace", "llm.start"]
    assert _seqs_of_lines(cli("tail", "thread-1", "--after", "3").out) == [4, 5]
    assert _seqs_of_lines(cli("tail", "thread-1", "--messages-only").out) == [1, 3, 5]
    assert _seqs_of_lines(cli("tail", "thread-1", "--max-events", "2").out) == [1, 2]
    records = [json.loads(line) for line in cli("--json", "tail", "thread-1").out.splitlines()]
    assert [record["seq"] for record in records] == [1, 2, 3, 4, 5]
    assert records[3]["content"] == {"a.b": {"$c": "é ✓ \u2028"}}


async def test_tail_follow_prints_events_written_meanwhile(
    server_uri: str, database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`tail --follow` prints the events there, waits, then prints new ones; --max-events ends it."""
    sample = _sample()
    argv = ["--uri", server_uri, "--database", database, "--json"]
    argv += ["tail", "thread-1", "--follow", "--messages-only", "--max-events", "3"]
    async with MongoRunEventStore.from_uri(server_uri, database=database) as store:
        await store.put_batch(sample[:2])
        tail = asyncio.create_task(asyncio.to_thread(main, argv))
        await asyncio.sleep(1)
        assert not tail.done()
        await store.put_batch(sample[2:])
        code = await asyncio.wait_for(tail, timeout=60)

    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert [json.loads(line)["seq"] for line in captured.out.splitlines()] == [1, 3, 5]


def test_tail_follow_exits_130_on_ctrl_c(server_uri: str, database: str) -> None:
    """Ctrl-C (SIGINT) ends `tail --follow` with exit code 130 and no traceback."""
    _put(server_uri, database, _sample())
    argv = ["--uri", server_uri, "--database", database, "tail", "thread-1", "--follow"]
    process = subprocess.Popen(
        [sys.executable, "-m", "mongo_runevents.cli", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert first.split()[0] == "1"
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 130, err
    assert err.splitlines()[-1] == "mongo-runevents: interrupted"
    assert "Traceback" not in err


def test_export_then_import_round_trips_and_never_duplicates(
    cli: Cli, server_uri: str, database: str, new_database: Callable[[], str], tmp_path: Path
) -> None:
    """Export, import elsewhere, export again: identical lines; a second import finds them all there."""
    _put(server_uri, database, _sample("thread-1") + _sample("thread-2"))

    exported = cli("export")
    assert exported.code == 0, exported.err
    assert len(exported.out.splitlines()) == 10
    assert "exported 10 events of 2 threads to stdout" in exported.err
    one_thread = cli("export", "thread-2").out.splitlines()
    assert [json.loads(line)["thread_id"] for line in one_thread] == ["thread-2"] * 5

    path = tmp_path / "all.jsonl"
    to_file = cli("export", "--out", str(path))
    assert to_file.code == 0, to_file.err
    assert to_file.out == f"exported 10 events of 2 threads to {path}\n"
    assert path.read_text(encoding="utf-8") == exported.out
    assert not path.with_name("all.jsonl.partial").exists()

    target = new_database()
    first = cli("--json", "import", str(path), database=target)
    assert first.code == 0, first.err
    summary = json.loads(first.out)
    assert (summary["files"], summary["lines"], summary["inserted"]) == (1, 10, 10)
    assert (summary["already_there"], summary["bad"], summary["format"]) == (0, 0, "jsonl")
    assert cli("export", database=target).out == exported.out

    second = cli("import", str(path), "--batch", "3", database=target)
    assert second.code == 0, second.err
    assert second.out == "read 1 file (jsonl), 10 lines: 0 inserted, 10 already there, 0 bad\n"
    assert cli("export", database=target).out == exported.out


def test_import_deerflow_jsonl_store(cli: Cli, tmp_path: Path) -> None:
    """A DeerFlow JSONL store folder imports with thread and run ids taken from the paths."""
    root = tmp_path / ".deer-flow"

    def line(seq: int, **fields: Any) -> str:
        record = {
            "event_type": "llm.ai.response",
            "category": "message",
            "content": {"type": "ai", "content": f"reply {seq}"},
            "metadata": {"caller": "lead"},
            "seq": seq,
            "created_at": f"2025-07-01T12:00:0{seq}.000000+00:00",
            **fields,
        }
        return json.dumps(record) + "\n"

    runs = root / "threads" / "t-a" / "runs"
    runs.mkdir(parents=True)
    (runs / "r1.jsonl").write_text(line(1) + line(3, thread_id="t-a", run_id="r1"))
    (runs / "r2.jsonl").write_text(line(2, category="trace", event_type="llm.start"))
    other = root / "threads" / "t-b" / "runs"
    other.mkdir(parents=True)
    (other / "r9.jsonl").write_text(line(1, metadata=None))

    result = cli("--json", "import", str(root))

    assert result.code == 0, result.err
    summary = json.loads(result.out)
    assert summary["format"] == "deerflow-jsonl"
    assert (summary["files"], summary["lines"], summary["inserted"], summary["bad"]) == (3, 4, 4, 0)
    events = json.loads(cli("--json", "events", "t-a", "r1").out)["events"]
    assert [(e["thread_id"], e["run_id"], e["seq"]) for e in events] == [
        ("t-a", "r1", 1),
        ("t-a", "r1", 3),
    ]
    assert events[1]["content"] == {"type": "ai", "content": "reply 3"}
    assert events[1]["created_at"] == "2025-07-01T12:00:03.000000+00:00"
    assert json.loads(cli("--json", "tail", "t-b").out)["metadata"] == {}


def test_import_deerflow_db_rows_with_json_strings(cli: Cli, tmp_path: Path) -> None:
    """DeerFlow SQL rows: marked JSON content and metadata decoded, created_at as DeerFlow serves it."""
    rows = [
        {
            "id": 1,
            "thread_id": "t1",
            "run_id": "r1",
            "event_type": "llm.human.input",
            "category": "message",
            "content": json.dumps({"type": "human", "content": "hello"}),
            "event_metadata": json.dumps(
                {"caller": "user", "content_is_json": True, "content_is_dict": True}
            ),
            "seq": 1,
            "created_at": "2025-07-01 12:00:00",
        },
        {
            "id": 2,
            "thread_id": "t1",
            "run_id": "r1",
            "event_type": "llm.ai.response",
            "category": "message",
            "content": "just text",
            "metadata": None,
            "seq": 2,
            "created_at": "2025-07-01T12:00:01.5",
        },
    ]
    path = tmp_path / "run_events.json"
    path.write_text(json.dumps(rows, indent=1), encoding="utf-8")

    result = cli("import", str(path))

    assert result.code == 0, result.err
    assert "2 inserted" in result.out
    assert "(deerflow-db)" in result.out
    messages = json.loads(cli("--json", "messages", "t1").out)["messages"]
    assert [m["content"] for m in messages] == [{"type": "human", "content": "hello"}, "just text"]
    assert [m["metadata"] for m in messages] == [
        {"caller": "user", "content_is_json": True, "content_is_dict": True},
        {},
    ]
    assert [m["created_at"] for m in messages] == [
        "2025-07-01T12:00:00+00:00",
        "2025-07-01T12:00:01.500000+00:00",
    ]


def _jsonl_with_bad_lines(path: Path) -> Path:
    """Lines 1, 2, 3 and 5 good (seqs 1, 2, 3, 5); line 4 has no created_at; line 6 is not JSON."""
    lines = [
        json.dumps({**event(content=n), "seq": n, "created_at": "2025-07-01"})
        for n in (1, 2, 3, 4, 5)
    ]
    lines[3] = json.dumps({**event(), "seq": 4})
    path.write_text("\n".join([*lines, "{truncated"]) + "\n", encoding="utf-8")
    return path


def test_import_skips_bad_lines_and_names_them(cli: Cli, tmp_path: Path) -> None:
    """--on-error skip (the default) reports each bad line as file:line, imports the rest, exits 1."""
    path = _jsonl_with_bad_lines(tmp_path / "mixed.jsonl")

    result = cli("import", str(path))

    assert result.code == 1, result.err
    assert result.err.splitlines()[-1] == (
        "mongo-runevents: error: 2 lines not imported (2 bad, 0 skipped for a conflict); see above"
    )
    assert f"skipped {path}:4: created_at: is required in an imported record" in result.err
    assert f"skipped {path}:6: not valid JSON" in result.err
    assert result.out == "read 1 file (jsonl), 6 lines: 4 inserted, 0 already there, 2 bad\n"
    assert _seqs_of_lines(cli("tail", "thread-1").out) == [1, 2, 3, 5]


def test_import_stop_at_a_bad_line_writes_nothing(cli: Cli, tmp_path: Path) -> None:
    """--on-error stop exits 1 at the first bad line, before anything of any batch is written."""
    path = _jsonl_with_bad_lines(tmp_path / "mixed.jsonl")

    result = cli("import", str(path), "--on-error", "stop", "--batch", "2")

    assert result.code == 1
    last = result.err.splitlines()[-1]
    assert last.startswith(
        f"mongo-runevents: error: stopped at a bad line (--on-error stop): {path}:4: "
    )
    assert last.endswith("nothing was written; fix it and run the import again")
    assert "0 inserted" in result.out
    assert cli("tail", "thread-1").out == ""

    rerun = cli("--json", "import", str(path))
    summary = json.loads(rerun.out)
    assert (summary["inserted"], summary["already_there"], summary["bad"]) == (4, 0, 2)


def test_import_of_a_missing_file_exits_1(cli: Cli, tmp_path: Path) -> None:
    """A source that does not exist is one error line and exit code 1."""
    result = cli("import", str(tmp_path / "nope.jsonl"))
    assert result.code == 1
    assert result.err.splitlines()[-1].endswith("nope.jsonl: no such file or folder")


def test_plain_progress_is_one_line_rewritten_in_place_on_a_terminal_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without rich: totals, percentage, rate and time left on one line, rewritten; none off a terminal."""
    monkeypatch.setattr(progress_module, "REFRESH_SECONDS", 0.0)
    terminal = _Terminal()
    progress = Progress("importing", stream=terminal, fancy=False)
    progress.totals(items=2000)
    progress.advance(1000, size=3 * 1024 * 1024)
    progress.note("a message")
    progress.advance(1000)
    progress.finish()
    shown = terminal.getvalue()
    assert shown.startswith("importing 1,000 of 2,000 events (50.0%), 3.0 MiB, ")
    assert " events/s, " in shown
    assert " left" in shown
    assert "\ra message\n" in shown
    assert shown.endswith(
        "\rimporting 2,000 of 2,000 events (100.0%), 3.0 MiB, " + shown.rsplit(", ", 1)[-1]
    )

    log = io.StringIO()
    quiet = Progress("exporting", stream=log, fancy=False)
    quiet.advance(10)
    quiet.finish()
    assert log.getvalue() == ""


def test_rich_progress_shows_the_same_text_as_the_plain_line() -> None:
    """With the progress extra (rich), the bar carries the very text of the plain line."""
    pytest.importorskip("rich")
    terminal = _Terminal()
    progress = Progress("reading", unit="line", stream=terminal, fancy=True)
    progress.totals(size=2048, files=2)
    progress.advance(5, size=1024, files=1)
    text = progress.text()
    progress.finish()
    assert text.startswith("reading 5 lines (50.0%), 1.0 KiB of 2.0 KiB, 1 of 2 files, ")
    assert "reading 5 lines (50.0%)" in terminal.getvalue()


def test_progress_text_formats_numbers_one_way() -> None:
    """Counts with thousands separators, binary sizes, rates per second, durations as m:ss."""
    tally = Tally(items=12_345, items_total=50_000, size=5 * 1024**3)
    assert progress_text("importing", "event", tally, 10.0) == (
        "importing 12,345 of 50,000 events (24.7%), 5.0 GiB, 1,234 events/s, 0:31 left"
    )
    assert duration(3723) == "1:02:03"
    assert progress_text("exporting", "event", Tally(items=1), 0.0) == "exporting 1 event"


def test_bench_outside_a_checkout_explains_how_to_run_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`bench` without a benchmarks/ folder here exits 1 and says how to run it."""
    monkeypatch.chdir(tmp_path)
    assert main(["bench"]) == 1
    assert "checkout of the repository" in capsys.readouterr().err


def test_bench_runs_the_benchmark_with_the_same_uri(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """`bench` runs python -m benchmarks.run with --uri and the arguments after --."""
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks" / "__init__.py").write_text("")
    (tmp_path / "benchmarks" / "run.py").write_text(
        "import json, sys\nprint(json.dumps(sys.argv[1:]))\nsys.exit(3)\n"
    )
    monkeypatch.chdir(tmp_path)

    code = main(["--uri", "mongodb://u:secret@h/", "bench", "--", "--quick", "--out", "x"])

    captured = capfd.readouterr()
    assert code == 3
    assert json.loads(captured.out) == ["--uri", "mongodb://u:secret@h/", "--quick", "--out", "x"]
    assert "running python -m benchmarks.run --uri 'mongodb://u:***@h/' --quick" in captured.err
    assert "secret" not in captured.err
