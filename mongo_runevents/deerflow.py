"""Open a run event store from an agent server's configuration.

Agent servers in the DeerFlow mould pick their storage in a YAML file. This
module reads that file's ``run_events`` section (already parsed into a
mapping) and opens the store it names::

    run_events:
      backend: mongodb            # or: memory
      mongodb:
        uri: mongodb://db-1,db-2,db-3/?replicaSet=rs0   # or env MONGODB_URI
        database: deerflow
        collection: run_events
        retention_days: {trace: 30}
        transactions: null        # null: ask the server; true / false: force

Usage, once per server process::

    async with open_run_event_store(config) as store:
        ...  # serve requests with `store`

Every mistake in the section is reported as a
:class:`~mongo_runevents.errors.ConfigurationError` naming the offending key,
before any connection is made. Messages never contain the URI, which may hold
a password.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from .base import RunEventStore
from .errors import ConfigurationError
from .memory import MemoryRunEventStore
from .mongo import MongoRunEventStore

#: The name of the configuration section read by :func:`open_run_event_store`.
SECTION = "run_events"
#: The environment variable consulted when the section gives no URI.
URI_ENVIRONMENT_VARIABLE = "MONGODB_URI"
#: The backends :func:`open_run_event_store` knows.
BACKENDS = ("memory", "mongodb")
#: Defaults of the ``mongodb`` subsection.
DEFAULT_DATABASE = "mongo_runevents"
DEFAULT_COLLECTION = "run_events"

_MONGODB_KEYS = frozenset({"uri", "database", "collection", "retention_days", "transactions"})


@dataclass(frozen=True)
class MongoSettings:
    """The ``run_events.mongodb`` subsection, checked and with defaults filled in."""

    uri: str = field(repr=False)  # may hold a password
    database: str = DEFAULT_DATABASE
    collection: str = DEFAULT_COLLECTION
    retention: dict[str, timedelta] = field(default_factory=dict)
    transactions: bool | None = None


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    """``value`` if it is a mapping (``None`` counts as empty), else a configuration error."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigurationError(f"{where} must be a mapping, got {type(value).__name__}")
    return value


def _name(value: Any, where: str, default: str) -> str:
    """A non-empty string setting, or ``default`` when it is absent."""
    if value is None:
        return default
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"{where} must be a non-empty string")
    return value


def _retention(value: Any) -> dict[str, timedelta]:
    """``retention_days`` (category -> positive number of days) as ``timedelta`` periods."""
    where = f"{SECTION}.mongodb.retention_days"
    periods: dict[str, timedelta] = {}
    for category, days in _mapping(value, where).items():
        if not isinstance(category, str) or not category:
            raise ConfigurationError(f"{where}: {category!r} is not a category name")
        if isinstance(days, bool) or not isinstance(days, (int, float)) or not days > 0:
            raise ConfigurationError(f"{where}.{category} must be a positive number of days")
        try:
            periods[category] = timedelta(days=days)
        except OverflowError:
            raise ConfigurationError(f"{where}.{category} is too many days") from None
    return periods


def backend_name(config: Mapping[str, Any]) -> str:
    """The backend the configuration asks for; ``memory`` when it names none."""
    section = _mapping(_mapping(config, "the configuration").get(SECTION), SECTION)
    backend = section.get("backend", "memory")
    if backend not in BACKENDS:
        raise ConfigurationError(
            f"{SECTION}.backend must be one of {', '.join(BACKENDS)}; got {backend!r}"
        )
    return str(backend)


def mongo_settings(
    config: Mapping[str, Any], environ: Mapping[str, str] | None = None
) -> MongoSettings:
    """Check the ``run_events.mongodb`` subsection; the URI falls back to ``$MONGODB_URI``."""
    section = _mapping(_mapping(config, "the configuration").get(SECTION), SECTION)
    where = f"{SECTION}.mongodb"
    mongodb = _mapping(section.get("mongodb"), where)
    unknown = sorted(str(key) for key in mongodb if key not in _MONGODB_KEYS)
    if unknown:
        raise ConfigurationError(
            f"{where}: unknown key(s) {', '.join(unknown)}; "
            f"expected some of {', '.join(sorted(_MONGODB_KEYS))}"
        )
    uri = mongodb.get("uri")
    if uri is None or uri == "":
        uri = (os.environ if environ is None else environ).get(URI_ENVIRONMENT_VARIABLE) or None
    if uri is None:
        raise ConfigurationError(
            f"{SECTION}.backend is mongodb but no URI is given: set {where}.uri "
            f"or the {URI_ENVIRONMENT_VARIABLE} environment variable"
        )
    if not isinstance(uri, str):
        raise ConfigurationError(f"{where}.uri must be a string")
    transactions = mongodb.get("transactions")
    if transactions is not None and not isinstance(transactions, bool):
        raise ConfigurationError(f"{where}.transactions must be true, false or null")
    return MongoSettings(
        uri=uri,
        database=_name(mongodb.get("database"), f"{where}.database", DEFAULT_DATABASE),
        collection=_name(mongodb.get("collection"), f"{where}.collection", DEFAULT_COLLECTION),
        retention=_retention(mongodb.get("retention_days")),
        transactions=transactions,
    )


@asynccontextmanager
async def open_run_event_store(config: Mapping[str, Any]) -> AsyncIterator[RunEventStore]:
    """Open the store the ``run_events`` section of ``config`` describes; close it on exit.

    ``memory`` (also the default) gives a fresh :class:`MemoryRunEventStore`.
    ``mongodb`` connects with :meth:`MongoRunEventStore.from_uri` and creates
    the indexes before the store is handed out, so a server that cannot reach
    its database fails at start-up rather than on its first request.
    """
    store: RunEventStore
    if backend_name(config) == "memory":
        store = MemoryRunEventStore()
        try:
            yield store
        finally:
            await store.close()
        return
    settings = mongo_settings(config)
    async with MongoRunEventStore.from_uri(
        settings.uri,
        database=settings.database,
        collection=settings.collection,
        retention=settings.retention or None,
        transactions=settings.transactions,
    ) as mongo_store:
        await mongo_store.ensure_indexes()
        yield mongo_store


__all__ = [
    "BACKENDS",
    "DEFAULT_COLLECTION",
    "DEFAULT_DATABASE",
    "SECTION",
    "URI_ENVIRONMENT_VARIABLE",
    "MongoSettings",
    "backend_name",
    "mongo_settings",
    "open_run_event_store",
]
