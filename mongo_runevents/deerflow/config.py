"""The ``run_events`` settings of a DeerFlow-style agent server, checked before any connection.

DeerFlow picks its run event storage in ``config.yaml``; with this package
installed (:func:`mongo_runevents.deerflow.install`) that section may say::

    run_events:
      backend: mongodb
      mongodb:
        uri: mongodb://db-1,db-2,db-3/?replicaSet=rs0   # or env MONGODB_URI
        database: deerflow
        collection: run_events
        retention_days: {trace: 30}
        transactions: null        # null: ask the server; true / false: force
        max_trace_content: null   # bytes; null keeps trace content whole
        timeout_seconds: 10       # server selection and connection time-out

The section arrives either as a mapping (the parsed YAML) or as DeerFlow's own
``RunEventsConfig`` object; both are read here. Every mistake is a
:class:`~mongo_runevents.errors.ConfigurationError` naming the offending key.
Messages never contain the URI, which may hold a password.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from ..base import RunEventStore
from ..errors import ConfigurationError
from ..memory import MemoryRunEventStore
from ..mongo import DEFAULT_DATABASE, MongoRunEventStore

__all__ = ["DEFAULT_DATABASE"]  # re-exported: the default the CLI and from_uri share

#: The name of the configuration section read here.
SECTION = "run_events"
#: The environment variable consulted when the section gives no URI.
URI_ENVIRONMENT_VARIABLE = "MONGODB_URI"
#: The backends :func:`open_run_event_store` knows.
BACKENDS = ("memory", "mongodb")
#: Defaults of the ``mongodb`` subsection.
DEFAULT_COLLECTION = "run_events"
DEFAULT_TIMEOUT_SECONDS = 10.0

_MONGODB_KEYS = frozenset(
    {
        "uri",
        "database",
        "collection",
        "retention_days",
        "transactions",
        "max_trace_content",
        "timeout_seconds",
    }
)


@dataclass(frozen=True)
class MongoSettings:
    """The ``run_events.mongodb`` subsection, checked and with defaults filled in."""

    uri: str = field(repr=False)  # may hold a password
    database: str = DEFAULT_DATABASE
    collection: str = DEFAULT_COLLECTION
    retention: dict[str, timedelta] = field(default_factory=dict)
    transactions: bool | None = None
    max_trace_content: int | None = None
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS

    def store_options(self) -> dict[str, Any]:
        """The keyword arguments of :class:`MongoRunEventStore` these settings give."""
        return {
            "collection": self.collection,
            "retention": self.retention or None,
            "transactions": self.transactions,
            "max_trace_content": self.max_trace_content,
        }

    def client_kwargs(self) -> dict[str, Any]:
        """The ``AsyncMongoClient`` options these settings give (time-outs)."""
        milliseconds = int(self.timeout_seconds * 1000)
        return {"serverSelectionTimeoutMS": milliseconds, "connectTimeoutMS": milliseconds}


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


def _number(value: Any, where: str, *, integer: bool) -> Any:
    """A positive number setting (an ``int`` when ``integer``), or ``None`` when absent."""
    if value is None:
        return None
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not value > 0:
        raise ConfigurationError(f"{where} must be a positive {'integer' if integer else 'number'}")
    return value


def section(config: Any) -> Mapping[str, Any]:
    """The ``run_events`` section as a mapping, from a whole configuration or from the section.

    Accepts the parsed YAML (a mapping holding ``run_events``), the section
    itself as a mapping, or DeerFlow's ``RunEventsConfig`` object (a Pydantic
    model with ``backend`` and, once :func:`~mongo_runevents.deerflow.install`
    ran, ``mongodb``).
    """
    if config is None:
        return {}
    if isinstance(config, Mapping):
        if SECTION in config:
            return _mapping(config[SECTION], SECTION)
        return config if "backend" in config else {}
    if hasattr(config, "backend"):
        values = {"backend": config.backend}
        mongodb = getattr(config, "mongodb", None)
        if mongodb is not None:
            values["mongodb"] = mongodb
        return values
    raise ConfigurationError(f"the configuration must be a mapping, got {type(config).__name__}")


def backend_name(config: Any) -> str:
    """The backend the configuration asks for; ``memory`` when it names none."""
    backend = section(config).get("backend", "memory")
    if backend not in BACKENDS:
        raise ConfigurationError(
            f"{SECTION}.backend must be one of {', '.join(BACKENDS)}; got {backend!r}"
        )
    return str(backend)


def mongo_settings(
    config: Any, environ: Mapping[str, str] | None = None, *, where: str | None = None
) -> MongoSettings:
    """Check the ``run_events.mongodb`` subsection; the URI falls back to ``$MONGODB_URI``.

    With ``where`` (the plugin's ``config`` mapping, say), ``config`` is the
    settings mapping itself and messages name that place.
    """
    if where is None:
        where = f"{SECTION}.mongodb"
        mongodb = _mapping(section(config).get("mongodb"), where)
    else:
        mongodb = _mapping(config, where)
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
            f"no MongoDB URI is given: set {where}.uri "
            f"or the {URI_ENVIRONMENT_VARIABLE} environment variable"
        )
    if not isinstance(uri, str):
        raise ConfigurationError(f"{where}.uri must be a string")
    transactions = mongodb.get("transactions")
    if transactions is not None and not isinstance(transactions, bool):
        raise ConfigurationError(f"{where}.transactions must be true, false or null")
    timeout = _number(mongodb.get("timeout_seconds"), f"{where}.timeout_seconds", integer=False)
    return MongoSettings(
        uri=uri,
        database=_name(mongodb.get("database"), f"{where}.database", DEFAULT_DATABASE),
        collection=_name(mongodb.get("collection"), f"{where}.collection", DEFAULT_COLLECTION),
        retention=_retention(mongodb.get("retention_days")),
        transactions=transactions,
        max_trace_content=_number(
            mongodb.get("max_trace_content"), f"{where}.max_trace_content", integer=True
        ),
        timeout_seconds=DEFAULT_TIMEOUT_SECONDS if timeout is None else float(timeout),
    )


@asynccontextmanager
async def open_run_event_store(config: Any) -> AsyncIterator[RunEventStore]:
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
        client_kwargs=settings.client_kwargs(),
        **settings.store_options(),
    ) as mongo_store:
        await mongo_store.ensure_indexes()
        yield mongo_store
