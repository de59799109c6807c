"""Least privilege: a user with MongoDB's ``read`` role reads everything, and reads create nothing.

SecantusDB enforces roles with ``--auth`` (SCRAM-SHA-256), so the suite starts
one server with an administrator and a user holding only ``read`` on two
databases: one with events, one never written to. Set-up is explicit
(``ensure_indexes``, ``mongo-runevents init``) or happens on the first write.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient, MongoClient

from mongo_runevents import MongoRunEventStore
from mongo_runevents.cli import main
from mongo_runevents.embedded import EmbeddedServer
from tests.commands import CommandLog
from tests.factories import event, trace

DATA, FRESH = "lp_data", "lp_fresh"
#: Commands that change a database (or create one).
WRITES = {
    "create",
    "createIndexes",
    "insert",
    "update",
    "delete",
    "findAndModify",
    "drop",
    "dropIndexes",
    "collMod",
}


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A server requiring authentication: URIs of an administrator and of a read-only user."""
    base: Path = tmp_path_factory.mktemp("secantus-auth")
    setup = EmbeddedServer(base / "data", log_file=base / "server.log").start()
    try:
        with MongoClient(setup.uri) as client:
            client.admin.command("createUser", "admin", pwd="admin-pw", roles=["root"])
            client.admin.command(
                "createUser",
                "reader",
                pwd="reader-pw",
                roles=[{"role": "read", "db": DATA}, {"role": "read", "db": FRESH}],
            )
    finally:
        setup.stop()
    server = EmbeddedServer(base / "data", log_file=base / "server.log", extra_args=("--auth",))
    server.start()
    address = f"127.0.0.1:{server.port}/?directConnection=true&authSource=admin"
    try:
        yield {
            "admin": f"mongodb://admin:admin-pw@{address}",
            "reader": f"mongodb://reader:reader-pw@{address}",
        }
    finally:
        server.stop()


@pytest.fixture(scope="module")
def written(auth_server: dict[str, str]) -> dict[str, str]:
    """The administrator's writes: two runs in thread-1 of the data database."""
    import asyncio

    async def write() -> None:
        async with MongoRunEventStore.from_uri(auth_server["admin"], database=DATA) as store:
            await store.put_batch(
                [
                    event(content={"type": "human", "id": "h1", "content": "hi"}),
                    trace(),
                    event(content={"type": "ai", "id": "a1", "content": "hello"}),
                    event(run_id="run-2", content={"type": "ai", "id": "a2", "content": "again"}),
                ]
            )

    asyncio.run(write())
    return auth_server


@pytest.fixture
async def reader(
    written: dict[str, str],
) -> AsyncIterator[tuple[AsyncMongoClient[Any], CommandLog]]:
    """The read-only user's client, with a log of the commands it sends."""
    log = CommandLog()
    client: AsyncMongoClient[Any] = AsyncMongoClient(written["reader"], event_listeners=[log])
    yield client, log
    await client.close()


async def every_read(store: MongoRunEventStore) -> dict[str, Any]:
    """The store's reads, each once."""
    return {
        "messages": await store.list_messages("thread-1"),
        "by_run": await store.list_messages_by_run("thread-1", "run-1"),
        "events": await store.list_events("thread-1", "run-1"),
        "count": await store.count_messages("thread-1"),
        "events_count": await store.count_events("thread-1"),
        "replies": await store.get_last_visible_ai_seq_by_run("thread-1", {"run-1", "run-2"}),
        "seqs": await store.get_message_seqs("thread-1", ["message:h1", "message:a2"]),
        "threads": await store.list_threads(),
        "thread": await store.get_thread("thread-1"),
        "event": await store.get_event("thread-1", 1),
        "after": await store.read_after("thread-1", 0),
    }


async def test_the_read_role_reads_everything(
    reader: tuple[AsyncMongoClient[Any], CommandLog],
) -> None:
    """Every read works for a user with only the read role, and sends no write command."""
    client, log = reader
    found = await every_read(MongoRunEventStore(client[DATA]))
    assert [record["seq"] for record in found["messages"]] == [1, 3, 4]
    assert found["count"] == 3
    assert found["events_count"] == 4
    assert found["replies"] == {"run-1": 3, "run-2": 4}
    assert found["seqs"] == {"message:h1": 1, "message:a2": 4}
    assert [thread["thread_id"] for thread in found["threads"]] == ["thread-1"]
    assert {command.command_name for command in log.sent} & WRITES == set()


async def test_reads_of_a_fresh_database_create_nothing(
    reader: tuple[AsyncMongoClient[Any], CommandLog], written: dict[str, str]
) -> None:
    """Reading a database never written to finds nothing, sends no write, and leaves no database."""
    client, log = reader
    found = await every_read(MongoRunEventStore(client[FRESH]))
    assert found["messages"] == [] and found["threads"] == [] and found["seqs"] == {}  # noqa: PT018
    assert found["thread"] is None and found["event"] is None  # noqa: PT018
    assert {command.command_name for command in log.sent} & WRITES == set()
    with MongoClient(written["admin"]) as admin:
        assert FRESH not in admin.list_database_names()


async def test_the_read_role_cannot_set_up(
    reader: tuple[AsyncMongoClient[Any], CommandLog],
) -> None:
    """Set-up stays explicit: ensure_indexes by a read-only user is refused by the server."""
    from mongo_runevents import RunEventStoreError

    client, _ = reader
    with pytest.raises(RunEventStoreError):
        await MongoRunEventStore(client[FRESH]).ensure_indexes()


@pytest.mark.parametrize(
    "command",
    [["threads"], ["messages", "thread-1"], ["events", "thread-1", "run-1"], ["runs", "thread-1"]],
)
def test_cli_read_commands_work_with_the_read_role(
    written: dict[str, str], command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """The CLI's read commands answer a read-only user (they used to create indexes first)."""
    code = main(["--uri", written["reader"], "--database", DATA, "--json", *command])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert json.loads(captured.out)


async def test_viewer_pages_work_with_the_read_role_and_create_nothing(
    reader: tuple[AsyncMongoClient[Any], CommandLog], written: dict[str, str]
) -> None:
    """Every viewer page answers a read-only user, and a fresh database stays uncreated."""
    pytest.importorskip("starlette")
    import httpx

    from mongo_runevents.web import create_app

    client, log = reader
    for name, pages in (
        (DATA, ["/", "/thread?id=thread-1", "/run?thread=thread-1&id=run-1", "/event?thread=thread-1&seq=1"]),
        (FRESH, ["/", "/thread?id=thread-1", "/run?thread=thread-1&id=run-1"]),
    ):  # fmt: skip
        app = create_app(MongoRunEventStore(client[name]))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as browser:
            for page in pages:
                response = await browser.get(page)
                assert response.status_code == 200, (name, page, response.text[:300])
    assert {command.command_name for command in log.sent} & WRITES == set()
    with MongoClient(written["admin"]) as admin:
        assert FRESH not in admin.list_database_names()


async def test_the_read_role_verifies_an_import_and_dry_runs_one(
    reader: tuple[AsyncMongoClient[Any], CommandLog],
) -> None:
    """verify and import_events(dry_run=True) are reads: they work with the read role, write nothing."""
    from mongo_runevents.verify import verify_threads

    client, log = reader
    store = MongoRunEventStore(client[DATA])
    records = [record async for record in store.export_events("thread-1")]
    found = await verify_threads(store, records)
    assert found.differences == []
    assert found.matched == 4
    dry = await store.import_events(records, dry_run=True)
    assert (dry.inserted, dry.already_there) == (0, 4)
    assert {command.command_name for command in log.sent} & WRITES == set()
