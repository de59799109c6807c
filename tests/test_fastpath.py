"""The fast path of validation against the full one, and the encoded documents the writes send.

What the pydantic-core fast path (``mongo_runevents._fastpath``) accepts, the
full validation (Pydantic plus the Python walk) must accept with the same
result; it may refuse anything, which then takes the full validation.
"""

from __future__ import annotations

import collections
import enum
import itertools
import os
from datetime import datetime, timedelta, timezone
from typing import Any

import bson
import pytest
from bson import ObjectId
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from mongo_runevents import _fastpath, models
from mongo_runevents._json import same_json
from mongo_runevents.errors import InvalidEventError
from mongo_runevents.fields import CheckedFields, EventFields, needs_encoding
from mongo_runevents.models import NewEvent, new_events
from mongo_runevents.mongo import Deployment
from mongo_runevents.mongo.codec import SEQ_PLACEHOLDER, DocumentBuilder, object_ids
from mongo_runevents.policy import WritePolicy
from mongo_runevents.times import check_iso_8601

POLICIES = [
    WritePolicy(),
    WritePolicy(json_default=None),
    WritePolicy(max_trace_content=40),
]


class Colour(enum.IntEnum):
    """An int subclass."""

    RED = 1


class Role(str, enum.Enum):
    """A str subclass."""

    AI = "ai"


class Listish(list):  # type: ignore[type-arg]
    """A list subclass that iterates as something else."""

    def __iter__(self) -> Any:
        return iter(["not", "the", "items"])


texts = st.text(
    alphabet=st.characters(codec=None, categories=["L", "N", "P", "S", "Zs", "Cs", "Cc"]),
    max_size=6,
) | st.sampled_from(["a.b", "$x", "50%", "nul\x00", "plain", "", "\u2028"])
scalars = (
    texts
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.booleans()
    | st.none()
    | st.sampled_from([Colour.RED, Role.AI, -0.0, 2**63 - 1, -(2**63), 2**63])
)


def _containers(children: Any) -> Any:
    return (
        st.lists(children, max_size=4)
        | st.dictionaries(texts, children, max_size=4)
        | st.dictionaries(st.integers(0, 3) | st.booleans(), children, max_size=2)
        | st.tuples(children)
        | st.dictionaries(texts, children, max_size=3).map(collections.OrderedDict)
        | st.lists(children, max_size=2).map(Listish)
        | st.frozensets(st.integers(0, 3), max_size=2)
    )


values = st.recursive(scalars, _containers, max_leaves=12)


def nested(depth: int, leaf: Any = 0) -> Any:
    """``leaf`` inside ``depth`` alternating lists and dicts."""
    value = leaf
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


def event(**fields: Any) -> dict[str, Any]:
    return {"thread_id": "t", "run_id": "r", "event_type": "e", "category": "trace", **fields}


def full(data: dict[str, Any], policy: WritePolicy) -> EventFields | None:
    try:
        return NewEvent.model_validate(data, context=policy).fields()
    except Exception:
        return None


def shares_containers(first: Any, second: Any) -> bool:
    """Whether any dict or list inside ``first`` is the same object as one inside ``second``."""

    def ids(value: Any) -> set[int]:
        found = set()
        stack = [value]
        while stack:
            item = stack.pop()
            if isinstance(item, (dict, list, tuple)):
                found.add(id(item))
                stack.extend(item.values() if isinstance(item, dict) else item)
        return found

    return bool(ids(first) & ids(second))


def assert_same(fast: EventFields, slow: EventFields) -> None:
    """The same fields, in the same order; nothing to encode."""
    assert list(fast) == list(slow)
    for name in ("thread_id", "run_id", "event_type", "category", "created_at", "event_id"):
        assert fast.get(name) == slow.get(name)
    assert same_json(fast["content"], slow["content"]), (fast["content"], slow["content"])
    assert same_json(fast["metadata"], slow["metadata"]), (fast["metadata"], slow["metadata"])
    assert needs_encoding(fast) is needs_encoding(slow) is False


@settings(max_examples=400, deadline=None)
@given(content=values, metadata=st.dictionaries(texts, values, max_size=3) | st.none())
def test_what_the_fast_path_accepts_the_full_validation_keeps_the_same(
    content: Any, metadata: Any
) -> None:
    """Random values: a fast-path event equals the fully validated one and shares no container."""
    data = event(content=content, metadata=metadata)
    for policy in POLICIES:
        fast = models._fast_event(data, policy)
        slow = full(data, policy)
        if fast is None:
            continue
        assert slow is not None, data
        assert_same(fast, slow)
        assert not shares_containers(fast["content"], content)
        assert not shares_containers(fast["metadata"], metadata)


@pytest.mark.parametrize(
    "content",
    [
        "lone \ud800",
        {"k\udfff": 1},
        {"a.b": 1},
        {"$set": 1},
        {"50%": 1},
        {"nul\x00": 1},
        2**63,
        -(2**63) - 1,
        float("nan"),
        float("inf"),
        (1, 2),
        {1: "x"},
        {"when": datetime.now(timezone.utc)},
        nested(_fastpath.FAST_NESTING + 1),
        nested(95),
    ],
)
def test_the_fast_path_leaves_what_needs_converting_to_the_full_validation(content: Any) -> None:
    """Surrogates, special keys, big ints, NaN, tuples, non-str keys, objects, deep nesting: refused."""
    assert models._fast_event(event(content=content), WritePolicy()) is None


class Opaque:
    """An object that is not JSON, as a LangChain message in a run.end is not."""


@pytest.mark.parametrize("batch", [False, True])
def test_objects_the_fast_path_refuses_cost_one_error_not_one_per_choice(batch: bool) -> None:
    """A graph state of 100 objects fails the fast path with one error per field, not hundreds.

    pydantic-core labels every failed choice of a union with the choice's name,
    here the whole nested schema spelt out; building those errors cost about
    half a millisecond per object (a run.end of 400 LangChain messages: 200 ms).
    """
    data = event(
        content={"messages": [Opaque() for _ in range(100)], "title": "t"},
        metadata={"objects": [Opaque()]},
    )
    validator = models._FAST_EVENTS if batch else models._FAST_EVENT
    with pytest.raises(ValidationError) as caught:
        validator.validate_python([data] if batch else data)
    assert caught.value.error_count() == 2
    assert len(str(caught.value)) < 1000


def test_the_fast_path_takes_plain_json_nested_to_its_limit() -> None:
    """Plain JSON with containers on FAST_NESTING levels goes the fast way, as journals' events do."""
    for content in (nested(_fastpath.FAST_NESTING), {"a": [1, 2.5, None, True, "x"]}, "", None):
        fast = models._fast_event(event(content=content, metadata={"u": {"n": 1}}), WritePolicy())
        assert fast is not None
        assert type(fast) is dict


@settings(max_examples=300, deadline=None)
@given(
    ident=st.text(
        alphabet=st.characters(codec=None, categories=["L", "N", "So", "Cs", "Cc"]),
        min_size=0,
        max_size=600,
    )
    | st.integers(0, 600).map(lambda n: "a" * n)
    | st.integers(120, 140).map(lambda n: "\U0001f600" * n)
    | st.integers(250, 260).map(lambda n: "\u00e9" * n)
)
def test_ids_the_fast_path_accepts_the_full_validation_accepts(ident: str) -> None:
    """Any id (empty, long, non-ASCII, surrogates): fast-path ids pass the full check too."""
    data = event(thread_id=ident, event_id=ident)
    fast = models._fast_event(data, WritePolicy())
    if fast is not None:
        slow = full(data, WritePolicy())
        assert slow is not None
        assert slow["thread_id"] == fast["thread_id"] == ident


@pytest.mark.parametrize(
    ("ident", "fast"),
    [
        ("a" * models.MAX_ID_BYTES, True),
        ("a" * (models.MAX_ID_BYTES + 1), False),
        ("\U0001f600" * (models.MAX_ID_BYTES // 4), True),
        ("\U0001f600" * (models.MAX_ID_BYTES // 4 + 1), False),
        ("", False),
    ],
)
def test_ids_up_to_the_byte_limit_go_the_fast_way(ident: str, fast: bool) -> None:
    """ASCII ids up to MAX_ID_BYTES and others up to a quarter of it need no Python check."""
    assert (models._fast_event(event(run_id=ident), WritePolicy()) is not None) is fast


def _date_strings() -> list[str]:
    years = ["0000", "0001", "0004", "0100", "0400", "1900", "1999", "2000", "2023", "2024", "2100"]
    days = [f"{month:02}-{day:02}" for month in range(14) for day in range(33)]
    dates = [f"{year}-{day}" for year, day in itertools.product(years, days)]
    times = ["", "T00:00", "T23:59:60.5", " 24:00", "T12:60", "T12:30:61", "T12:30:59,123456789"]
    offsets = ["", "Z", "z", "+05:30", "-0530", "+05", "+24:00", "+05:60", "+5"]
    samples = [f"2024-02-29{time}{offset}" for time in times for offset in offsets]
    return (
        dates
        + samples
        + ["\uff12\uff10\uff12\uff14-01-01", "2024-01-01\n", "2024-1-01", "2024-01-01T"]
    )


def test_the_created_at_pattern_accepts_only_what_the_check_accepts() -> None:
    """Every date of a few awkward years (leap rules, year 0), times and offsets: the pattern agrees."""
    matched = 0
    for text in _date_strings():
        try:
            check_iso_8601(text)
            valid = True
        except ValueError:
            valid = False
        fast = models._fast_event(event(created_at=text), WritePolicy())
        # Valid strings in ASCII digits all go the fast way, but for years 1 and
        # 9999 (whose UTC moment the full check computes); nothing invalid does.
        edge_year = text[:4] in ("0001", "9999")
        assert (fast is not None) == (valid and text.isascii() and not edge_year), text
        matched += fast is not None
    assert matched > 3000


def test_the_optional_fields_spelt_out_in_records_and_documents_are_these() -> None:
    """to_record and to_document name event_id and user_id one by one: nothing else is optional."""
    assert models.OPTIONAL_FIELDS == ("event_id", "user_id")


def test_a_batch_with_one_event_for_the_full_validation_validates_the_rest_the_same() -> None:
    """A batch the fast path cannot take whole gives what event-by-event validation gives."""
    batch = [event(content={"n": i}) for i in range(5)]
    batch[2] = event(content={"a.b": (1, {2})})
    validated = new_events(batch)
    assert [e["content"] for e in validated] == [
        {"n": 0},
        {"n": 1},
        {"a.b": [1, "{2}"]},
        {"n": 3},
        {"n": 4},
    ]
    assert [needs_encoding(e) for e in validated] == [False, False, True, False, False]
    # The fast path's events are plain dicts; the full validation's are checked on reads.
    assert [type(e) for e in validated] == [dict, dict, CheckedFields, dict, dict]


def test_trace_content_is_cut_on_the_fast_path_as_on_the_full_one() -> None:
    """max_trace_content applies to fast-path events exactly as to fully validated ones."""
    policy = WritePolicy(max_trace_content=10)
    data = event(content={"text": "x" * 50}, metadata={"k": 1})
    fast = new_events([data], policy)[0]
    slow = NewEvent.model_validate(data, context=policy).fields()
    assert type(fast) is dict
    assert_same(fast, slow)
    assert fast["metadata"]["content_truncated"] is True


@pytest.mark.parametrize("seq", [1, 2**31 - 1, 2**31, 2**62 + 5])
@pytest.mark.parametrize("retention", [False, True])
def test_the_bytes_sent_are_what_pymongo_would_encode(seq: int, retention: bool) -> None:
    """A prepared document's bytes, seq patched in, equal ``bson.encode`` of the document."""
    writer = DocumentBuilder(15 * 1024 * 1024, 256 * 1024 * 1024)
    deployment = Deployment(
        transactions=True,
        change_streams=True,
        bson_server=True,
        retention={"trace": timedelta(days=1)} if retention else {},
    )
    [validated] = new_events([event(content={"n": [1, "x"]}, metadata={"a.b": 2**70})])
    validated["created_at"] = "2025-01-01T00:00:00Z"
    prepared = writer.prepare([validated], deployment)
    [document] = prepared.documents
    assert document["seq"] == SEQ_PLACEHOLDER
    document["seq"] = seq
    sent = prepared.sent(0)
    assert not isinstance(sent, dict)
    assert sent.raw == bson.encode(document)
    assert bson.decode(sent.raw)["seq"] == seq


def test_object_ids_made_a_batch_at_a_time_are_unique_and_new() -> None:
    """The write path's ObjectIds: valid, unique, of this second, with random bytes of their own."""
    made = object_ids(5000) + object_ids(3)
    assert len(set(made)) == len(made)
    assert all(type(each) is ObjectId for each in made)
    age = datetime.now(timezone.utc) - made[0].generation_time
    assert timedelta(seconds=-2) < age < timedelta(seconds=2)
    assert made[0].binary[4:9] == made[-1].binary[4:9] != ObjectId().binary[4:9]


def test_a_forked_child_makes_object_ids_of_its_own() -> None:
    """After a fork the child draws new random bytes, so parent and child never make the same id."""
    reading, writing = os.pipe()
    child = os.fork()
    if child == 0:  # the child: send its ids' random bytes, then leave at once
        os.write(writing, object_ids(1)[0].binary[4:9])
        os._exit(0)
    os.close(writing)
    theirs = os.read(reading, 5)
    os.close(reading)
    os.waitpid(child, 0)
    assert len(theirs) == 5
    assert theirs != object_ids(1)[0].binary[4:9]


def test_the_store_time_is_isoformat_of_now_in_utc(monkeypatch: pytest.MonkeyPatch) -> None:
    """utc_now_iso formats as datetime's isoformat does, across seconds, and passes the fast path."""
    for nanoseconds in (
        0,
        1_733_500_000_000_001_000,
        1_733_500_000_999_999_999,
        1_733_500_001 * 10**9,
    ):
        monkeypatch.setattr(models.time, "time_ns", lambda value=nanoseconds: value)
        moment = datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(
            microseconds=nanoseconds // 1000
        )
        assert models.utc_now_iso() == moment.isoformat(timespec="microseconds")
        assert check_iso_8601(models.utc_now_iso()) == models.utc_now_iso()


@pytest.mark.parametrize(
    ("value", "checked"),
    [
        (2**31 - 1, False),
        (-(2**31), False),
        (2**31, True),
        (-(2**31) - 1, True),
        (2**63 - 1, True),
        ([1, {"n": 2**40}], True),
        (True, False),
        (1.5e300, False),
    ],
)
def test_a_batch_holding_an_int_past_32_bits_is_checked_whole(value: Any, checked: bool) -> None:
    """One integer past 32 bits anywhere makes every event of its batch CheckedFields (reads check them)."""
    batch = new_events([event(content="a"), event(metadata={"deep": {"x": value}})])
    assert [type(fields) for fields in batch] == [CheckedFields if checked else dict] * 2
    assert not any(needs_encoding(fields) for fields in batch)
    assert batch[1]["metadata"] == {"deep": {"x": value}}
    [alone] = new_events([event(content="a")])
    assert type(alone) is dict


@pytest.mark.parametrize("extra", [{"seq": 1}, {"sequence": 1}, {1: "x"}, {"_id": "x"}])
def test_an_event_with_a_key_it_does_not_have_leaves_the_fast_path_and_is_refused(
    extra: dict[Any, Any],
) -> None:
    """The fast path's validators ignore unknown keys: the key check before them sends such an event on."""
    data = {**event(content="x"), **extra}
    assert models._fast_event(data, WritePolicy()) is None
    assert models._fast_events([event(), data], WritePolicy()) is None
    with pytest.raises(InvalidEventError, match=r"unknown field|[Kk]eys should be strings"):
        new_events([event(), data])
