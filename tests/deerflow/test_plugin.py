"""The DeerFlow plugin: one ``plugins:`` entry, DeerFlow's configuration untouched, a start that fails clearly.

Run in subprocesses against ``tests/deerflow/stub`` (a model of DeerFlow's
modules): the plugin patches DeerFlow's module attributes, which must not leak
into other tests. The real DeerFlow run is in ``docs/deerflow.md`` (section 6).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient

from mongo_runevents.embedded import free_port
from tests.conftest import database_name

STUB = Path(__file__).resolve().parent / "stub"

#: What every script starts with: a registry that keeps what it is given, as DeerFlow's does.
PRELUDE = """
import asyncio, os
from types import SimpleNamespace

class Registry:
    def __init__(self):
        self.services = []
    def service(self, service):
        self.services.append(service)

from mongo_runevents.deerflow.plugin import install
"""


def run_script(body: str, **environ: str) -> subprocess.CompletedProcess[str]:
    """Run ``body`` (after the prelude) with the DeerFlow stand-in importable."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(STUB), os.getcwd()]), **environ}
    env.pop("GATEWAY_WORKERS", None)
    env.update(environ)
    script = PRELUDE + textwrap.dedent(body)
    return subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def database(server_uri: str) -> Any:
    """A fresh database name on the test server, dropped afterwards."""
    name = database_name()
    yield name
    client: MongoClient[dict[str, Any]]
    with MongoClient(server_uri) as client:
        client.drop_database(name)


def test_the_plugin_is_a_deerflow_extension_entry_point() -> None:
    """The package declares install() in DeerFlow's entry point group, with its contract version."""
    from mongo_runevents.deerflow.plugin import install

    found = {entry.name: entry.value for entry in entry_points(group="deerflow.extensions")}
    assert found["mongo_runevents"] == "mongo_runevents.deerflow.plugin:install"
    assert install.__deerflow_api__ == "0.1"  # type: ignore[attr-defined]


def test_the_plugin_serves_deerflows_factory_and_leaves_its_config_alone(
    server_uri: str, database: str
) -> None:
    """DeerFlow's factory gives the plugin's store for its own backend; DeerFlow's config is unwidened."""
    done = run_script(
        f"""
        from deerflow.config.app_config import AppConfig
        from deerflow.runtime.events import store as stores
        from deerflow.runtime.events.store.base import RunEventStore
        from deerflow.runtime.user_context import set_current_user
        from mongo_runevents.deerflow import DeerFlowRunEventStore

        registry = Registry()
        install(registry, {{"uri": {server_uri!r}, "database": {database!r}}})
        config = AppConfig.model_validate({{"run_events": {{"backend": "memory"}}}})
        store = stores.make_run_event_store(config.run_events)
        assert isinstance(store, DeerFlowRunEventStore) and isinstance(store, RunEventStore)
        try:
            AppConfig.model_validate({{"run_events": {{"backend": "mongodb"}}}})
        except Exception:
            pass
        else:
            raise AssertionError("the plugin must not widen DeerFlow's configuration")

        async def main():
            [service] = registry.services
            await service.start(None)
            set_current_user(SimpleNamespace(id="alice"))
            await store.put(thread_id="t", run_id="r", event_type="e", category="message")
            assert len(await store.list_messages("t")) == 1
            await service.stop()

        asyncio.run(main())
        print("plugin ok")
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "plugin ok"
    with MongoClient(server_uri) as client:
        assert "thread_identity_seq" in client[database]["run_events"].index_information()


def test_an_unreachable_server_stops_the_start_saying_what_to_check() -> None:
    """The service's start raises SystemExit (which DeerFlow does not swallow) naming the URI and what to check."""
    uri = f"mongodb://127.0.0.1:{free_port()}/"
    done = run_script(
        f"""
        registry = Registry()
        install(registry, {{"uri": {uri!r}, "timeout_seconds": 0.3}})
        [service] = registry.services
        try:
            asyncio.run(service.start(None))
        except SystemExit as exc:
            print(exc)
        else:
            raise AssertionError("the start must fail")
        """
    )
    assert done.returncode == 0, done.stderr
    message = done.stdout
    assert f"cannot use MongoDB at {uri}" in message
    assert "Check that the server is running" in message
    assert "does not start without its run event store" in message


def test_a_bad_setting_is_refused_where_the_plugin_config_says() -> None:
    """A misspelt key of the plugin's config is a ConfigurationError naming plugins[...].config."""
    done = run_script(
        """
        from mongo_runevents import ConfigurationError
        try:
            install(Registry(), {"uri": "mongodb://h/", "databse": "x"})
        except ConfigurationError as exc:
            print(exc)
        """
    )
    assert done.returncode == 0, done.stderr
    assert "plugins[mongo_runevents].config: unknown key(s) databse" in done.stdout


GATE = """
from app.gateway import deps
from deerflow.config.app_config import AppConfig
config = AppConfig.model_validate({"run_events": {"backend": "memory"}})
try:
    deps.start(config)
except SystemExit as exc:
    print("refused:", exc)
else:
    print("opened")
"""


def test_several_workers_pass_the_gate_on_a_replica_set(server_uri: str) -> None:
    """GATEWAY_WORKERS=4 with the plugin on a deployment with transactions passes DeerFlow's gate."""
    done = run_script(
        f"install(Registry(), {{'uri': {server_uri!r}}})\n" + GATE, GATEWAY_WORKERS="4"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "opened"


def test_several_workers_are_refused_on_a_standalone_server(standalone_uri: str) -> None:
    """On a standalone server the gate keeps refusing, and says why and what to do."""
    done = run_script(
        f"install(Registry(), {{'uri': {standalone_uri!r}}})\n" + GATE, GATEWAY_WORKERS="4"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("refused: GATEWAY_WORKERS=4 needs a run event store")
    assert "is standalone (no transactions)" in done.stdout
    assert "replica set" in done.stdout


def test_several_workers_are_refused_without_transactions(server_uri: str) -> None:
    """transactions: false keeps the gate shut even on a replica set."""
    done = run_script(
        f"install(Registry(), {{'uri': {server_uri!r}, 'transactions': False}})\n" + GATE,
        GATEWAY_WORKERS="2",
    )
    assert done.returncode == 0, done.stderr
    assert "its settings say transactions: false" in done.stdout


def test_one_worker_needs_no_probe() -> None:
    """A single worker passes the gate without the gate contacting the server."""
    uri = f"mongodb://127.0.0.1:{free_port()}/"
    done = run_script(f"install(Registry(), {{'uri': {uri!r}}})\n" + GATE)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "opened"


def test_install_keeps_the_gate_shut_on_a_standalone_server(standalone_uri: str) -> None:
    """The install() entry point (backend: mongodb in run_events) refuses several workers there too."""
    done = run_script(
        f"""
        from mongo_runevents.deerflow import install as widen
        widen()
        from app.gateway import deps
        from deerflow.config.app_config import AppConfig
        config = AppConfig.model_validate(
            {{"run_events": {{"backend": "mongodb", "mongodb": {{"uri": {standalone_uri!r}}}}}}}
        )
        try:
            deps.start(config)
        except SystemExit as exc:
            print("refused:", exc)
        """,
        GATEWAY_WORKERS="3",
    )
    assert done.returncode == 0, done.stderr
    assert "refused: GATEWAY_WORKERS=3" in done.stdout
    assert "standalone" in done.stdout
