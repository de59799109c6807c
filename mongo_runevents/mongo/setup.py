"""Setting a store up: its collections, their indexes, and what the deployment can do.

:func:`set_up` runs once per store (``ensure_indexes``, or the first
operation): it creates the indexes, asks the server ``hello``, settles the
retention, and returns a frozen :class:`Deployment` that every writer and
reader is handed. Nothing else reads or writes set-up state.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from types import MappingProxyType
from typing import Any

from pymongo import ASCENDING, IndexModel, UpdateOne
from pymongo.errors import PyMongoError

from ..errors import ConfigurationError
from ..identities import message_identity
from ..models import MESSAGE_CATEGORY
from . import compat
from .blobs import Blobs
from .codec import EXPIRES_AT_FIELD, IDENTITY_FIELD
from .compat import Collection, Database, Document
from .counters import COUNTER_INDEXES
from .events import EVENT_INDEXES, OBSOLETE_INDEXES

#: Deletes documents once their ``expires_at`` has passed (categories with retention).
EXPIRY_INDEX = IndexModel([(EXPIRES_AT_FIELD, ASCENDING)], name="expiry", expireAfterSeconds=0)

#: MongoDB's default ``transactionLifetimeLimitSeconds``.
DEFAULT_TRANSACTION_LIFETIME_SECONDS = 60.0
#: MongoDB's document size limit, when the server does not say (16 MiB).
DEFAULT_MAX_DOCUMENT_BYTES = 16 * 1024 * 1024

#: The settings document holding the collection's retention periods (seconds).
RETENTION_SETTING = "retention"


@dataclass(frozen=True)
class Collections:
    """The collections of one store: events, counters, the blob bucket and settings."""

    database: Database
    events: Collection
    counters: Collection
    blobs: Blobs
    settings: Collection

    @classmethod
    def named(cls, database: Database, events: str, counters: str | None) -> Collections:
        """The collections beside the events collection ``events``."""
        return cls(
            database=database,
            events=database[events],
            counters=database[counters or f"{events}_counters"],
            blobs=Blobs(database[f"{events}_blobs.files"], database[f"{events}_blobs.chunks"]),
            settings=database[f"{events}_settings"],
        )


@dataclass(frozen=True)
class Deployment:
    """What the deployment can do and how the store uses it, settled once at set-up."""

    #: Writes run in multi-document transactions.
    transactions: bool
    #: The deployment offers change streams (replica set, sharded cluster).
    change_streams: bool
    #: A real server that encodes BSON (mongomock keeps Python objects as given).
    bson_server: bool
    #: Categories mapped to how long their events are kept.
    retention: Mapping[str, timedelta] = field(default_factory=lambda: MappingProxyType({}))
    #: How long the server lets a transaction stay open (its
    #: ``transactionLifetimeLimitSeconds``; MongoDB's default when it does not say).
    transaction_lifetime_seconds: float = DEFAULT_TRANSACTION_LIFETIME_SECONDS
    #: The largest document the server stores (its ``maxBsonObjectSize``).
    max_document_bytes: int = DEFAULT_MAX_DOCUMENT_BYTES


#: The longest retention period accepted: 100 years. An event's expiry is its
#: write time plus the period, which must stay a date MongoDB and Python hold.
MAX_RETENTION = timedelta(days=36_525)


def check_retention(retention: Mapping[str, timedelta] | None) -> dict[str, timedelta]:
    """The retention setting: categories mapped to positive ``timedelta`` periods of 100 years at most."""
    if retention is not None and not isinstance(retention, Mapping):
        raise ConfigurationError(
            f"retention must map categories to timedeltas, got {type(retention).__name__}"
        )
    checked: dict[str, timedelta] = {}
    for category, period in (retention or {}).items():
        if not isinstance(category, str) or not category:
            raise ConfigurationError(f"retention: {category!r} is not a category name")
        if not isinstance(period, timedelta) or not timedelta(0) < period <= MAX_RETENTION:
            raise ConfigurationError(
                f"retention[{category!r}] must be a positive timedelta of at most "
                f"{MAX_RETENTION.days} days, got {period!r}"
            )
        checked[category] = period
    return checked


async def set_up(
    collections: Collections,
    *,
    transactions: bool | None,
    retention: Mapping[str, timedelta] | None,
) -> Deployment:
    """Create the indexes, read the server's capabilities, settle the retention; safe to repeat.

    ``transactions`` ``None`` asks the server; ``retention`` ``None`` adopts the
    one recorded for the collection (``mongo-runevents init --retention``),
    and a given one is recorded.
    """
    hello = await compat.server_hello(collections.database)
    await collections.events.create_indexes(list(EVENT_INDEXES))
    await _drop_obsolete_indexes(collections.events)
    await collections.counters.create_indexes(list(COUNTER_INDEXES))
    await collections.blobs.create_indexes()
    settled = await _settle_retention(collections.settings, retention)
    if settled:
        for collection in (collections.events, collections.blobs.files, collections.blobs.chunks):
            await collection.create_indexes([EXPIRY_INDEX])
    capable = compat.supports_transactions(hello)
    return Deployment(
        transactions=capable if transactions is None else transactions,
        change_streams=capable,
        bson_server=hello is not None,
        retention=MappingProxyType(settled),
        transaction_lifetime_seconds=await _transaction_lifetime(collections.database)
        if capable
        else DEFAULT_TRANSACTION_LIFETIME_SECONDS,
        max_document_bytes=int((hello or {}).get("maxBsonObjectSize", DEFAULT_MAX_DOCUMENT_BYTES)),
    )


async def add_missing_identities(collections: Collections, batch_size: int = 1000) -> int:
    """Give messages stored before ``get_message_seqs`` existed their identity; how many got one.

    A scan of the messages without the field (explicit set-up only:
    ``mongo-runevents init``). The fields the rule reads (``id``, ``type``,
    ``tool_call_id``) never need escaping, so the stored content is read as it
    is; content stored out of line is left without one.
    """
    query = {
        "category": MESSAGE_CATEGORY,
        IDENTITY_FIELD: {"$exists": False},
        "$or": [{"content.id": {"$type": "string"}}, {"content.tool_call_id": {"$type": "string"}}],
    }
    projection: Document = {"content.id": 1, "content.type": 1, "content.tool_call_id": 1}
    added = 0
    last_id: Any = None
    while True:
        page_query = query if last_id is None else {**query, "_id": {"$gt": last_id}}
        rows = await collections.events.find(
            page_query, projection, sort=[("_id", ASCENDING)], limit=batch_size
        ).to_list(None)
        if not rows:
            return added
        updates = []
        for row in rows:
            identity = message_identity(row.get("content"))
            if identity is not None:
                updates.append(UpdateOne({"_id": row["_id"]}, {"$set": {IDENTITY_FIELD: identity}}))
        if updates:
            await collections.events.bulk_write(updates, ordered=False)
            added += len(updates)
        last_id = rows[-1]["_id"]


async def _drop_obsolete_indexes(events: Collection) -> None:
    """Drop the indexes of :data:`OBSOLETE_INDEXES` where an earlier version made them.

    An event written before the upgrade keeps its ``ObjectId``: a retry of it
    under the same ``event_id`` is not recognised any more (only within the
    minutes a journal retries, across the upgrade itself).
    """
    cursor = await compat.resolve(events.list_indexes())
    names = {index["name"] for index in await cursor.to_list(None)}
    for name in OBSOLETE_INDEXES:
        if name in names:
            await events.drop_index(name)


async def _transaction_lifetime(database: Database) -> float:
    """The server's ``transactionLifetimeLimitSeconds``, or MongoDB's default if it will not say.

    ``getParameter`` needs a privilege many application users lack (and
    ``mongos`` does not know the parameter), so failing to read it is normal.
    """
    try:
        reply = await database.client.admin.command(
            "getParameter", 1, transactionLifetimeLimitSeconds=1
        )
    except (PyMongoError, NotImplementedError):
        return DEFAULT_TRANSACTION_LIFETIME_SECONDS
    value = reply.get("transactionLifetimeLimitSeconds")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        return DEFAULT_TRANSACTION_LIFETIME_SECONDS
    return float(value)


async def _settle_retention(
    settings: Collection, retention: Mapping[str, timedelta] | None
) -> dict[str, timedelta]:
    """Record the given retention, or read the one recorded for the collection."""
    if retention is not None:
        seconds = {category: period.total_seconds() for category, period in retention.items()}
        await settings.replace_one({"_id": RETENTION_SETTING}, {"periods": seconds}, upsert=True)
        return dict(retention)
    recorded = await settings.find_one({"_id": RETENTION_SETTING})
    if recorded is None:
        return {}
    try:
        periods = {
            category: timedelta(seconds=seconds)
            for category, seconds in recorded["periods"].items()
        }
    except (KeyError, AttributeError, TypeError, ValueError, OverflowError) as exc:
        raise ConfigurationError(
            f"the retention recorded in {settings.name} is not valid ({exc}); "
            "record a valid one with mongo-runevents init --retention"
        ) from exc
    try:
        return check_retention(periods)
    except ConfigurationError as exc:
        raise ConfigurationError(
            f"the retention recorded in {settings.name} is not valid: {exc}; "
            "record a valid one with mongo-runevents init --retention"
        ) from exc
