"""The DeerFlow guide's code runs as written, and the factory it describes behaves."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient, MongoClient

from mongo_runevents import (
    ConfigurationError,
    MemoryRunEventStore,
    MongoRunEventStore,
    StoreUnavailableError,
)
from mongo_runevents.cli import build_parser
from mongo_runevents.deerflow import mongo_settings, open_run_event_store
from tests.conftest import database_name

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "deerflow.md"

#: The database every example names; each run gets a fresh one in its place.
PLACEHOLDER = '"database": "deerflow"'

#: What each example prints as its last line when all its assertions held.
EXPECTED_OUTPUT = ("deerflow store ok", "journal ok", "reads ok", "runs and users ok")


def python_blocks() -> list[str]:
    """The guide's Python code blocks."""
    return re.findall(r"```python\n(.*?)```", GUIDE.read_text(encoding="utf-8"), flags=re.S)


def mongodb_config(database: str | None = None, **mongodb: Any) -> dict[str, Any]:
    """A ``run_events`` configuration for the mongodb backend."""
    if database is not None:
        mongodb["database"] = database
    return {"run_events": {"backend": "mongodb", "mongodb": mongodb}}


# --- the guide --------------------------------------------------------------------------


def test_guide_has_its_examples() -> None:
    """The guide holds one Python example per topic, each on a substitutable database."""
    blocks = python_blocks()
    assert len(blocks) == len(EXPECTED_OUTPUT)
    for block in blocks:
        assert PLACEHOLDER in block, "an example must name the database the test replaces"


@pytest.mark.parametrize("index", range(len(python_blocks())))
def test_guide_python_block_runs(index: int, server_uri: str) -> None:
    """Each Python block of the guide runs against the test server, its assertions holding."""
    database = database_name()
    code = python_blocks()[index].replace(PLACEHOLDER, f'"database": "{database}"')
    env = {**os.environ, "MONGODB_URI": server_uri}
    try:
        done = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=180
        )
    finally:
        client: MongoClient[dict[str, Any]]
        with MongoClient(server_uri) as client:
            client.drop_database(database)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == EXPECTED_OUTPUT[index]


def test_guide_documents_the_migration_commands() -> None:
    """The guide's import and verify commands parse, and it covers owners, the database and layout."""
    text = GUIDE.read_text(encoding="utf-8")
    assert "threads/<thread_id>/runs/<run_id>.jsonl" in text
    assert "--format deerflow-db" in text
    commands = [
        shlex.split(
            line.replace("\\\n", " ").replace('"$MONGODB_URI"', "mongodb://h"), comments=True
        )[1:]
        for line in re.findall(r"^mongo-runevents (?:[^\n]*\\\n)*[^\n]*$", text, re.MULTILINE)
    ]
    migration = [argv for argv in commands if {"import", "verify"} & set(argv)]
    assert {argv[4] for argv in migration} == {"import", "verify"}
    assert any(arg.startswith("postgresql://") for argv in migration for arg in argv)
    assert any(arg.startswith("sqlite:///") for argv in migration for arg in argv)
    assert any("--owners" in argv for argv in migration)
    for argv in commands:
        build_parser().parse_args(argv)  # argparse exits on a wrong command


# --- the factory: memory ----------------------------------------------------------------


async def test_memory_backend_yields_a_memory_store() -> None:
    """backend: memory gives a working MemoryRunEventStore."""
    async with open_run_event_store({"run_events": {"backend": "memory"}}) as store:
        assert isinstance(store, MemoryRunEventStore)
        record = await store.put(thread_id="t", run_id="r", event_type="x", category="message")
        assert record["seq"] == 1


async def test_memory_is_the_default_backend() -> None:
    """A configuration without a run_events section (or backend) gives the memory store."""
    configs: list[dict[str, Any]] = [{}, {"run_events": None}, {"run_events": {}}]
    for config in configs:
        async with open_run_event_store(config) as store:
            assert isinstance(store, MemoryRunEventStore)


async def test_memory_backend_needs_no_uri(monkeypatch: pytest.MonkeyPatch) -> None:
    """The memory backend ignores a missing URI and any mongodb subsection."""
    monkeypatch.delenv("MONGODB_URI", raising=False)
    config = {"run_events": {"backend": "memory", "mongodb": {"database": "unused"}}}
    async with open_run_event_store(config) as store:
        assert isinstance(store, MemoryRunEventStore)


# --- the factory: mongodb ---------------------------------------------------------------


@pytest.fixture
async def fresh_database(server_uri: str) -> AsyncIterator[str]:
    """A database name on the test server, dropped afterwards."""
    name = database_name()
    yield name
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(server_uri)
    await client.drop_database(name)
    await client.close()


async def test_mongodb_backend_opens_a_ready_store(server_uri: str, fresh_database: str) -> None:
    """backend: mongodb connects with the configured names and creates the indexes first."""
    config = mongodb_config(fresh_database, uri=server_uri, collection="events")
    async with open_run_event_store(config) as store:
        assert isinstance(store, MongoRunEventStore)
        assert store.events_collection.name == "events"
        assert store.events_collection.database.name == fresh_database
        names = {index["name"] async for index in await store.events_collection.list_indexes()}
        assert {"thread_seq", "thread_category_seq", "thread_run_seq"} <= names
        record = await store.put(thread_id="t", run_id="r", event_type="x", category="message")
        assert record["seq"] == 1
        assert await store.count_messages("t") == 1


async def test_mongodb_uri_comes_from_the_environment(
    server_uri: str, fresh_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a uri key, MONGODB_URI is used."""
    monkeypatch.setenv("MONGODB_URI", server_uri)
    async with open_run_event_store(mongodb_config(fresh_database)) as store:
        assert isinstance(store, MongoRunEventStore)
        await store.put(thread_id="t", run_id="r", event_type="x", category="message")
        assert await store.count_messages("t") == 1


async def test_mongodb_retention_and_transactions_reach_the_store(
    server_uri: str, fresh_database: str
) -> None:
    """retention_days becomes a TTL on the listed categories; transactions is passed through."""
    config = mongodb_config(
        fresh_database, uri=server_uri, retention_days={"trace": 30}, transactions=False
    )
    async with open_run_event_store(config) as store:
        assert isinstance(store, MongoRunEventStore)
        assert store.uses_transactions is False
        await store.put(thread_id="t", run_id="r", event_type="llm.end", category="trace")
        await store.put(thread_id="t", run_id="r", event_type="x", category="message")
        documents = await store.events_collection.find({}, sort=[("seq", 1)]).to_list(None)
        assert "expires_at" in documents[0]
        assert "expires_at" not in documents[1]
        names = {index["name"] async for index in await store.events_collection.list_indexes()}
        assert "expiry" in names


def test_settings_fill_in_defaults() -> None:
    """Absent keys get the documented defaults; the URI is kept out of the repr."""
    settings = mongo_settings(
        mongodb_config(uri="mongodb://user:secret@db/", retention_days={"trace": 1.5})
    )
    assert settings.database == "mongo_runevents"
    assert settings.collection == "run_events"
    assert settings.transactions is None
    assert settings.retention == {"trace": timedelta(days=1.5)}
    assert "secret" not in repr(settings)


def test_settings_prefer_the_configured_uri() -> None:
    """A uri in the configuration wins over MONGODB_URI."""
    config = mongodb_config(uri="mongodb://configured/")
    settings = mongo_settings(config, environ={"MONGODB_URI": "mongodb://environment/"})
    assert settings.uri == "mongodb://configured/"


# --- the factory: errors ----------------------------------------------------------------


async def test_unknown_backend_is_refused() -> None:
    """An unknown backend is a ConfigurationError naming the valid ones."""
    with pytest.raises(ConfigurationError, match=r"run_events\.backend .*memory, mongodb"):
        async with open_run_event_store({"run_events": {"backend": "postgres"}}):
            pass


async def test_missing_uri_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """mongodb without a uri key or MONGODB_URI is a ConfigurationError saying where to set it."""
    monkeypatch.delenv("MONGODB_URI", raising=False)
    for config in (
        mongodb_config(),
        mongodb_config(uri=""),
        {"run_events": {"backend": "mongodb"}},
    ):
        with pytest.raises(ConfigurationError, match=r"run_events\.mongodb\.uri .*MONGODB_URI"):
            async with open_run_event_store(config):
                pass


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ([], "the configuration must be a mapping"),
        ({"run_events": "mongodb"}, "run_events must be a mapping"),
        ({"run_events": {"backend": "mongodb", "mongodb": 1}}, "run_events.mongodb must be"),
        (mongodb_config(uri=5), "uri must be a string"),
        (mongodb_config(uri="mongodb://h/", database=""), "database must be a non-empty"),
        (mongodb_config(uri="mongodb://h/", collection=3), "collection must be a non-empty"),
        (mongodb_config(uri="mongodb://h/", transactions="yes"), "true, false or null"),
        (mongodb_config(uri="mongodb://h/", retention_days=30), "retention_days must be"),
        (mongodb_config(uri="mongodb://h/", retention_days={"trace": 0}), "positive number"),
        (mongodb_config(uri="mongodb://h/", retention_days={"trace": True}), "positive number"),
        (mongodb_config(uri="mongodb://h/", retention_days={"trace": 1e12}), "too many days"),
        (mongodb_config(uri="mongodb://h/", retention={"trace": 30}), "unknown key.*retention"),
    ],
)
async def test_invalid_settings_are_refused(config: Any, message: str) -> None:
    """Each malformed setting is a ConfigurationError naming it, raised before connecting."""
    with pytest.raises(ConfigurationError, match=message):
        async with open_run_event_store(config):
            pass


async def test_errors_never_show_the_uri() -> None:
    """A refused configuration's message does not repeat the URI (it may hold a password)."""
    config = mongodb_config(uri="mongodb://user:hunter2@db/", transactions="maybe")
    with pytest.raises(ConfigurationError) as caught:
        async with open_run_event_store(config):
            pass
    assert "hunter2" not in str(caught.value)


async def test_unreachable_server_fails_at_start_up() -> None:
    """With mongodb, a server that cannot be reached fails when the store is opened."""
    uri = "mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=200&connectTimeoutMS=200"
    with pytest.raises(StoreUnavailableError):
        async with open_run_event_store(mongodb_config(uri=uri)):
            pytest.fail("the store must not be handed out")
