"""Edges an adversary finds: isolation of users, values stored as lists, id lengths, odd digits.

Each of these once answered differently on some store, or leaked data; every
store must now answer alike.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from mongo_runevents import InvalidEventError, RunEventStore
from mongo_runevents.models import MAX_ID_BYTES
from tests.factories import event, seqs, trace


async def test_put_if_absent_never_returns_another_users_event(store: RunEventStore) -> None:
    """bob's put_if_absent on a run holding alice's event of that type writes nothing and shows nothing of hers."""
    secret = {"password": "alice's"}
    await store.put(**event(event_type="run.delivery", user_id="alice", content=secret))
    record, created = await store.put_if_absent(
        **event(event_type="run.delivery", user_id="bob", content="bob's")
    )
    assert not created
    assert record == {"thread_id": "thread-1", "run_id": "run-1", "event_type": "run.delivery"}
    assert await store.count_events("thread-1") == 1
    assert await store.list_events("thread-1", "run-1", user_id="bob") == []


async def test_put_if_absent_one_receipt_across_users_and_no_user(store: RunEventStore) -> None:
    """Recovery (no user) and the owner's worker both storing run.delivery leave exactly one receipt."""
    recovered, created = await store.put_if_absent(
        **event(event_type="run.delivery", category="outputs", content={"presented": 0})
    )
    assert created
    owners, owner_created = await store.put_if_absent(
        **event(
            event_type="run.delivery",
            category="outputs",
            content={"presented": 2},
            user_id="alice",
        )
    )
    assert not owner_created
    assert "content" not in owners
    again, again_created = await store.put_if_absent(
        **event(event_type="run.delivery", category="outputs", content={"presented": 5})
    )
    assert (again_created, again["seq"], again["content"]) == (False, 1, {"presented": 0})
    assert len(await store.list_events("thread-1", "run-1")) == 1
    assert recovered["seq"] == 1


async def test_put_if_absent_returns_the_callers_own_existing_event(store: RunEventStore) -> None:
    """alice's second put_if_absent gets her own first event back, whole."""
    first, _ = await store.put_if_absent(
        **event(event_type="run.delivery", user_id="alice", content={"n": 1})
    )
    again, created = await store.put_if_absent(
        **event(event_type="run.delivery", user_id="alice", content={"n": 2})
    )
    assert not created
    assert again == first


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


#: Times with Arabic-Indic digits (U+0660..U+0669), which \\d would take and int() reads.
NON_ASCII_DIGIT_TIMES = [
    "2025-07-01T\u0661\u0662:00:00Z",
    "2025-07-01T12:\u0660\u0660",
    "\u0662\u0660\u0662\u0665-07-01",
    "2025-07-01T12:00:00+\u0660\u0665:30",
]


@pytest.mark.parametrize("created_at", NON_ASCII_DIGIT_TIMES)
async def test_created_at_takes_ascii_digits_only(store: RunEventStore, created_at: str) -> None:
    """A created_at with non-ASCII digits anywhere is refused by put, put_batch and import_events."""
    with pytest.raises(InvalidEventError, match="created_at"):
        await store.put(**event(created_at=created_at))
    # A batch the fast path would take whole but for this time, and one of a single event.
    for batch in ([event(), event(created_at=created_at)], [event(created_at=created_at)]):
        with pytest.raises(InvalidEventError, match="created_at"):
            await store.put_batch(batch)
    with pytest.raises(InvalidEventError, match="created_at"):
        await store.import_events([{**event(created_at=created_at), "seq": 1}])
    assert await store.list_messages("thread-1") == []


@pytest.mark.parametrize("records", [None, 5, "records", {"thread_id": "t"}])
async def test_import_of_something_that_is_not_records_is_an_input_error(
    store: RunEventStore, records: Any
) -> None:
    """import_events(None) and the like raise InvalidEventError, not TypeError."""
    with pytest.raises(InvalidEventError, match="records"):
        await store.import_events(records)


async def test_objects_that_fake_their_class_are_stored_through_default(
    store: RunEventStore,
) -> None:
    """Mock(spec=str), a dict-spec MagicMock and such keys are stored as str(), as json's default=str would."""
    from unittest.mock import MagicMock, Mock

    fake_str, fake_dict, fake_int = Mock(spec=str), MagicMock(spec=dict), Mock(spec=int)
    record = await store.put(
        **event(
            content={"text": fake_str, "state": fake_dict, "n": [fake_int], fake_str: 1},
            metadata={"m": fake_dict},
        )
    )
    expected: dict[str, Any] = {
        "text": str(fake_str),
        "state": str(fake_dict),
        "n": [str(fake_int)],
    }
    expected[str(fake_str)] = 1
    assert record["content"] == expected
    assert record["metadata"] == {"m": str(fake_dict)}
    [stored] = await store.list_messages("thread-1")
    assert stored["content"] == expected
    top = await store.put(**event(content=fake_str))
    assert top["content"] == str(fake_str)


@pytest.mark.cluster_wide
async def test_a_users_thread_listing_shows_only_that_users_activity(store: RunEventStore) -> None:
    """bob's listing of a shared thread has bob's last seq and time, and his own order, not alice's."""
    await store.put(**event("shared", user_id="bob"))
    await asyncio.sleep(0.002)  # distinct times, whatever the clock's resolution
    await store.put(**event("bobs-own", user_id="bob"))
    [bob_own] = [
        row for row in await store.list_threads(user_id="bob") if row["thread_id"] == "bobs-own"
    ]
    bob_shared_before = (await store.list_threads(user_id="bob"))[1]
    assert bob_shared_before["thread_id"] == "shared"
    await asyncio.sleep(0.002)
    await store.put_batch([event("shared", user_id="alice") for _ in range(3)])
    rows = await store.list_threads(user_id="bob")
    assert [row["thread_id"] for row in rows] == ["bobs-own", "shared"]
    shared = rows[1]
    assert shared["last_seq"] == 1
    assert shared["updated_at"] == bob_shared_before["updated_at"]
    assert shared["updated_at"] <= bob_own["updated_at"]
    [alices] = await store.list_threads(user_id="alice")
    assert (alices["thread_id"], alices["last_seq"]) == ("shared", 4)
    # The cursor of a user's row pages on through that user's threads.
    [second] = await store.list_threads(user_id="bob", before=rows[0]["cursor"])
    assert second["thread_id"] == "shared"


@pytest.mark.cluster_wide
async def test_a_user_whose_events_are_deleted_no_longer_lists_the_thread(
    store: RunEventStore,
) -> None:
    """After delete_by_run (with or without user_id) takes a user's last events, that user's listing leaves the thread out."""
    await store.put(**event(run_id="r1", user_id="bob"))
    await store.put(**event(run_id="r2", user_id="alice"))
    await store.put(**event(run_id="r3", user_id="carol"))
    assert await store.delete_by_run("thread-1", "r1") == 1
    assert await store.delete_by_run("thread-1", "r3", user_id="carol") == 1
    assert await store.list_threads(user_id="bob") == []
    assert await store.list_threads(user_id="carol") == []
    [alices] = await store.list_threads(user_id="alice")
    assert alices["last_seq"] == 2
    await store.put(**event(run_id="r4", user_id="bob"))
    [bobs] = await store.list_threads(user_id="bob")
    assert bobs["last_seq"] == 4


async def test_a_per_user_delete_of_an_empty_thread_starts_no_new_generation(
    store: RunEventStore,
) -> None:
    """Deleting from a thread already reset (per user or whole) leaves its generation as it is."""
    await store.put(**event(user_id="alice"))
    assert await store.delete_by_thread("thread-1") == 1
    info = await store.get_thread("thread-1")
    assert info is not None
    assert info["generation"] == 1
    assert await store.delete_by_thread("thread-1", user_id="alice") == 0
    assert await store.delete_by_thread("thread-1") == 0
    info = await store.get_thread("thread-1")
    assert info is not None
    assert (info["generation"], info["last_seq"]) == (1, 0)


@pytest.mark.cluster_wide
async def test_imported_events_appear_in_their_users_listing(store: RunEventStore) -> None:
    """An import lists the thread for the users of its records, with each user's own last seq."""
    records = [
        {**event(user_id="alice"), "seq": 1, "created_at": "2025-01-01T00:00:00+00:00"},
        {**event(user_id="bob"), "seq": 2, "created_at": "2025-01-01T00:00:01+00:00"},
    ]
    await store.import_events(records)
    [alices] = await store.list_threads(user_id="alice")
    [bobs] = await store.list_threads(user_id="bob")
    assert (alices["last_seq"], bobs["last_seq"]) == (1, 2)
