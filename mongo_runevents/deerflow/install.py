"""Teaching an installed DeerFlow to keep its run events in MongoDB, without editing DeerFlow.

Two ways in, sharing the same hooks:

- the plugin (:mod:`mongo_runevents.deerflow.plugin`, the usual way): a
  ``plugins:`` entry in ``config.yaml``; DeerFlow's configuration is left as it
  is and the plugin's store replaces whichever ``run_events.backend`` names;
- :func:`install`, for a server with an entry point of its own: it widens
  DeerFlow's ``RunEventsConfig`` so that ``run_events: {backend: mongodb,
  mongodb: {...}}`` is accepted (``mongo_runevents.deerflow.gateway`` serves
  DeerFlow's gateway with it installed).

Either way DeerFlow's ``make_run_event_store`` is wrapped, and so is its
start-up gate for several gateway processes: the gate is opened only where the
store's guarantees hold across processes (see :func:`_allow_several_workers`).
"""

from __future__ import annotations

import functools
import os
from typing import TYPE_CHECKING, Any, Literal

from ..errors import ConfigurationError
from ..uri import mask_uri, redact
from .config import MongoSettings, mongo_settings

if TYPE_CHECKING:
    from .store import DeerFlowRunEventStore

#: The backend name ``install`` adds.
BACKEND = "mongodb"

_config_widened = False
_hooks_installed = False
#: The store the plugin installed; when set, DeerFlow's factory returns it for any backend.
_plugin_store: DeerFlowRunEventStore | None = None


def install() -> None:
    """Make DeerFlow's run-events configuration and factory accept ``backend: mongodb``; idempotent.

    Raises :class:`~mongo_runevents.ConfigurationError` when DeerFlow is not importable.
    """
    global _config_widened
    install_hooks()
    if _config_widened:
        return
    from deerflow.config import app_config, run_events_config
    from pydantic.fields import FieldInfo

    config_class: Any = run_events_config.RunEventsConfig
    fields = config_class.model_fields
    fields["backend"] = FieldInfo.merge_field_infos(
        fields["backend"], annotation=Literal["memory", "db", "jsonl", "mongodb"]
    )
    fields["mongodb"] = FieldInfo(
        annotation=dict[str, Any] | None,
        default=None,
        description="The mongodb backend's settings (mongo_runevents): uri, database, ...",
    )
    config_class.model_rebuild(force=True)
    app_config.AppConfig.model_rebuild(force=True)
    _config_widened = True


def install_hooks(plugin_store: DeerFlowRunEventStore | None = None) -> None:
    """Wrap DeerFlow's store factory and multi-worker gate (once); set the plugin's store."""
    global _hooks_installed, _plugin_store
    try:
        from deerflow.runtime.events import store as deerflow_stores
    except ImportError as exc:
        raise ConfigurationError(
            f"mongo_runevents.deerflow needs DeerFlow importable ({exc})"
        ) from exc
    if plugin_store is not None:
        _plugin_store = plugin_store
    if _hooks_installed:
        return
    deerflow_stores.make_run_event_store = _with_mongodb(deerflow_stores.make_run_event_store)
    _allow_several_workers()
    _hooks_installed = True


def _active_settings(run_events: Any) -> MongoSettings | None:
    """The settings of the MongoDB store DeerFlow will use, or ``None`` when it uses its own."""
    if _plugin_store is not None:
        return _plugin_store.settings
    if run_events is not None and getattr(run_events, "backend", None) == BACKEND:
        return mongo_settings(run_events)
    return None


def _several_processes(config: Any) -> str | None:
    """What asks for several gateway processes on one database, as DeerFlow's gate reads it."""
    try:
        workers = int(os.environ.get("GATEWAY_WORKERS", "1"))
    except (TypeError, ValueError):
        workers = 1
    if workers > 1:
        return f"GATEWAY_WORKERS={workers}"
    if getattr(getattr(config, "scheduler", None), "multi_instance", False):
        return "scheduler.multi_instance=true"
    return None


def probe_server(settings: MongoSettings) -> dict[str, Any]:
    """The server's ``hello``, asked synchronously; ``SystemExit`` saying what to check if none."""
    from pymongo import MongoClient
    from pymongo.errors import PyMongoError

    try:
        client: MongoClient[dict[str, Any]] = MongoClient(settings.uri, **settings.client_kwargs())
        try:
            return dict(client.admin.command("hello"))
        finally:
            client.close()
    except (PyMongoError, ValueError, TypeError) as exc:
        raise SystemExit(unreachable_message(settings, exc)) from exc


def unreachable_message(settings: MongoSettings, exc: BaseException) -> str:
    """Why the gateway does not start when its run event store cannot reach MongoDB."""
    reason = redact(str(exc) or type(exc).__name__, settings.uri)
    return (
        f"mongo_runevents: the run event store cannot use MongoDB at {mask_uri(settings.uri)} "
        f"(database {settings.database!r}): {' '.join(reason.split())}. Check that the server "
        "is running and that the store's uri (or MONGODB_URI) names it: host, port, "
        "replicaSet, TLS, user and password, and that the user may read and write the "
        f"database; timeout_seconds ({settings.timeout_seconds:g}) waits longer. "
        "The gateway does not start without its run event store."
    )


def _allow_several_workers() -> None:
    """Open DeerFlow's multi-process gate for the MongoDB store only where it holds across processes.

    DeerFlow refuses ``GATEWAY_WORKERS > 1`` (and the multi-instance
    scheduler) unless ``run_events.backend`` is ``db``: memory and JSONL
    stores are process-local, so ``put_if_absent`` receipts cannot stay single
    across workers. The MongoDB store keeps receipts single and seqs in order
    across processes only in transaction mode (a replica set or a sharded
    cluster). There the gate is shown ``db``; on a standalone server, or with
    ``transactions: false``, it refuses with a message that says why.
    """
    try:
        from app.gateway import deps
    except ImportError:  # only DeerFlow's harness is installed, not its gateway
        return
    gate = getattr(deps, "_enforce_postgres_for_multi_worker", None)
    if gate is None:
        return

    @functools.wraps(gate)
    def check(config: Any) -> Any:
        run_events: Any = getattr(config, "run_events", None)
        settings = _active_settings(run_events)
        several = _several_processes(config)
        if settings is not None and several is not None and run_events is not None:
            _require_shared_guarantees(settings, several)
            config = config.model_copy(
                update={"run_events": run_events.model_copy(update={"backend": "db"})}
            )
        return gate(config)

    deps._enforce_postgres_for_multi_worker = check


def _require_shared_guarantees(settings: MongoSettings, several: str) -> None:
    """``SystemExit`` unless the store runs transactions (its cross-process guarantees)."""
    from ..mongo.compat import supports_transactions

    if settings.transactions is False:
        why = "its settings say transactions: false"
    elif supports_transactions(probe_server(settings)):
        return
    else:
        why = f"the server at {mask_uri(settings.uri)} is standalone (no transactions)"
    raise SystemExit(
        f"{several} needs a run event store whose guarantees hold across processes, and "
        f"the MongoDB run event store (mongo_runevents) cannot give them here: {why}. "
        "Without transactions, two processes writing one thread may each store a "
        "put_if_absent receipt, and a reader following with after_seq may skip events "
        "committed out of order. Use a replica set or a sharded cluster (a one-node "
        "replica set will do), or set GATEWAY_WORKERS=1 and scheduler.multi_instance=false."
    )


def _with_mongodb(make_run_event_store: Any) -> Any:
    """DeerFlow's factory, answering with the MongoDB store where it is configured."""

    @functools.wraps(make_run_event_store)
    def make(config: Any = None) -> Any:
        if _plugin_store is not None:
            return _plugin_store
        if config is not None and getattr(config, "backend", None) == BACKEND:
            from .store import DeerFlowRunEventStore

            store = DeerFlowRunEventStore.from_config(config)
            probe_server(store.settings)  # fail the start, not every request, when unreachable
            return store
        return make_run_event_store(config)

    return make
