"""A thread deleted whole begins again at seq 1, in a new generation that readers can tell."""

from __future__ import annotations

import asyncio

import pytest

from mongo_runevents import RunEventStore
from tests.backends import Connection
from tests.conformance.test_tail import collect
from tests.factories import event, seqs


async def test_generation_counts_the_resets_of_a_thread(store: RunEventStore) -> None:
    """get_thread's generation goes up with each whole-thread delete and each emptying per-user delete."""
    assert await store.get_thread("thread-1") is None
    await store.put_batch([event(), event()])
    info = await store.get_thread("thread-1")
    assert info is not None
    assert (info["last_seq"], info["generation"]) == (2, 0)
    await store.delete_by_thread("thread-1")
    info = await store.get_thread("thread-1")
    assert info is not None
    assert (info["last_seq"], info["generation"]) == (0, 1)
    await store.put(**event(user_id="alice"))
    await store.delete_by_thread("thread-1", user_id="alice")
    info = await store.get_thread("thread-1")
    assert info is not None
    assert info["generation"] == 2
    assert (await store.put(**event()))["seq"] == 1


@pytest.mark.cluster_wide
async def test_a_reset_thread_is_not_listed_until_written_again(store: RunEventStore) -> None:
    """list_threads leaves out a thread deleted whole, and lists it again once it has events."""
    await store.put(**event())
    await store.delete_by_thread("thread-1")
    assert await store.list_threads() == []
    await store.put(**event())
    [row] = await store.list_threads()
    assert (row["thread_id"], row["last_seq"]) == ("thread-1", 1)


async def test_a_live_tail_follows_a_thread_through_a_reset(connection: Connection) -> None:
    """A tail that saw seqs 1..3 sees the new thread's 1, 2 after delete_by_thread, without a gap."""
    writer, reader = connection.store(), connection.store()
    await writer.put_batch([event(content=n) for n in range(3)])
    tail = asyncio.create_task(collect(reader.watch("thread-1", poll_interval=0.02), 5))
    await asyncio.sleep(0.3)  # the tail reads 1..3 and waits
    await writer.delete_by_thread("thread-1")
    await asyncio.sleep(0.1)
    await writer.put_batch([event(content="new-1"), event(content="new-2")])
    found = await asyncio.wait_for(tail, timeout=30)
    assert seqs(found) == [1, 2, 3, 1, 2]
    assert [record["content"] for record in found[3:]] == ["new-1", "new-2"]


async def test_a_reset_while_a_tail_walks_a_long_backlog_yields_the_new_thread_once(
    connection: Connection,
) -> None:
    """Reset after the tail yielded 500 of an 800-event backlog: the new thread's 1..800 come once each."""
    writer, reader = connection.store(), connection.store()
    for start in range(0, 800, 100):
        await writer.put_batch([event(content=f"old-{n}") for n in range(start, start + 100)])
    tail = reader.watch("thread-1", poll_interval=0.02, max_poll_interval=0.2)
    try:
        old = [await asyncio.wait_for(anext(tail), timeout=30) for _ in range(500)]
        assert seqs(old) == list(range(1, 501))
        await writer.delete_by_thread("thread-1")
        for start in range(0, 800, 100):
            await writer.put_batch([event(content=f"new-{n}") for n in range(start, start + 100)])
        new = [await asyncio.wait_for(anext(tail), timeout=30) for _ in range(800)]
    finally:
        await tail.aclose()
    assert seqs(new) == list(range(1, 801))
    assert [record["content"] for record in new] == [f"new-{n}" for n in range(800)]
