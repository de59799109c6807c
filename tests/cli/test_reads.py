"""The read commands as a person uses them: run ids, next pages, names, a mistyped database, delete's prompt."""

from __future__ import annotations

import io
import json
import os
import shlex
import signal
import sys
from typing import Any

import pytest
from pymongo import MongoClient

from mongo_runevents.cli import main
from tests.cli.test_cli import Cli, _put, _sample, _Terminal, cli, database, new_database
from tests.factories import event

__all__ = ["cli", "database", "new_database"]  # fixtures, used by name


def _run_ends(thread_id: str = "thread-1") -> list[dict[str, Any]]:
    """A thread whose runs end as DeerFlow's journal ends them."""
    return [
        event(thread_id, "r-ok", event_type="run.start", category="trace"),
        event(thread_id, "r-ok", content={"type": "ai", "content": "done"}),
        event(
            thread_id, "r-ok", event_type="run.end", category="outputs",
            metadata={"status": "success"},
        ),
        event(thread_id, "r-bad", event_type="run.start", category="trace"),
        event(
            thread_id, "r-bad", event_type="run.error", category="error",
            content="boom", metadata={"error_type": "ValueError"},
        ),
        event(thread_id, "r-open", event_type="run.start", category="trace"),
    ]  # fmt: skip


def test_runs_lists_each_run_with_its_outcome_and_id(
    cli: Cli, server_uri: str, database: str
) -> None:
    """`runs THREAD` shows every run's outcome, counts, time and the id `events` takes."""
    _put(server_uri, database, _run_ends())
    text = cli("runs", "thread-1")
    assert text.code == 0, text.err
    lines = text.out.splitlines()
    assert lines[0] == "runs of thread thread-1:"
    assert lines[1].split()[1:] == ["success", "3", "events", "1", "messages", "r-ok"]
    assert lines[2].split()[1:] == [
        "error",
        "(ValueError)",
        "2",
        "events",
        "0",
        "messages",
        "r-bad",
    ]
    assert lines[3].split()[1:] == ["no", "end", "1", "events", "0", "messages", "r-open"]
    assert lines[4] == "events of a run: mongo-runevents events thread-1 RUN"
    runs = json.loads(cli("--json", "runs", "thread-1").out)["runs"]
    assert [(r["run_id"], r["first_seq"], r["last_seq"]) for r in runs] == [
        ("r-ok", 1, 3),
        ("r-bad", 4, 5),
        ("r-open", 6, 6),
    ]
    assert cli("runs", "no-thread").out == "runs of thread no-thread:\n  (none)\n"


def test_messages_and_events_say_how_to_get_the_next_page(
    cli: Cli, server_uri: str, database: str
) -> None:
    """A full page ends with the option that reads the next one; a last page does not."""
    _put(server_uri, database, _sample())
    assert cli("messages", "thread-1", "--limit", "2").out.splitlines()[-1] == "older: --before 3"
    after = cli("messages", "thread-1", "--after", "0", "--limit", "2").out.splitlines()
    assert after[-1] == "next page: --after 3"
    assert "--before" not in cli("messages", "thread-1").out
    events = cli("events", "thread-1", "run-1", "--limit", "2").out.splitlines()
    assert events[-1] == "next page: --after 2"
    assert "next page" not in cli("events", "thread-1", "run-1").out


def test_the_threads_cursor_survives_a_shell(cli: Cli, server_uri: str, database: str) -> None:
    """The next-page cursor is printed quoted: pasted into a shell, it is one argument, not a pipe."""
    for name in ("t1", "t2"):
        _put(server_uri, database, [event(name)])
    last = cli("threads", "--limit", "1").out.splitlines()[-1]
    words = shlex.split(last)
    assert words[:3] == ["next", "page:", "--before"]
    assert "|" in words[3]
    following = cli("threads", "--before", words[3])
    assert following.code == 0, following.err
    assert following.out.split()[-1] == "t1"


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--timeout", "0", "threads"], "more than 0 and less than 86400 seconds, got 0"),
        (["--database", "bad.name", "threads"], "'bad.name' is not a MongoDB database name"),
        (["--database", "", "threads"], "--database: must not be empty"),
        (["--database", "a" * 64, "threads"], "MongoDB takes at most 63"),
    ],
)
def test_bad_global_options_are_usage_errors(
    argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A zero timeout or a database name MongoDB refuses is a usage error (exit 2), no traceback."""
    with pytest.raises(SystemExit) as exited:
        main(["--uri", "mongodb://127.0.0.1:1/", *argv])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert expected in err
    assert "Traceback" not in err


@pytest.mark.parametrize("command", [["threads"], ["messages", "t"], ["runs", "t"], ["count", "t"]])
def test_a_mistyped_database_is_an_error_and_is_not_created(
    cli: Cli, server_uri: str, database: str, command: list[str]
) -> None:
    """Reading a database that holds no events exits 1 saying so, and creates nothing."""
    _put(server_uri, database, _sample())
    mistyped = database + "x"
    result = cli(*command, database=mistyped)
    assert result.code == 1
    assert f"database {mistyped!r} has no 'run_events' collection" in result.err
    assert database in result.err  # the databases that do exist are named
    with MongoClient(server_uri) as client:
        assert mistyped not in client.list_database_names()


def test_ctrl_c_at_deletes_prompt_interrupts_at_once(
    cli: Cli, server_uri: str, database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C while delete waits for an answer exits 130 at once and deletes nothing."""
    _put(server_uri, database, _sample())

    class CtrlC(_Terminal):
        def readline(self, *args: Any) -> str:
            os.kill(os.getpid(), signal.SIGINT)  # arrives while the read is blocked...
            return "y\n"  # ...and, if Ctrl-C did not interrupt it, the answer is y

    previous = signal.signal(signal.SIGINT, lambda *args: None)  # as asyncio's handler swallows it
    try:
        monkeypatch.setattr(sys, "stdin", CtrlC())
        result = cli("delete", "thread-1")
    finally:
        signal.signal(signal.SIGINT, previous)
    assert result.code == 130
    assert "3 messages" in cli("count", "thread-1").out
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
