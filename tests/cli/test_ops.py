"""The installed ``mongo-runevents`` console script, run as an operator runs it, on the suite's server."""

from __future__ import annotations

import asyncio
import inspect
import json
import os
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
    assert "percent-escaped" in error


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
