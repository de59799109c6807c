"""A store's life cycle on every backend: an async context manager, and closed for good once closed."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, get_origin

import pytest
from typing_extensions import NotRequired, get_type_hints

from mongo_runevents import RunEventRecord, RunEventStore, StorageError, StoreClosedError
from mongo_runevents.models import RECORD_FIELDS
from tests.factories import event

CALLS: dict[str, Callable[[RunEventStore], Awaitable[Any]]] = {
    "put": lambda store: store.put(**event()),
    "put_batch": lambda store: store.put_batch([event()]),
    "put_if_absent": lambda store: store.put_if_absent(**event()),
    "list_messages": lambda store: store.list_messages("thread-1"),
    "list_events": lambda store: store.list_events("thread-1", "run-1"),
    "count_messages": lambda store: store.count_messages("thread-1"),
    "list_threads": lambda store: store.list_threads(),
    "get_event": lambda store: store.get_event("thread-1", 1),
    "delete_by_thread": lambda store: store.delete_by_thread("thread-1"),
    "import_events": lambda store: store.import_events(
        [{**event(), "seq": 1, "created_at": "2025-07-01"}]
    ),
    "export_events": lambda store: anext(store.export_events()),
    "watch": lambda store: anext(store.watch("thread-1")),
}


async def test_a_store_is_an_async_context_manager_that_closes_it(store: RunEventStore) -> None:
    """`async with store` gives the store itself and closes it when the block ends."""
    async with store as opened:
        assert opened is store
        assert (await store.put(**event()))["seq"] == 1
    with pytest.raises(StoreClosedError, match="the store is closed"):
        await store.count_messages("thread-1")


@pytest.mark.parametrize("call", list(CALLS))
async def test_every_call_after_close_raises_store_closed(store: RunEventStore, call: str) -> None:
    """After close(), each method raises StoreClosedError, a StorageError that is not retryable."""
    await store.put(**event())
    await store.close()
    with pytest.raises(StoreClosedError) as raised:
        await CALLS[call](store)
    assert isinstance(raised.value, StorageError)
    assert raised.value.retryable is False


async def test_closing_twice_is_harmless(store: RunEventStore) -> None:
    """close() may be called again; the store stays closed."""
    await store.close()
    await store.close()
    with pytest.raises(StoreClosedError):
        await store.put(**event())


def test_the_record_type_names_every_key_of_a_record() -> None:
    """RunEventRecord, the exported TypedDict, has the record's keys; event_id and user_id optional."""
    assert set(get_type_hints(RunEventRecord)) == set(RECORD_FIELDS)
    hints = get_type_hints(RunEventRecord, include_extras=True)
    optional = {name for name, hint in hints.items() if get_origin(hint) is NotRequired}
    assert optional == {"event_id", "user_id"}


def test_the_interface_returns_records_typed_as_the_record_type() -> None:
    """The record-returning methods of RunEventStore are annotated with RunEventRecord, not bare dicts."""
    from collections.abc import AsyncGenerator

    from mongo_runevents.records import AnotherUsersEvent, LookedUpRecord

    returns = {
        name: get_type_hints(getattr(RunEventStore, name))["return"]
        for name in (
            *("put", "put_batch", "put_if_absent", "list_messages", "list_messages_by_run"),
            *("list_events", "read_after", "get_event", "watch", "export_events"),
        )
    }
    assert returns == {
        "put": RunEventRecord,
        "put_batch": list[RunEventRecord],
        "put_if_absent": tuple[RunEventRecord | AnotherUsersEvent, bool],
        "list_messages": list[RunEventRecord],
        "list_messages_by_run": list[RunEventRecord],
        "list_events": list[RunEventRecord],
        "read_after": list[RunEventRecord],
        "get_event": LookedUpRecord | None,
        "watch": AsyncGenerator[RunEventRecord, None],
        "export_events": AsyncGenerator[RunEventRecord, None],
    }
    assert set(get_type_hints(LookedUpRecord)) == {*RECORD_FIELDS, "large_fields"}
