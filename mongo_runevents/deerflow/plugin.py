"""The DeerFlow plugin: DeerFlow keeps its run events in MongoDB, named by one ``plugins:`` entry.

DeerFlow loads the packages listed under ``plugins:`` in ``config.yaml`` while
it builds the gateway app, before its lifespan creates the run event store
(entry point group ``deerflow.extensions``; this package's is
``mongo_runevents = mongo_runevents.deerflow.plugin:install``)::

    plugins:
      - name: mongo_runevents
        package: mongo-runevents
        use: mongo_runevents.deerflow.plugin:install
        required: true          # no start without it (see below)
        config:
          uri: mongodb://db-1,db-2,db-3/?replicaSet=rs0   # or env MONGODB_URI
          database: deerflow

:func:`install` (DeerFlow calls it with its registry and the entry's
``config``) checks the settings, makes DeerFlow's ``make_run_event_store``
return the MongoDB store whatever ``run_events.backend`` says, opens DeerFlow's
multi-worker gate only on a deployment with transactions, and registers a
service whose start connects and creates the indexes: a server that cannot be
reached stops the gateway's start with a message saying what to check, instead
of a gateway that reports healthy and fails every request.

``required: true`` matters: DeerFlow skips an optional plugin that fails to
load and starts anyway, with its own store (``memory`` by default), which
would lose every event; a required plugin that fails stops the start.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import RunEventStoreError
from .config import mongo_settings
from .install import install_hooks, unreachable_message
from .store import DeerFlowRunEventStore

#: Where the plugin's settings are, for error messages.
CONFIG_PLACE = "plugins[mongo_runevents].config"
#: The version of DeerFlow's extension contract this plugin is written against
#: (it registers one service, the contract's first kind).
EXTENSION_API = "0.1"


class RunEventStoreService:
    """Connects the store and creates its indexes when the gateway starts; closes it at the end.

    DeerFlow starts extension services before it builds the run event store
    and keeps starting when one fails, so a failure here is a ``SystemExit``
    (as DeerFlow's own start-up gate raises), which stops the start.
    """

    def __init__(self, store: DeerFlowRunEventStore) -> None:
        self.store = store

    async def start(self, deps: Any = None) -> None:
        try:
            mongo = await self.store.loop_store()
            await mongo.ensure_indexes()
        except RunEventStoreError as exc:
            raise SystemExit(unreachable_message(self.store.settings, exc)) from exc

    async def stop(self) -> None:
        await self.store.close()


def install(registry: Any, config: Mapping[str, Any] | None = None) -> None:
    """DeerFlow's plugin entry point: the MongoDB run event store, with ``config``'s settings.

    ``config`` holds the keys of the ``run_events.mongodb`` section
    (``uri``, ``database``, ``collection``, ``retention_days``,
    ``transactions``, ``max_trace_content``, ``timeout_seconds``); a mistake
    is a :class:`~mongo_runevents.ConfigurationError` naming the key.
    """
    settings = mongo_settings(config or {}, where=CONFIG_PLACE)
    store = DeerFlowRunEventStore(settings)
    install_hooks(store)
    registry.service(RunEventStoreService(store))


install.__deerflow_api__ = EXTENSION_API  # type: ignore[attr-defined]
