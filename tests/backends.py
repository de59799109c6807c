"""The one registry of backends the tests run on, and how each is opened.

A backend is a store implementation on a kind of deployment. What the
deployment offers (transactions, change streams, fail points) is detected
from it (:mod:`tests.capabilities`), so a test of an optional guarantee runs
only where it holds (``@pytest.mark.requires("transactions")``), as
LangGraph's conformance package does. Every test that needs a store, whatever
its module, gets it from :class:`Connection`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from pymongo import AsyncMongoClient

from mongo_runevents import MemoryRunEventStore, MongoRunEventStore, RunEventStore
from tests.capabilities import MEMORY, MONGOMOCK, Capabilities, detect
from tests.commands import CommandLog


@dataclass(frozen=True)
class Backend:
    """A store implementation on a kind of deployment."""

    name: str
    #: How the store reaches its data: "memory", "mongomock", "pymongo" or "motor".
    driver: str
    #: The fixture giving the server's URI, for server backends.
    uri_fixture: str | None = None

    def capabilities(self, uri: str | None) -> Capabilities:
        """What the backend's deployment offers (``uri``: its server's, for server backends)."""
        if self.driver == "memory":
            return MEMORY
        if self.driver == "mongomock":
            return MONGOMOCK
        assert uri is not None, f"{self.name} needs its server's URI"
        return detect(uri)


BACKENDS = {
    backend.name: backend
    for backend in (
        Backend("memory", driver="memory"),
        Backend("mongomock", driver="mongomock"),
        Backend("pymongo", driver="pymongo", uri_fixture="server_uri"),
        Backend("motor", driver="motor", uri_fixture="server_uri"),
        Backend("standalone", driver="pymongo", uri_fixture="standalone_uri"),
    )
}

#: The MongoDB store's backends.
MONGO_BACKENDS = [name for name, backend in BACKENDS.items() if backend.driver != "memory"]


def database_name() -> str:
    """A fresh database name for one test."""
    return f"test_{uuid.uuid4().hex[:12]}"


class Connection:
    """One backend opened on the running event loop: a client, a database of its own, a command log.

    Stores made on the same collection share their data, on every backend (the
    Memory store hands out the same object again), so a test can have a writer
    and a reader.
    """

    def __init__(self, backend: Backend, uri: str | None = None, **client_options: Any) -> None:
        self.backend = backend
        self.commands = CommandLog()
        self.database_name = database_name()
        self._memory: dict[str, MemoryRunEventStore] = {}
        self._client: Any = None
        self._raw_client: Any = None
        self.database: Any = None
        #: The same database through a client of its own, for a test's raw
        #: look-ups (not in the command log).
        self.raw: Any = None
        if backend.driver == "mongomock":
            from mongomock_motor import AsyncMongoMockClient

            self._client = AsyncMongoMockClient()
        elif backend.driver == "motor":
            from motor.motor_asyncio import AsyncIOMotorClient

            self._client = AsyncIOMotorClient(
                uri, event_listeners=[self.commands], **client_options
            )
        elif backend.driver == "pymongo":
            self._client = AsyncMongoClient(uri, event_listeners=[self.commands], **client_options)
        if self._client is not None:
            self.database = self._client[self.database_name]
            self._raw_client = (
                self._client if backend.driver == "mongomock" else AsyncMongoClient(uri)
            )
            self.raw = self._raw_client[self.database_name]

    def store(self, collection: str = "run_events", **options: Any) -> RunEventStore:
        """A store on ``collection`` with the store ``options``."""
        if self.backend.driver == "memory":
            if collection not in self._memory:
                self._memory[collection] = MemoryRunEventStore(**options)
            return self._memory[collection]
        return MongoRunEventStore(self.database, collection=collection, **options)

    async def drop(self, collection: str) -> None:
        """Drop a collection and its companions (no-op on the Memory store)."""
        self._memory.pop(collection, None)
        if self.raw is not None:
            for name in (collection, f"{collection}_counters", f"{collection}_settings"):
                await self.raw.drop_collection(name)

    async def close(self) -> None:
        """Drop the database and close the client."""
        if self._client is None:
            return
        if self.backend.driver == "mongomock":
            return
        await self._raw_client.drop_database(self.database_name)
        await self._raw_client.close()
        if self.backend.driver == "motor":
            self._client.close()
        else:
            await self._client.close()
