"""Driver errors become ours with messages in words: no reply documents, no payloads."""

from __future__ import annotations

from typing import Any

import pytest
from bson import Timestamp
from pymongo.errors import (
    BulkWriteError,
    DocumentTooLarge,
    DuplicateKeyError,
    OperationFailure,
    ServerSelectionTimeoutError,
)

from mongo_runevents import (
    EventTooLargeError,
    IntegrityError,
    MongoRunEventStore,
    StorageError,
    StoreUnavailableError,
)
from mongo_runevents.mongo.driver_errors import translate, translated
from tests.factories import event

CLUSTER_TIME = {
    "clusterTime": Timestamp(1796156693, 8),
    "signature": {"hash": b"\x01" * 20, "keyId": 7},
}
PAYLOAD = "P" * 17_000_000


def test_server_errors_give_code_name_and_message_without_the_reply_document() -> None:
    """An OperationFailure is its errmsg and code name; no $clusterTime, signature or 'full error'."""
    reply = {
        "ok": 0.0,
        "errmsg": "unknown top level operator: $bad",
        "code": 2,
        "codeName": "BadValue",
        "$clusterTime": CLUSTER_TIME,
        "operationTime": Timestamp(1796156693, 8),
    }
    error = translate(OperationFailure(reply["errmsg"], 2, reply), "listing events")
    assert isinstance(error, StorageError)
    assert str(error) == (
        "listing events failed: unknown top level operator: $bad (BadValue, code 2)"
    )


def test_a_duplicate_key_in_a_batch_names_the_event_not_its_content() -> None:
    """A refused insert names thread, seq, index and key and the content's size, never the content."""
    op: dict[str, Any] = {"thread_id": "t-1", "seq": 5, "content": PAYLOAD, "metadata": {}}
    details = {
        "writeErrors": [
            {
                "index": 3,
                "code": 11000,
                "errmsg": "E11000 duplicate key error collection: db.run_events index: "
                f'thread_id_1_seq_1 dup key: {{ thread_id: "t-1", seq: 5, x: "{PAYLOAD}" }}',
                "keyPattern": {"thread_id": 1, "seq": 1},
                "keyValue": {"thread_id": "t-1", "seq": 5},
                "op": op,
            }
        ],
        "writeConcernErrors": [],
        "$clusterTime": CLUSTER_TIME,
    }
    error = translate(BulkWriteError(details), "writing events")
    assert isinstance(error, IntegrityError)
    text = str(error)
    assert len(text) < 500
    assert "PPPP" not in text
    assert "clusterTime" not in text
    assert "index: thread_id_1_seq_1" in text
    assert "key thread_id='t-1', seq=5" in text
    assert "event: thread_id 't-1', seq 5; content about 17,000,002 bytes" in text
    assert "document 3 of the write" in text


def test_a_huge_key_value_is_given_by_its_size() -> None:
    """A duplicate key holding a huge id shows the id's type and size, not the id."""
    reply = {
        "errmsg": f'E11000 duplicate key error index: thread_id_1 dup key: {{ thread_id: "{PAYLOAD}" }}',
        "code": 11000,
        "keyValue": {"thread_id": PAYLOAD},
    }
    text = str(translate(DuplicateKeyError(reply["errmsg"], 11000, reply), "reserving seqs"))
    assert "PPPP" not in text
    assert "thread_id=<str of 17,000,000 bytes>" in text


def test_server_selection_time_outs_say_how_long_and_why_in_one_line() -> None:
    """An unreachable server: the address, the reason and the wait, without the topology."""
    raw = (
        "127.0.0.1:1: [Errno 111] Connection refused (configured timeouts: socketTimeoutMS: "
        "20000.0ms, connectTimeoutMS: 20000.0ms), Timeout: 0.5s, Topology Description: "
        "<TopologyDescription id: 1, topology_type: Unknown, servers: [...]>"
    )
    error = translate(ServerSelectionTimeoutError(raw), "connecting")
    assert isinstance(error, StoreUnavailableError)
    assert str(error) == (
        "connecting failed: no server answered within 0.5 s "
        "(127.0.0.1:1: [Errno 111] Connection refused)"
    )


def test_document_too_large_says_the_size() -> None:
    """pymongo's DocumentTooLarge is an EventTooLargeError that gives the sizes."""
    raw = "BSON document too large (17000245 bytes) - the connected server supports BSON document sizes up to 16793598 bytes."
    error = translate(DocumentTooLarge(raw), "writing events")
    assert isinstance(error, EventTooLargeError)
    assert "17000245 bytes" in str(error)


async def test_a_real_refusal_carries_no_payload(mongo_database: Any) -> None:
    """A duplicate seq refused by the server: the message names the event and index, not its content."""
    store = MongoRunEventStore(mongo_database, transactions=False)
    await store.put(**event())
    collection = store.events_collection
    with pytest.raises(IntegrityError) as raised, translated("writing events"):
        await collection.insert_many(
            [{"thread_id": "thread-1", "seq": 1, "content": "S" * 100_000, "metadata": {}}]
        )
    text = str(raised.value)
    assert "SSSS" not in text
    assert "clusterTime" not in text
    assert "seq 1" in text
