"""Edges an adversary finds: isolation of users, values stored as lists, id lengths, odd digits.

Each of these once answered differently on some store, or leaked data; every
store must now answer alike.
"""

from __future__ import annotations

from typing import Any

import pytest

from mongo_runevents import InvalidEventError, RunEventStore
from mongo_runevents.models import MAX_ID_BYTES
from tests.factories import event, seqs, trace


async def test_put_if_absent_never_returns_another_users_event(store: RunEventStore) -> None:
    """bob's put_if_absent on a run holding alice's event of that type creates bob's; alice's stays hidden."""
    secret = {"password": "alice's"}
    await store.put(**event(event_type="run.start", user_id="alice", content=secret))
    record, created = await store.put_if_absent(
        **event(event_type="run.start", user_id="bob", content="bob's")
    )
    assert created
    assert record["user_id"] == "bob"
    assert record["content"] == "bob's"
    again, created_again = await store.put_if_absent(
        **event(event_type="run.start", user_id="bob", content="other")
    )
    assert (again["seq"], created_again) == (record["seq"], False)
    assert again["content"] == "bob's"


async def test_put_if_absent_without_a_user_sees_every_users_event(store: RunEventStore) -> None:
    """Without user_id (an admin or worker path), put_if_absent finds any user's event of the run."""
    await store.put(**event(event_type="run.start", user_id="alice"))
    record, created = await store.put_if_absent(**event(event_type="run.start"))
    assert not created
    assert record["seq"] == 1


@pytest.mark.parametrize("stored", [["t1"], ["t1", "t2"], {"id": "t1"}])
async def test_a_task_id_stored_as_a_list_does_not_match_a_scalar(
    store: RunEventStore, stored: Any
) -> None:
    """task_id matches only a metadata task_id equal to it, on every store (no array semantics)."""
    await store.put_batch([trace(metadata={"task_id": stored}), trace(metadata={"task_id": "t1"})])
    assert seqs(await store.list_events("thread-1", "run-1", task_id="t1")) == [2]


async def test_a_caller_stored_as_a_list_is_not_a_hidden_caller(store: RunEventStore) -> None:
    """Only a caller string starting with middleware: hides an AI reply, on every store."""
    await store.put_batch(
        [
            event(run_id="r1", metadata={"caller": "lead_agent"}),
            event(run_id="r1", metadata={"caller": ["middleware:title"]}),
            event(run_id="r2", metadata={"caller": "middleware:title"}),
            event(run_id="r3", metadata={"caller": 7}),
        ]
    )
    found = await store.get_last_visible_ai_seq_by_run("thread-1", ["r1", "r2", "r3"])
    assert found == {"r1": 2, "r3": 4}


@pytest.mark.parametrize(
    "too_long", ["x" * (MAX_ID_BYTES + 1), "é" * (MAX_ID_BYTES // 2 + 1), "€" * 200]
)
async def test_ids_past_the_length_limit_are_refused_before_any_io(
    store: RunEventStore, too_long: str
) -> None:
    """An id of more than 512 UTF-8 bytes is an input error in writes and reads; nothing is written."""
    for field in ("thread_id", "run_id", "event_type", "category", "event_id", "user_id"):
        with pytest.raises(InvalidEventError, match=field):
            await store.put(**{**event(), field: too_long})
    with pytest.raises(InvalidEventError, match="thread_id"):
        await store.list_messages(too_long)
    with pytest.raises(InvalidEventError, match="run_ids"):
        await store.get_last_visible_ai_seq_by_run("thread-1", [too_long])
    assert (await store.put(**event(thread_id="x" * MAX_ID_BYTES)))["seq"] == 1
    assert await store.list_messages("thread-1") == []


@pytest.mark.parametrize(
    "created_at",
    # Arabic-Indic digits (U+0660..U+0669), which \\d would take.
    [
        "2025-07-01T\u0661\u0662:00:00Z",
        "2025-07-01T12:\u0660\u0660",
        "\u0662\u0660\u0662\u0665-07-01",
        "2025-07-01T12:00:00+\u0660\u0665:30",
    ],
)
async def test_created_at_takes_ascii_digits_only(store: RunEventStore, created_at: str) -> None:
    """A created_at with non-ASCII digits anywhere is refused."""
    with pytest.raises(InvalidEventError, match="created_at"):
        await store.put(**event(created_at=created_at))


@pytest.mark.parametrize("records", [None, 5, "records", {"thread_id": "t"}])
async def test_import_of_something_that_is_not_records_is_an_input_error(
    store: RunEventStore, records: Any
) -> None:
    """import_events(None) and the like raise InvalidEventError, not TypeError."""
    with pytest.raises(InvalidEventError, match="records"):
        await store.import_events(records)
