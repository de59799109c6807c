"""Records to MongoDB documents and back, and the documents a write sends: pure, no I/O.

The one place an event becomes its stored document (:meth:`DocumentBuilder.prepare`,
for writes and imports alike: layout, mark, expiry, measuring, fields too
large moved to blobs) and a stored document becomes a record again
(:func:`from_document`). A document is the event's validated fields
themselves (:data:`~mongo_runevents.fields.EventFields`), completed in place,
and the record a write returns is that same dict once the fields only the
store keeps are taken off again (:meth:`Prepared.finished`): nothing is copied
on the way, unless the stored form differs (keys escaped, fields out of line).

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

import itertools
import os
import re
import struct
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import bson
from bson import ObjectId
from bson.raw_bson import RawBSONDocument

from .._json import INT64_MAX, INT64_MIN
from ..errors import EventTooLargeError
from ..fields import EventFields, needs_encoding
from ..identities import message_identity
from ..models import MESSAGE_CATEGORY
from ..records import CHECKED_MARK, STORE_MARK, STORE_MARK_FIELD
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


class _ObjectIds:
    """New ``ObjectId`` values, a batch at a time, as the ObjectId specification makes them.

    Four bytes of time, five random bytes drawn once per process, a three-byte
    counter. ``bson.ObjectId()`` does the same for one id at a time, at about
    four times the cost (a lock, the process check, packing); ids made here
    come from bytes. The random bytes are this store's own, not pymongo's, so
    the two counters never meet; a forked child draws new ones.
    """

    def __init__(self) -> None:
        self._renew()
        os.register_at_fork(after_in_child=self._renew)

    def _renew(self) -> None:
        self._process = os.urandom(5)
        self._counter = itertools.count(int.from_bytes(os.urandom(3), "big"))

    def make(self, count: int) -> list[ObjectId]:
        """``count`` new ids, in increasing order within a second."""
        prefix = int(time.time()).to_bytes(4, "big") + self._process
        counter = self._counter
        return [
            ObjectId(prefix + (next(counter) & 0xFFFFFF).to_bytes(3, "big")) for _ in range(count)
        ]


object_ids = _ObjectIds().make


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


#: What a document holds that its record does not (taken off by :meth:`Prepared.finished`).
_STORE_ONLY = ("_id", STORE_MARK_FIELD, IDENTITY_FIELD, EXPIRES_AT_FIELD)


@dataclass(slots=True)
class Prepared:
    """A batch's documents, as a write sends them, and the records they become.

    ``documents[i]`` is event ``i``'s document, its ``seq`` a placeholder
    (the last field) until the write sets it. ``records[i]`` becomes its
    record (:meth:`finished`): the document itself, or, where the stored form
    differs (keys escaped, fields out of line), a dict of the event's fields.
    ``encoded``, for a measured batch: each document as BSON with the
    placeholder seq, measured once to check its size, then sent as it is,
    its seq patched in (:meth:`sent`), so the driver does not encode it a
    second time. ``files`` and ``chunks``: the blob documents of the events
    with fields out of line, by position (most batches have none).
    """

    documents: list[dict[str, Any]]
    records: list[dict[str, Any]]
    encoded: list[bytes] = field(default_factory=list)
    files: dict[int, tuple[dict[str, Any], ...]] = field(default_factory=dict)
    chunks: dict[int, tuple[dict[str, Any], ...]] = field(default_factory=dict)

    @property
    def measured(self) -> bool:
        """Whether the documents were encoded (and so measured) before the write."""
        return bool(self.encoded)

    def sent(self, index: int) -> RawBSONDocument | dict[str, Any]:
        """What ``insert`` is given for event ``index``: its encoded bytes with its seq if measured."""
        if not self.encoded:
            return self.documents[index]
        document = self.documents[index]
        seq = document["seq"]
        if seq < 2**31:
            # The placeholder's 4 bytes replaced: same length, one copy.
            tail = _INT32.pack(seq) + b"\x00"
            return RawBSONDocument(b"".join((memoryview(self.encoded[index])[:-5], tail)))
        # Past 2**31 pymongo writes an int64: encode it again.
        return RawBSONDocument(bson.encode(document))

    def finished(self, indexes: list[int]) -> list[dict[str, Any]]:
        """The records of the events at ``indexes``, once their documents are written with their seqs.

        Call it once, after the write has succeeded: a record that is its
        document loses the fields only the store keeps.
        """
        finished = []
        for index in indexes:
            record = self.records[index]
            document = self.documents[index]
            if record is document:
                # _STORE_ONLY, spelt out: this runs for every event written.
                del record["_id"], record[STORE_MARK_FIELD]
                if IDENTITY_FIELD in record:
                    del record[IDENTITY_FIELD]
                if EXPIRES_AT_FIELD in record:
                    del record[EXPIRES_AT_FIELD]
                # seq is the document's last field, as it is the record's.
            else:
                record["seq"] = document["seq"]
            finished.append(record)
        return finished


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
        batch: list[EventFields],
        deployment: Deployment,
        *,
        measure: bool = True,
        document_id: Any = None,
    ) -> Prepared:
        """The documents that will store ``batch`` (seqs are set later), each event's fields completed.

        Every ``created_at`` must be set. The fields become the documents in
        place (see :class:`Prepared`). ``document_id`` overrides the ``_id``
        of a batch of one (``put_if_absent``'s, see :func:`singleton_document_id`);
        otherwise an event with an ``event_id`` gets its key's ``_id``
        (:func:`event_document_id`) and the others new ObjectIds. With
        ``measure`` the documents are measured too (:meth:`measure`).
        """
        # One id for each event (those with a key leave theirs unused: they are few).
        new_ids = iter(object_ids(len(batch)) if document_id is None else ())
        retention = deployment.retention
        documents: list[dict[str, Any]] = []
        records: list[dict[str, Any]] = []
        for fields in batch:
            if type(fields) is dict:
                document = record = fields
                mark = STORE_MARK
            else:  # CheckedFields: a plain dict is stored and returned
                document = record = dict(fields)
                mark = CHECKED_MARK
                if needs_encoding(fields):
                    document = dict(fields)
                    document["content"] = _encode(fields["content"])
                    document["metadata"] = _encode(fields["metadata"])
                    document[ESCAPED_KEYS_FIELD] = True
            if document_id is not None:
                document["_id"] = document_id
            elif "event_id" in fields:
                document["_id"] = event_document_id(fields["thread_id"], fields["event_id"])
            else:
                document["_id"] = next(new_ids)
            # Built from a validated event: reads trust it (mongo_runevents.records).
            document[STORE_MARK_FIELD] = mark
            category = fields["category"]
            if category == MESSAGE_CATEGORY:
                identity = message_identity(fields["content"])
                if identity is not None:
                    document[IDENTITY_FIELD] = identity
            if retention:
                keep_for = retention.get(category)
                if keep_for is not None:
                    document[EXPIRES_AT_FIELD] = datetime.now(timezone.utc) + keep_for
            # Last, as in a record, and so that a measured write can patch it into the bytes.
            document["seq"] = SEQ_PLACEHOLDER
            documents.append(document)
            records.append(record)
        prepared = Prepared(documents, records)
        if measure:
            self.measure(prepared, deployment)
        return prepared

    def measure(self, prepared: Prepared, deployment: Deployment) -> None:
        """Encode each document once, which measures it; move fields too large to blobs.

        Runs before any event of the batch is written, so an event too large
        to store is refused with nothing of its batch stored
        (:class:`~mongo_runevents.errors.EventTooLargeError`, naming its position).
        """
        if prepared.measured:
            return
        # The store's limit, or the server's if that is lower.
        inline_limit = min(self.inline_limit, deployment.max_document_bytes)
        encoded = []
        for index, document in enumerate(prepared.documents):
            # An attempt that was not measured may have set a seq.
            document["seq"] = SEQ_PLACEHOLDER
            data = _encoded(document)
            if len(data) + _INT64_SEQ_EXTRA > inline_limit:
                data = self._out_of_line(prepared, index, inline_limit)
            encoded.append(data)
        prepared.encoded = encoded

    def _out_of_line(self, prepared: Prepared, index: int, inline_limit: int) -> bytes:
        """Move event ``index``'s largest fields to blobs until its document fits; its bytes."""
        document = prepared.documents[index]
        if prepared.records[index] is document:
            # The record keeps the whole fields; the document gets references.
            prepared.records[index] = {
                name: value for name, value in document.items() if name not in _STORE_ONLY
            }
        encoded = _encoded(document)
        size = len(encoded) + _INT64_SEQ_EXTRA
        total = size
        for name in ("content", "metadata"):
            if size <= inline_limit:
                break
            data = encode_field(document[name])
            file_document, chunks = blob_documents(
                data, thread_id=document["thread_id"], run_id=document["run_id"], field=name
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
            prepared.files[index] = (*prepared.files.get(index, ()), file_document)
            prepared.chunks[index] = (*prepared.chunks.get(index, ()), *chunks)
            encoded = _encoded(document)
            size = len(encoded) + _INT64_SEQ_EXTRA
            total += len(data)
        if size > inline_limit or total > self.max_event_bytes:
            raise EventTooLargeError(
                f"the event takes about {total} bytes; the limit is {self.max_event_bytes} "
                "(max_event_bytes)"
                if total > self.max_event_bytes
                else "ids and type alone pass the document size limit",
                index=index,
            )
        return encoded
