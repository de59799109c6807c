"""The DeerFlow integration: its store as DeerFlow's callers use it, and the install call.

DeerFlow is not on the package index. The store's behaviour is tested here as
DeerFlow's code uses it (``user_id=AUTO`` from the request context, writes
stamped with the context's user, a store built synchronously from its config,
called from more than one event loop); ``install()`` is tested against
``tests/deerflow/stub``, a minimal model of DeerFlow's modules, in a
subprocess; and one test runs against the real DeerFlow when it is importable.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from pymongo import MongoClient

from mongo_runevents.deerflow import AUTO, DEERFLOW_INSTALLED, DeerFlowRunEventStore
from mongo_runevents.deerflow._standalone import current_user_id
from tests.conftest import database_name
from tests.factories import event, seqs

STUB = Path(__file__).resolve().parent / "stub"

pytestmark = pytest.mark.skipif(
    DEERFLOW_INSTALLED, reason="these tests use the stand-in user context (DeerFlow is installed)"
)


@pytest.fixture
def database(server_uri: str) -> Any:
    """A fresh database name on the test server, dropped afterwards."""
    name = database_name()
    yield name
    client: MongoClient[dict[str, Any]]
    with MongoClient(server_uri) as client:
        client.drop_database(name)


def config(uri: str, database: str, **mongodb: Any) -> SimpleNamespace:
    """What DeerFlow hands its factory: a RunEventsConfig with the mongodb subsection."""
    return SimpleNamespace(
        backend="mongodb",
        max_trace_content=10240,
        mongodb={"uri": uri, "database": database, **mongodb},
    )


def signed_in(user_id: str | None) -> Any:
    """Set the request's user, as DeerFlow's auth middleware does."""
    return current_user_id.set(user_id)


def test_the_store_is_built_without_io() -> None:
    """Construction from DeerFlow's config does no I/O: an unreachable server is not noticed."""
    store = DeerFlowRunEventStore.from_config(config("mongodb://127.0.0.1:1/", "nowhere"))
    assert isinstance(store, DeerFlowRunEventStore)


async def test_reads_resolve_auto_from_the_request_user(server_uri: str, database: str) -> None:
    """user_id=AUTO reads the signed-in user's events, None every user's; no user is an error."""
    store = DeerFlowRunEventStore.from_config(config(server_uri, database))
    for user in ("alice", "bob"):
        token = signed_in(user)
        await store.put(**event(content=user))
        await store.put_batch([event(content=f"{user} again")])
        current_user_id.reset(token)
    token = signed_in("alice")
    try:
        assert [m["content"] for m in await store.list_messages("thread-1")] == [
            "alice",
            "alice again",
        ]
        assert await store.count_messages("thread-1") == 2
        assert await store.count_messages("thread-1", user_id=None) == 4
        assert await store.count_messages("thread-1", user_id="bob") == 2
    finally:
        current_user_id.reset(token)
    with pytest.raises(RuntimeError, match="AUTO"):
        await store.list_messages("thread-1")
    assert len(await store.list_messages("thread-1", user_id=None)) == 4
    await store.close()


async def test_writes_are_stamped_with_the_context_user(server_uri: str, database: str) -> None:
    """Writes carry the context's user, or none outside a request; a batch event's own user_id wins."""
    store = DeerFlowRunEventStore.from_config(config(server_uri, database))
    anonymous = await store.put(**event())
    assert "user_id" not in anonymous
    token = signed_in("alice")
    try:
        stamped = await store.put(**event())
        batch = await store.put_batch([event(), event(user_id="worker")])
        created, was_new = await store.put_if_absent(**event(event_type="run.start"))
    finally:
        current_user_id.reset(token)
    assert stamped["user_id"] == "alice"
    assert [record["user_id"] for record in batch] == ["alice", "worker"]
    assert was_new
    assert created["user_id"] == "alice"
    assert seqs(await store.list_messages("thread-1", user_id=None)) == [1, 2, 3, 4, 5]
    await store.close()


async def test_deerflow_arguments_pass_through(server_uri: str, database: str) -> None:
    """A set of run ids, an empty task_id and LangChain-like content work as DeerFlow passes them."""
    store = DeerFlowRunEventStore.from_config(config(server_uri, database))

    class Message:
        def __str__(self) -> str:
            return "AIMessage(content='hi')"

    await store.put_batch(
        [
            event(run_id="r1"),
            event(
                run_id="r2", event_type="run.end", category="lifecycle", content={"m": [Message()]}
            ),
        ]
    )
    assert await store.get_last_visible_ai_seq_by_run("thread-1", {"r1", "r2"}, user_id=None) == {
        "r1": 1
    }
    assert await store.list_events("thread-1", "r1", task_id="", user_id=None) == []
    [end] = await store.list_events("thread-1", "r2", user_id=None)
    assert end["content"] == {"m": ["AIMessage(content='hi')"]}
    await store.close()


def test_the_store_serves_several_event_loops(server_uri: str, database: str) -> None:
    """One store object works from several event loops (pymongo's client is bound to its loop)."""
    store = DeerFlowRunEventStore.from_config(config(server_uri, database))
    results: list[Any] = []

    async def write_and_read(name: str) -> list[int]:
        await store.put(**event(thread_id=name))
        records = await store.list_messages(name, user_id=None)
        await store.close()
        return seqs(records)

    def in_own_loop(name: str) -> None:
        results.append(asyncio.run(write_and_read(name)))

    threads = [threading.Thread(target=in_own_loop, args=(f"t{n}",)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert results == [[1], [1], [1]]
    assert asyncio.run(write_and_read("t0")) == [1, 2]


def test_install_makes_deerflows_factory_accept_mongodb(server_uri: str, database: str) -> None:
    """After install(), DeerFlow's config takes backend: mongodb, its factory builds our store, several workers pass."""
    script = textwrap.dedent(
        f"""
        import asyncio
        from types import SimpleNamespace

        from mongo_runevents.deerflow import install, DeerFlowRunEventStore
        install()
        install()  # idempotent

        from deerflow.config.app_config import AppConfig
        from deerflow.runtime.events import store as stores
        from deerflow.runtime.events.store.base import RunEventStore
        from deerflow.runtime.user_context import set_current_user

        config = AppConfig.model_validate(
            {{"run_events": {{"backend": "mongodb",
                             "mongodb": {{"uri": {server_uri!r}, "database": {database!r}}}}}}}
        )
        store = stores.make_run_event_store(config.run_events)
        assert isinstance(store, DeerFlowRunEventStore) and isinstance(store, RunEventStore)
        assert type(stores.make_run_event_store(None)).__name__ == "MemoryRunEventStore"

        async def main():
            set_current_user(SimpleNamespace(id="alice"))
            record = await store.put(thread_id="t", run_id="r", event_type="e", category="message")
            assert record["user_id"] == "alice", record
            assert len(await store.list_messages("t")) == 1
            await store.close()

        asyncio.run(main())

        import os
        from app.gateway import deps
        os.environ["GATEWAY_WORKERS"] = "4"
        deps.start(config)  # several workers pass the gate on mongodb
        try:
            deps.start(AppConfig.model_validate({{"run_events": {{"backend": "memory"}}}}))
        except SystemExit:
            pass
        else:
            raise AssertionError("the gate must still refuse the memory backend")
        print("installed ok")
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(STUB), os.getcwd()])}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "installed ok"


def test_install_without_deerflow_is_a_clear_error() -> None:
    """install() says DeerFlow must be importable when it is not."""
    from mongo_runevents import ConfigurationError
    from mongo_runevents.deerflow import install

    with pytest.raises(ConfigurationError, match="DeerFlow"):
        install()


def test_auto_is_a_sentinel() -> None:
    """AUTO is DeerFlow's sentinel (a stand-in without DeerFlow), not a user id."""
    assert repr(AUTO) == "<AUTO>"


def _open_descriptors() -> int:
    """How many file descriptors this process holds."""
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts descriptors in /proc")
def test_finished_event_loops_leave_nothing_behind(server_uri: str, database: str) -> None:
    """30 loops that each used the store and ended: no store, loop, descriptor or connection kept."""
    import gc
    import weakref

    store = DeerFlowRunEventStore.from_config(config(server_uri, database))
    loops: list[weakref.ref[asyncio.AbstractEventLoop]] = []

    async def use() -> None:
        loops.append(weakref.ref(asyncio.get_running_loop()))
        await store.put(**event())
        assert len(await store.list_messages("thread-1", user_id=None)) >= 1

    asyncio.run(use())  # the first client's pools and threads, not counted
    gc.collect()
    before = _open_descriptors()
    for _ in range(30):
        asyncio.run(use())
    gc.collect()
    assert store._stores == {}
    assert store._closers == {}
    assert sum(ref() is not None for ref in loops) == 0
    assert _open_descriptors() <= before + 2


async def test_put_batch_of_a_tuple_is_stamped(server_uri: str, database: str) -> None:
    """A tuple of events is stamped with the context's user like a list, so they read it back."""
    store = DeerFlowRunEventStore.from_config(config(server_uri, database))
    token = signed_in("alice")
    try:
        records = await store.put_batch((event(), event(user_id="bob")))
        assert [record.get("user_id") for record in records] == ["alice", "bob"]
        assert seqs(await store.list_messages("thread-1")) == [1]
    finally:
        current_user_id.reset(token)
        await store.close()


async def test_get_message_seqs_resolves_the_request_user(server_uri: str, database: str) -> None:
    """get_message_seqs takes user_id=AUTO like DeerFlow's database store: the request's user."""
    store = DeerFlowRunEventStore.from_config(config(server_uri, database))
    content = {"type": "ai", "id": "a1", "content": "hi"}
    await store.put_batch([event(content=content, user_id="alice")])
    token = signed_in("bob")
    try:
        assert await store.get_message_seqs("thread-1", ["message:a1"]) == {}
        assert await store.get_message_seqs("thread-1", ["message:a1"], user_id="alice") == {
            "message:a1": 1
        }
    finally:
        current_user_id.reset(token)
    with pytest.raises(RuntimeError, match="get_message_seqs"):
        await store.get_message_seqs("thread-1", ["message:a1"])
    await store.close()


def test_an_abstract_method_of_a_newer_deerflow_fails_only_its_call() -> None:
    """A method DeerFlow adds later is filled in: the store is built, that one call says why."""
    import abc

    from mongo_runevents.deerflow.store import complete_interface

    class NewerInterface(abc.ABC):
        @abc.abstractmethod
        async def list_messages(self) -> Any: ...

        @abc.abstractmethod
        async def get_thread_digest(self, thread_id: str) -> Any: ...

    class Store(NewerInterface):
        async def list_messages(self) -> Any:
            return []

    assert complete_interface(Store) == ["get_thread_digest"]
    built = Store()
    assert asyncio.run(built.list_messages()) == []
    with pytest.raises(
        NotImplementedError, match="get_thread_digest is newer than mongo_runevents"
    ):
        asyncio.run(built.get_thread_digest("t"))
