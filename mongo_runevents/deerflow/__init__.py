"""Running DeerFlow on MongoDB: its configuration, its store interface, and one install call.

- :func:`install` makes DeerFlow's ``make_run_event_store`` accept
  ``run_events.backend: mongodb`` (``mongo_runevents.deerflow.gateway`` serves
  DeerFlow's gateway with it installed);
- :class:`DeerFlowRunEventStore` is DeerFlow's ``RunEventStore`` on MongoDB,
  resolving ``user_id=AUTO`` and stamping writes as DeerFlow's database store does;
- :func:`open_run_event_store` and :func:`mongo_settings` read the
  ``run_events`` section for servers of the same mould that are not DeerFlow.

See ``docs/deerflow.md``.
"""

from .config import (
    BACKENDS,
    DEFAULT_COLLECTION,
    DEFAULT_DATABASE,
    SECTION,
    URI_ENVIRONMENT_VARIABLE,
    MongoSettings,
    backend_name,
    mongo_settings,
    open_run_event_store,
)
from .install import install
from .store import AUTO, DEERFLOW_INSTALLED, DeerFlowRunEventStore

__all__ = [
    "AUTO",
    "BACKENDS",
    "DEERFLOW_INSTALLED",
    "DEFAULT_COLLECTION",
    "DEFAULT_DATABASE",
    "SECTION",
    "URI_ENVIRONMENT_VARIABLE",
    "DeerFlowRunEventStore",
    "MongoSettings",
    "backend_name",
    "install",
    "mongo_settings",
    "open_run_event_store",
]
