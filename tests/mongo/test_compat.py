"""The MongoDB store refuses a handle of the wrong kind at construction, naming what it expects."""

from __future__ import annotations

from typing import Any

import pytest
from pymongo import AsyncMongoClient, MongoClient

from mongo_runevents import ConfigurationError, MongoRunEventStore
from tests.factories import event


def test_a_client_instead_of_a_database_is_refused() -> None:
    """An AsyncMongoClient is not a database: the error says so and shows the expected form."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(connect=False)
    with pytest.raises(ConfigurationError, match=r"got a client .*not a database") as raised:
        MongoRunEventStore(client)
    assert "AsyncMongoClient(uri)['agents']" in str(raised.value)


def test_a_synchronous_pymongo_database_is_refused() -> None:
    """pymongo's synchronous Database is refused: the store is async only."""
    with (
        MongoClient(connect=False) as client,
        pytest.raises(ConfigurationError, match="synchronous Database"),
    ):
        MongoRunEventStore(client["agents"])


@pytest.mark.parametrize("handle", ["mongodb://localhost/agents", b"agents"])
def test_a_string_is_refused_with_a_pointer_to_from_uri(handle: Any) -> None:
    """A URI (or any str / bytes) where a database belongs points to from_uri."""
    with pytest.raises(ConfigurationError, match=r"for a URI, use MongoRunEventStore\.from_uri"):
        MongoRunEventStore(handle)


@pytest.mark.parametrize("handle", [None, 42, object(), {"client": 1}])
def test_other_objects_are_refused_naming_their_type(handle: Any) -> None:
    """Anything else is refused with its type named."""
    with pytest.raises(ConfigurationError, match=f"got {type(handle).__module__}"):
        MongoRunEventStore(handle)


def test_motor_and_mongomock_clients_are_refused_too() -> None:
    """Motor's and mongomock-motor's clients are clients, not databases; their databases work."""
    motor = pytest.importorskip("motor.motor_asyncio")
    from mongomock_motor import AsyncMongoMockClient

    for client in (motor.AsyncIOMotorClient(connect=False), AsyncMongoMockClient()):
        with pytest.raises(ConfigurationError, match="got a client"):
            MongoRunEventStore(client)
        MongoRunEventStore(client["agents"])


async def test_closing_a_store_leaves_a_client_it_was_given_open(mongo_database: Any) -> None:
    """close() closes only a client the store made itself; the caller's handle keeps working."""
    async with MongoRunEventStore(mongo_database) as store:
        await store.put(**event())
    assert await mongo_database["run_events"].count_documents({}) == 1


async def test_closing_a_store_from_a_uri_closes_its_client(server_uri: str) -> None:
    """A store made by connect() owns its client: close() closes it."""
    store = MongoRunEventStore.connect(server_uri, database="closing_check")
    client = store.events_collection.database.client
    await store.close()
    with pytest.raises(Exception, match=r"closed|Cannot use"):
        await client.admin.command("ping")
