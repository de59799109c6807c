"""The interface as current DeerFlow uses it, on every backend (part of the conformance suite)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from mongo_runevents import InvalidEventError, RunEventStore
from tests.factories import event, seqs, trace


async def test_list_messages_by_run_pages_with_cursors(store: RunEventStore) -> None:
    """list_messages_by_run follows list_messages' cursor rules within one run."""
    await store.put_batch([event(run_id="r1" if n % 2 else "r2", content=n) for n in range(1, 21)])
    r1 = [n for n in range(1, 21) if n % 2]
    assert seqs(await store.list_messages_by_run("thread-1", "r1")) == r1
    assert seqs(await store.list_messages_by_run("thread-1", "r1", limit=3)) == [15, 17, 19]
    assert seqs(await store.list_messages_by_run("thread-1", "r1", before_seq=9, limit=2)) == [5, 7]
    assert seqs(await store.list_messages_by_run("thread-1", "r1", after_seq=9, limit=2)) == [
        11,
        13,
    ]
    assert seqs(await store.list_messages_by_run("thread-1", "r1", after_seq=2, before_seq=8)) == [
        3,
        5,
        7,
    ]


async def test_list_messages_by_run_defaults_to_the_newest_50(store: RunEventStore) -> None:
    """Without cursors, list_messages_by_run returns the run's newest 50 messages."""
    await store.put_batch([event(content=n) for n in range(60)])
    assert seqs(await store.list_messages_by_run("thread-1", "run-1")) == list(range(11, 61))


async def test_list_events_filters_by_task_id(store: RunEventStore) -> None:
    """task_id keeps the run's events whose metadata.task_id matches."""
    await store.put_batch(
        [
            trace(metadata={"task_id": "t1"}),
            trace(metadata={"task_id": "t2"}),
            event(metadata={"task_id": "t1", "caller": "subagent"}),
            trace(),
        ]
    )
    assert seqs(await store.list_events("thread-1", "run-1", task_id="t1")) == [1, 3]
    assert seqs(
        await store.list_events("thread-1", "run-1", task_id="t1", event_types=["llm.start"])
    ) == [1]
    assert await store.list_events("thread-1", "run-1", task_id="none") == []


async def test_list_events_after_seq_pages_through_a_long_run(store: RunEventStore) -> None:
    """Paging a run with after_seq collects every event once, with no gap or repeat."""
    batch = [
        event(run_id="r1" if n % 3 else "r2", category="trace" if n % 2 else "message")
        for n in range(300)
    ]
    for start in range(0, 300, 100):
        await store.put_batch(batch[start : start + 100])
    collected: list[int] = []
    page = await store.list_events("thread-1", "r1", limit=37)
    while page:
        collected += seqs(page)
        page = await store.list_events("thread-1", "r1", limit=37, after_seq=collected[-1])
    assert collected == [n + 1 for n in range(300) if n % 3]


async def test_put_if_absent_writes_once_per_run_and_type(store: RunEventStore) -> None:
    """put_if_absent writes the first event of a type in a run and returns it afterwards."""
    first, created = await store.put_if_absent(
        **event(event_type="run.start", category="lifecycle", content=1)
    )
    again, created_again = await store.put_if_absent(
        **event(event_type="run.start", category="lifecycle", content=2)
    )
    other_run, created_other = await store.put_if_absent(
        **event(run_id="r2", event_type="run.start", category="lifecycle")
    )
    assert (created, created_again, created_other) == (True, False, True)
    assert again == first
    assert again["content"] == 1
    assert other_run["seq"] == 2
    assert await store.list_events("thread-1", "run-1") == [first]


async def test_concurrent_put_if_absent_creates_exactly_one(store: RunEventStore) -> None:
    """Ten callers racing put_if_absent for one run and type create one event; all get it."""
    results = await asyncio.gather(
        *(
            store.put_if_absent(**event(event_type="run.start", category="lifecycle", content=i))
            for i in range(10)
        )
    )
    assert sum(created for _, created in results) == 1
    assert len({record["seq"] for record, _ in results}) == 1
    assert len(await store.list_events("thread-1", "run-1")) == 1


async def test_put_if_absent_validates_like_put(store: RunEventStore) -> None:
    """put_if_absent refuses bad input with InvalidEventError before writing."""
    with pytest.raises(InvalidEventError, match="thread_id"):
        await store.put_if_absent(**event(thread_id={"$ne": ""}))
    assert await store.list_events("thread-1", "run-1") == []


async def test_last_visible_ai_seq_by_run(store: RunEventStore) -> None:
    """Per run, the newest AI reply not from middleware; runs without one are left out."""
    await store.put_batch(
        [
            event(
                run_id="r1", event_type="llm.ai.response", metadata={"caller": "lead_agent"}
            ),  # 1
            event(
                run_id="r1", event_type="llm.ai.response", metadata={"caller": "middleware:title"}
            ),  # 2
            event(run_id="r1", event_type="llm.tool.result"),  # 3
            event(run_id="r2", event_type="ai_message"),  # 4 legacy type, no caller
            event(run_id="r2", event_type="llm.ai.response", category="trace"),  # 5 not a message
            event(
                run_id="r3", event_type="llm.ai.response", metadata={"caller": "middleware:x"}
            ),  # 6
            event(run_id="r1", event_type="llm.ai.response", metadata={"caller": "subagent"}),  # 7
            event(run_id="r4", event_type="llm.ai.response"),  # 8, not asked for
        ]
    )
    found = await store.get_last_visible_ai_seq_by_run("thread-1", ["r1", "r2", "r3", "nope"])
    assert found == {"r1": 7, "r2": 4}
    assert await store.get_last_visible_ai_seq_by_run("thread-1", []) == {}
    assert await store.get_last_visible_ai_seq_by_run("other", ["r1"]) == {}


async def test_user_id_isolates_reads_counts_and_deletes(store: RunEventStore) -> None:
    """Given a user_id, every read, count and delete sees only that user's events."""
    await store.put_batch(
        [
            event(run_id="r1", user_id="alice", content="a1"),
            event(run_id="r1", user_id="bob", content="b1"),
            trace(run_id="r1", user_id="alice"),
            event(run_id="r2", user_id="bob", content="b2"),
            event(run_id="r2", content="nobody"),
        ]
    )
    mine = await store.list_messages("thread-1", user_id="alice")
    assert [(r["content"], r["user_id"]) for r in mine] == [("a1", "alice")]
    assert len(await store.list_messages("thread-1")) == 4
    assert await store.count_messages("thread-1", user_id="bob") == 2
    assert seqs(await store.list_events("thread-1", "r1", user_id="alice")) == [1, 3]
    assert seqs(await store.list_messages_by_run("thread-1", "r2", user_id="bob")) == [4]
    assert await store.get_last_visible_ai_seq_by_run(
        "thread-1", ["r1", "r2"], user_id="alice"
    ) == {"r1": 1}
    assert await store.delete_by_run("thread-1", "r1", user_id="bob") == 1
    assert await store.delete_by_thread("thread-1", user_id="alice") == 2
    assert [r["content"] for r in await store.list_messages("thread-1")] == ["b2", "nobody"]
    assert (await store.put(**event(user_id="alice")))["seq"] == 6


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.list_messages("thread-1", user_id={"$ne": None}),
        lambda s: s.count_messages("thread-1", user_id=["alice"]),
        lambda s: s.delete_by_thread("thread-1", user_id={"$exists": True}),
        lambda s: s.delete_by_run("thread-1", "run-1", user_id=""),
        lambda s: s.list_events("thread-1", "run-1", task_id={"$gt": ""}),
        lambda s: s.list_events("thread-1", "run-1", after_seq=-1),
        lambda s: s.list_messages_by_run("thread-1", "run-1", before_seq={"$lt": 3}),
        lambda s: s.get_last_visible_ai_seq_by_run("thread-1", "run-1"),
        lambda s: s.get_last_visible_ai_seq_by_run("thread-1", [{"$ne": None}]),
        lambda s: s.put(**event(user_id={"$ne": None})),
    ],
)
async def test_new_arguments_refuse_injection(store: RunEventStore, call: Any) -> None:
    """Operator dicts and other non-strings in the new arguments raise InvalidEventError and touch nothing."""
    await store.put(**event(user_id="alice"))
    with pytest.raises(InvalidEventError):
        await call(store)
    assert await store.count_messages("thread-1") == 1
