"""Races between processes on a standalone server (plain mode), widened with fail points.

Each test has two stores on two clients, as two server processes would have:
``slow`` (whose commands a ``failCommand`` fail point, filtered by its
``appName``, holds up for a moment) and ``fast``, which writes in that moment.
Each race once lost or replaced another writer's (or user's) acknowledged event.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from mongo_runevents import EventIdConflictError, MongoRunEventStore
from tests.conftest import database_name
from tests.factories import event, seqs
from tests.faults import fail_point, fail_point_off

#: How long the slow writer's command is held up: time for the fast one to write.
HOLD_MS = 1500


class Pair:
    """Two stores on one standalone database, through clients of their own."""

    def __init__(self, uri: str) -> None:
        self.app_name = f"slow-{uuid.uuid4().hex[:8]}"
        self.name = database_name()
        self.admin: AsyncMongoClient[Any] = AsyncMongoClient(uri)
        self._slow_client: AsyncMongoClient[Any] = AsyncMongoClient(uri, appname=self.app_name)
        self._fast_client: AsyncMongoClient[Any] = AsyncMongoClient(uri)
        self.slow = MongoRunEventStore(self._slow_client[self.name])
        self.fast = MongoRunEventStore(self._fast_client[self.name])

    async def hold(self, *commands: str, **mode: Any) -> None:
        """Hold up the slow store's next of ``commands`` for :data:`HOLD_MS`, then let it run."""
        await fail_point(
            self.admin,
            self.app_name,
            mode or {"times": 1},
            failCommands=list(commands),
            blockConnection=True,
            blockTimeMS=HOLD_MS,
        )

    async def close(self) -> None:
        await fail_point_off(self.admin)
        await self.admin.drop_database(self.name)
        for client in (self.admin, self._slow_client, self._fast_client):
            await client.close()


@pytest.fixture
async def pair(standalone_uri: str) -> AsyncIterator[Pair]:
    """Two plain-mode stores, as two processes, on the standalone server."""
    stores = Pair(standalone_uri)
    await stores.slow.ensure_indexes()
    await stores.fast.ensure_indexes()
    assert not stores.slow.uses_transactions
    yield stores
    await stores.close()


async def _meanwhile(slow: Any, fast: Any) -> tuple[Any, Any]:
    """Start ``slow``, run ``fast`` while it is held up, then wait for ``slow`` (or its error)."""
    slow_task = asyncio.ensure_future(slow)
    await asyncio.sleep(HOLD_MS / 3000)
    fast_result = await asyncio.wait_for(fast, timeout=30)
    slow_result = await asyncio.wait_for(
        asyncio.gather(slow_task, return_exceptions=True), timeout=30
    )
    return slow_result[0], fast_result


async def test_a_failed_inserts_clean_up_keeps_the_same_key_another_process_stored(
    pair: Pair,
) -> None:
    """The same-key event another process stored while our insert was held up survives our clean-up."""
    await pair.hold("insert")
    mine = event(event_id="k1", content="slow's")
    theirs = event(event_id="k1", content="fast's")
    slow, fast = await _meanwhile(pair.slow.put(**mine), pair.fast.put(**theirs))
    assert isinstance(slow, EventIdConflictError)
    [stored] = await pair.fast.list_messages("thread-1")
    assert (stored["seq"], stored["content"]) == (fast["seq"], "fast's")


async def test_a_held_up_retry_of_the_same_event_returns_the_stored_one(pair: Pair) -> None:
    """Two processes storing the same keyed event at once: one copy, at the seq first acknowledged."""
    await pair.hold("insert")
    same = event(event_id="k1", content="same")
    slow, fast = await _meanwhile(pair.slow.put(**same), pair.fast.put(**same))
    assert slow == fast
    assert seqs(await pair.fast.list_messages("thread-1")) == [fast["seq"]]


async def test_put_if_absent_across_processes_stores_one_receipt(pair: Pair) -> None:
    """put_if_absent racing in two processes on a standalone server stores one run.delivery."""
    await pair.hold("insert")
    receipt = event(event_type="run.delivery", category="outputs")
    slow, fast = await _meanwhile(
        pair.slow.put_if_absent(**receipt, user_id="alice"),
        pair.fast.put_if_absent(**receipt),
    )
    assert fast[1] is True
    assert slow == (
        {"thread_id": "thread-1", "run_id": "run-1", "event_type": "run.delivery"},
        False,
    )
    assert len(await pair.fast.list_events("thread-1", "run-1")) == 1


async def test_a_per_user_delete_never_removes_an_event_another_process_writes(
    pair: Pair,
) -> None:
    """alice's delete_by_thread leaves bob's event written meanwhile by another process, and says 1."""
    await pair.fast.put(**event(user_id="alice"))
    # What follows the delete of alice's own events is held up: the old
    # clean-up's delete of the thread, or the counter's reset.
    await pair.hold("delete", "findAndModify", skip=1)
    deleted, bobs = await _meanwhile(
        pair.slow.delete_by_thread("thread-1", user_id="alice"),
        pair.fast.put(**event(user_id="bob", content="bob's")),
    )
    assert deleted == 1
    [left] = await pair.fast.list_messages("thread-1")
    assert (left["user_id"], left["seq"]) == ("bob", bobs["seq"])


async def test_a_lost_reply_never_counts_another_processs_event_as_ours(
    pair: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Our insert's reply is lost while another process stored the same key: its event is not taken for ours."""
    from pymongo.errors import AutoReconnect

    from mongo_runevents import StorageError

    events = pair.slow.events_collection

    async def lost_reply(documents: Any, **options: Any) -> None:
        # Meanwhile the other process stores the key; our own insert never lands.
        await pair.fast.put(**event(event_id="k1", content="fast's"))
        raise AutoReconnect("connection closed before the reply")

    monkeypatch.setattr(events, "insert_many", lost_reply)
    with pytest.raises(StorageError) as raised:
        await pair.slow.put(**event(event_id="k1", content="slow's"))
    assert raised.value.retryable  # the caller's retry finds the other's event and says so
    [kept] = await pair.fast.list_messages("thread-1")
    assert kept["content"] == "fast's"
    with pytest.raises(EventIdConflictError):
        await pair.slow.put(**event(event_id="k1", content="slow's"))
