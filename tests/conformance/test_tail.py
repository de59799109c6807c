"""The live tail (``store.watch``) on every backend: every event once, in seq order."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from typing import Any

import pytest

from mongo_runevents import InvalidEventError, RunEventStore
from tests.backends import Connection
from tests.factories import event, seqs, trace


@pytest.fixture
def tail_store(connection: Connection) -> tuple[RunEventStore, RunEventStore]:
    """Two stores on one collection: a writer's and a reader's."""
    return connection.store(), connection.store()


async def collect(stream: AsyncIterator[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    """The first ``count`` events a tail yields."""
    found: list[dict[str, Any]] = []
    async for record in stream:
        found.append(record)
        if len(found) == count:
            break
    return found


async def test_watch_yields_backlog_then_live_events_once_in_order(tail_store: Any) -> None:
    """A tail started after seq 2 yields 3.. from the backlog, then every new event once, in order."""
    writer, reader = tail_store
    await writer.put_batch([event(content=i) for i in range(5)])
    tail = asyncio.create_task(
        collect(reader.watch("thread-1", after_seq=2, poll_interval=0.02), 3 + 60)
    )

    async def write_more() -> None:
        for batch in range(6):
            await writer.put_batch([event(content=f"{batch}-{i}") for i in range(10)])
            await asyncio.sleep(0.01)

    await asyncio.gather(write_more(), asyncio.wait_for(asyncio.shield(tail), timeout=60))
    assert seqs(await tail) == list(range(3, 66))


async def test_watch_can_follow_messages_only(tail_store: Any) -> None:
    """With category="message" the tail skips traces, as a chat UI wants."""
    writer, reader = tail_store
    tail = asyncio.create_task(
        collect(reader.watch("thread-1", category="message", poll_interval=0.02), 4)
    )
    await asyncio.sleep(0.05)
    await writer.put_batch([event(), trace(), event(), trace(), event(), event("other"), event()])
    found = await asyncio.wait_for(tail, timeout=30)
    assert seqs(found) == [1, 3, 5, 6]
    assert {record["category"] for record in found} == {"message"}


@pytest.mark.parametrize("interval", ["x", -1, 0, math.nan, math.inf, True, None])
async def test_watch_refuses_poll_intervals_that_would_busy_loop(
    store: RunEventStore, interval: Any
) -> None:
    """A poll interval that is not a positive, finite number is an input error, not a busy loop."""
    for name in ("poll_interval", "max_poll_interval"):
        with pytest.raises(InvalidEventError, match=name):
            await anext(store.watch("thread-1", **{name: interval}))
