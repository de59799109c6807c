"""Records to MongoDB documents and back: pure functions, no I/O.

Content and metadata are stored as native BSON, so they stay queryable
(``metadata.task_id``, ``content.tool_calls``). MongoDB treats ``.`` and a
leading ``$`` in field names specially and BSON cannot hold NUL in a name, so
keys that contain ``.``, ``$``, NUL or ``%`` are percent-escaped (``%2E``,
``%24``, ``%00``, ``%25``) on the way in and restored on the way out. Every other
key is stored as it is. BSON integers have 64 bits; a larger integer (which
``json`` and so DeerFlow's stores keep) is stored as ``{"%int": "<digits>"}``,
which no caller's dict can be, since a caller's ``%`` is always escaped. A
document holding either carries ``escaped_keys: true``, so the read path only
walks documents that need it.
"""

from __future__ import annotations

import re
from typing import Any

from bson import ObjectId

from .._json import INT64_MAX, INT64_MIN
from ..identities import message_identity
from ..models import MESSAGE_CATEGORY, NewEvent
from ..records import STORE_MARK, STORE_MARK_FIELD

#: Set on documents whose content or metadata had keys escaped.
ESCAPED_KEYS_FIELD = "escaped_keys"
#: The identity of a message (:func:`~mongo_runevents.identities.message_identity`),
#: kept on message documents that have one, for ``get_message_seqs``'s index.
IDENTITY_FIELD = "message_identity"
#: When a document of a category with a retention period expires (a TTL index deletes it).
EXPIRES_AT_FIELD = "expires_at"

_NEEDS_ESCAPE = re.compile(r"[.$\x00%]")
_ESCAPES = {".": "%2E", "$": "%24", "\x00": "%00", "%": "%25"}
_ESCAPED = re.compile("%(2E|24|00|25)")
_UNESCAPES = {code[1:]: char for char, code in _ESCAPES.items()}
#: The key of the subdocument that stands for an integer past 64 bits.
BIG_INT_KEY = "%int"


def escape_key(key: str) -> str:
    """The stored form of one key."""
    return _NEEDS_ESCAPE.sub(lambda match: _ESCAPES[match.group()], key)


def unescape_key(key: str) -> str:
    """The original form of one stored key."""
    return _ESCAPED.sub(lambda match: _UNESCAPES[match.group(1)], key)


def _encode(value: Any) -> Any:
    """The stored form of a converted value: keys escaped, integers past 64 bits encoded."""
    if isinstance(value, dict):
        return {escape_key(key): _encode(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_encode(item) for item in value]
    if type(value) is int and not INT64_MIN <= value <= INT64_MAX:
        return {BIG_INT_KEY: str(value)}
    return value


def _decode(value: Any) -> Any:
    """A value as it was converted, from its stored form."""
    if isinstance(value, dict):
        if len(value) == 1 and BIG_INT_KEY in value:
            return int(value[BIG_INT_KEY])
        return {unescape_key(key): _decode(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_decode(item) for item in value]
    return value


def event_document_id(thread_id: str, event_id: str) -> dict[str, str]:
    """The ``_id`` of an event with an idempotency key: its thread and key.

    The ``_id`` index then refuses a second event with the same key in the
    thread, with no index of its own; on a cluster sharded by thread, both
    copies would land on the same shard, where ``_id`` is unique.
    """
    return {"thread_id": thread_id, "event_id": event_id}


def singleton_document_id(thread_id: str, run_id: str, event_type: str) -> dict[str, str]:
    """The ``_id`` of an event written by ``put_if_absent`` (without an ``event_id``).

    One event per thread, run and type: the ``_id`` index refuses a second
    one on every deployment, standalone servers too, whichever process or
    user writes it. Its fields differ from :func:`event_document_id`'s, so
    the two kinds of key never collide.
    """
    return {"thread_id": thread_id, "run_id": run_id, "event_type": event_type}


def to_document(
    event: NewEvent, seq: int, created_at: str, document_id: Any = None
) -> dict[str, Any]:
    """The document stored for ``event``; its ``_id`` is made here so a failed write can be traced.

    ``document_id`` overrides the ``_id`` (``put_if_absent``'s, see
    :func:`singleton_document_id`).
    """
    content, metadata = event.content, event.metadata
    if document_id is None:
        document_id = (
            ObjectId()
            if event.event_id is None
            else event_document_id(event.thread_id, event.event_id)
        )
    document: dict[str, Any] = {
        "_id": document_id,
        "thread_id": event.thread_id,
        "run_id": event.run_id,
        "event_type": event.event_type,
        "category": event.category,
        "created_at": created_at,
        # Built from a validated event: reads trust it (mongo_runevents.records).
        STORE_MARK_FIELD: STORE_MARK,
    }
    # OPTIONAL_FIELDS, spelt out: this runs for every event written.
    if event.event_id is not None:
        document["event_id"] = event.event_id
    if event.user_id is not None:
        document["user_id"] = event.user_id
    if event.category == MESSAGE_CATEGORY:
        identity = message_identity(content)
        if identity is not None:
            document[IDENTITY_FIELD] = identity
    if event.needs_encoding:
        content = _encode(content)
        metadata = _encode(metadata)
        document[ESCAPED_KEYS_FIELD] = True
    document["content"] = content
    document["metadata"] = metadata
    # Last, so that the write path can patch it into the encoded bytes.
    document["seq"] = seq
    return document


def from_document(document: dict[str, Any]) -> dict[str, Any]:
    """The record fields of a stored document (``_id`` projected away), keys restored.

    Validation follows, a page at a time (:func:`~mongo_runevents.records.stored_records`).
    """
    if document.pop(ESCAPED_KEYS_FIELD, False):
        document["content"] = _decode(document["content"])
        document["metadata"] = _decode(document["metadata"])
    return document
