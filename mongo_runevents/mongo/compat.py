"""The few places where pymongo's async API, Motor and mongomock-motor differ.

The store is written against pymongo's native async API. Motor (and
mongomock-motor, which dresses mongomock up as Motor) differ in which calls
return awaitables: ``client.start_session()`` and ``session.end_session()`` are
awaited in Motor, ``session.start_transaction()`` is awaited in pymongo; and
mongomock has no ``hello`` and no sessions at all. Everything else the store
uses (``find``, ``insert_many``, ``find_one_and_update``, ``to_list``, ...) has
the same shape in all three.

The store's handles are typed as pymongo's (:data:`Database`,
:data:`Collection`, :data:`Session`); a Motor or mongomock-motor handle is
accepted where one of those is expected (:func:`check_database` admits it,
and the calls whose shape differs go through this module), since both offer
the same methods, awaited the same way, for everything else.
"""

from __future__ import annotations

import inspect
from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from ..errors import ConfigurationError

#: A document as the store reads and writes it.
Document = dict[str, Any]
#: The handles the store holds (a Motor handle is accepted in their place).
Database = AsyncDatabase[Document]
Collection = AsyncCollection[Document]
Session = AsyncClientSession


async def resolve(value: Any) -> Any:
    """``await value`` if it is awaitable, else return it: for calls whose shape differs."""
    if inspect.isawaitable(value):
        return await value
    return value


async def start_session(database: Database) -> Session:
    """A new client session for ``database``'s client."""
    session: Session = await resolve(database.client.start_session())
    return session


async def end_session(session: Session) -> None:
    """End a session started by :func:`start_session`."""
    await resolve(session.end_session())


async def start_transaction(session: Session) -> None:
    """Start a transaction on ``session`` (without using it as a context manager)."""
    await resolve(session.start_transaction())


async def server_hello(database: Database) -> Document | None:
    """The server's ``hello`` reply, or ``None`` where there is no server (mongomock)."""
    try:
        reply = await database.client.admin.command("hello")
    except NotImplementedError:
        return None
    return dict(reply)


def supports_transactions(hello: dict[str, Any] | None) -> bool:
    """Whether a deployment with this ``hello`` reply runs multi-document transactions.

    Replica set members report ``setName`` and ``mongos`` reports ``msg:
    "isdbgrid"``; a standalone ``mongod`` reports neither and cannot.
    """
    if hello is None:
        return False
    return "setName" in hello or hello.get("msg") == "isdbgrid"


def check_database(database: Any) -> None:
    """Refuse a handle that is not an async database, naming what is expected.

    Accepted: pymongo's ``AsyncDatabase`` (``AsyncMongoClient()["name"]``),
    Motor's and mongomock-motor's database objects.
    """
    expected = (
        "expected an async database handle, e.g. AsyncMongoClient(uri)['agents'] "
        "(pymongo's async API), a Motor database or a mongomock-motor database"
    )
    kind = type(database)
    name = f"{kind.__module__}.{kind.__qualname__}"
    if isinstance(database, (str, bytes)):
        raise ConfigurationError(
            f"got a {kind.__name__}; {expected} (for a URI, use MongoRunEventStore.from_uri)"
        )
    if name == "pymongo.synchronous.database.Database" or name == "pymongo.database.Database":
        raise ConfigurationError(
            f"got pymongo's synchronous Database; {expected}: the store is async only"
        )
    # A client answers any attribute with a database of that name, so look at
    # its class: pymongo's (Async)MongoClient, Motor's and mongomock-motor's clients.
    if kind.__name__.endswith("Client") or hasattr(kind, "list_database_names"):
        raise ConfigurationError(f"got a client ({name}), not a database; {expected}")
    if not (hasattr(database, "client") and hasattr(database, "list_collection_names")):
        raise ConfigurationError(f"got {name}; {expected}")
