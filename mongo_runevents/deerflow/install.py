"""One call that teaches an installed DeerFlow the ``mongodb`` run-events backend.

DeerFlow builds its run event store at start-up with
``deerflow.runtime.events.store.make_run_event_store(config.run_events)``, and
its configuration model only knows ``memory``, ``db`` and ``jsonl``.
:func:`install` widens that model (``backend: mongodb`` and a ``mongodb``
subsection) and wraps the factory, so ``config.yaml`` can say
``run_events: {backend: mongodb, mongodb: {...}}`` without any DeerFlow file
being edited. Call it before DeerFlow loads its configuration: the
``mongo_runevents.deerflow.gateway`` module does so and then serves DeerFlow's
own gateway app.
"""

from __future__ import annotations

import functools
from typing import Any, Literal

from ..errors import ConfigurationError

#: The backend name ``install`` adds.
BACKEND = "mongodb"

_installed = False


def install() -> None:
    """Make DeerFlow's run-events configuration and factory accept ``backend: mongodb``; idempotent.

    Raises :class:`~mongo_runevents.ConfigurationError` when DeerFlow is not importable.
    """
    global _installed
    if _installed:
        return
    try:
        from deerflow.config import app_config, run_events_config
        from deerflow.runtime.events import store as deerflow_stores
        from pydantic.fields import FieldInfo
    except ImportError as exc:
        raise ConfigurationError(
            f"mongo_runevents.deerflow.install() needs DeerFlow importable ({exc})"
        ) from exc
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
    deerflow_stores.make_run_event_store = _with_mongodb(deerflow_stores.make_run_event_store)
    _allow_several_workers()
    _installed = True


def _allow_several_workers() -> None:
    """Let DeerFlow's gateway run several workers on ``backend: mongodb`` as it does on ``db``.

    Its start-up gate refuses ``GATEWAY_WORKERS > 1`` (and the multi-instance
    scheduler) unless ``run_events.backend`` is ``db``, because memory and
    JSONL stores are process-local and cannot keep ``put_if_absent`` receipts
    single across workers. The MongoDB store keeps them single across
    processes (in transaction mode), so the gate is shown ``db`` for it.
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
        if getattr(run_events, "backend", None) == BACKEND:
            config = config.model_copy(
                update={"run_events": run_events.model_copy(update={"backend": "db"})}
            )
        return gate(config)

    deps._enforce_postgres_for_multi_worker = check


def _with_mongodb(make_run_event_store: Any) -> Any:
    """DeerFlow's factory, answering ``backend: mongodb`` with a :class:`DeerFlowRunEventStore`."""

    @functools.wraps(make_run_event_store)
    def make(config: Any = None) -> Any:
        if config is not None and getattr(config, "backend", None) == BACKEND:
            from .store import DeerFlowRunEventStore

            return DeerFlowRunEventStore.from_config(config)
        return make_run_event_store(config)

    return make
