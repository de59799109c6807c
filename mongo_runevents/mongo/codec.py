"""Records to MongoDB documents and back, and the documents a write sends: pure, no I/O.

The one place an event becomes its stored document (:func:`to_document`, used
by writes and imports alike through :meth:`DocumentBuilder.prepare`, which
also sets the expiry, measures the document and moves fields too large for
it to blobs) and a stored document becomes a record again (:func:`from_document`).

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
import struct
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import bson
from bson import ObjectId
from bson.raw_bson import RawBSONDocument

from .._json import INT64_MAX, INT64_MIN
from ..errors import EventTooLargeError
from ..identities import message_identity
from ..models import MESSAGE_CATEGORY, NewEvent
from ..records import STORE_MARK, STORE_MARK_FIELD
from .blobs import BLOBS_FIELD, blob_documents, encode_field

if TYPE_CHECKING:
    from .setup import Deployment

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
    # The validated fields, read from the model's __dict__: an attribute of a
    # pydantic model costs about ten times a dict look-up, and this runs for
    # every event written.
    fields = event.__dict__
    thread_id, event_id, user_id = fields["thread_id"], fields["event_id"], fields["user_id"]
    category, content, metadata = fields["category"], fields["content"], fields["metadata"]
    if document_id is None:
        document_id = ObjectId() if event_id is None else event_document_id(thread_id, event_id)
    document: dict[str, Any] = {
        "_id": document_id,
        "thread_id": thread_id,
        "run_id": fields["run_id"],
        "event_type": fields["event_type"],
        "category": category,
        "created_at": created_at,
        # Built from a validated event: reads trust it (mongo_runevents.records).
        STORE_MARK_FIELD: STORE_MARK,
    }
    # OPTIONAL_FIELDS, spelt out.
    if event_id is not None:
        document["event_id"] = event_id
    if user_id is not None:
        document["user_id"] = user_id
    if category == MESSAGE_CATEGORY:
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


#: Documents of up to this size are stored whole: MongoDB's own limit (16 MiB).
DEFAULT_INLINE_LIMIT_BYTES = 16 * 1024 * 1024
#: Events above this size (inline and out-of-line parts together) are refused.
DEFAULT_MAX_EVENT_BYTES = 256 * 1024 * 1024
#: Stands in for the seq while an event's document is measured: an int32, as
#: pymongo encodes every seq below 2**31.
SEQ_PLACEHOLDER = 2**31 - 1
#: A seq of 2**31 or more is an int64, 4 bytes longer: sizes are checked with room for it.
_INT64_SEQ_EXTRA = 4

_INT32 = struct.Struct("<i")
#: The end of a document encoded with the placeholder seq as its last field:
#: an int32 element named "seq", its 4 bytes, the document's closing NUL.
_SEQ_ELEMENT = b"\x10seq\x00" + _INT32.pack(SEQ_PLACEHOLDER) + b"\x00"

#: The metadata fields reads filter on (``task_id``; ``caller`` for hidden replies),
#: kept inline when the metadata is stored out of line.
QUERIED_METADATA = ("task_id", "caller")


@dataclass(slots=True)
class Prepared:
    """An event's document and, if it is too large to store whole, its blob documents.

    ``encoded`` is the document as BSON with the placeholder seq as its last
    field: measured once to check the size, then sent to servers that speak
    BSON as it is, its seq patched in (:meth:`raw`), so the driver does not
    encode it a second time.
    """

    document: dict[str, Any]
    #: The blob documents, if any (most events have none: no lists are made for them).
    files: tuple[dict[str, Any], ...] = ()
    chunks: tuple[dict[str, Any], ...] = ()
    encoded: bytes = b""

    @property
    def measured(self) -> bool:
        """Whether the document was encoded (and so measured) before the write."""
        return bool(self.encoded)

    def sent(self) -> RawBSONDocument | dict[str, Any]:
        """What ``insert`` is given: the encoded bytes if measured, else the document."""
        return self.raw() if self.measured else self.document

    def raw(self) -> RawBSONDocument:
        """The encoded document with its seq (``document["seq"]``), as pymongo would encode it."""
        seq = self.document["seq"]
        if seq < 2**31:
            # The placeholder's 4 bytes replaced: same length, one copy.
            tail = _INT32.pack(seq) + b"\x00"
            return RawBSONDocument(b"".join((memoryview(self.encoded)[:-5], tail)))
        # Past 2**31 (never, in practice) pymongo writes an int64: encode it again.
        return RawBSONDocument(bson.encode(self.document))


def _encoded(document: dict[str, Any]) -> bytes:
    """``document`` as BSON, its seq placeholder moved to the end (see :class:`Prepared`)."""
    if next(reversed(document)) != "seq":  # a field was added after it
        document["seq"] = document.pop("seq")
    encoded = bson.encode(document)
    assert encoded.endswith(_SEQ_ELEMENT)
    return encoded


class DocumentBuilder:
    """Builds the documents of a store's writes and imports, within its size limits.

    ``inline_limit``: the largest document stored whole (its fields past
    that go to blobs); ``max_event_bytes``: the largest event accepted.
    """

    def __init__(self, inline_limit: int, max_event_bytes: int) -> None:
        self.inline_limit = inline_limit
        self.max_event_bytes = max_event_bytes

    def measures(self, deployment: Deployment) -> bool:
        """Whether a batch is measured before it is written.

        With the default limit, which is the server's own document limit, a
        batch written in a transaction is not measured first: the driver
        encodes the documents as it sends them, and if the server (or the
        driver) refuses one as too large, the transaction holds nothing and
        the batch is written again, measured. Otherwise (a lower limit,
        plain mode) each document is encoded once before anything is
        written, which measures it, and those bytes are sent.
        """
        limit = deployment.max_document_bytes
        return not (
            deployment.transactions
            and deployment.bson_server
            and self.inline_limit >= limit
            and self.max_event_bytes >= limit
        )

    def prepare(
        self,
        index: int,
        event: NewEvent,
        created_at: str,
        deployment: Deployment,
        measure: bool = True,
        document_id: Any = None,
    ) -> Prepared:
        """The documents that will store ``event`` (its seq is set later); checks its size.

        Runs before any event is written, so an event too large to store is
        refused with nothing of its batch stored. The document is encoded
        here, once: that measures it exactly, and the insert sends those bytes.
        Unless ``measure`` is false: then the driver encodes the document.
        """
        document = to_document(event, SEQ_PLACEHOLDER, created_at, document_id)
        prepared = Prepared(document)
        keep_for = deployment.retention.get(event.category)
        if keep_for is not None:
            document[EXPIRES_AT_FIELD] = datetime.now(timezone.utc) + keep_for
        if not measure:
            return prepared
        # The store's limit, or the server's if that is lower.
        inline_limit = min(self.inline_limit, deployment.max_document_bytes)
        prepared.encoded = _encoded(document)
        size = len(prepared.encoded) + _INT64_SEQ_EXTRA
        if size <= inline_limit:
            return prepared
        total = size
        for name in ("content", "metadata"):
            if size <= inline_limit:
                break
            data = encode_field(document[name])
            file_document, chunks = blob_documents(
                data, thread_id=event.thread_id, run_id=event.run_id, field=name
            )
            # What queries filter on stays inline (the whole field is in the blob).
            document[name] = (
                None
                if name == "content"
                else {key: document[name][key] for key in QUERIED_METADATA if key in document[name]}
            )
            document.setdefault(BLOBS_FIELD, {})[name] = file_document["_id"]
            if EXPIRES_AT_FIELD in document:
                for blob_document in (file_document, *chunks):
                    blob_document[EXPIRES_AT_FIELD] = document[EXPIRES_AT_FIELD]
            prepared.files += (file_document,)
            prepared.chunks += tuple(chunks)
            prepared.encoded = _encoded(document)
            size = len(prepared.encoded) + _INT64_SEQ_EXTRA
            total += len(data)
        if size > inline_limit or total > self.max_event_bytes:
            raise EventTooLargeError(
                f"the event takes about {total} bytes; the limit is {self.max_event_bytes} "
                "(max_event_bytes)"
                if total > self.max_event_bytes
                else "ids and type alone pass the document size limit",
                index=index,
            )
        return prepared
