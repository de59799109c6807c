"""Reads trust the documents the store wrote and marked, and validate every other one.

Each test runs on every MongoDB backend. Documents "of an older version or
another tool" are inserted raw, without the mark, as those would write them.
"""

from __future__ import annotations

import datetime
from typing import Any, cast

import pytest
from bson.int64 import Int64

from mongo_runevents import MongoRunEventStore, StorageError, records
from mongo_runevents.models import RECORD_FIELDS
from mongo_runevents.records import CHECKED_MARK, STORE_MARK, STORE_MARK_FIELD, trust_marked
from tests.backends import Connection
from tests.factories import event, trace


class _CountingValidator:
    """Stands in for the page validator: counts the documents it is given, then validates them."""

    def __init__(self, validator: Any) -> None:
        self.validator = validator
        self.pages: list[int] = []

    def validate_python(self, documents: list[dict[str, Any]]) -> Any:
        self.pages.append(len(documents))
        return self.validator.validate_python(documents)


@pytest.fixture
def validations(monkeypatch: pytest.MonkeyPatch) -> _CountingValidator:
    """The page validator, wrapped to count what it validates."""
    counting = _CountingValidator(records._STORED_RECORDS)
    monkeypatch.setattr(records, "_STORED_RECORDS", counting)
    return counting


@pytest.fixture
def mongo_store(mongo_connection: Connection) -> MongoRunEventStore:
    """A fresh MongoDB store on the backend."""
    return cast(MongoRunEventStore, mongo_connection.store("run_events_trust"))


def _older_document(seq: int, **fields: Any) -> dict[str, Any]:
    """A message document as an older version of the store wrote it: no mark."""
    return {
        "thread_id": "thread-1",
        "run_id": "run-1",
        "event_type": "llm.human.input",
        "category": "message",
        "created_at": "2025-01-01T00:00:00+00:00",
        "content": {"text": f"older {seq}"},
        "metadata": {},
        "seq": seq,
        **fields,
    }


async def test_a_marked_page_is_returned_without_validation(
    mongo_store: MongoRunEventStore, validations: _CountingValidator
) -> None:
    """A page the store wrote comes back equal to what the writes returned, in the same key order, unvalidated."""
    written = await mongo_store.put_batch(
        [
            event(content={"text": "hi", "n": [1, 2.5, None, True]}, metadata={"task_id": "t"}),
            event(event_id="k1", user_id="u1", content="plain"),
            event(user_id="u1", created_at="2025-06-01T10:00:00Z"),
        ]
    )
    stored = await mongo_store.events_collection.find_one({"thread_id": "thread-1", "seq": 1})
    assert stored[STORE_MARK_FIELD] == STORE_MARK
    read = await mongo_store.list_messages("thread-1")
    assert validations.pages == []
    assert read == written
    assert [list(record) for record in read] == [list(record) for record in written]
    assert await mongo_store.get_event("thread-1", 2) == written[1]
    assert validations.pages == []


async def test_unmarked_documents_are_validated_and_ints_come_back_plain(
    mongo_store: MongoRunEventStore, validations: _CountingValidator
) -> None:
    """Documents without the mark (an older version's) are validated; their 64-bit ints come back as int."""
    await mongo_store.events_collection.insert_many(
        [_older_document(1, content={"big": Int64(2**40)}), _older_document(2)]
    )
    read = await mongo_store.list_messages("thread-1")
    assert validations.pages == [2]
    assert read[0]["content"] == {"big": 2**40}
    assert type(read[0]["content"]["big"]) is int
    assert tuple(read[1]) == (*RECORD_FIELDS[:7], "seq")


async def test_a_bad_unmarked_document_gives_the_typed_error(
    mongo_store: MongoRunEventStore,
) -> None:
    """An unmarked document that is not a record (another tool's) raises StorageError, saying where."""
    await mongo_store.events_collection.insert_one(
        _older_document(1, content={"when": datetime.datetime(2025, 1, 1)})
    )
    with pytest.raises(StorageError, match="not a valid event"):
        await mongo_store.list_messages("thread-1")


async def test_a_mixed_page_validates_only_its_unmarked_documents(
    mongo_store: MongoRunEventStore, validations: _CountingValidator
) -> None:
    """Marked and unmarked documents on one page: only the unmarked ones are validated, order kept."""
    events = mongo_store.events_collection
    await events.insert_one(_older_document(1))
    await mongo_store.counters_collection.update_one(
        {"_id": "thread-1"}, {"$set": {"last_seq": 1}}, upsert=True
    )
    written = await mongo_store.put_batch([event(content="new 2"), event(content="new 3")])
    await events.insert_one(_older_document(4))
    read = await mongo_store.list_messages("thread-1")
    assert [record["seq"] for record in read] == [1, 2, 3, 4]
    assert validations.pages == [2]
    assert read[1:3] == written
    assert read[0]["content"] == {"text": "older 1"}


async def test_marked_documents_a_tool_broke_are_validated(
    mongo_store: MongoRunEventStore,
) -> None:
    """A marked document given an extra field, or a checked one given a non-JSON value, is refused.

    (A value's type changed in a document with the plain mark is not seen: the
    mark says the store wrote it, see docs/semantics.md, "Validation".)
    """
    await mongo_store.put_batch([event(content={"a": 1}), trace(content="x")])
    events = mongo_store.events_collection
    await events.update_one(
        {"thread_id": "thread-1", "seq": 1},
        {"$set": {"content.a": datetime.datetime(2025, 1, 1), STORE_MARK_FIELD: CHECKED_MARK}},
    )
    with pytest.raises(StorageError, match="content"):
        await mongo_store.list_messages("thread-1")
    await events.update_one({"thread_id": "thread-1", "seq": 2}, {"$set": {"extra": 1}})
    with pytest.raises(StorageError, match="extra"):
        await mongo_store.list_events("thread-1", "run-1", event_types=["llm.start"])


async def test_marked_documents_with_64_bit_ints_come_back_as_int(
    mongo_store: MongoRunEventStore, validations: _CountingValidator
) -> None:
    """A marked document holding an int past 32 bits (an Int64 when read) is validated, so it comes back as int."""
    written = await mongo_store.put(**event(content={"at_ms": 1_733_500_000_000}))
    [read] = await mongo_store.list_messages("thread-1")
    assert read == written
    assert type(read["content"]["at_ms"]) is int
    stored = await mongo_store.events_collection.find_one({"thread_id": "thread-1"})
    assert stored[STORE_MARK_FIELD] == CHECKED_MARK
    # mongomock keeps the int it was given; pymongo reads back an Int64.
    assert validations.pages == ([1] if type(stored["content"]["at_ms"]) is Int64 else [])


async def test_marked_documents_that_need_restoring_are_restored(
    mongo_store: MongoRunEventStore,
) -> None:
    """A marked document with escaped keys goes through restoration and comes back as written."""
    written = await mongo_store.put(**event(metadata={"a.b": 1, "%": {"$x": 2}}))
    assert await mongo_store.list_messages("thread-1") == [written]


def test_only_the_exact_marks_are_trusted() -> None:
    """A mark of another value or type (True, 1.0, a later format) is not trusted; the mark is removed either way."""
    record = _older_document(1)
    for mark in (STORE_MARK, CHECKED_MARK, True, 1.0, STORE_MARK + 1, Int64(STORE_MARK)):
        document = {**record, STORE_MARK_FIELD: mark}
        trusted = trust_marked([document]) == []
        assert trusted is (mark is STORE_MARK or mark is CHECKED_MARK)
        assert STORE_MARK_FIELD not in document


def test_checked_documents_are_trusted_only_with_plain_json_types() -> None:
    """Any Int64, bytes or date anywhere in a page's checked documents sends them to validation."""
    for odd in (Int64(5), b"x", datetime.datetime(2025, 1, 1)):
        page = [
            {**_older_document(1), STORE_MARK_FIELD: CHECKED_MARK},
            {**_older_document(2, content={"a": [{"b": odd}]}), STORE_MARK_FIELD: CHECKED_MARK},
            {**_older_document(3), STORE_MARK_FIELD: STORE_MARK},
        ]
        assert trust_marked(page) == [0, 1]


def test_a_plainly_marked_document_with_a_long_seq_is_validated() -> None:
    """A seq past 2**31 comes back from pymongo as Int64: that document is validated, its seq made int."""
    page = [
        {**_older_document(2**40), STORE_MARK_FIELD: STORE_MARK},
        {**_older_document(2), STORE_MARK_FIELD: STORE_MARK},
    ]
    page[0]["seq"] = Int64(2**40)
    assert trust_marked(page) == [0]
    [record] = records.stored_records([page[0]])
    assert type(record["seq"]) is int


async def test_a_batch_holding_an_int_past_32_bits_is_marked_checked(
    mongo_store: MongoRunEventStore, validations: _CountingValidator
) -> None:
    """The write marks each batch for its reads: plain, or checked when it held an int past 32 bits."""
    await mongo_store.put_batch([event(content="a"), event(content={"n": 2**31 - 1})])
    await mongo_store.put_batch([event(content="b"), event(content={"n": [-(2**31) - 1]})])
    stored = mongo_store.events_collection.find({"thread_id": "thread-1"}, sort=[("seq", 1)])
    marks = [document[STORE_MARK_FIELD] async for document in stored]
    assert marks == [STORE_MARK, STORE_MARK, CHECKED_MARK, CHECKED_MARK]
    read = await mongo_store.list_messages("thread-1")
    assert read[3]["content"] == {"n": [-(2**31) - 1]}
    assert type(read[3]["content"]["n"][0]) is int
    assert [tuple(record) for record in read] == [(*RECORD_FIELDS[:7], "seq")] * 4


async def test_checked_documents_of_the_previous_version_come_back_in_record_order(
    mongo_store: MongoRunEventStore, validations: _CountingValidator
) -> None:
    """The previous version's marked documents (ids and time before content) are trusted, fields reordered."""
    await mongo_store.events_collection.insert_one(
        {
            "thread_id": "thread-1",
            "run_id": "run-1",
            "event_type": "llm.human.input",
            "category": "message",
            "created_at": "2025-01-01T00:00:00+00:00",
            STORE_MARK_FIELD: CHECKED_MARK,
            "event_id": "k",
            "user_id": "u",
            "content": {"text": "older"},
            "metadata": {},
            "seq": 1,
        }
    )
    [read] = await mongo_store.list_messages("thread-1")
    assert validations.pages == []
    assert tuple(read) == (*RECORD_FIELDS[:7], "event_id", "user_id", "seq")
    assert read["content"] == {"text": "older"}
