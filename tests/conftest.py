"""Test fixtures: the servers the suite starts, and every backend of :mod:`tests.backends`.

The ``store`` fixture (and ``store_factory``, ``connection``) runs a test once
per backend:

- ``memory``: :class:`MemoryRunEventStore`;
- ``mongomock``: the MongoDB store on mongomock-motor (no server, no transactions);
- ``pymongo`` / ``motor``: the MongoDB store through pymongo's ``AsyncMongoClient``
  and through Motor, on ``MONGODB_URI`` when it is set, else on a SecantusDB
  daemon the suite starts itself (a one-member replica set: transactions);
- ``standalone``: through pymongo on a SecantusDB daemon started with
  ``--standalone`` (no transactions), whenever SecantusDB is installed.

``mongo_backend`` (and ``mongo_connection``) do the same over the MongoDB
store's backends only. A test marked ``@pytest.mark.requires("transactions",
...)`` runs only where the deployment has each (:mod:`tests.capabilities`,
detected from the server): on each backend for a test that takes one, else on
the server under test. Every MongoDB-backed test gets a database of its own,
dropped afterwards.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from mongo_runevents import RunEventStore
from mongo_runevents.embedded import EmbeddedServer
from tests.backends import BACKENDS, MONGO_BACKENDS, Backend, Connection, database_name
from tests.capabilities import Capabilities, detect
from tests.commands import untargeted

MONGODB_URI = os.environ.get("MONGODB_URI")

#: How long the suite's replica-set server keeps a transaction nobody uses
#: (mongod's and SecantusDB's default: 60 s), so that a test of a writer killed
#: inside one waits seconds rather than a minute. The store's retry budget
#: (60 s + 15 s when the server does not report its lifetime) outlasts it.
TRANSACTION_LIFETIME_SECONDS = 5.0

__all__ = ["MONGODB_URI", "Backend", "StoreFactory", "database_name"]


def _start(tmp_path_factory: pytest.TempPathFactory, name: str, **options: Any) -> EmbeddedServer:
    base = tmp_path_factory.mktemp(name)
    try:
        return EmbeddedServer(base / "data", log_file=base / "server.log", **options).start()
    except Exception as exc:  # pragma: no cover - depends on the machine
        pytest.fail(f"could not start SecantusDB ({name}): {exc}")


@pytest.fixture(scope="session")
def secantus_replica_set(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedServer]:
    """A SecantusDB daemon in its default replica-set mode, fail points enabled, a short transaction lifetime."""
    server = _start(
        tmp_path_factory,
        "secantus-rs",
        test_commands=True,
        transaction_lifetime_seconds=TRANSACTION_LIFETIME_SECONDS,
    )
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
def standalone_uri(secantus_standalone: EmbeddedServer) -> str:
    """The standalone server's URI."""
    return secantus_standalone.uri


def _skip_unless_capable(
    capabilities: Capabilities, where: str, request: pytest.FixtureRequest
) -> None:
    """Skip a test marked ``requires(...)`` on a deployment that lacks any of it."""
    marker = request.node.get_closest_marker("requires")
    if marker is None:
        return
    missing = capabilities.missing(marker.args)
    if missing:
        pytest.skip(f"{where} lacks {', '.join(missing)}")


@pytest.fixture(autouse=True)
def _requirements_of_the_server(request: pytest.FixtureRequest) -> None:
    """A test marked ``requires(...)`` that takes no backend runs on the server under test: check it."""
    if request.node.get_closest_marker("requires") is None:
        return
    if {"backend", "mongo_backend"} & set(request.fixturenames):
        return  # checked on each backend
    server = request.getfixturevalue("server_uri")
    _skip_unless_capable(detect(server), "the server under test", request)


def _chosen(name: str, request: pytest.FixtureRequest) -> Backend:
    chosen = BACKENDS[name]
    if request.node.get_closest_marker("requires") is not None:
        uri = None if chosen.uri_fixture is None else request.getfixturevalue(chosen.uri_fixture)
        _skip_unless_capable(chosen.capabilities(uri), chosen.name, request)
    return chosen


@pytest.fixture(params=list(BACKENDS))
def backend(request: pytest.FixtureRequest) -> Backend:
    """Each backend in turn (skipped where its deployment lacks what the test ``requires``)."""
    return _chosen(request.param, request)


@pytest.fixture(params=MONGO_BACKENDS)
def mongo_backend(request: pytest.FixtureRequest) -> Backend:
    """Each backend of the MongoDB store in turn (skipped as ``backend`` is)."""
    return _chosen(request.param, request)


async def _open(backend: Backend, request: pytest.FixtureRequest) -> Connection:
    uri = None if backend.uri_fixture is None else request.getfixturevalue(backend.uri_fixture)
    return Connection(backend, uri)


def _check_targeting(opened: Connection, request: pytest.FixtureRequest) -> None:
    """Every command the test's stores sent named its thread (unless marked ``cluster_wide``)."""
    if request.node.get_closest_marker("cluster_wide") is not None:
        return
    scattered = untargeted(opened.commands)
    assert not scattered, (
        "commands that name no thread (every shard would get them):\n" + "\n".join(scattered)
    )


@pytest.fixture
async def connection(backend: Backend, request: pytest.FixtureRequest) -> AsyncIterator[Connection]:
    """``backend`` opened for one test; afterwards, every command it sent must have named a thread."""
    opened = await _open(backend, request)
    try:
        yield opened
        _check_targeting(opened, request)
    finally:
        await opened.close()


@pytest.fixture
async def mongo_connection(
    mongo_backend: Backend, request: pytest.FixtureRequest
) -> AsyncIterator[Connection]:
    """``mongo_backend`` opened for one test; its commands are checked as ``connection``'s are."""
    opened = await _open(mongo_backend, request)
    try:
        yield opened
        _check_targeting(opened, request)
    finally:
        await opened.close()


StoreFactory = Callable[..., RunEventStore]


@pytest.fixture
def store_factory(connection: Connection) -> StoreFactory:
    """Makes fresh, empty stores on the backend, each given the store options passed to it."""
    made = 0

    def make(**options: Any) -> RunEventStore:
        nonlocal made
        made += 1
        return connection.store("run_events" if made == 1 else f"run_events_{made}", **options)

    return make


@pytest.fixture
def store(store_factory: StoreFactory) -> RunEventStore:
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
