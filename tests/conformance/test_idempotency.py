"""Idempotent writes with ``event_id``, on every backend (part of the conformance suite)."""

from __future__ import annotations

import asyncio

import pytest

from mongo_runevents import (
    EventIdConflictError,
    InvalidEventError,
    RunEventStore,
    RunEventStoreError,
)
from tests.factories import event, seqs


async def test_repeated_put_returns_the_stored_record(store: RunEventStore) -> None:
    """A put repeated with the same event_id returns the first record (same seq) and writes nothing."""
    first = await store.put(**event(content={"n": 1}, event_id="e-1"))
    again = await store.put(**event(content={"n": 1}, event_id="e-1"))
    assert first["event_id"] == "e-1"
    assert again == first
    assert seqs(await store.list_messages("thread-1")) == [1]
    assert (await store.put(**event()))["seq"] == 2


async def test_repeated_batch_returns_the_stored_records(store: RunEventStore) -> None:
    """A whole batch retried with the same keys returns the stored records and adds nothing."""
    batch = [event(content=i, event_id=f"e-{i}") for i in range(20)]
    first = await store.put_batch(batch)
    again = await store.put_batch(batch)
    assert again == first
    assert seqs(again) == list(range(1, 21))
    assert await store.count_messages("thread-1") == 20


async def test_retried_batch_with_new_events_writes_only_the_new(store: RunEventStore) -> None:
    """A journal that retries a batch with more events appended gets old records back and new seqs for the rest."""
    await store.put_batch([event(content=i, event_id=f"e-{i}") for i in range(3)])
    await store.put(**event(content="other writer"))
    retried = await store.put_batch([event(content=i, event_id=f"e-{i}") for i in range(5)])
    assert seqs(retried) == [1, 2, 3, 5, 6]
    assert seqs(await store.list_messages("thread-1")) == [1, 2, 3, 4, 5, 6]


async def test_reusing_a_key_for_another_event_is_a_conflict(store: RunEventStore) -> None:
    """The same event_id with different content raises EventIdConflictError; nothing of the batch is written."""
    await store.put(**event(content="original", event_id="e-1"))
    with pytest.raises(EventIdConflictError) as caught:
        await store.put_batch(
            [event(content="new", event_id="e-2"), event(content="changed", event_id="e-1")]
        )
    assert isinstance(caught.value, RunEventStoreError)
    assert "e-1" in str(caught.value)
    assert seqs(await store.list_messages("thread-1")) == [1]
    assert (await store.put(**event(content="new", event_id="e-2")))["seq"] == 2


async def test_given_created_at_is_part_of_the_event(store: RunEventStore) -> None:
    """A retry with another explicit created_at is a different event; a defaulted one is not compared."""
    await store.put(**event(event_id="e-1", created_at="2025-01-01T00:00:00Z"))
    with pytest.raises(EventIdConflictError):
        await store.put(**event(event_id="e-1", created_at="2025-01-02T00:00:00Z"))
    await store.put(**event(event_id="e-2"))
    await asyncio.sleep(0.002)
    assert (await store.put(**event(event_id="e-2")))["seq"] == 2


async def test_event_ids_are_unique_per_thread_only(store: RunEventStore) -> None:
    """The same key in two threads names two events."""
    a = await store.put(**event("a", event_id="e-1"))
    b = await store.put(**event("b", event_id="e-1"))
    assert (a["thread_id"], a["seq"], b["thread_id"], b["seq"]) == ("a", 1, "b", 1)


async def test_records_without_a_key_have_no_event_id(store: RunEventStore) -> None:
    """Only events written with a key carry event_id, in writes and reads alike."""
    await store.put_batch([event(event_id="e-1"), event()])
    rows = await store.list_messages("thread-1")
    assert [row.get("event_id") for row in rows] == ["e-1", None]
    assert "event_id" not in rows[1]


async def test_a_key_repeated_within_one_batch_is_refused(store: RunEventStore) -> None:
    """Two events of one thread with the same key in one batch are refused before anything is written."""
    with pytest.raises(InvalidEventError, match="event 2, event_id"):
        await store.put_batch([event(event_id="x"), event(event_id="y"), event(event_id="x")])
    assert await store.count_messages("thread-1") == 0


@pytest.mark.parametrize("bad", [{"$ne": None}, "", 5, ["e"]])
async def test_invalid_event_id_is_refused(store: RunEventStore, bad: object) -> None:
    """An event_id that is not a non-empty str raises InvalidEventError."""
    with pytest.raises(InvalidEventError, match="event_id"):
        await store.put(**event(event_id=bad))


async def test_deleted_run_frees_its_keys(store: RunEventStore) -> None:
    """After delete_by_run, a key of a deleted event writes a new event with a new seq."""
    await store.put(**event(run_id="r1", event_id="e-1"))
    await store.delete_by_run("thread-1", "r1")
    again = await store.put(**event(run_id="r1", event_id="e-1"))
    assert again["seq"] == 2


async def test_concurrent_retries_of_one_batch_store_it_once(store: RunEventStore) -> None:
    """The same keyed batch written by three callers at once is stored once; all get the same records."""
    batch = [event(content=i, event_id=f"e-{i}") for i in range(10)]
    results = await asyncio.gather(*(store.put_batch(batch) for _ in range(3)))
    assert results[0] == results[1] == results[2]
    assert seqs(await store.list_messages("thread-1")) == list(range(1, 11))
