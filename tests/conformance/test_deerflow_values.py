"""What DeerFlow's own callers hand a store, kept as DeerFlow's stores keep it (conformance).

DeerFlow passes sets of run ids, LangChain objects inside ``run.end`` content,
query strings (possibly empty) as filters, and expects a thread that a
per-user delete left empty to start again at 1.
"""

from __future__ import annotations

import asyncio
import enum
import json
import math
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import pytest
from pydantic import BaseModel

from mongo_runevents import EventIdConflictError, InvalidEventError, RunEventStore
from tests.conformance.test_records import NON_JSON_EVENTS
from tests.conftest import StoreFactory
from tests.factories import event, seqs, trace


class AIMessage(BaseModel):
    """Stands in for a LangChain message: a Pydantic model that is not JSON."""

    content: str
    type: str = "ai"
    tool_calls: list[dict[str, Any]] = []


class Colour(enum.Enum):
    RED = "red"


def as_deerflow_keeps(value: Any) -> Any:
    """What DeerFlow's persistent stores give back: ``json.dumps(default=str)``, then parsed."""
    return json.loads(json.dumps(value, default=str))


def same(first: Any, second: Any) -> bool:
    """Equal, types included, with NaN equal to NaN."""
    if type(first) is not type(second):
        return False
    if isinstance(first, dict):
        return first.keys() == second.keys() and all(same(v, second[k]) for k, v in first.items())
    if isinstance(first, list):
        return len(first) == len(second) and all(map(same, first, second))
    if isinstance(first, float) and math.isnan(first):
        return math.isnan(second)
    return bool(first == second)


GRAPH_STATE: dict[str, Any] = {
    "messages": [AIMessage(content="Hello", tool_calls=[{"name": "search"}]), {"type": "human"}],
    "artifacts": ("report.md", "chart.png"),
    "seen": {"a"},
    "when": datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc),
    "price": Decimal("1.50"),
    "id": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    "raw": b"bytes",
    "colour": Colour.RED,
    "nan": math.nan,
    "inf": -math.inf,
    "big": 2**70,
    "negative_big": -(10**30),
    7: "int key",
    2.5: "float key",
    True: "bool key",
    None: "none key",
}


async def test_run_end_with_langchain_objects_is_kept_as_deerflow_keeps_it(
    store: RunEventStore,
) -> None:
    """A run.end whose content holds non-JSON objects is stored as json.dumps(default=str) would keep it."""
    expected = as_deerflow_keeps(GRAPH_STATE)
    written = await store.put(
        **event(event_type="run.end", category="lifecycle", content=GRAPH_STATE)
    )
    assert same(written["content"], expected)
    [read] = await store.list_events("thread-1", "run-1")
    assert same(read["content"], expected)
    assert read["content"]["big"] == 2**70
    assert read["content"]["messages"][0] == str(GRAPH_STATE["messages"][0])


async def test_a_journal_batch_with_a_non_json_run_end_loses_nothing(store: RunEventStore) -> None:
    """The final AI message buffered with a run.end full of objects is stored, in order."""
    batch = [trace(content={"step": n}) for n in range(18)]
    batch.append(event(content={"type": "ai", "content": "the answer"}))
    batch.append(event(event_type="run.end", category="lifecycle", content={"state": GRAPH_STATE}))
    records = await store.put_batch(batch)
    assert seqs(records) == list(range(1, 21))
    assert [m["content"]["content"] for m in await store.list_messages("thread-1")] == [
        "the answer"
    ]


@pytest.mark.parametrize(("value", "field"), NON_JSON_EVENTS)
async def test_values_that_are_not_json_round_trip_as_json_would_keep_them(
    store: RunEventStore, value: dict[str, Any], field: str
) -> None:
    """Each non-JSON value is converted as json.dumps(default=str) would, and reads back the same."""
    written = await store.put(**{**event(), **value})
    name = next(iter(value))
    assert same(written[name], as_deerflow_keeps(value[name]))
    [read] = await store.list_messages("thread-1")
    assert same(read[name], written[name])


@pytest.mark.parametrize(("value", "field"), NON_JSON_EVENTS)
async def test_a_strict_store_refuses_values_that_are_not_json(
    store_factory: StoreFactory, value: dict[str, Any], field: str
) -> None:
    """With json_default=None, a value that is not JSON is refused, naming where it is."""
    strict = store_factory(json_default=None)
    with pytest.raises(InvalidEventError) as caught:
        await strict.put(**{**event(), **value})
    assert field in str(caught.value)
    assert await strict.list_messages("thread-1") == []


async def test_a_callers_default_converts_objects(store_factory: StoreFactory) -> None:
    """A json_default calling model_dump() stores a LangChain-like message as its dict."""

    def dump(value: Any) -> Any:
        if isinstance(value, BaseModel):
            return value.model_dump()
        return str(value)

    store = store_factory(json_default=dump)
    message = AIMessage(content="hi", tool_calls=[{"name": "t", "args": (1, 2)}])
    record = await store.put(**event(content={"messages": [message]}))
    expected = {
        "messages": [{"content": "hi", "type": "ai", "tool_calls": [{"name": "t", "args": [1, 2]}]}]
    }
    assert record["content"] == expected
    assert (await store.list_messages("thread-1"))[0]["content"] == expected


async def test_a_default_that_fails_is_a_typed_error(store_factory: StoreFactory) -> None:
    """A json_default that raises gives InvalidEventError naming the field; nothing is written."""

    def refuse(value: Any) -> Any:
        raise RuntimeError("no")

    store = store_factory(json_default=refuse)
    with pytest.raises(InvalidEventError, match=r"content\['x'\]"):
        await store.put_batch([event(), event(content={"x": object()})])
    assert await store.list_messages("thread-1") == []


# --- a run.end of many messages ----------------------------------------------------


def graph_state(messages: int) -> dict[str, Any]:
    """A graph state as DeerFlow's journal passes it in a run.end: messages and a title."""
    return {
        "messages": [
            AIMessage(content=f"step {n}", tool_calls=[{"name": "search"}]) for n in range(messages)
        ],
        "title": "Quarterly report",
    }


def run_end(**fields: Any) -> dict[str, Any]:
    return event(event_type="run.end", category="outputs", **fields)


async def test_a_run_end_of_hundreds_of_messages_is_kept_as_deerflow_keeps_it(
    store: RunEventStore,
) -> None:
    """A run.end of 400 messages (converted in slices) keeps json.dumps(default=str)'s value."""
    state = graph_state(400)
    expected = as_deerflow_keeps(state)
    batch = [trace(content={"step": n}) for n in range(19)]
    records = await store.put_batch([*batch, run_end(content=state)])
    assert same(records[-1]["content"], expected)
    single = await store.put(**run_end(run_id="run-2", content=state))
    assert same(single["content"], expected)
    record, created = await store.put_if_absent(**run_end(run_id="run-3", content=state))
    assert created
    assert same(record["content"], expected)
    stored = await store.list_events("thread-1", "run-1", event_types=["run.end"])
    assert same(stored[0]["content"], expected)
    assert seqs(records) == list(range(1, 21))
    assert [single["seq"], record["seq"]] == [21, 22]


async def test_a_costly_conversion_gives_the_event_loop_turns(
    store_factory: StoreFactory,
) -> None:
    """While a run.end of 400 objects is converted, other tasks run between slices of it."""
    calls = 0

    def slow_str(value: Any) -> Any:
        nonlocal calls
        calls += 1
        time.sleep(0.0001)  # a LangChain message's str() takes 15 to 20 us; make it longer
        return str(value)

    store = store_factory(json_default=slow_str)
    seen: set[int] = set()
    done = False

    async def watch() -> None:
        while not done:
            seen.add(calls)
            await asyncio.sleep(0)

    watcher = asyncio.create_task(watch())
    await asyncio.sleep(0)
    for write in (
        lambda: store.put_batch([event(), run_end(content=graph_state(400))]),
        lambda: store.put(**run_end(run_id="run-2", content=graph_state(400))),
        lambda: store.put_if_absent(**run_end(run_id="run-3", content=graph_state(400))),
    ):
        before = calls
        seen.clear()
        await write()
        assert calls == before + 400
        assert any(before < seen_calls < calls for seen_calls in seen)
    done = True
    await watcher


async def test_a_default_that_fails_in_a_sliced_conversion_is_a_typed_error(
    store_factory: StoreFactory,
) -> None:
    """In a batch converted in slices, a failing json_default still names the event and the path."""
    state = graph_state(400)
    state["messages"].append(Colour.RED)

    def refuse_colours(value: Any) -> Any:
        if isinstance(value, Colour):
            raise RuntimeError("no colours")
        return str(value)

    store = store_factory(json_default=refuse_colours)
    with pytest.raises(InvalidEventError, match=r"content\['messages'\]\[400\]") as caught:
        await store.put_batch([event(), run_end(content=state)])
    assert caught.value.index == 1
    assert await store.list_events("thread-1", "run-1") == []


async def test_a_default_that_never_yields_json_is_refused(store: RunEventStore) -> None:
    """A value whose conversion never ends is refused, not looped over forever."""

    class Endless:
        def __str__(self) -> str:
            raise RecursionError

    with pytest.raises(InvalidEventError):
        await store.put(**event(content=Endless()))


async def test_idempotency_compares_types_all_the_way_down(store: RunEventStore) -> None:
    """A retry with {"a": True} (or [1.0]) does not match a stored {"a": 1} ([1]): it is a conflict."""
    await store.put(**event(event_id="e1", content={"a": 1, "b": [1]}))
    for other in ({"a": True, "b": [1]}, {"a": 1, "b": [1.0]}):
        with pytest.raises(EventIdConflictError):
            await store.put(**event(event_id="e1", content=other))
    again = await store.put(**event(event_id="e1", content={"a": 1, "b": [1]}))
    assert again["seq"] == 1


async def test_idempotent_retry_of_an_event_holding_nan(store: RunEventStore) -> None:
    """An event holding NaN, retried with the same event_id, is the same event."""
    first = await store.put(**event(event_id="e1", content={"x": math.nan}))
    again = await store.put(**event(event_id="e1", content={"x": math.nan}))
    assert again["seq"] == first["seq"] == 1


# --- collections of ids ---------------------------------------------------------

COLLECTIONS: list[Callable[[list[str]], Iterable[str]]] = [
    list,
    tuple,
    set,
    frozenset,
    lambda ids: dict.fromkeys(ids).keys(),
    lambda ids: (run_id for run_id in ids),
]


@pytest.mark.parametrize(
    "collection", COLLECTIONS, ids=["list", "tuple", "set", "frozenset", "keys", "generator"]
)
async def test_run_ids_and_event_types_take_any_collection(
    store: RunEventStore, collection: Callable[[list[str]], Iterable[str]]
) -> None:
    """run_ids and event_types accept any iterable of str (DeerFlow's gateway passes a set)."""
    await store.put_batch([event(run_id="r1"), event(run_id="r2"), trace(run_id="r1")])
    assert await store.get_last_visible_ai_seq_by_run("thread-1", collection(["r1", "r2"])) == {  # type: ignore[arg-type]
        "r1": 1,
        "r2": 2,
    }
    got = await store.list_events("thread-1", "r1", event_types=collection(["llm.start"]))  # type: ignore[arg-type]
    assert seqs(got) == [3]


@pytest.mark.parametrize("bad", ["r1", b"r1", {"r1": 1}, 7, None, ["r1", 3]])
async def test_a_bare_string_or_a_mapping_is_not_a_collection_of_ids(
    store: RunEventStore, bad: Any
) -> None:
    """A bare str (iterable, but a bug), bytes, a dict or non-str items are refused."""
    with pytest.raises(InvalidEventError, match="run_ids"):
        await store.get_last_visible_ai_seq_by_run("thread-1", bad)
    if bad is not None:
        with pytest.raises(InvalidEventError, match="event_types"):
            await store.list_events("thread-1", "run-1", event_types=bad)


# --- empty filters ----------------------------------------------------------------


async def test_empty_filters_match_nothing(store: RunEventStore) -> None:
    """task_id="" and "" among event_types or run_ids match nothing, without an error."""
    await store.put_batch([trace(metadata={"task_id": "t1"}), event(metadata={"task_id": ""})])
    assert await store.list_events("thread-1", "run-1", task_id="") == []
    assert await store.list_events("thread-1", "run-1", event_types=[""]) == []
    assert seqs(await store.list_events("thread-1", "run-1", event_types=["", "llm.start"])) == [1]
    assert await store.get_last_visible_ai_seq_by_run("thread-1", {""}) == {}
    assert await store.get_last_visible_ai_seq_by_run("thread-1", {"", "run-1"}) == {"run-1": 2}


# --- numbering after a per-user delete --------------------------------------------


async def test_a_thread_emptied_by_a_per_user_delete_starts_again_at_1(
    store: RunEventStore,
) -> None:
    """When a user's delete leaves the thread empty, its numbering restarts at 1."""
    await store.put_batch([event(user_id="alice"), event(user_id="alice")])
    assert await store.delete_by_thread("thread-1", user_id="alice") == 2
    assert (await store.put(**event(user_id="bob")))["seq"] == 1


async def test_a_per_user_delete_keeps_numbering_while_events_remain(store: RunEventStore) -> None:
    """While another user's events remain, a per-user delete never makes a seq reusable."""
    await store.put_batch([event(user_id="alice"), event(user_id="bob"), event(user_id="alice")])
    assert await store.delete_by_thread("thread-1", user_id="alice") == 2
    assert (await store.put(**event(user_id="alice")))["seq"] == 4
    assert seqs(await store.list_messages("thread-1")) == [2, 4]


# --- trace truncation ---------------------------------------------------------------


async def test_trace_content_is_cut_like_deerflows_database_store(
    store_factory: StoreFactory,
) -> None:
    """With max_trace_content, long trace content is cut to that many bytes and marked in metadata."""
    store = store_factory(max_trace_content=10)
    text_event, dict_event, short, message = await store.put_batch(
        [
            trace(content="é" * 8, metadata={"k": 1}),
            trace(content={"a": "b" * 20}),
            trace(content="short"),
            event(content="m" * 50),
        ]
    )
    assert text_event["content"] == "é" * 5
    assert text_event["metadata"] == {"k": 1, "content_truncated": True, "original_byte_length": 16}
    assert dict_event["content"] == '{"a": "bbb'
    assert dict_event["metadata"]["original_byte_length"] == len(json.dumps({"a": "b" * 20}))
    assert short["content"] == "short"
    assert short["metadata"] == {}
    assert message["content"] == "m" * 50
    read = await store.list_events("thread-1", "run-1")
    assert [record["content"] for record in read[:2]] == ["é" * 5, '{"a": "bbb']


async def test_trace_content_is_kept_whole_by_default(store: RunEventStore) -> None:
    """Without max_trace_content, trace content of any length is kept whole."""
    record = await store.put(**trace(content="x" * 200_000))
    assert record["content"] == "x" * 200_000
    assert "content_truncated" not in record["metadata"]
