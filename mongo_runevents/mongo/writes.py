"""Writes: reserve seqs on the thread's counter, then insert the documents (and blobs).

In transaction mode both steps run in one transaction (:mod:`.transactions`),
so a batch is all-or-nothing and leaves no seq gap. In plain mode (standalone,
mongomock) a failed insert is cleaned up before the error is raised, but its
reserved seqs stay unused. Events with an ``event_id`` are idempotent: in a
transaction they are written optimistically and looked up only when the
``_id`` index refuses one (their ``_id`` is derived from thread and key); in
plain mode they are looked up first, since a refused insert would waste the
seqs it reserved.

Sizes: an event whose document passes ``inline_limit_bytes`` has its content
(and if need be its metadata) stored out of line. With the default limit,
which is the server's own document limit, a batch written in a transaction is
not measured first: the driver encodes the documents as it sends them, and
if the server (or the driver) refuses one as too large, the transaction
holds nothing and the batch is written again, measured. Otherwise (a lower
limit, plain mode) each document is encoded once before anything is written,
which measures it, and those bytes are sent.
"""

from __future__ import annotations

import functools
import logging
import struct
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import bson
from bson.errors import BSONError
from bson.raw_bson import RawBSONDocument
from pymongo import ASCENDING
from pymongo.errors import ConnectionFailure, PyMongoError

from .._json import copy_json
from ..errors import EventIdConflictError, EventTooLargeError, IntegrityError
from ..models import NewEvent, utc_now_iso
from ..queries import existing_as_seen_by
from .blobs import BLOBS_FIELD, blob_documents, encode_field
from .codec import EXPIRES_AT_FIELD, event_document_id, singleton_document_id, to_document
from .driver_errors import duplicate_key_refusals, refuses_as_too_large, translate, translated
from .reads import PROJECTION, Reader
from .seqs import Block, ThreadLocks, reserve_blocks
from .setup import Collections, Deployment
from .transactions import TransactionRunner

logger = logging.getLogger(__name__)

#: How many times a write is tried when its event ids collide with stored ones:
#: once optimistically, once after looking the keys up, once more if another
#: writer stored one of the same keys in between.
_EVENT_ID_ATTEMPTS = 3

#: Documents of up to this size are stored whole: MongoDB's own limit (16 MiB).
DEFAULT_INLINE_LIMIT_BYTES = 16 * 1024 * 1024
#: Events above this size (inline and out-of-line parts together) are refused.
DEFAULT_MAX_EVENT_BYTES = 256 * 1024 * 1024
#: Stands in for the seq while an event's document is measured: an int32, as
#: pymongo encodes every seq below 2**31.
_SEQ_PLACEHOLDER = 2**31 - 1
#: A seq of 2**31 or more is an int64, 4 bytes longer: sizes are checked with room for it.
_INT64_SEQ_EXTRA = 4


_INT32 = struct.Struct("<i")
#: The end of a document encoded with the placeholder seq as its last field:
#: an int32 element named "seq", its 4 bytes, the document's closing NUL.
_SEQ_ELEMENT = b"\x10seq\x00" + _INT32.pack(_SEQ_PLACEHOLDER) + b"\x00"


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


class _Unmeasured(Exception):
    """An unmeasured batch held a document too large to store whole: measure it and retry."""


def is_event_id_collision(exc: BaseException) -> bool:
    """Whether ``exc`` is the ``_id`` index refusing an event whose key the thread holds.

    Events with a key have a deterministic ``_id``; an ``ObjectId`` never
    collides. (mongomock names no key pattern for the ``_id`` index.)
    """
    return any(
        refusal["index"] == "_id_" or "_id" in refusal["keyPattern"] or not refusal["keyPattern"]
        for refusal in duplicate_key_refusals(exc)
    )


#: The metadata fields reads filter on (``task_id``; ``caller`` for hidden replies).
QUERIED_METADATA = ("task_id", "caller")


def _queried_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    """The part of an out-of-line metadata field that is kept inline, for queries."""
    return {name: metadata[name] for name in QUERIED_METADATA if name in metadata}


def _conflict(index: int, event: NewEvent, found: dict[str, Any]) -> EventIdConflictError:
    return EventIdConflictError(
        f"event {index}: thread {event.thread_id!r} already holds a different "
        f"event with event_id {event.event_id!r} (seq {found['seq']})"
    )


class Writer:
    """The write path of one store."""

    def __init__(
        self,
        collections: Collections,
        reader: Reader,
        runner: TransactionRunner,
        locks: ThreadLocks,
        *,
        inline_limit: int,
        max_event_bytes: int,
    ) -> None:
        self._collections = collections
        self._reader = reader
        self._runner = runner
        self._locks = locks
        self._inline_limit = inline_limit
        self._max_event_bytes = max_event_bytes

    def measures(self, deployment: Deployment) -> bool:
        """Whether a batch is measured before it is written (see the module's docstring).

        Unmeasured writes need a transaction (a refused batch leaves nothing,
        not even used seqs) and limits no lower than the server's.
        """
        limit = deployment.max_document_bytes
        return not (
            deployment.transactions
            and deployment.bson_server
            and self._inline_limit >= limit
            and self._max_event_bytes >= limit
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
        document = to_document(event, _SEQ_PLACEHOLDER, created_at, document_id)
        prepared = Prepared(document)
        keep_for = deployment.retention.get(event.category)
        if keep_for is not None:
            document[EXPIRES_AT_FIELD] = datetime.now(timezone.utc) + keep_for
        if not measure:
            return prepared
        # The store's limit, or the server's if that is lower.
        inline_limit = min(self._inline_limit, deployment.max_document_bytes)
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
            document[name] = None if name == "content" else _queried_metadata(document[name])
            document.setdefault(BLOBS_FIELD, {})[name] = file_document["_id"]
            if EXPIRES_AT_FIELD in document:
                for blob_document in (file_document, *chunks):
                    blob_document[EXPIRES_AT_FIELD] = document[EXPIRES_AT_FIELD]
            prepared.files += (file_document,)
            prepared.chunks += tuple(chunks)
            prepared.encoded = _encoded(document)
            size = len(prepared.encoded) + _INT64_SEQ_EXTRA
            total += len(data)
        if size > inline_limit or total > self._max_event_bytes:
            raise EventTooLargeError(
                f"the event takes about {total} bytes; the limit is {self._max_event_bytes} "
                "(max_event_bytes)"
                if total > self._max_event_bytes
                else "ids and type alone pass the document size limit",
                index=index,
            )
        return prepared

    async def write(self, events: list[NewEvent], deployment: Deployment) -> list[dict[str, Any]]:
        """Store validated events; return their records in input order."""
        now = utc_now_iso()
        created = [event.created_at or now for event in events]
        measure = self.measures(deployment)
        async with self._locks.hold({event.thread_id for event in events}):
            if not measure:
                try:
                    return await self._write(events, created, deployment, measure=False)
                except _Unmeasured:
                    pass
            return await self._write(events, created, deployment, measure=True)

    async def _write(
        self, events: list[NewEvent], created: list[str], deployment: Deployment, *, measure: bool
    ) -> list[dict[str, Any]]:
        """Prepare the events (measured or not) and write them, the thread locks held."""
        prepared = [
            self.prepare(index, event, created_at, deployment, measure)
            for index, (event, created_at) in enumerate(zip(events, created, strict=True))
        ]
        keyed = any(event.event_id is not None for event in events)
        look_up_keys = keyed and not deployment.transactions
        for attempt in range(1, _EVENT_ID_ATTEMPTS + 1):
            try:
                attempt_write = functools.partial(
                    self._write_once, events, prepared, created, look_up_keys, deployment
                )
                if deployment.transactions:
                    return await self._runner.run(
                        attempt_write, "writing events", deployment.transaction_lifetime_seconds
                    )
                return await attempt_write(None)
            except IntegrityError as exc:
                if not (keyed and is_event_id_collision(exc)) or attempt == _EVENT_ID_ATTEMPTS:
                    raise
                look_up_keys = True
        raise AssertionError("unreachable")  # pragma: no cover

    async def write_if_absent(
        self, event: NewEvent, deployment: Deployment
    ) -> tuple[dict[str, Any], bool]:
        """Store ``event`` unless its run holds one of its type (``put_if_absent``).

        One event per (thread, run, type), whoever wrote it: the look-up spans
        users (another user's event is reported, not shown: see
        :func:`~mongo_runevents.queries.existing_as_seen_by`). The event's
        ``_id`` is derived from thread, run and type
        (:func:`~.codec.singleton_document_id`), so the ``_id`` index refuses a
        second one written by any process, on every deployment; the writer
        that loses looks again and returns the winner's. In transaction mode
        the look-up and the write also share a transaction. An event with an
        ``event_id`` keeps that key's ``_id`` (a retried ``put`` with the key
        must find it): its uniqueness per run and type rests on the look-up,
        which is atomic across processes only in transaction mode.
        """
        created = event.created_at or utc_now_iso()
        document_id = (
            singleton_document_id(event.thread_id, event.run_id, event.event_type)
            if event.event_id is None
            else None
        )
        prepared = self.prepare(0, event, created, deployment, document_id=document_id)
        query = {
            "thread_id": event.thread_id,
            "run_id": event.run_id,
            "event_type": event.event_type,
        }

        async def attempt(session: Any) -> tuple[dict[str, Any], bool]:
            with translated("looking for an existing event"):
                existing = await self._collections.events.find(
                    query, PROJECTION, sort=[("seq", ASCENDING)], limit=1, session=session
                ).to_list(None)
                if existing:
                    record = (await self._reader.records(existing, session))[0]
                    return existing_as_seen_by(record, event.user_id), False
            look_up_keys = event.event_id is not None
            [record] = await self._write_once(
                [event], [prepared], [created], look_up_keys, deployment, session
            )
            return record, True

        async with self._locks.hold([event.thread_id]):
            for tries in range(1, _EVENT_ID_ATTEMPTS + 1):
                try:
                    if deployment.transactions:
                        return await self._runner.run(
                            attempt,
                            "writing an event if absent",
                            deployment.transaction_lifetime_seconds,
                        )
                    return await attempt(None)
                except IntegrityError as exc:
                    # Another process stored the run's event of this type (or
                    # the key) since the look-up: look again.
                    if not is_event_id_collision(exc) or tries == _EVENT_ID_ATTEMPTS:
                        raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def _write_once(
        self,
        events: list[NewEvent],
        prepared: list[Prepared],
        created: list[str],
        look_up_keys: bool,
        deployment: Deployment,
        session: Any,
    ) -> list[dict[str, Any]]:
        """One attempt: reserve seqs and insert the events the threads do not hold yet."""
        records: list[dict[str, Any] | None] = [None] * len(events)
        if look_up_keys:
            with translated("looking up event ids"):
                stored = await self._stored_by_event_id(events, session)
            for index, event in enumerate(events):
                found = stored.get((event.thread_id, event.event_id))
                if found is None:
                    continue
                if not event.same_event_as(found):
                    raise _conflict(index, event, found)
                records[index] = found
        fresh = [index for index, record in enumerate(records) if record is None]
        by_thread: dict[str, list[int]] = {}
        for index in fresh:
            by_thread.setdefault(events[index].thread_id, []).append(index)
        blocks = {
            thread_id: Block(
                len(indexes),
                any(prepared[index].files for index in indexes),
                tuple(
                    dict.fromkeys(
                        user for index in indexes if (user := events[index].user_id) is not None
                    )
                ),
            )
            for thread_id, indexes in by_thread.items()
        }
        items = [prepared[index] for index in fresh]
        documents = [item.document for item in items]
        files = [file for item in items for file in item.files]
        chunks = [chunk for item in items for chunk in item.chunks]
        if not deployment.bson_server:
            # mongomock keeps the very objects it is given: give it copies.
            for document in documents:
                document["content"] = copy_json(document["content"])
                document["metadata"] = copy_json(document["metadata"])
        try:
            # Blobs first: they need no seq, so the thread's counter is held
            # for as short a time as possible (reserve, insert, commit).
            await self._collections.blobs.insert(files, chunks, session)
            firsts = await reserve_blocks(
                self._collections.counters, blocks, utc_now_iso(), session
            )
            for thread_id, indexes in by_thread.items():
                for offset, index in enumerate(indexes):
                    seq = firsts[thread_id] + offset
                    records[index] = events[index].to_record(seq, created[index])
                    prepared[index].document["seq"] = seq
            if documents:
                # A server that speaks BSON gets the bytes prepare encoded (seq
                # patched in), or the document itself when it was not measured.
                inserted: list[Any] = (
                    [item.sent() for item in items] if deployment.bson_server else documents
                )
                await self._collections.events.insert_many(inserted, ordered=True, session=session)
        except (PyMongoError, BSONError) as exc:
            if items and not items[0].measured and refuses_as_too_large(exc):
                raise _Unmeasured() from exc
            if session is not None or not await self._recovered(exc, documents, files, by_thread):
                raise translate(exc, "writing events") from exc
        return [record for record in records if record is not None]

    async def _stored_by_event_id(
        self, events: list[NewEvent], session: Any
    ) -> dict[tuple[str, str | None], dict[str, Any]]:
        """The stored records of the threads that hold these events' keys."""
        keys: dict[str, list[str]] = {}
        for event in events:
            if event.event_id is not None:
                keys.setdefault(event.thread_id, []).append(event.event_id)
        stored: dict[tuple[str, str | None], dict[str, Any]] = {}
        for thread_id, event_ids in keys.items():
            document_ids = [event_document_id(thread_id, event_id) for event_id in event_ids]
            query = {"thread_id": thread_id, "_id": {"$in": document_ids}}
            cursor = self._collections.events.find(query, PROJECTION, session=session)
            for record in await self._reader.records(await cursor.to_list(None), session):
                stored[(thread_id, record["event_id"])] = record
        return stored

    async def _recovered(
        self,
        exc: BaseException,
        documents: list[dict[str, Any]],
        files: list[dict[str, Any]],
        by_thread: dict[str, list[int]],
    ) -> bool:
        """After a failed plain-mode write: whether it took effect whole after all.

        When the reply was lost (a broken connection, a time-out) the insert
        may have been applied: if every document is there, the write
        succeeded, and deleting it would let a reader see its events twice
        (now, and again under new seqs when the caller retries). Otherwise the
        part that reached the server is removed, so that nothing of a failed
        batch stays.

        Both look only at what this attempt wrote (:func:`_own_documents`): an
        event with an ``event_id`` has a deterministic ``_id``, and another
        process may have stored the same key meanwhile, under its own seq.
        """
        if isinstance(exc, ConnectionFailure) and documents:
            try:
                landed = await self._collections.events.count_documents(_own_documents(documents))
            except PyMongoError:
                landed = -1
            if landed == len(documents):
                return True
        await self._remove_partial_write(documents, files, by_thread)
        return False

    async def _remove_partial_write(
        self,
        documents: list[dict[str, Any]],
        files: list[dict[str, Any]],
        by_thread: dict[str, list[int]],
    ) -> None:
        """Undo what part of a failed plain-mode insert reached the server (its own documents only)."""
        threads = {"$in": list(by_thread)}
        try:
            if documents:
                await self._collections.events.delete_many(_own_documents(documents))
            if files:
                await self._collections.blobs.delete(threads, [file["_id"] for file in files], None)
        except PyMongoError:
            logger.exception(
                "could not remove a partly written batch (threads %s); "
                "some of its events or blobs may remain",
                sorted(by_thread),
            )


def _own_documents(documents: list[dict[str, Any]]) -> dict[str, Any]:
    """The filter matching exactly the documents of one write attempt, whoever else wrote.

    An ``_id`` alone is not enough: an event with a key (``event_id``, or the
    run and type of ``put_if_absent``) has a deterministic ``_id``, which
    another process may have stored and acknowledged at its own seq. The
    attempt's seqs were reserved for it alone on the thread's counter, so
    (thread, ``_id``, seq) is its own document and nobody else's.
    """
    by_thread: dict[str, tuple[list[Any], list[int]]] = {}
    for document in documents:
        ids, seqs = by_thread.setdefault(document["thread_id"], ([], []))
        ids.append(document["_id"])
        seqs.append(document["seq"])
    clauses = [
        {"thread_id": thread_id, "_id": {"$in": ids}, "seq": {"$in": seqs}}
        for thread_id, (ids, seqs) in by_thread.items()
    ]
    return clauses[0] if len(clauses) == 1 else {"$or": clauses}
