"""Test fixtures: every store, on every server the suite can reach.

The ``store`` fixture runs a test once per backend:

- ``memory``: :class:`MemoryRunEventStore`;
- ``mongomock``: the MongoDB store on mongomock-motor (no server, no transactions);
- ``pymongo`` / ``motor``: the MongoDB store through pymongo's ``AsyncMongoClient``
  and through Motor, on ``MONGODB_URI`` when it is set, else on a SecantusDB
  daemon the suite starts itself (a one-member replica set: transactions);
- ``standalone``: through pymongo on a SecantusDB daemon started with
  ``--standalone`` (no transactions), whenever SecantusDB is installed.

Every MongoDB-backed test gets a database of its own, dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from mongo_runevents import MemoryRunEventStore, MongoRunEventStore, RunEventStore
from mongo_runevents.embedded import EmbeddedServer

MONGODB_URI = os.environ.get("MONGODB_URI")


@dataclass(frozen=True)
class Backend:
    """A store implementation on a kind of deployment, and what it promises."""

    name: str
    #: Writes run in transactions: batches are atomic, commits land in seq order.
    transactions: bool
    #: A real MongoDB wire-protocol server (as opposed to memory or mongomock).
    server: bool


BACKENDS = {
    "memory": Backend("memory", transactions=True, server=False),
    "mongomock": Backend("mongomock", transactions=False, server=False),
    "pymongo": Backend("pymongo", transactions=True, server=True),
    "motor": Backend("motor", transactions=True, server=True),
    "standalone": Backend("standalone", transactions=False, server=True),
}


def _start(tmp_path_factory: pytest.TempPathFactory, name: str, **options: Any) -> EmbeddedServer:
    base = tmp_path_factory.mktemp(name)
    try:
        return EmbeddedServer(base / "data", log_file=base / "server.log", **options).start()
    except Exception as exc:  # pragma: no cover - depends on the machine
        pytest.fail(f"could not start SecantusDB ({name}): {exc}")


@pytest.fixture(scope="session")
def secantus_replica_set(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedServer]:
    """A SecantusDB daemon in its default replica-set mode, fail points enabled."""
    server = _start(tmp_path_factory, "secantus-rs", test_commands=True)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def secantus_standalone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedServer]:
    """A SecantusDB daemon started with --standalone (no transactions)."""
    server = _start(tmp_path_factory, "secantus-standalone", standalone=True, test_commands=True)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def server_uri(request: pytest.FixtureRequest) -> str:
    """The replica-set-capable server under test: MONGODB_URI, else an embedded SecantusDB."""
    if MONGODB_URI:
        return MONGODB_URI
    server: EmbeddedServer = request.getfixturevalue("secantus_replica_set")
    return server.uri


@pytest.fixture(scope="session")
def server_has_transactions(server_uri: str) -> bool:
    """Whether the server under test runs transactions (replica set or mongos)."""
    from pymongo import MongoClient

    with MongoClient(server_uri) as client:
        hello = client.admin.command("hello")
    return "setName" in hello or hello.get("msg") == "isdbgrid"


@pytest.fixture(autouse=True)
def _skip_without_transactions(request: pytest.FixtureRequest) -> None:
    """Tests marked ``transactions`` skip on a server without them (a standalone MONGODB_URI)."""
    if request.node.get_closest_marker("transactions") is None:
        return
    if not request.getfixturevalue("server_has_transactions"):
        pytest.skip("the server under test has no transactions (standalone)")


def database_name() -> str:
    """A fresh database name for one test."""
    return f"test_{uuid.uuid4().hex[:12]}"


@pytest.fixture(params=list(BACKENDS))
def backend(request: pytest.FixtureRequest) -> Backend:
    """Each backend in turn."""
    return BACKENDS[request.param]


StoreFactory = Callable[..., RunEventStore]


@pytest.fixture
async def store_factory(
    backend: Backend, request: pytest.FixtureRequest
) -> AsyncIterator[StoreFactory]:
    """Makes fresh, empty stores on ``backend``, each given the store options passed to it."""
    made = 0
    cleanup: list[Callable[[], Awaitable[Any]]] = []
    database: Any = None
    if backend.name == "mongomock":
        from mongomock_motor import AsyncMongoMockClient

        database = AsyncMongoMockClient()[database_name()]
    elif backend.name == "motor":
        from motor.motor_asyncio import AsyncIOMotorClient

        name = database_name()
        motor_client = AsyncIOMotorClient(request.getfixturevalue("server_uri"))
        database = motor_client[name]

        async def close_motor() -> None:
            await motor_client.drop_database(name)
            motor_client.close()

        cleanup.append(close_motor)
    elif backend.name != "memory":
        if backend.name == "standalone":
            uri = request.getfixturevalue("secantus_standalone").uri
        else:
            uri = request.getfixturevalue("server_uri")
        name = database_name()
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri)
        database = client[name]

        async def close_client() -> None:
            await client.drop_database(name)
            await client.close()

        cleanup.append(close_client)

    def make(**options: Any) -> RunEventStore:
        nonlocal made
        made += 1
        if backend.name == "memory":
            return MemoryRunEventStore(**options)
        collection = "run_events" if made == 1 else f"run_events_{made}"
        return MongoRunEventStore(database, collection=collection, **options)

    yield make
    for step in cleanup:
        await step()


@pytest.fixture
async def store(store_factory: StoreFactory) -> RunEventStore:
    """A fresh, empty store on ``backend``."""
    return store_factory()


@pytest.fixture
async def mongo_client(server_uri: str) -> AsyncIterator[AsyncMongoClient[dict[str, Any]]]:
    """A pymongo async client on the replica-set-capable server."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(server_uri)
    yield client
    await client.close()


@pytest.fixture
async def mongo_database(mongo_client: AsyncMongoClient[dict[str, Any]]) -> AsyncIterator[Any]:
    """A fresh database on the replica-set-capable server, dropped afterwards."""
    name = database_name()
    yield mongo_client[name]
    await mongo_client.drop_database(name)


def pytest_report_header() -> str:
    """Say which server the suite runs against."""
    where = (
        MONGODB_URI.split("@")[-1] if MONGODB_URI else "embedded SecantusDB (started by the suite)"
    )
    return f"mongo_runevents server: {where}"
