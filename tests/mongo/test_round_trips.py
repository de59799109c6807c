"""How many commands each store call sends: the round trips are pinned.

Counted with pymongo's command monitoring on the client the store uses, after
``ensure_indexes()`` has run, ignoring the driver's own ``hello`` /
``isMaster`` / ``endSessions``. Every test runs on the replica-set-capable
server (``MONGODB_URI`` or the embedded SecantusDB: writes in transactions, so
they end with a ``commitTransaction``) and on the standalone SecantusDB (no
transactions, so no commit).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from mongo_runevents import MongoRunEventStore
from tests.capabilities import detect
from tests.commands import CommandLog
from tests.conftest import database_name
from tests.factories import event

THREAD, RUN = "thread-1", "run-1"


@dataclass
class Counted:
    """A set-up store, the log of its client's commands, and how a write ends there."""

    store: MongoRunEventStore
    log: CommandLog
    #: What a write ends with: a commit in transaction mode, nothing otherwise.
    commit: list[str]

    async def sent_by(self, call: Awaitable[Any]) -> tuple[Any, list[str]]:
        """Await ``call`` and return its result and the commands it sent."""
        self.log.clear()
        result = await call
        return result, list(self.log.names)


@pytest.fixture(params=["replica_set", "standalone"])
async def counted(request: pytest.FixtureRequest) -> AsyncIterator[Counted]:
    """A store on each deployment, indexes made, with an empty command log."""
    transactions = request.param == "replica_set"
    if transactions:
        uri = request.getfixturevalue("server_uri")
        if not detect(uri).transactions:
            pytest.skip("the server under test has no transactions (standalone)")
    else:
        uri = request.getfixturevalue("secantus_standalone").uri
    log = CommandLog()
    client: AsyncMongoClient[Any] = AsyncMongoClient(uri, event_listeners=[log])
    name = database_name()
    try:
        store = MongoRunEventStore(client[name])
        await store.ensure_indexes()
        assert store.uses_transactions is transactions
        log.clear()
        yield Counted(store, log, ["commitTransaction"] if transactions else [])
    finally:
        await client.drop_database(name)
        await client.close()


# --- writes ---------------------------------------------------------------------------


async def test_put_is_one_reservation_and_one_insert(counted: Counted) -> None:
    """put sends one findAndModify and one insert (and one commit in transaction mode)."""
    record, sent = await counted.sent_by(counted.store.put(**event()))
    assert record["seq"] == 1
    assert sent == ["findAndModify", "insert", *counted.commit]


@pytest.mark.parametrize("size", [20, 1000])
async def test_batch_of_one_thread_is_one_reservation_and_one_insert(
    counted: Counted, size: int
) -> None:
    """A batch of one thread, of 20 or 1,000 events, costs the same three commands as one put."""
    await counted.store.put(**event())
    records, sent = await counted.sent_by(
        counted.store.put_batch([event(content=i) for i in range(size)])
    )
    assert [record["seq"] for record in records] == list(range(2, size + 2))
    assert sent == ["findAndModify", "insert", *counted.commit]


async def test_batch_over_three_threads_reserves_all_counters_at_once(counted: Counted) -> None:
    """A batch over three threads reserves every counter at once, then sends a single insert.

    In a transaction: one bulk update and one find of the counters, whatever
    the number of threads. Without one: a findAndModify per thread, sent
    concurrently.
    """
    batch = [event(f"thread-{i % 3}", content=i) for i in range(30)]
    records, sent = await counted.sent_by(counted.store.put_batch(batch))
    assert len(records) == 30
    assert [(r["thread_id"], r["seq"]) for r in records[:4]] == [
        ("thread-0", 1),
        ("thread-1", 1),
        ("thread-2", 1),
        ("thread-0", 2),
    ]
    reserve = ["update", "find"] if counted.commit else ["findAndModify"] * 3
    assert sent == [*reserve, "insert", *counted.commit]


# --- reads ----------------------------------------------------------------------------

#: Each read on a thread of 1,200 messages (one run), and how many records it returns.
READS: dict[str, tuple[Callable[[MongoRunEventStore], Awaitable[list[Any]]], int]] = {
    "newest-50": (lambda store: store.list_messages(THREAD, limit=50), 50),
    "newest-1000": (lambda store: store.list_messages(THREAD, limit=1000), 1000),
    "before-seq-50": (lambda store: store.list_messages(THREAD, before_seq=600, limit=50), 50),
    "after-seq-50": (lambda store: store.list_messages(THREAD, after_seq=600, limit=50), 50),
    "events-1000": (lambda store: store.list_events(THREAD, RUN, limit=1000), 1000),
    "messages-by-run": (lambda store: store.list_messages_by_run(THREAD, RUN), 50),
    "messages-by-run-1000": (
        lambda store: store.list_messages_by_run(THREAD, RUN, limit=1000),
        1000,
    ),
}


@pytest.mark.parametrize("read", list(READS))
async def test_every_read_is_one_find_without_get_more(counted: Counted, read: str) -> None:
    """Each read returns its whole page in the reply to one find: no getMore, no killCursors."""
    await counted.store.put_batch([event(THREAD, RUN, content=i) for i in range(1200)])
    call, expected = READS[read]
    records, sent = await counted.sent_by(call(counted.store))
    assert len(records) == expected
    assert sent == ["find"]


async def test_count_messages_is_one_aggregate(counted: Counted) -> None:
    """count_messages sends one aggregate (count_documents) and nothing else."""
    await counted.store.put_batch([event(content=i) for i in range(5)])
    count, sent = await counted.sent_by(counted.store.count_messages(THREAD))
    assert count == 5
    assert sent == ["aggregate"]


# --- deletes --------------------------------------------------------------------------


async def test_delete_by_run_is_a_find_and_a_delete(counted: Counted) -> None:
    """delete_by_run reads the thread's counter (did it ever have blobs?) and sends one delete."""
    # Blobs must be found before their events go, so that a reader never meets
    # an event whose blob is gone; the counter's flag, read by _id, spares that
    # search for the threads (nearly all) that never had one.
    await counted.store.put_batch([event(run_id=f"run-{i % 2}") for i in range(10)])
    deleted, sent = await counted.sent_by(counted.store.delete_by_run(THREAD, "run-0"))
    assert deleted == 5
    assert sent == ["find", "delete"]


async def test_delete_by_thread_resets_counter_and_deletes_events(counted: Counted) -> None:
    """delete_by_thread: one command for the counter, one for the events (then commits).

    In a transaction the counter is reset first, so that the delete wins
    against steady writers; without one the events go first (docs/semantics.md).
    """
    await counted.store.put_batch([event(content=i) for i in range(10)])
    deleted, sent = await counted.sent_by(counted.store.delete_by_thread(THREAD))
    assert deleted == 10
    # The counter's reset is a findAndModify, which also tells whether the
    # thread had blobs: one round trip.
    expected = ["findAndModify", "delete"] if counted.commit else ["delete", "findAndModify"]
    assert sent == expected + counted.commit
