"""Property-based tests: random values, injection attempts and operation sequences.

Hypothesis drives four stores side by side: the Memory reference store, the
MongoDB store on mongomock-motor, on the replica-set server of the suite
(``server_uri``: MONGODB_URI or an embedded SecantusDB; transactions) and on
the embedded standalone SecantusDB (plain mode).

Hypothesis runs the examples of one test synchronously, so these tests do not
use the async ``store`` fixture: a :class:`Harness` owns an event loop and the
clients opened on it (one per module for the stateless properties, one per run
of the state machine), and every example gets fresh stores on fresh
collections.

The number of examples is kept small for CI. Set ``HYPOTHESIS_PROFILE`` to
``runevents-thorough`` for ten times as many.
"""

from __future__ import annotations

import asyncio
import enum
import json
import math
import os
import re
import reprlib
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, ClassVar

import bson
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    rule,
    run_state_machine_as_test,
)

from mongo_runevents import InvalidEventError, MongoRunEventStore, RunEventStore, RunEventStoreError
from tests.backends import BACKENDS, Connection

# --- settings -----------------------------------------------------------------

settings.register_profile(
    "runevents-ci",
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("runevents-thorough", parent=settings.get_profile("runevents-ci"))
_PROFILE_NAME = os.environ.get("HYPOTHESIS_PROFILE", "runevents-ci")
PROFILE = settings.get_profile(
    _PROFILE_NAME if _PROFILE_NAME.startswith("runevents-") else "runevents-ci"
)
SCALE = 10 if _PROFILE_NAME == "runevents-thorough" else 1


def examples(count: int, **options: Any) -> settings:
    """The module profile with ``count`` examples (times the profile's scale)."""
    return settings(PROFILE, max_examples=count * SCALE, **options)


# --- the documented rules, written independently of the stores -----------------

#: Containers may nest this deep inside content or metadata (docs/semantics.md).
MAX_NESTING = 90
#: Ids are at most this many UTF-8 bytes long (docs/semantics.md).
MAX_ID_BYTES = 512
INT64 = range(-(2**63), 2**63)


def has_surrogate(text: str) -> bool:
    """Whether ``text`` holds a code point UTF-8 cannot carry."""
    return any("\ud800" <= char <= "\udfff" for char in text)


def json_ok(value: Any, depth: int = 0) -> bool:
    """Whether ``value``, made of plain JSON types only, is within what every store can keep."""
    if value is None or type(value) in (bool, int, float):
        return True
    if type(value) is str:
        return not has_surrogate(value)
    if type(value) is list:
        return depth < MAX_NESTING and all(json_ok(item, depth + 1) for item in value)
    if type(value) is dict:
        return depth < MAX_NESTING and all(
            not has_surrogate(key) and json_ok(item, depth + 1) for key, item in value.items()
        )
    return False


#: What a store refuses (see ``kept``).
REFUSED = object()


def kept(value: Any) -> Any:
    """What the documented default rules keep of ``value``: ``json.dumps(value, default=str)`` read back.

    json refuses dict keys other than str, int, float, bool and None, which the
    stores make ``str(key)``; beyond that, ``REFUSED`` for what no store can
    keep: surrogate code points (UTF-8 cannot carry them; json would even join
    a pair of them into one character) and nesting past the limit.
    """

    def keys_as_text(item: Any) -> Any:
        if isinstance(item, str) and has_surrogate(item):
            raise RecursionError
        if isinstance(item, dict):
            return {
                keys_as_text(key)
                if key is None or isinstance(key, (str, int, float))
                else str(key): keys_as_text(inner)
                for key, inner in item.items()
            }
        if isinstance(item, (list, tuple)):
            return [keys_as_text(inner) for inner in item]
        return item

    try:
        result = json.loads(json.dumps(keys_as_text(value), default=str))
    except RecursionError:
        return REFUSED
    return result if json_ok(result) else REFUSED


def id_ok(value: Any) -> bool:
    """Whether the documented rules accept ``value`` as an id: a non-empty str of at most 512 UTF-8 bytes."""
    return (
        type(value) is str
        and value != ""
        and not has_surrogate(value)
        and len(value.encode("utf-8")) <= MAX_ID_BYTES
    )


_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 80


def short(value: Any) -> str:
    """A repr short enough for an assertion message."""
    return _REPR.repr(value)


def same(a: Any, b: Any) -> bool:
    """Equal, with the same types all the way down, and ``-0.0`` distinct from ``0.0``."""
    if type(a) is not type(b):
        return False
    if type(a) is float:
        if math.isnan(a):
            return math.isnan(b)
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)
    if type(a) is list:
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if type(a) is dict:
        return a.keys() == b.keys() and all(same(item, b[key]) for key, item in a.items())
    return bool(a == b)


def same_record(got: dict[str, Any], expected: dict[str, Any]) -> bool:
    """A record equal to ``expected`` key by key, with :func:`same` types."""
    return got.keys() == expected.keys() and all(same(got[k], expected[k]) for k in expected)


# --- the harness ----------------------------------------------------------------


@dataclass
class Stores:
    """One fresh store per backend, on a collection of its own."""

    stores: dict[str, RunEventStore]
    connections: dict[str, Connection]
    collection: str

    async def raw_counts(self) -> dict[str, tuple[int, int]]:
        """Per MongoDB backend: documents in the events and the counters collections."""
        counts = {}
        for name, connection in self.connections.items():
            if connection.database is None:
                continue
            database = connection.database
            events = await database[self.collection].count_documents({})
            counters = await database[f"{self.collection}_counters"].count_documents({})
            counts[name] = (events, counters)
        return counts

    async def drop(self) -> None:
        """Drop the stores' collections."""
        for connection in self.connections.values():
            await connection.drop(self.collection)


#: The backends the properties compare, and the fixture of each one's server.
PROPERTY_BACKENDS = ("memory", "mongomock", "pymongo", "standalone")


class Harness:
    """An event loop of its own, with every backend of ``PROPERTY_BACKENDS`` opened on it.

    ``uris`` maps a backend name to its server's URI.
    """

    def __init__(self, uris: dict[str, str]) -> None:
        self.loop = asyncio.new_event_loop()
        self.connections: dict[str, Connection] = self.run(self._open(uris))

    @staticmethod
    async def _open(uris: dict[str, str]) -> dict[str, Connection]:
        return {name: Connection(BACKENDS[name], uris.get(name)) for name in PROPERTY_BACKENDS}

    def run(self, awaitable: Awaitable[Any]) -> Any:
        """Run ``awaitable`` to completion on the harness loop."""
        return self.loop.run_until_complete(awaitable)

    def fresh(self) -> Stores:
        """A fresh, empty store on every backend."""
        collection = f"p_{uuid.uuid4().hex[:12]}"
        stores = {name: c.store(collection) for name, c in self.connections.items()}
        return Stores(stores, self.connections, collection)

    def check(self, body: Callable[[Stores], Awaitable[None]]) -> None:
        """Run ``body`` on fresh stores, dropping their collections afterwards."""
        stores = self.fresh()

        async def checked() -> None:
            try:
                await body(stores)
            finally:
                await stores.drop()

        self.run(checked())

    def close(self) -> None:
        """Drop the databases, close the clients and the loop."""
        try:
            for connection in self.connections.values():
                self.run(connection.close())
            self.run(self.loop.shutdown_asyncgens())
        finally:
            self.loop.close()


@pytest.fixture(scope="module")
def servers(server_uri: str, standalone_uri: str) -> dict[str, str]:
    """The servers the properties run on: the replica set and a standalone server."""
    return {"pymongo": server_uri, "standalone": standalone_uri}


@pytest.fixture(scope="module")
def harness(servers: dict[str, str]) -> Iterator[Harness]:
    """The harness of this module's stateless properties."""
    opened = Harness(servers)
    yield opened
    opened.close()


async def outcome(call: Awaitable[Any]) -> tuple[str, Any]:
    """``("ok", result)`` or ``("error", exception)``, to compare stores."""
    try:
        return "ok", await call
    except Exception as exc:
        return "error", exc


# --- strategies -------------------------------------------------------------------

#: Characters that have broken stores and codecs before: separators, NUL, the
#: characters the MongoDB codec escapes, lone surrogates, non-BMP.
ODD_CHARACTERS = ["\u2028", "\u2029", "\x00", ".", "$", "%", "\ud800", "\udfff", "\U0001f680", "é"]
ODD_TEXTS = [
    "",
    "%2E",
    "%24",
    "%00",
    "%25",
    "%2525",
    "$where",
    "$",
    "a.b",
    ".",
    "_id",
    "\x00",
    "\u2028\u2029",
    "\ud83d\ude80",  # a surrogate pair written out: two lone surrogates in Python
]
texts = st.text(st.characters() | st.sampled_from(ODD_CHARACTERS), max_size=10) | st.sampled_from(
    ODD_TEXTS
)
valid_texts = st.text(
    st.characters(exclude_categories=["Cs"])
    | st.sampled_from([c for c in ODD_CHARACTERS if not has_surrogate(c)]),
    max_size=10,
) | st.sampled_from([text for text in ODD_TEXTS if not has_surrogate(text)])

EDGE_INTS = [0, -1, 2**31 - 1, 2**31, -(2**31) - 1, 2**53 + 1, 2**63 - 1, -(2**63)]
OUT_OF_RANGE_INTS = [2**63, -(2**63) - 1, 2**64, -(2**64), 10**30, -(10**40)]
ints = st.integers() | st.sampled_from(EDGE_INTS + OUT_OF_RANGE_INTS)
valid_ints = st.integers(-(2**63), 2**63 - 1) | st.sampled_from(EDGE_INTS)
EDGE_FLOATS = [0.0, -0.0, 5e-324, -5e-324, 1.7976931348623157e308, 0.1, 2.0**63]
floats = st.floats() | st.sampled_from([*EDGE_FLOATS, math.nan, math.inf, -math.inf])
valid_floats = st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from(EDGE_FLOATS)

#: Values that are not JSON, which every store must refuse rather than convert.
exotic = st.one_of(
    st.binary(max_size=4),
    st.builds(bytearray, st.binary(max_size=2)),
    st.sets(st.integers(0, 9), max_size=2),
    st.frozensets(st.text(max_size=2), max_size=2),
    st.tuples(st.integers(0, 9)),
    st.tuples(),
    st.datetimes(),
    st.datetimes(timezones=st.just(timezone.utc)),
    st.dates(),
    st.decimals(),
    st.complex_numbers(max_magnitude=10),
    st.builds(bson.ObjectId),
    st.just(re.compile("^a")),
    st.just(bson.Regex(".*")),
)
bad_keys = st.one_of(
    st.integers(0, 3), st.none(), st.booleans(), st.binary(max_size=2), st.tuples(st.integers(0, 3))
)


def nested(leaves: st.SearchStrategy[Any], keys: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """JSON-shaped values built from ``leaves``, with dict keys from ``keys``."""
    return st.recursive(
        leaves,
        lambda children: (
            st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=4)
        ),
        max_leaves=12,
    )


@st.composite
def deeply_nested(draw: st.DrawFn, leaves: st.SearchStrategy[Any]) -> Any:
    """A leaf wrapped in lists and dicts to about the nesting limit, either side of it."""
    value = draw(leaves)
    for _ in range(draw(st.integers(MAX_NESTING - 3, MAX_NESTING + 2))):
        value = [value] if draw(st.booleans()) else {draw(valid_texts): value}
    return value


valid_leaves = st.none() | st.booleans() | valid_ints | valid_floats | valid_texts
#: Only values the documented rules accept.
valid_json = nested(valid_leaves, valid_texts)
any_leaves = st.none() | st.booleans() | ints | floats | texts
#: Anything: mostly JSON-like, often with a value or a key no store may accept.
any_value = st.one_of(
    valid_json,
    nested(any_leaves, texts),
    nested(any_leaves | exotic, texts | bad_keys),
    deeply_nested(valid_leaves),
)
ids = st.one_of(
    st.sampled_from(["t", "run-1", "llm.ai.response", "message"]),
    texts,
    st.just("x" * MAX_ID_BYTES),
    st.just("x" * (MAX_ID_BYTES + 1)),
    st.just("é" * (MAX_ID_BYTES // 2 + 1)),
)

PLACEMENTS = ("content", "metadata", "metadata_value", "both")
#: The optional id fields of an event; a record has them only when they were given.
OPTIONAL_IDS = ("event_id", "user_id")
CREATED_AT = "2025-07-01T12:00:00.123456789+05:30"


def event_holding(
    value: Any, placement: str, names: tuple[str, str, str, str], extras: dict[str, Any]
) -> dict[str, Any]:
    """A put event carrying ``value`` as content, as metadata or inside metadata."""
    fields: dict[str, Any] = dict(
        zip(("thread_id", "run_id", "event_type", "category"), names, strict=True)
    )
    fields["created_at"] = CREATED_AT
    fields.update(extras)
    if placement in ("content", "both"):
        fields["content"] = value
    if placement == "metadata":
        fields["metadata"] = value
    if placement in ("metadata_value", "both"):
        fields["metadata"] = {"value": value}
    return fields


def expected_record(fields: dict[str, Any], seq: int) -> dict[str, Any]:
    """The record a store must return for the accepted event ``fields``."""
    return {
        "thread_id": fields["thread_id"],
        "run_id": fields["run_id"],
        "event_type": fields["event_type"],
        "category": fields["category"],
        "content": kept(fields.get("content", "")),
        "metadata": kept(fields.get("metadata") or {}),
        "seq": seq,
        "created_at": fields["created_at"],
        **{name: fields[name] for name in OPTIONAL_IDS if name in fields},
    }


def accepted(fields: dict[str, Any]) -> bool:
    """Whether the documented rules accept the event ``fields``."""
    metadata = fields.get("metadata")
    return (
        all(id_ok(fields[name]) for name in ("thread_id", "run_id", "event_type", "category"))
        and all(id_ok(fields[name]) for name in OPTIONAL_IDS if name in fields)
        and kept(fields.get("content", "")) is not REFUSED
        and (metadata is None or (type(metadata) is dict and kept(metadata) is not REFUSED))
    )


# --- round trips ------------------------------------------------------------------

GOOD_NAMES = ("t", "r", "llm.ai.response", "message")


@examples(60)
@given(
    value=any_value,
    placement=st.sampled_from(PLACEMENTS),
    names=st.tuples(ids, ids, ids, st.sampled_from(["message", "trace"]) | ids),
    neighbours=st.tuples(st.integers(0, 2), st.integers(0, 2)) | st.none(),
    extras=st.fixed_dictionaries({}, optional=dict.fromkeys(OPTIONAL_IDS, ids)),
)
@example(value=-0.0, placement="both", names=GOOD_NAMES, neighbours=None, extras={})
@example(value=2**63 - 1, placement="both", names=GOOD_NAMES, neighbours=None, extras={})
@example(value=2**63, placement="content", names=GOOD_NAMES, neighbours=(1, 1), extras={})
@example(value=math.nan, placement="metadata_value", names=GOOD_NAMES, neighbours=(0, 1), extras={})
@example(value="\ud800", placement="content", names=GOOD_NAMES, neighbours=None, extras={})
@example(
    value={"a.b": {"$in": {"%2E": "\x00"}}},
    placement="both",
    names=GOOD_NAMES,
    neighbours=None,
    extras={},
)
@example(value={1: "int key"}, placement="metadata", names=GOOD_NAMES, neighbours=(2, 0), extras={})
@example(value=(1, 2), placement="content", names=GOOD_NAMES, neighbours=None, extras={})
@example(value=Decimal("1.5"), placement="content", names=GOOD_NAMES, neighbours=None, extras={})
@example(
    value=datetime(2025, 1, 1), placement="content", names=GOOD_NAMES, neighbours=None, extras={}
)
@example(value=[[[[[1]]]]], placement="metadata", names=GOOD_NAMES, neighbours=None, extras={})
@example(
    value="x", placement="content", names=("t", "r", "e", "\ud800"), neighbours=None, extras={}
)
@example(
    value="x", placement="content", names=GOOD_NAMES, neighbours=(1, 0), extras={"user_id": ""}
)
def test_values_round_trip_exactly_or_are_refused_before_any_write(
    harness: Harness,
    value: Any,
    placement: str,
    names: tuple[str, str, str, str],
    neighbours: tuple[int, int] | None,
    extras: dict[str, Any],
) -> None:
    """Every store keeps a value equal with the same types, or refuses it with InvalidEventError and writes nothing."""
    fields = event_holding(value, placement, names, extras)
    valid = accepted(fields)
    event("accepted" if valid else "refused")
    filler = f"filler-{uuid.uuid4().hex}"
    batch = None
    if neighbours is not None:
        before, after = neighbours
        batch = [
            *({"thread_id": filler, "run_id": "r", "event_type": "e", "category": "message"},)
            * before,
            fields,
            *({"thread_id": filler, "run_id": "r", "event_type": "e", "category": "trace"},)
            * after,
        ]

    async def body(stores: Stores) -> None:
        results = {}
        for name, store in stores.stores.items():
            if batch is None:
                results[name] = await outcome(store.put(**fields))
            else:
                results[name] = await outcome(store.put_batch(batch))
        kinds = {name: kind for name, (kind, _) in results.items()}
        assert len(set(kinds.values())) == 1, (
            f"the stores disagree on {short(fields)}: {short(results)}"
        )
        for name, (kind, result) in results.items():
            if not valid:
                assert kind == "error", f"{name} accepted {short(fields)}"
                assert isinstance(result, InvalidEventError), f"{name}: {result!r}"
                if batch is not None:
                    assert result.index == batch.index(fields), f"{name}: {result}"
                continue
            if kind == "error":
                raise AssertionError(f"{name} refused {short(fields)}") from result
            record = result if batch is None else result[batch.index(fields)]
            expected = expected_record(fields, 1)
            assert same_record(record, expected), f"{name} returned {short(record)}"
            store = stores.stores[name]
            stored = await store.list_events(fields["thread_id"], fields["run_id"])
            assert len(stored) == 1, f"{name} read {short(stored)}"
            assert same_record(stored[0], expected), f"{name} read {short(stored)}"
            messages = await store.list_messages(fields["thread_id"])
            assert len(messages) == (1 if fields["category"] == "message" else 0)
            assert all(same_record(message, expected) for message in messages)
        if valid:
            return
        # Nothing was written, and no seq was used up.
        for events, counters in (await stores.raw_counts()).values():
            assert (events, counters) == (0, 0)
        thread = fields["thread_id"] if id_ok(fields["thread_id"]) else filler
        for name, store in stores.stores.items():
            assert await store.count_messages(filler) == 0, name
            assert await store.list_events(filler, "r") == [], name
            probe = await store.put(thread_id=thread, run_id="r", event_type="e", category="c")
            assert probe["seq"] == 1, name

    harness.check(body)


class Colour(enum.IntEnum):
    """An int subclass, as an application's enum would pass one."""

    RED = 1


class Role(str, enum.Enum):
    """A str subclass, as an application's enum would pass one."""

    AI = "ai"


@examples(10)
@given(value=st.sampled_from([Colour.RED, Role.AI, {"role": Role.AI}, [Colour.RED]]))
def test_subclasses_of_int_and_str_come_back_as_plain_json_types_everywhere(
    harness: Harness, value: Any
) -> None:
    """An IntEnum or str enum in content comes back equal, as plain int / str, from every store."""

    def plain(item: Any) -> Any:
        if isinstance(item, dict):
            return {key: plain(inner) for key, inner in item.items()}
        if isinstance(item, list):
            return [plain(inner) for inner in item]
        return int(item) if isinstance(item, int) else str.__str__(item)

    async def body(stores: Stores) -> None:
        for name, store in stores.stores.items():
            written = await store.put(
                thread_id="t", run_id="r", event_type="e", category="c", content=value
            )
            [stored] = await store.list_events("t", "r")
            for record in (written, stored):
                assert same(record["content"], plain(value)), f"{name}: {record['content']!r}"
                assert record["content"] == value

    harness.check(body)


#: The int arguments of the reads: (method, keyword).
NUMERIC_ARGUMENTS = [
    ("list_messages", "limit"),
    ("list_messages", "after_seq"),
    ("list_messages", "before_seq"),
    ("list_events", "limit"),
    ("list_events", "after_seq"),
    ("list_messages_by_run", "limit"),
    ("list_messages_by_run", "after_seq"),
    ("list_messages_by_run", "before_seq"),
]


@examples(20)
@given(
    argument=st.sampled_from(NUMERIC_ARGUMENTS),
    number=st.integers(2**63 - 2, 2**66) | st.integers(min_value=1),
)
@example(argument=("list_messages", "after_seq"), number=2**64)
@example(argument=("list_messages", "limit"), number=2**63)
def test_numbers_beyond_64_bits_in_reads_give_the_same_answer_everywhere(
    harness: Harness, argument: tuple[str, str], number: int
) -> None:
    """A limit or cursor beyond 64 bits gets the same answer (or InvalidEventError) from every store."""
    method, keyword = argument

    async def body(stores: Stores) -> None:
        answers = {}
        for name, store in stores.stores.items():
            await store.put(thread_id="t", run_id="r", event_type="e", category="message")
            positional = ("t",) if method == "list_messages" else ("t", "r")
            kind, result = await outcome(getattr(store, method)(*positional, **{keyword: number}))
            if kind == "error":
                assert isinstance(result, InvalidEventError), f"{name}: {result!r}"
                answers[name] = "refused"
            else:
                answers[name] = [row["seq"] for row in result]
        assert len({repr(answer) for answer in answers.values()}) == 1, answers

    harness.check(body)


#: Every read and delete, with an unstorable id in place of one argument.
UNSTORABLE_ID_CALLS: list[tuple[str, Callable[[RunEventStore, str], Awaitable[Any]]]] = [
    ("list_messages.thread_id", lambda store, bad: store.list_messages(bad)),
    ("list_messages.user_id", lambda store, bad: store.list_messages("t", user_id=bad)),
    ("list_events.thread_id", lambda store, bad: store.list_events(bad, "r")),
    ("list_events.run_id", lambda store, bad: store.list_events("t", bad)),
    ("list_events.event_types", lambda store, bad: store.list_events("t", "r", event_types=[bad])),
    ("list_events.task_id", lambda store, bad: store.list_events("t", "r", task_id=bad)),
    ("list_messages_by_run.run_id", lambda store, bad: store.list_messages_by_run("t", bad)),
    ("count_messages.thread_id", lambda store, bad: store.count_messages(bad)),
    (
        "get_last_visible_ai_seq_by_run.run_ids",
        lambda store, bad: store.get_last_visible_ai_seq_by_run("t", ["r", bad]),
    ),
    ("delete_by_thread.thread_id", lambda store, bad: store.delete_by_thread(bad)),
    ("delete_by_run.run_id", lambda store, bad: store.delete_by_run("t", bad)),
    ("delete_by_run.user_id", lambda store, bad: store.delete_by_run("t", "r", user_id=bad)),
]
surrogate_texts = st.tuples(valid_texts, st.characters(categories=["Cs"]), valid_texts).map(
    "".join
) | st.sampled_from(["\ud800", "\ud83d\ude80"])


@examples(20)
@given(call=st.sampled_from(UNSTORABLE_ID_CALLS), bad=surrogate_texts)
@example(call=UNSTORABLE_ID_CALLS[0], bad="\ud800")
def test_unstorable_ids_in_reads_and_deletes_get_the_same_answer_everywhere(
    harness: Harness, call: tuple[str, Callable[[RunEventStore, str], Awaitable[Any]]], bad: str
) -> None:
    """An id with a lone surrogate, which no write accepts, gets the same answer (or InvalidEventError) from every store."""
    name, method = call

    async def body(stores: Stores) -> None:
        answers = {}
        for backend, store in stores.stores.items():
            await store.put(thread_id="t", run_id="r", event_type="e", category="message")
            kind, result = await outcome(method(store, bad))
            if kind == "error":
                assert isinstance(result, InvalidEventError), f"{backend}, {name}: {result!r}"
                answers[backend] = "refused"
            else:
                answers[backend] = result
        assert len({repr(answer) for answer in answers.values()}) == 1, answers

    harness.check(body)


# --- query injection ----------------------------------------------------------------

OPERATORS = ["$ne", "$gt", "$gte", "$lt", "$regex", "$exists", "$in", "$nin", "$where", "$expr"]
operator_dicts = st.dictionaries(
    st.sampled_from(OPERATORS),
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-1, 1),
        st.text(max_size=3),
        st.lists(st.text(max_size=3), max_size=2),
        st.just({"$ne": None}),
    ),
    min_size=1,
    max_size=2,
)
#: Anything but a str or None.
non_string_values = st.one_of(
    operator_dicts,
    st.dictionaries(st.text(max_size=3), st.text(max_size=3), max_size=2),
    st.lists(st.text(max_size=4), max_size=3),
    st.tuples(st.text(max_size=3)),
    st.booleans(),
    st.integers(),
    st.floats(),
    exotic,
)
unstorable_ids = st.sampled_from(["\ud800", "a\udfffb"])
GOOD_EVENT = {"thread_id": "attacker", "run_id": "r", "event_type": "e", "category": "message"}

#: What each kind of argument must refuse.
BAD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "id": non_string_values | st.none() | st.just("") | unstorable_ids,
    "optional_id": non_string_values | st.just("") | unstorable_ids,
    # Any iterable of str is a collection of ids; "" among them matches nothing.
    "ids": st.one_of(
        texts,
        operator_dicts,
        st.integers(),
        st.none(),
        st.tuples(st.lists(st.just("r"), max_size=2), non_string_values | unstorable_ids).map(
            lambda parts: [*parts[0], parts[1]]
        ),
    ),
    # A filter value: "" is allowed (it matches nothing).
    "filter": non_string_values | unstorable_ids,
    "cursor": st.one_of(
        operator_dicts,
        st.integers(max_value=-1),
        st.booleans(),
        st.floats(),
        st.text(max_size=3),
        st.lists(st.integers(0, 3), max_size=2),
        st.decimals(allow_nan=False),
        st.tuples(st.integers(0, 3)),
    ),
    "limit": st.one_of(
        operator_dicts,
        st.integers(max_value=0),
        st.none(),
        st.booleans(),
        st.floats(),
        st.text(max_size=3),
        st.lists(st.integers(1, 3), min_size=1, max_size=2),
    ),
    "event_types": st.one_of(
        texts,
        operator_dicts,
        st.integers(),
        st.tuples(
            st.lists(st.sampled_from(["run.end", "e"]), max_size=2),
            non_string_values | st.none() | unstorable_ids,
        ).map(lambda parts: [*parts[0], parts[1]]),
    ),
    "created_at": st.one_of(
        operator_dicts,
        st.integers(),
        st.floats(),
        st.booleans(),
        st.lists(st.text(max_size=2), max_size=2),
        exotic,
        st.sampled_from(["", "yesterday", "2025-13-01", "2025-07-01T25:00:00Z", "$now"]),
    ),
    "metadata": st.one_of(
        st.lists(st.text(max_size=2), max_size=2),
        st.text(max_size=3),
        st.integers(),
        st.booleans(),
        exotic,
    ),
    "events": st.one_of(
        operator_dicts,
        st.none(),
        st.text(max_size=3),
        st.integers(),
        st.just(GOOD_EVENT),
        st.sets(st.integers(0, 3), max_size=2),
    ),
    "event": st.one_of(
        operator_dicts,
        st.lists(st.text(max_size=2), max_size=2),
        st.text(max_size=3),
        st.none(),
        st.integers(),
        exotic,
        st.sampled_from(["seq", "_id", "$where", "thread", "$set"]).map(
            lambda key: {**GOOD_EVENT, key: 1}
        ),
        st.just({"thread_id": "attacker"}),
    ),
}

#: The kind of each field of a written event.
WRITTEN_FIELDS = {
    "thread_id": "id",
    "run_id": "id",
    "event_type": "id",
    "category": "id",
    "event_id": "optional_id",
    "user_id": "optional_id",
    "created_at": "created_at",
    "metadata": "metadata",
}

Call = Callable[[RunEventStore, Any], Awaitable[Any]]


def _write(method: str, field: str) -> Call:
    return lambda store, bad: getattr(store, method)(**{**GOOD_EVENT, field: bad})


def _in_batch(field: str) -> Call:
    return lambda store, bad: store.put_batch([GOOD_EVENT, {**GOOD_EVENT, field: bad}])


def _read(method: str, *positional: str, at: int | None = None, keyword: str = "") -> Call:
    """``method`` on the victim's thread, with the bad value at position ``at`` or as ``keyword``."""

    def call(store: RunEventStore, bad: Any) -> Awaitable[Any]:
        arguments: list[Any] = list(positional)
        if at is not None:
            arguments[at] = bad
            return getattr(store, method)(*arguments)
        return getattr(store, method)(*arguments, **{keyword: bad})

    return call


#: Every argument of every method: (name, kind of argument, call with the bad value in place).
INJECTION_SLOTS: list[tuple[str, str, Call]] = [
    *((f"put.{f}", kind, _write("put", f)) for f, kind in WRITTEN_FIELDS.items()),
    *(
        (f"put_if_absent.{f}", kind, _write("put_if_absent", f))
        for f, kind in WRITTEN_FIELDS.items()
    ),
    *((f"put_batch[1].{f}", kind, _in_batch(f)) for f, kind in WRITTEN_FIELDS.items()),
    ("put_batch", "events", lambda store, bad: store.put_batch(bad)),
    ("put_batch[1]", "event", lambda store, bad: store.put_batch([GOOD_EVENT, bad])),
    ("list_messages.thread_id", "id", _read("list_messages", "victim", at=0)),
    *(
        (f"list_messages.{keyword}", kind, _read("list_messages", "victim", keyword=keyword))
        for keyword, kind in (
            ("limit", "limit"),
            ("before_seq", "cursor"),
            ("after_seq", "cursor"),
            ("user_id", "optional_id"),
        )
    ),
    ("list_events.thread_id", "id", _read("list_events", "victim", "r", at=0)),
    ("list_events.run_id", "id", _read("list_events", "victim", "r", at=1)),
    *(
        (f"list_events.{keyword}", kind, _read("list_events", "victim", "r", keyword=keyword))
        for keyword, kind in (
            ("event_types", "event_types"),
            ("limit", "limit"),
            ("task_id", "filter"),
            ("after_seq", "cursor"),
            ("user_id", "optional_id"),
        )
    ),
    ("list_messages_by_run.thread_id", "id", _read("list_messages_by_run", "victim", "r", at=0)),
    ("list_messages_by_run.run_id", "id", _read("list_messages_by_run", "victim", "r", at=1)),
    *(
        (
            f"list_messages_by_run.{keyword}",
            kind,
            _read("list_messages_by_run", "victim", "r", keyword=keyword),
        )
        for keyword, kind in (
            ("limit", "limit"),
            ("before_seq", "cursor"),
            ("after_seq", "cursor"),
            ("user_id", "optional_id"),
        )
    ),
    ("count_messages.thread_id", "id", _read("count_messages", "victim", at=0)),
    ("count_messages.user_id", "optional_id", _read("count_messages", "victim", keyword="user_id")),
    (
        "get_last_visible_ai_seq_by_run.thread_id",
        "id",
        lambda store, bad: store.get_last_visible_ai_seq_by_run(bad, ["r"]),
    ),
    (
        "get_last_visible_ai_seq_by_run.run_ids",
        "ids",
        lambda store, bad: store.get_last_visible_ai_seq_by_run("victim", bad),
    ),
    (
        "get_last_visible_ai_seq_by_run.user_id",
        "optional_id",
        lambda store, bad: store.get_last_visible_ai_seq_by_run("victim", ["r"], user_id=bad),
    ),
    ("delete_by_thread.thread_id", "id", _read("delete_by_thread", "victim", at=0)),
    (
        "delete_by_thread.user_id",
        "optional_id",
        _read("delete_by_thread", "victim", keyword="user_id"),
    ),
    ("delete_by_run.thread_id", "id", _read("delete_by_run", "victim", "r", at=0)),
    ("delete_by_run.run_id", "id", _read("delete_by_run", "victim", "r", at=1)),
    (
        "delete_by_run.user_id",
        "optional_id",
        _read("delete_by_run", "victim", "r", keyword="user_id"),
    ),
]


@dataclass
class Victims:
    """Stores holding a victim thread, and what every store held at the start."""

    stores: Stores
    snapshot: dict[str, Any] = field(default_factory=dict)

    async def state(self) -> dict[str, Any]:
        """Everything observable about the victim and attacker threads, per store."""
        state: dict[str, Any] = {"raw": await self.stores.raw_counts()}
        for name, store in self.stores.stores.items():
            state[name] = [
                await store.list_events(thread, run)
                for thread in ("victim", "attacker")
                for run in ("r", "r2")
            ]
            state[name].append(await store.count_messages("victim"))
        return state


@pytest.fixture(scope="module")
def victims(harness: Harness) -> Iterator[Victims]:
    """Stores on every backend holding the events of a thread that no call may reach."""
    victims = Victims(harness.fresh())

    async def fill() -> None:
        for store in victims.stores.stores.values():
            await store.put_batch(
                [
                    {
                        "thread_id": "victim",
                        "run_id": run,
                        "event_type": "llm.ai.response",
                        "category": category,
                        "user_id": user,
                        "metadata": {"task_id": "task-1"},
                    }
                    for run in ("r", "r2")
                    for category in ("message", "trace", "message")
                    for user in ("alice", "bob")
                ]
            )
        victims.snapshot = await victims.state()

    harness.run(fill())
    yield victims
    harness.run(victims.stores.drop())


@examples(200)
@given(data=st.data())
def test_injected_arguments_are_refused_and_reach_no_other_thread(
    harness: Harness, victims: Victims, data: st.DataObject
) -> None:
    """Operator dicts, lists and other non-strings in any argument raise InvalidEventError and touch nothing."""
    name, kind, call = data.draw(st.sampled_from(INJECTION_SLOTS), label="argument")
    bad = data.draw(BAD_VALUES[kind], label="bad value")
    event(name)

    async def body() -> None:
        for backend, store in victims.stores.stores.items():
            kind_, result = await outcome(call(store, bad))
            assert kind_ == "error", f"{backend} accepted {short(bad)} as {name}: {short(result)}"
            assert isinstance(result, InvalidEventError), f"{backend}: {result!r}"
        assert await victims.state() == victims.snapshot

    harness.run(body())


# --- random operation sequences ----------------------------------------------------------

THREADS = ("t1", "t2", "t3")
RUNS = ("r1", "r2", "r3")
USERS = ("alice", "bob")
EVENT_TYPES = ("run.start", "llm.ai.response", "ai_message", "llm.tool.result", "run.end")
CATEGORIES = ("message", "message", "trace", "lifecycle")
EXPLICIT_TIMES = ("2025-07-01T12:00:00Z", "2025-07-01 12:00:00.1+05:30", "2025-07-01")
DEFAULT_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00")

small_json = st.recursive(
    valid_leaves,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(valid_texts, children, max_size=3)
    ),
    max_leaves=5,
)
machine_metadata = st.none() | st.fixed_dictionaries(
    {},
    optional={
        "task_id": st.sampled_from(["task-1", "task-2"]),
        "caller": st.sampled_from(["lead_agent", "middleware:title", "subagent"]),
        "usage": small_json,
    },
)
machine_events = st.fixed_dictionaries(
    {
        "thread_id": st.sampled_from(THREADS),
        "run_id": st.sampled_from(RUNS),
        "event_type": st.sampled_from(EVENT_TYPES),
        "category": st.sampled_from(CATEGORIES),
    },
    optional={
        "content": small_json,
        "metadata": machine_metadata,
        "created_at": st.none() | st.sampled_from(EXPLICIT_TIMES),
        # Few keys, so that retries, repeats and conflicts happen.
        "event_id": st.none() | st.sampled_from(["k1", "k2", "k3", "k4"]),
        "user_id": st.none() | st.sampled_from(USERS),
    },
)


def _deep(depth: int) -> Any:
    """A list nested ``depth`` levels deep."""
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


#: One field that makes an event invalid.
bad_fields = st.sampled_from(
    [
        {"content": "lone \udc00"},
        {"content": _deep(MAX_NESTING + 1)},
        {"metadata": {"x\ud800": 1}},
        {"metadata": ["not", "a", "dict"]},
        {"thread_id": {"$ne": None}},
        {"run_id": ""},
        {"category": None},
        {"created_at": "yesterday"},
        {"event_id": ""},
        {"user_id": {"$exists": True}},
        {"seq": 3},
    ]
)
cursors = st.none() | st.integers(0, 60)
limits = st.integers(1, 12) | st.just(500)
known_or_unknown_threads = st.sampled_from((*THREADS, "t-unknown"))
known_or_unknown_runs = st.sampled_from((*RUNS, "r-unknown"))
maybe_users = st.none() | st.sampled_from((*USERS, "carol"))


def comparable(answer: tuple[str, Any]) -> Any:
    """An answer with defaulted ``created_at`` values masked and errors reduced to their class."""
    kind, result = answer
    if kind == "error":
        return ("error", type(result).__name__, getattr(result, "index", None))
    return ("ok", _masked(result))


def _masked(value: Any) -> Any:
    if isinstance(value, list):
        return [_masked(item) for item in value]
    if isinstance(value, tuple):
        return tuple(_masked(item) for item in value)
    if isinstance(value, dict) and "seq" in value and "created_at" in value:
        created_at = value["created_at"]
        if created_at not in EXPLICIT_TIMES:
            assert DEFAULT_TIME.fullmatch(created_at), created_at
            return {**value, "created_at": "<default>"}
    return value


class StoresAgree(RuleBasedStateMachine):
    """Every operation, in random order, on every store: the answers are all the Memory store's."""

    #: Set by the test that runs the machine: backend name -> server URI.
    servers: ClassVar[dict[str, str]] = {}

    def __init__(self) -> None:
        super().__init__()
        self.harness = Harness(self.servers)
        self.stores = self.harness.fresh()
        self.last_batch: list[dict[str, Any]] = []

    def teardown(self) -> None:
        """Close the clients and the loop of this run."""
        self.harness.close()

    def agree(self, call: Callable[[RunEventStore], Awaitable[Any]]) -> tuple[str, Any]:
        """Call every store; assert that every answer is Memory's; return Memory's answer."""

        async def ask() -> dict[str, tuple[str, Any]]:
            return {name: await outcome(call(store)) for name, store in self.stores.stores.items()}

        answers = self.harness.run(ask())
        reference = answers["memory"]
        expected = comparable(reference)
        for name, answer in answers.items():
            if answer[0] == "error":
                assert isinstance(answer[1], RunEventStoreError), f"{name}: {answer[1]!r}"
            got = comparable(answer)
            assert same(got, expected), f"{name} answered {short(got)}, memory {short(expected)}"
        return reference

    @initialize()
    def set_up(self) -> None:
        """Make every store ready before the first step."""
        for store in self.stores.stores.values():
            if isinstance(store, MongoRunEventStore):
                self.harness.run(store.ensure_indexes())

    @rule(event=machine_events)
    def put(self, event: dict[str, Any]) -> None:
        """One event."""
        self.agree(lambda store: store.put(**event))

    @rule(event=machine_events)
    def put_if_absent(self, event: dict[str, Any]) -> None:
        """One event unless its run already holds one of its type."""
        self.agree(lambda store: store.put_if_absent(**event))

    @rule(
        events=st.lists(machine_events, max_size=8),
        bad=st.none() | st.tuples(st.integers(0, 8), bad_fields),
    )
    def put_batch(
        self, events: list[dict[str, Any]], bad: tuple[int, dict[str, Any]] | None
    ) -> None:
        """A batch over one or several threads, sometimes with one invalid event."""
        batch = list(events)
        if bad is not None:
            index, fields = bad
            batch.insert(min(index, len(batch)), {**GOOD_EVENT, **fields})
        kind, _ = self.agree(lambda store: store.put_batch(batch))
        if bad is not None:
            assert kind == "error"
        elif kind == "ok":
            self.last_batch = batch

    @rule(more=st.lists(machine_events, max_size=3))
    def retry_last_batch(self, more: list[dict[str, Any]]) -> None:
        """The last accepted batch again, maybe with new events: what a journal's retry sends."""
        batch = self.last_batch + more
        self.agree(lambda store: store.put_batch(batch))

    @rule(
        thread=known_or_unknown_threads,
        limit=limits,
        before=cursors,
        after=cursors,
        user=maybe_users,
    )
    def list_messages(
        self, thread: str, limit: int, before: int | None, after: int | None, user: str | None
    ) -> None:
        """A page of messages with random cursors."""
        self.agree(
            lambda s: s.list_messages(
                thread, limit=limit, before_seq=before, after_seq=after, user_id=user
            )
        )

    @rule(
        thread=known_or_unknown_threads,
        run=known_or_unknown_runs,
        types=st.none() | st.lists(st.sampled_from((*EVENT_TYPES, "nope")), max_size=3),
        limit=limits,
        task=st.none() | st.sampled_from(["task-1", "task-2"]),
        after=cursors,
        user=maybe_users,
    )
    def list_events(
        self,
        thread: str,
        run: str,
        types: list[str] | None,
        limit: int,
        task: str | None,
        after: int | None,
        user: str | None,
    ) -> None:
        """A run's events, maybe filtered by type, task and user, maybe after a seq."""
        self.agree(
            lambda store: store.list_events(
                thread,
                run,
                event_types=types,
                limit=limit,
                task_id=task,
                after_seq=after,
                user_id=user,
            )
        )

    @rule(
        thread=known_or_unknown_threads,
        run=known_or_unknown_runs,
        limit=limits,
        before=cursors,
        after=cursors,
        user=maybe_users,
    )
    def list_messages_by_run(
        self,
        thread: str,
        run: str,
        limit: int,
        before: int | None,
        after: int | None,
        user: str | None,
    ) -> None:
        """A page of a run's messages."""
        self.agree(
            lambda store: store.list_messages_by_run(
                thread, run, limit=limit, before_seq=before, after_seq=after, user_id=user
            )
        )

    @rule(thread=known_or_unknown_threads, user=maybe_users)
    def count_messages(self, thread: str, user: str | None) -> None:
        """A thread's message count."""
        self.agree(lambda store: store.count_messages(thread, user_id=user))

    @rule(
        thread=known_or_unknown_threads,
        runs=st.lists(known_or_unknown_runs, max_size=4),
        user=maybe_users,
    )
    def get_last_visible_ai_seq_by_run(
        self, thread: str, runs: list[str], user: str | None
    ) -> None:
        """The newest visible AI reply of some runs."""
        self.agree(lambda store: store.get_last_visible_ai_seq_by_run(thread, runs, user_id=user))

    @rule(thread=known_or_unknown_threads, user=maybe_users)
    def delete_by_thread(self, thread: str, user: str | None) -> None:
        """A whole thread deleted, or one user's part of it."""
        self.agree(lambda store: store.delete_by_thread(thread, user_id=user))

    @rule(thread=known_or_unknown_threads, run=known_or_unknown_runs, user=maybe_users)
    def delete_by_run(self, thread: str, run: str, user: str | None) -> None:
        """One run deleted, or one user's part of it."""
        self.agree(lambda store: store.delete_by_run(thread, run, user_id=user))

    @rule()
    def read_everything(self) -> None:
        """Every run of every thread, read back whole: seqs unique and ascending."""
        for thread in THREADS:
            seqs: list[int] = []
            for run in RUNS:
                kind, rows = self.agree(
                    lambda store, t=thread, r=run: store.list_events(t, r, limit=500)
                )
                assert kind == "ok"
                assert [row["seq"] for row in rows] == sorted({row["seq"] for row in rows})
                seqs += [row["seq"] for row in rows]
            assert len(seqs) == len(set(seqs))


def test_random_operation_sequences_agree_with_memory(servers: dict[str, str]) -> None:
    """Random sequences of every operation give Memory's answers on mongomock and on real servers."""
    StoresAgree.servers = servers
    run_state_machine_as_test(StoresAgree, settings=examples(25, stateful_step_count=30))
