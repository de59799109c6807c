"""The conformance suite: the records, seqs, reads, deletes and bad input of docs/semantics.md, on every backend.

Each test runs once per backend of ``tests.backends.BACKENDS`` (memory, mongomock,
pymongo and Motor on a replica set, pymongo on a standalone server).
"""

from __future__ import annotations

import asyncio
import math
import re
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import pytest

from mongo_runevents import InvalidEventError, RunEventStore, RunEventStoreError
from tests.conftest import Backend
from tests.factories import event, seqs, trace

RECORD_KEYS = {
    "thread_id",
    "run_id",
    "event_type",
    "category",
    "content",
    "metadata",
    "seq",
    "created_at",
}


async def put_messages(store: RunEventStore, count: int, thread_id: str = "thread-1") -> None:
    await store.put_batch([event(thread_id, content=f"m{i}") for i in range(count)])


# --- writing and numbering ---------------------------------------------------


async def test_first_put_gets_seq_1_and_echoes_every_field(store: RunEventStore) -> None:
    """The first event of a thread gets seq 1 and the record repeats every field given."""
    record = await store.put(
        thread_id="t",
        run_id="r",
        event_type="llm.ai.response",
        category="message",
        content={"type": "ai", "content": "hello"},
        metadata={"caller": "lead_agent"},
        created_at="2026-01-02T03:04:05.678901+00:00",
    )
    assert record == {
        "thread_id": "t",
        "run_id": "r",
        "event_type": "llm.ai.response",
        "category": "message",
        "content": {"type": "ai", "content": "hello"},
        "metadata": {"caller": "lead_agent"},
        "seq": 1,
        "created_at": "2026-01-02T03:04:05.678901+00:00",
    }


async def test_defaults_for_content_metadata_and_created_at(store: RunEventStore) -> None:
    """Omitted content is "", metadata None becomes {}, and created_at is now in UTC with microseconds."""
    before = datetime.now(timezone.utc)
    record = await store.put(
        thread_id="t", run_id="r", event_type="run.start", category="lifecycle"
    )
    after = datetime.now(timezone.utc)
    assert record["content"] == ""
    assert record["metadata"] == {}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00", record["created_at"])
    assert before <= datetime.fromisoformat(record["created_at"]) <= after
    stored = await store.list_events("t", "r")
    assert stored == [record]


async def test_seqs_count_up_per_thread(store: RunEventStore) -> None:
    """Seqs are 1, 2, 3 within a thread, and every thread starts at 1."""
    first = [await store.put(**event("a")) for _ in range(3)]
    other = await store.put(**event("b"))
    assert seqs(first) == [1, 2, 3]
    assert other["seq"] == 1


async def test_given_created_at_and_metadata_round_trip(store: RunEventStore) -> None:
    """A caller's created_at string and metadata come back exactly as given."""
    metadata = {
        "usage": {"input_tokens": 12, "output_tokens": 3, "total_tokens": 15},
        "latency_ms": 812.5,
        "caller": "middleware:title",
        "flags": [True, False, None],
    }
    for created_at in ("2025-07-01T12:00:00Z", "2025-07-01 12:00:00.1+05:30", "2025-07-01"):
        record = await store.put(**event("t", metadata=metadata, created_at=created_at))
        assert record["created_at"] == created_at
        assert record["metadata"] == metadata
    stored = await store.list_messages("t")
    assert [row["created_at"] for row in stored] == [
        "2025-07-01T12:00:00Z",
        "2025-07-01 12:00:00.1+05:30",
        "2025-07-01",
    ]
    assert all(row["metadata"] == metadata for row in stored)


async def test_put_batch_of_50_gets_1_to_50_in_input_order(store: RunEventStore) -> None:
    """A batch of 50 events gets exactly seqs 1..50, in input order."""
    records = await store.put_batch([event(content=i) for i in range(50)])
    assert seqs(records) == list(range(1, 51))
    assert [record["content"] for record in records] == list(range(50))
    assert seqs(await store.list_events("thread-1", "run-1")) == list(range(1, 51))


async def test_batch_mixing_threads_numbers_each_thread(store: RunEventStore) -> None:
    """In a batch over several threads each event gets its own thread's next seq, in input order."""
    await store.put(**event("b"))
    records = await store.put_batch(
        [event("a", content=0), event("b", content=1), event("a", content=2), event("c", content=3)]
    )
    assert [(r["thread_id"], r["seq"], r["content"]) for r in records] == [
        ("a", 1, 0),
        ("b", 2, 1),
        ("a", 2, 2),
        ("c", 1, 3),
    ]


async def test_empty_batch_returns_empty_list(store: RunEventStore) -> None:
    """An empty batch writes nothing and returns []."""
    assert await store.put_batch([]) == []
    assert (await store.put(**event()))["seq"] == 1


async def test_two_concurrent_batches_get_1_to_40(store: RunEventStore) -> None:
    """Two 20-event batches written at once get exactly 1..40, each batch consecutive."""
    first, second = await asyncio.gather(
        store.put_batch([event(content=f"a{i}") for i in range(20)]),
        store.put_batch([event(content=f"b{i}") for i in range(20)]),
    )
    assert sorted(seqs(first) + seqs(second)) == list(range(1, 41))
    for batch in (first, second):
        assert seqs(batch) == list(range(batch[0]["seq"], batch[0]["seq"] + 20))


async def test_concurrent_puts_get_unique_increasing_seqs(store: RunEventStore) -> None:
    """Many single puts at once to one thread get seqs 1..n, none twice."""
    records = await asyncio.gather(*(store.put(**event(content=i)) for i in range(30)))
    assert sorted(seqs(list(records))) == list(range(1, 31))


async def test_runs_share_one_seq_order(store: RunEventStore) -> None:
    """Events of different runs in a thread share the thread's one numbering."""
    await store.put(**event(run_id="r1"))
    await store.put(**event(run_id="r2"))
    await store.put(**event(run_id="r1"))
    assert seqs(await store.list_events("thread-1", "r1")) == [1, 3]
    assert seqs(await store.list_events("thread-1", "r2")) == [2]
    assert seqs(await store.list_messages("thread-1")) == [1, 2, 3]


# --- content ----------------------------------------------------------------


CONTENTS = [
    "plain text",
    "",
    {
        "type": "ai",
        "content": "",
        "tool_calls": [{"name": "ls", "args": {"path": "/"}, "id": "c1"}],
    },
    ["a", 1, 2.5, None, True, {"nested": []}],
    0,
    -(2**63),
    2**63 - 1,
    -0.5,
    1e308,
    True,
    False,
    None,
    "unicode: é 中文 🚀 \u2028\u2029 and a NUL \x00 inside",
    {"a.b": 1, "$where": 2, "%25": 3, "nul\x00key": 4, "plain": {"x.y": {"$in": [1]}}},
    {"deep": [[[[{"k": [1, [2, [3]]]}]]]]},
]


@pytest.mark.parametrize("content", CONTENTS, ids=[f"content{i}" for i in range(len(CONTENTS))])
async def test_content_of_every_json_type_round_trips(store: RunEventStore, content: Any) -> None:
    """Content of any JSON type, odd keys included, comes back equal, with the same types."""
    record = await store.put(**event(content=content, metadata={"copy": content}))
    [stored] = await store.list_messages("thread-1")
    for row in (record, stored):
        assert row["content"] == content
        assert type(row["content"]) is type(content)
        assert row["metadata"] == {"copy": content}
    if isinstance(content, float):
        assert math.copysign(1.0, stored["content"]) == math.copysign(1.0, content)


async def test_large_tool_output_round_trips_untruncated(store: RunEventStore) -> None:
    """A 1 MiB tool result is stored whole."""
    output = "line of tool output\n" * (1024 * 1024 // 20)
    await store.put(
        **event(event_type="llm.tool.result", content={"type": "tool", "content": output})
    )
    [stored] = await store.list_messages("thread-1")
    assert stored["content"]["content"] == output


async def test_returned_records_are_the_callers_to_mutate(store: RunEventStore) -> None:
    """Mutating a returned record, or the objects passed in, never changes what is stored."""
    content = {"messages": [{"text": "hi"}]}
    metadata = {"usage": {"total_tokens": 5}}
    record = await store.put(**event(content=content, metadata=metadata))
    record["content"]["messages"].append("mutated")
    record["metadata"]["usage"]["total_tokens"] = 0
    record["seq"] = 99
    content["messages"].clear()
    metadata.clear()
    page = await store.list_messages("thread-1")
    assert page[0]["content"] == {"messages": [{"text": "hi"}]}
    assert page[0]["metadata"] == {"usage": {"total_tokens": 5}}
    page[0]["content"]["messages"].clear()
    assert (await store.list_messages("thread-1"))[0]["content"] == {"messages": [{"text": "hi"}]}


async def test_every_record_has_the_record_keys(store: RunEventStore) -> None:
    """Records from every method have exactly the documented keys."""
    await store.put_batch([event(), trace()])
    results = [
        await store.list_messages("thread-1"),
        await store.list_events("thread-1", "run-1"),
        await store.list_messages_by_run("thread-1", "run-1"),
    ]
    for rows in results:
        assert rows
        for row in rows:
            assert set(row) == RECORD_KEYS


# --- list_messages ------------------------------------------------------------


async def test_list_messages_returns_only_messages(store: RunEventStore) -> None:
    """Only category "message" events are listed, ascending."""
    await store.put_batch([event(), trace(), event(category="error"), event(), trace()])
    page = await store.list_messages("thread-1")
    assert seqs(page) == [1, 4]
    assert {row["category"] for row in page} == {"message"}


@pytest.mark.parametrize(
    ("cursors", "expected"),
    [
        ({"before_seq": 6, "limit": 3}, [3, 4, 5]),
        ({"after_seq": 7, "limit": 3}, [8, 9, 10]),
        ({"limit": 3}, [8, 9, 10]),
        ({}, list(range(1, 11))),
        ({"after_seq": 0, "limit": 2}, [1, 2]),
        ({"after_seq": 10}, []),
        ({"before_seq": 1}, []),
        ({"before_seq": 100, "limit": 2}, [9, 10]),
        ({"after_seq": 2, "before_seq": 9, "limit": 3}, [3, 4, 5]),
        ({"after_seq": 2, "before_seq": 6}, [3, 4, 5]),
        ({"after_seq": 5, "before_seq": 6}, []),
        ({"after_seq": 8, "before_seq": 3}, []),
    ],
)
async def test_list_messages_cursors(
    store: RunEventStore, cursors: dict[str, int], expected: list[int]
) -> None:
    """With 10 messages, each cursor combination gives the documented page, ascending."""
    await put_messages(store, 10)
    assert seqs(await store.list_messages("thread-1", **cursors)) == expected


async def test_cursors_are_exclusive_across_interleaved_traces(store: RunEventStore) -> None:
    """Cursors work on seq, not on positions: messages at 1,3,5,7,9 between traces."""
    await store.put_batch([event() if n % 2 else trace() for n in range(1, 11)])
    assert seqs(await store.list_messages("thread-1", before_seq=6, limit=2)) == [3, 5]
    assert seqs(await store.list_messages("thread-1", after_seq=4, limit=2)) == [5, 7]
    assert seqs(await store.list_messages("thread-1", after_seq=3, limit=2)) == [5, 7]


async def test_paging_back_and_polling_visit_every_message_once(store: RunEventStore) -> None:
    """A UI that pages back with before_seq, then polls with after_seq, sees each message once."""
    await store.put_batch([event() if n % 3 else trace() for n in range(1, 61)])
    seen: list[int] = []
    page = await store.list_messages("thread-1", limit=7)
    while page:
        seen = seqs(page) + seen
        page = await store.list_messages("thread-1", limit=7, before_seq=page[0]["seq"])
    expected = [n for n in range(1, 61) if n % 3]
    assert seen == expected
    await store.put_batch([event(), trace(), event()])
    polled = await store.list_messages("thread-1", after_seq=seen[-1], limit=50)
    assert seqs(polled) == [61, 63]


# --- list_events / list_messages_by_run / count ---------------------------------


async def test_list_events_returns_every_category_of_one_run(store: RunEventStore) -> None:
    """list_events gives all categories of the run, ascending, and excludes other runs."""
    await store.put_batch(
        [
            event(run_id="r1", event_type="run.start", category="lifecycle"),
            event(run_id="r2"),
            event(run_id="r1"),
            trace(run_id="r1"),
            event(run_id="r1", event_type="run.end", category="lifecycle"),
        ]
    )
    rows = await store.list_events("thread-1", "r1")
    assert [(r["seq"], r["category"]) for r in rows] == [
        (1, "lifecycle"),
        (3, "message"),
        (4, "trace"),
        (5, "lifecycle"),
    ]
    assert await store.list_events("thread-1", "r1", limit=2) == rows[:2]
    assert await store.list_events("other-thread", "r1") == []


async def test_list_events_filters_by_event_type(store: RunEventStore) -> None:
    """event_types keeps only those types; None keeps all; [] matches nothing."""
    await store.put_batch(
        [
            event(event_type="run.start", category="lifecycle"),
            event(event_type="llm.ai.response"),
            trace(),
            event(event_type="run.end", category="lifecycle"),
        ]
    )
    picked = await store.list_events("thread-1", "run-1", event_types=["run.start", "run.end"])
    assert seqs(picked) == [1, 4]
    assert len(await store.list_events("thread-1", "run-1", event_types=None)) == 4
    assert await store.list_events("thread-1", "run-1", event_types=[]) == []
    assert await store.list_events("thread-1", "run-1", event_types=["nope"]) == []


async def test_list_messages_by_run(store: RunEventStore) -> None:
    """list_messages_by_run gives the run's messages only, ascending."""
    await store.put_batch(
        [event(run_id="r1"), trace(run_id="r1"), event(run_id="r2"), event(run_id="r1")]
    )
    assert seqs(await store.list_messages_by_run("thread-1", "r1")) == [1, 4]
    assert seqs(await store.list_messages_by_run("thread-1", "r2")) == [3]
    assert await store.list_messages_by_run("thread-1", "r3") == []


async def test_count_messages_counts_only_messages(store: RunEventStore) -> None:
    """count_messages counts the thread's message events and nothing else."""
    await store.put_batch([event(), trace(), event(), event(category="error"), event("other")])
    assert await store.count_messages("thread-1") == 2
    assert await store.count_messages("other") == 1


async def test_unknown_threads_and_runs_are_empty(store: RunEventStore) -> None:
    """Reads of unknown threads and runs give [] or 0, never an error."""
    await store.put(**event())
    assert await store.list_messages("nope") == []
    assert await store.list_messages("nope", after_seq=3, before_seq=9) == []
    assert await store.list_events("nope", "run-1") == []
    assert await store.list_events("thread-1", "nope") == []
    assert await store.list_messages_by_run("nope", "nope") == []
    assert await store.count_messages("nope") == 0


# --- deletes ------------------------------------------------------------------


async def test_delete_by_thread_returns_count_and_restarts_seq(store: RunEventStore) -> None:
    """delete_by_thread removes every event, returns the count, and the thread restarts at 1."""
    await store.put_batch([event(), trace(), event(run_id="r2")])
    await store.put(**event("other"))
    assert await store.delete_by_thread("thread-1") == 3
    assert await store.list_events("thread-1", "run-1") == []
    assert await store.count_messages("thread-1") == 0
    assert await store.delete_by_thread("thread-1") == 0
    assert (await store.put(**event()))["seq"] == 1
    assert seqs(await store.list_messages("other")) == [1]


async def test_delete_by_run_never_makes_a_seq_reusable(store: RunEventStore) -> None:
    """delete_by_run removes only that run, and later events continue after the deleted seqs."""
    await store.put_batch([event(run_id="r1"), event(run_id="r2"), trace(run_id="r2")])
    assert await store.delete_by_run("thread-1", "r2") == 2
    assert await store.delete_by_run("thread-1", "r2") == 0
    assert await store.delete_by_run("nope", "r1") == 0
    assert seqs(await store.list_messages("thread-1")) == [1]
    assert (await store.put(**event(run_id="r3")))["seq"] == 4


# --- bad input ------------------------------------------------------------------


def nested(depth: int) -> Any:
    """A value nested ``depth`` lists deep."""
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


#: Refused by every store, whatever its json_default.
BAD_EVENTS: list[tuple[dict[str, Any], str]] = [
    ({"thread_id": {"$ne": None}}, "thread_id"),
    ({"thread_id": ""}, "thread_id"),
    ({"run_id": 7}, "run_id"),
    ({"run_id": None}, "run_id"),
    ({"event_type": ""}, "event_type"),
    ({"category": ["message"]}, "category"),
    ({"created_at": "yesterday"}, "created_at"),
    ({"created_at": "2025-13-01T00:00:00Z"}, "created_at"),
    ({"created_at": 1700000000}, "created_at"),
    ({"content": "lone \ud800 surrogate"}, "content"),
    ({"content": {"k\udfff": 1}}, "content"),
    ({"content": nested(95)}, "content"),
    ({"metadata": "not a dict"}, "metadata"),
]

#: Not JSON: converted by default, refused by a strict store (``json_default=None``).
NON_JSON_EVENTS: list[tuple[dict[str, Any], str]] = [
    ({"content": {1, 2}}, "content"),
    ({"content": b"bytes"}, "content"),
    ({"content": float("nan")}, "content"),
    ({"content": float("inf")}, "content"),
    ({"content": (1, 2)}, "content"),
    ({"content": 2**63}, "content"),
    ({"content": {"when": datetime.now(timezone.utc)}}, "content['when']"),
    ({"content": {"price": Decimal("1.5")}}, "content['price']"),
    ({"content": {1: "int key"}}, "content"),
    ({"metadata": {"usage": {"cost": float("-inf")}}}, "metadata['usage']['cost']"),
    ({"metadata": {"tags": {"a", "b"}}}, "metadata['tags']"),
]


@pytest.mark.parametrize(
    ("bad", "field"), BAD_EVENTS, ids=[f"{f}-{i}" for i, (_, f) in enumerate(BAD_EVENTS)]
)
async def test_bad_put_raises_typed_error_and_writes_nothing(
    store: RunEventStore, bad: dict[str, Any], field: str
) -> None:
    """Each invalid field raises InvalidEventError (a ValueError) naming the field; nothing is written."""
    with pytest.raises(InvalidEventError) as caught:
        await store.put(**{**event(), **bad})
    assert isinstance(caught.value, ValueError)
    assert isinstance(caught.value, RunEventStoreError)
    assert field in str(caught.value)
    assert await store.list_messages("thread-1") == []
    assert (await store.put(**event()))["seq"] == 1


@pytest.mark.parametrize(
    ("bad", "field"), BAD_EVENTS, ids=[f"{f}-{i}" for i, (_, f) in enumerate(BAD_EVENTS)]
)
async def test_bad_event_in_batch_names_its_index_and_writes_nothing(
    store: RunEventStore, bad: dict[str, Any], field: str
) -> None:
    """A batch with one invalid event fails whole, and the error names the event's index."""
    batch = [event(content=i) for i in range(5)]
    batch[3] = {**batch[3], **bad}
    with pytest.raises(InvalidEventError, match=rf"event 3, {re.escape(field)}") as caught:
        await store.put_batch(batch)
    assert caught.value.index == 3
    assert await store.list_messages("thread-1") == []
    assert seqs(await store.put_batch([event(), event()])) == [1, 2]


@pytest.mark.parametrize(
    "batch",
    [
        "not a list",
        {"thread_id": "t"},
        [event(), "not a dict"],
        [event(), {**event(), "seq": 5}],
        [event(), {**event(), "unknown": 1}],
        [{"thread_id": "t"}],
    ],
)
async def test_malformed_batch_is_refused(store: RunEventStore, batch: Any) -> None:
    """A batch that is not a list of well-formed event dicts is refused whole."""
    with pytest.raises(InvalidEventError):
        await store.put_batch(batch)
    assert await store.count_messages("thread-1") == 0


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda s: s.list_messages({"$gt": ""}), "thread_id"),
        (lambda s: s.list_messages(""), "thread_id"),
        (lambda s: s.list_messages("t", limit=0), "limit"),
        (lambda s: s.list_messages("t", limit=True), "limit"),
        (lambda s: s.list_messages("t", limit="5"), "limit"),
        (lambda s: s.list_messages("t", before_seq=-1), "before_seq"),
        (lambda s: s.list_messages("t", after_seq=-1), "after_seq"),
        (lambda s: s.list_messages("t", after_seq={"$gt": 0}), "after_seq"),
        (lambda s: s.list_messages("t", before_seq=2.5), "before_seq"),
        (lambda s: s.list_events("t", {"$exists": True}), "run_id"),
        (lambda s: s.list_events("t", "r", event_types="run.end"), "event_types"),
        (lambda s: s.list_events("t", "r", event_types=[{"$ne": 1}]), "event_types[0]"),
        (lambda s: s.list_events("t", "r", limit=-3), "limit"),
        (lambda s: s.list_messages_by_run("t", None), "run_id"),
        (lambda s: s.count_messages({"$regex": ".*"}), "thread_id"),
        (lambda s: s.delete_by_thread({"$ne": "x"}), "thread_id"),
        (lambda s: s.delete_by_run("t", {"$ne": "x"}), "run_id"),
        (lambda s: s.delete_by_run(["t"], "r"), "thread_id"),
        (lambda s: s.list_messages("t", limit=2**63), "limit"),
        (lambda s: s.list_messages("t", after_seq=2**64), "after_seq"),
        (lambda s: s.list_messages("lone \ud800 surrogate"), "thread_id"),
        (lambda s: s.delete_by_thread("\udfff"), "thread_id"),
    ],
)
async def test_bad_read_and_delete_arguments_are_refused(
    store: RunEventStore, call: Any, field: str
) -> None:
    """Operator dicts, wrong types, empty ids, bad limits and cursors raise InvalidEventError."""
    await store.put(**event("t", "r"))
    with pytest.raises(InvalidEventError, match=re.escape(field)):
        await call(store)
    assert await store.count_messages("t") == 1


async def test_store_stays_usable_after_errors(store: RunEventStore) -> None:
    """After refusing bad input the store keeps working and numbering continues."""
    await store.put(**event())
    for bad in ({"content": "\ud800"}, {"thread_id": {}}):
        with pytest.raises(InvalidEventError):
            await store.put(**{**event(), **bad})
    assert (await store.put(**event()))["seq"] == 2


async def test_nothing_leaks_between_threads(store: RunEventStore, backend: Backend) -> None:
    """No read or delete of one thread touches another thread's events."""
    await store.put_batch([event("a"), event("b"), trace("b")])
    assert await store.delete_by_run("a", "run-1") == 1
    assert seqs(await store.list_events("b", "run-1")) == [1, 2]
    assert await store.delete_by_thread("a") == 0
    assert await store.count_messages("b") == 1


async def test_records_share_nothing_with_the_callers_objects(store: RunEventStore) -> None:
    """Mutating a returned record never changes the objects the caller passed in, and vice versa."""
    content = {"messages": [{"text": "hi"}]}
    record = await store.put(**event(content=content))
    record["content"]["messages"].append("mutated")
    assert content == {"messages": [{"text": "hi"}]}
    assert record["content"] is not content


async def test_enum_values_come_back_as_plain_json_types(store: RunEventStore) -> None:
    """Subclasses of int and str (enums) come back equal, as plain int and str, from writes and reads."""
    import enum

    class Level(enum.IntEnum):
        HIGH = 3

    class Role(str, enum.Enum):
        AI = "ai"

    record = await store.put(**event(content={"level": Level.HIGH, "role": Role.AI}))
    [stored] = await store.list_messages("thread-1")
    for row in (record, stored):
        assert row["content"] == {"level": 3, "role": "ai"}
        assert type(row["content"]["level"]) is int
        assert type(row["content"]["role"]) is str


def test_the_record_model_and_the_read_schema_agree() -> None:
    """RunEvent (the public model) and the schema reads validate against have the same fields."""
    from mongo_runevents.models import RECORD_FIELDS, RunEvent
    from mongo_runevents.records import StoredRecord

    assert set(RunEvent.model_fields) == set(StoredRecord.__annotations__) == set(RECORD_FIELDS)


async def test_a_batch_mixing_every_kind_of_event_round_trips_through_put_batch(
    store: RunEventStore,
) -> None:
    """One put_batch of every kind of event: records as written, read back equal, one key order.

    Plain JSON, an int past 32 bits, keys MongoDB treats specially, values
    that are not JSON, and ids, in the same batch.
    """
    batch = [
        event(content={"text": "plain", "n": [1, 2.5, None, True]}, metadata={"task_id": "t"}),
        trace(content={"at_ms": 1_733_500_000_000}, metadata={"tokens": -(2**40)}),
        event(content={"a.b": {"$set": 1, "50%": "x", "nul\x00": 2}}, event_id="k1", user_id="u"),
        trace(content=(1, {2}), metadata={"when": datetime(2025, 1, 1, tzinfo=timezone.utc)}),
        event(content={"big": 2**70}, created_at="2025-06-01T10:00:00Z"),
    ]
    written = await store.put_batch(batch)
    assert seqs(written) == [1, 2, 3, 4, 5]
    assert written[2]["content"] == {"a.b": {"$set": 1, "50%": "x", "nul\x00": 2}}
    assert written[3]["content"] == [1, "{2}"]
    assert written[3]["metadata"] == {"when": "2025-01-01 00:00:00+00:00"}
    assert written[4]["content"] == {"big": 2**70}
    assert type(written[1]["content"]["at_ms"]) is int
    order = ("thread_id", "run_id", "event_type", "category", "content", "metadata", "created_at")
    for record in written:
        optional = tuple(name for name in ("event_id", "user_id") if name in record)
        assert tuple(record) == (*order, *optional, "seq")
    read = await store.read_after("thread-1", after_seq=0)
    assert read == written
    assert [list(record) for record in read] == [list(record) for record in written]
    assert type(read[1]["metadata"]["tokens"]) is int
