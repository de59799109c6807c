"""The MongoDB store.

Layout: one events collection (default ``run_events``) and beside it a
counters collection (``<events>_counters``) holding a document per thread,
``{_id: thread_id, last_seq: n}``, a GridFS-layout bucket for fields too large
for a document (``<events>_blobs``, see ``_blobs``) and a settings collection
(``<events>_settings``, the recorded retention). A write reserves a block of
``seq`` values for each thread it touches with one ``findOneAndUpdate`` +
``$inc`` (upserted; for several threads in a transaction, one bulk update
and one read-back), then inserts all its documents with one ``insertMany``.

Two write modes, chosen from the server's ``hello`` unless the caller says:

- *transactions* (replica set, sharded cluster): the counter updates and the
  insert run in one transaction, retried on transient errors. A batch is
  all-or-nothing, a failed write leaves no ``seq`` gap, and because writers of
  one thread conflict on its counter document, their commits land in ``seq``
  order: no reader ever sees ``seq`` n+1 before n.
- *plain* (standalone server, mongomock): the same two steps without a
  transaction. A failed insert is cleaned up before the error is raised, but
  its reserved ``seq`` values stay unused, and writers in *different
  processes* may become visible out of ``seq`` order.

In both modes the writes of one store object to one thread are serialised in
the process, so a single server process never races itself.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import bson
from bson import Regex
from bson.errors import BSONError
from pymongo import ASCENDING, DESCENDING, IndexModel, ReturnDocument, UpdateOne
from pymongo.errors import BulkWriteError, DuplicateKeyError, PyMongoError

from . import _compat
from ._blobs import (
    BLOBS_FIELD,
    CHUNKS_INDEXES,
    FILES_INDEXES,
    assemble,
    blob_documents,
    decode_field,
    encode_field,
)
from ._codec import EXPIRES_AT_FIELD, from_document, to_document
from ._driver_errors import DUPLICATE_KEY, duplicate_key_refusals, translate, translated
from ._json import JsonDefault, copy_json
from ._version import __version__
from .base import RunEventStore
from .errors import (
    ConfigurationError,
    EventIdConflictError,
    EventTooLargeError,
    IntegrityError,
    StorageError,
)
from .models import (
    AI_REPLY_TYPES,
    HIDDEN_CALLER_PREFIX,
    MESSAGE_CATEGORY,
    NewEvent,
    WritePolicy,
    check_cursor,
    check_event_types,
    check_filter,
    check_id,
    check_ids,
    check_optional_id,
    check_page,
    imported_event,
    new_event_from_arguments,
    new_events,
    stored_records,
    utc_now_iso,
)
from .tail import follow
from .telemetry import count_retry, observed

logger = logging.getLogger(__name__)

#: Index names: by thread (unique seq), by thread and category, by thread and
#: run, and by thread and idempotency key (unique where the key is set).
BY_SEQ, BY_CATEGORY, BY_RUN = "thread_seq", "thread_category_seq", "thread_run_seq"
BY_EVENT_ID = "thread_event_id"

#: How many times a write is tried when its event ids collide with stored ones:
#: once optimistically, once after looking the keys up, once more if another
#: writer stored one of the same keys in between.
_EVENT_ID_ATTEMPTS = 3


#: How many times a counter upsert that lost a race with another is retried.
_UPSERT_ATTEMPTS = 5

#: The indexes of the events collection. Every query and delete the store
#: sends names the thread and is served by one of them.
EVENT_INDEXES = (
    IndexModel([("thread_id", ASCENDING), ("seq", ASCENDING)], name=BY_SEQ, unique=True),
    IndexModel(
        [("thread_id", ASCENDING), ("category", ASCENDING), ("seq", ASCENDING)], name=BY_CATEGORY
    ),
    IndexModel([("thread_id", ASCENDING), ("run_id", ASCENDING), ("seq", ASCENDING)], name=BY_RUN),
    # Only the (rare) events with out-of-line fields, for deleting their blobs.
    IndexModel(
        [("thread_id", ASCENDING), ("run_id", ASCENDING)],
        name="thread_run_blobs",
        partialFilterExpression={BLOBS_FIELD: {"$exists": True}},
    ),
    IndexModel(
        [("thread_id", ASCENDING), ("event_id", ASCENDING)],
        name=BY_EVENT_ID,
        unique=True,
        partialFilterExpression={"event_id": {"$exists": True}},
    ),
)


#: Documents of up to this size are stored whole; MongoDB's limit is 16 MiB.
DEFAULT_INLINE_LIMIT_BYTES = 15 * 1024 * 1024
#: Events above this size (inline and out-of-line parts together) are refused.
DEFAULT_MAX_EVENT_BYTES = 256 * 1024 * 1024
#: Stands in for the seq while an event's document is measured (int64-wide).
_SEQ_PLACEHOLDER = 2**62


@dataclass
class _Prepared:
    """An event's document and, if it is too large to store whole, its blob documents."""

    document: dict[str, Any]
    files: list[dict[str, Any]] = field(default_factory=list)
    chunks: list[dict[str, Any]] = field(default_factory=list)


#: The largest first batch asked for; a reply is capped at 16 MiB anyway.
_MAX_BATCH = 100_000

#: Fields never returned to callers.
_PROJECTION = {"_id": 0, EXPIRES_AT_FIELD: 0}

#: The settings document holding the collection's retention periods (seconds).
_RETENTION_SETTING = "retention"

#: Deletes documents once their ``expires_at`` has passed (categories with retention).
EXPIRY_INDEX = IndexModel([(EXPIRES_AT_FIELD, ASCENDING)], name="expiry", expireAfterSeconds=0)


class _ThreadLocks:
    """Per-thread-id asyncio locks, created on demand and dropped when idle."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._users: dict[str, int] = {}

    @asynccontextmanager
    async def hold(self, thread_ids: Iterable[str]) -> AsyncIterator[None]:
        """Hold the locks of ``thread_ids``, taken in sorted order so holders never deadlock."""
        keys = sorted(set(thread_ids))
        for key in keys:
            self._users[key] = self._users.get(key, 0) + 1
            self._locks.setdefault(key, asyncio.Lock())
        taken: list[str] = []
        try:
            for key in keys:
                await self._locks[key].acquire()
                taken.append(key)
            yield
        finally:
            for key in taken:
                self._locks[key].release()
            for key in keys:
                self._users[key] -= 1
                if not self._users[key]:
                    del self._users[key], self._locks[key]


class MongoRunEventStore(RunEventStore):
    """A :class:`RunEventStore` on MongoDB.

    ``database`` is an async database handle: from pymongo's
    ``AsyncMongoClient`` (preferred), from Motor, or from mongomock-motor. The
    constructor does no I/O; the first operation (or :meth:`ensure_indexes`)
    creates the indexes and reads the deployment's capabilities.

    ``transactions``: ``None`` (default) uses transactions when the server is a
    replica set member or ``mongos``; ``True`` / ``False`` force the choice.
    ``transaction_retry_seconds`` bounds how long a write keeps retrying
    transient transaction errors (write conflicts between processes writing
    the same thread) before it gives up with a retryable error.

    An event whose document would pass ``inline_limit_bytes`` (default 15 MiB,
    under MongoDB's 16 MiB) has its content, and if need be its metadata,
    stored out of line in a GridFS bucket beside the events collection; reads
    and deletes handle that transparently. An event larger than
    ``max_event_bytes`` (default 256 MiB) is refused with
    :class:`~mongo_runevents.EventTooLargeError`.

    ``retention`` maps categories to how long their events are kept, e.g.
    ``{"trace": timedelta(days=30)}``: such events get an ``expires_at`` and a
    TTL index deletes them after it; other categories are kept. Expiry never
    makes a seq reusable and never moves a reader's cursor. A store given a
    retention records it in ``<collection>_settings`` when it sets up; a store
    given none uses the recorded one, so that ``mongo-runevents init
    --retention`` applies to every server writing the collection.
    """

    def __init__(
        self,
        database: Any,
        *,
        collection: str = "run_events",
        counters_collection: str | None = None,
        transactions: bool | None = None,
        transaction_retry_seconds: float = 30.0,
        inline_limit_bytes: int = DEFAULT_INLINE_LIMIT_BYTES,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        retention: Mapping[str, timedelta] | None = None,
        json_default: JsonDefault = str,
        max_trace_content: int | None = None,
    ) -> None:
        if not isinstance(collection, str) or not collection:
            raise ConfigurationError("collection must be a non-empty str")
        if not 0 < inline_limit_bytes <= DEFAULT_INLINE_LIMIT_BYTES:
            raise ConfigurationError(
                f"inline_limit_bytes must be between 1 and {DEFAULT_INLINE_LIMIT_BYTES}"
            )
        self._database = database
        self._events = database[collection]
        self._counters = database[counters_collection or f"{collection}_counters"]
        self._blob_files = database[f"{collection}_blobs.files"]
        self._blob_chunks = database[f"{collection}_blobs.chunks"]
        self._inline_limit = inline_limit_bytes
        self._max_event_bytes = max_event_bytes
        self._settings = database[f"{collection}_settings"]
        self._retention = _check_retention(retention)
        self._retention_given = retention is not None
        self._transactions_requested = transactions
        self._transactions = False
        self._retry_seconds = transaction_retry_seconds
        self._change_streams = False
        self._bson_server = True
        self._ready = False
        self._setup_lock: asyncio.Lock | None = None
        self._thread_locks = _ThreadLocks()
        self._policy = WritePolicy(json_default, max_trace_content)

    @classmethod
    @asynccontextmanager
    async def from_uri(
        cls,
        uri: str,
        *,
        database: str = "mongo_runevents",
        **options: Any,
    ) -> AsyncIterator[MongoRunEventStore]:
        """A store on its own ``AsyncMongoClient``, closed when the ``async with`` block ends.

        ``options`` go to the store's constructor.
        """
        from pymongo import AsyncMongoClient
        from pymongo.driver_info import DriverInfo

        with translated("connecting"):
            client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
                uri, driver=DriverInfo(name="mongo_runevents", version=__version__)
            )
        try:
            yield cls(client[database], **options)
        finally:
            await client.close()

    @property
    def events_collection(self) -> Any:
        """The events collection (for operators' tools; write through the store)."""
        return self._events

    @property
    def counters_collection(self) -> Any:
        """The collection of per-thread counters (``{_id: thread_id, last_seq: n}``)."""
        return self._counters

    @property
    def blob_collections(self) -> tuple[Any, Any]:
        """The GridFS ``files`` and ``chunks`` collections of out-of-line fields."""
        return self._blob_files, self._blob_chunks

    @property
    def has_change_streams(self) -> bool:
        """Whether the deployment offers change streams (known once the store is set up)."""
        return self._change_streams

    @property
    def uses_transactions(self) -> bool:
        """Whether writes run in transactions (known once the store is set up)."""
        return self._transactions

    # --- set-up ---------------------------------------------------------------

    @observed("ensure_indexes")
    async def ensure_indexes(self) -> None:
        """Create the indexes and read the server's capabilities; safe to repeat."""
        with translated("creating indexes"):
            hello = await _compat.server_hello(self._database)
            indexes = list(EVENT_INDEXES)
            if hello is None:
                # mongomock ignores partialFilterExpression, so the unique
                # event_id index would refuse every second event without a key.
                # There, keys are looked up before writing (plain mode) under
                # the per-thread lock instead.
                indexes = [index for index in indexes if index.document["name"] != BY_EVENT_ID]
            await self._events.create_indexes(indexes)
            await self._blob_files.create_indexes(list(FILES_INDEXES))
            await self._blob_chunks.create_indexes(list(CHUNKS_INDEXES))
            await self._settle_retention()
            if self._retention:
                for collection in (self._events, self._blob_files, self._blob_chunks):
                    await collection.create_indexes([EXPIRY_INDEX])
        if self._transactions_requested is None:
            self._transactions = _compat.supports_transactions(hello)
        else:
            self._transactions = self._transactions_requested
        self._change_streams = _compat.supports_transactions(hello)
        # mongomock keeps Python objects as given instead of encoding BSON.
        self._bson_server = hello is not None
        self._ready = True

    async def _settle_retention(self) -> None:
        """Record this store's retention, or adopt the one recorded for the collection."""
        if self._retention_given:
            periods = {
                category: period.total_seconds() for category, period in self._retention.items()
            }
            await self._settings.replace_one(
                {"_id": _RETENTION_SETTING}, {"periods": periods}, upsert=True
            )
            return
        recorded = await self._settings.find_one({"_id": _RETENTION_SETTING})
        if recorded is not None:
            self._retention = _check_retention(
                {
                    category: timedelta(seconds=seconds)
                    for category, seconds in recorded["periods"].items()
                }
            )

    @property
    def retention(self) -> dict[str, timedelta]:
        """The retention in force: given, or recorded for the collection (known once set up)."""
        return dict(self._retention)

    async def _ensure_ready(self) -> None:
        if self._ready:
            return
        if self._setup_lock is None:
            self._setup_lock = asyncio.Lock()
        async with self._setup_lock:
            if not self._ready:
                await self.ensure_indexes()

    # --- writes ---------------------------------------------------------------

    @observed("put")
    async def put(
        self,
        *,
        thread_id: str,
        run_id: str,
        event_type: str,
        category: str,
        content: Any = "",
        metadata: dict[str, Any] | None = None,
        created_at: str | None = None,
        event_id: str | None = None,
        user_id: str | None = None,
    ) -> dict[str, Any]:
        return (await self._write([new_event_from_arguments(locals(), self._policy)]))[0]

    @observed("put_if_absent")
    async def put_if_absent(
        self,
        *,
        thread_id: str,
        run_id: str,
        event_type: str,
        category: str,
        content: Any = "",
        metadata: dict[str, Any] | None = None,
        created_at: str | None = None,
        event_id: str | None = None,
        user_id: str | None = None,
    ) -> tuple[dict[str, Any], bool]:
        # In transaction mode the look-up and the write share a transaction, and
        # two racing writers both update the thread's counter, so one of them
        # conflicts, retries, and then finds the other's event. In plain mode
        # the per-thread lock makes it atomic within this process only.
        event = new_event_from_arguments(locals(), self._policy)
        created = event.created_at or utc_now_iso()
        await self._ensure_ready()  # first: the retention may come from the database
        prepared = self._prepare(0, event, created)
        query = {"thread_id": thread_id, "run_id": run_id, "event_type": event_type}

        async def attempt(session: Any) -> tuple[dict[str, Any], bool]:
            with translated("looking for an existing event"):
                existing = await self._events.find(
                    query,
                    _PROJECTION,
                    sort=[("seq", ASCENDING)],
                    limit=1,
                    session=session,
                ).to_list(None)
                if existing:
                    return (await self._records(existing, session))[0], False
            look_up_keys = event.event_id is not None
            [record] = await self._write_once([event], [prepared], [created], look_up_keys, session)
            return record, True

        async with self._thread_locks.hold([thread_id]):
            if self._transactions:
                result: tuple[dict[str, Any], bool] = await self._in_transaction(
                    attempt, "writing an event if absent"
                )
                return result
            return await attempt(None)

    @observed("put_batch")
    async def put_batch(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return await self._write(new_events(events, self._policy))

    async def _write(self, events: list[NewEvent]) -> list[dict[str, Any]]:
        """Store validated events; return their records in input order.

        In transaction mode, events with an ``event_id`` are first written
        optimistically, as if new. Only when the unique ``(thread_id,
        event_id)`` index refuses one (a retried write) is the write done
        again, looking the keys up first: a write of new events costs no extra
        round trip.
        """
        if not events:
            return []
        now = utc_now_iso()
        created = [event.created_at or now for event in events]
        await self._ensure_ready()  # first: the retention may come from the database
        prepared = [
            self._prepare(index, event, created_at)
            for index, (event, created_at) in enumerate(zip(events, created, strict=True))
        ]
        threads = {event.thread_id for event in events}
        keyed = any(event.event_id is not None for event in events)
        # In a transaction a collision costs nothing but a retry (the counter
        # update is rolled back); without one it would waste the reserved seqs,
        # so plain mode looks keys up first.
        look_up_keys = keyed and not self._transactions
        async with self._thread_locks.hold(threads):
            for attempt in range(1, _EVENT_ID_ATTEMPTS + 1):
                try:
                    attempt_write = functools.partial(
                        self._write_once, events, prepared, created, look_up_keys
                    )
                    if self._transactions:
                        records: list[dict[str, Any]] = await self._in_transaction(
                            attempt_write, "writing events"
                        )
                        return records
                    return await attempt_write(None)
                except IntegrityError as exc:
                    if not (keyed and _is_event_id_collision(exc)) or attempt == _EVENT_ID_ATTEMPTS:
                        raise
                    look_up_keys = True
        raise AssertionError("unreachable")  # pragma: no cover

    def _prepare(self, index: int, event: NewEvent, created_at: str) -> _Prepared:
        """The documents that will store ``event`` (its seq is set later); checks its size.

        Runs before any event is written, so an event too large to store is
        refused with nothing of its batch stored. Only events whose size bound
        (from validation) passes the inline limit are encoded here to measure
        them exactly.
        """
        document = to_document(event, _SEQ_PLACEHOLDER, created_at)
        prepared = _Prepared(document)
        keep_for = self._retention.get(event.category)
        if keep_for is not None:
            document[EXPIRES_AT_FIELD] = datetime.now(timezone.utc) + keep_for
        if event.size_bound < self._inline_limit:
            return prepared
        size = len(bson.encode(document))
        total = size
        for name in ("content", "metadata"):
            if size <= self._inline_limit:
                break
            data = encode_field(document[name])
            file_document, chunks = blob_documents(
                data, thread_id=event.thread_id, run_id=event.run_id, field=name
            )
            document[name] = None if name == "content" else {}
            document.setdefault(BLOBS_FIELD, {})[name] = file_document["_id"]
            if EXPIRES_AT_FIELD in document:
                for blob_document in (file_document, *chunks):
                    blob_document[EXPIRES_AT_FIELD] = document[EXPIRES_AT_FIELD]
            prepared.files.append(file_document)
            prepared.chunks.extend(chunks)
            size = len(bson.encode(document))
            total += len(data)
        if size > self._inline_limit or total > self._max_event_bytes:
            raise EventTooLargeError(
                f"the event takes about {total} bytes; the limit is {self._max_event_bytes} "
                "(max_event_bytes)"
                if total > self._max_event_bytes
                else "ids and type alone pass the document size limit",
                index=index,
            )
        return prepared

    async def _write_once(
        self,
        events: list[NewEvent],
        prepared: list[_Prepared],
        created: list[str],
        look_up_keys: bool,
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
                    raise EventIdConflictError(
                        f"event {index}: thread {event.thread_id!r} already holds a different "
                        f"event with event_id {event.event_id!r} (seq {found['seq']})"
                    )
                records[index] = found
        fresh = [index for index, record in enumerate(records) if record is None]
        by_thread: dict[str, list[int]] = {}
        for index in fresh:
            by_thread.setdefault(events[index].thread_id, []).append(index)
        blocks = {
            thread_id: (len(indexes), any(prepared[index].files for index in indexes))
            for thread_id, indexes in by_thread.items()
        }
        with translated("reserving seqs"):
            firsts = await self._reserve_blocks(blocks, session)
        for thread_id, indexes in by_thread.items():
            for offset, index in enumerate(indexes):
                seq = firsts[thread_id] + offset
                records[index] = events[index].to_record(seq, created[index])
                prepared[index].document["seq"] = seq
        if fresh:
            await self._insert([prepared[index] for index in fresh], by_thread, session)
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
            query = {"thread_id": thread_id, "event_id": {"$in": event_ids, "$exists": True}}
            cursor = self._events.find(query, _PROJECTION, session=session)
            for record in await self._records(await cursor.to_list(None), session):
                stored[(thread_id, record["event_id"])] = record
        return stored

    async def _reserve_blocks(
        self, blocks: dict[str, tuple[int, bool]], session: Any
    ) -> dict[str, int]:
        """Reserve a block of seqs per thread (``{thread: (count, has_blobs)}``); return the firsts.

        One thread: one ``findOneAndUpdate``. Several threads, in a transaction:
        one bulk ``update`` of all their counters, then one ``find`` that reads
        the new values back (the transaction holds those counters, so nobody
        else moves them in between): two round trips whatever the number of
        threads. Without a transaction that read-back would not be safe, so
        the counters are updated with one ``findOneAndUpdate`` each, sent
        concurrently.
        """
        threads = sorted(blocks)  # the lock order
        if not threads:
            return {}
        if len(threads) == 1:
            [thread_id] = threads
            return {thread_id: await self._reserve(thread_id, *blocks[thread_id], session)}
        if session is None:
            firsts = await asyncio.gather(*(self._reserve(t, *blocks[t]) for t in threads))
            return dict(zip(threads, firsts, strict=True))
        await self._counters.bulk_write(
            [UpdateOne({"_id": t}, _counter_update(*blocks[t]), upsert=True) for t in threads],
            ordered=True,
            session=session,
        )
        counters = await self._counters.find(
            {"_id": {"$in": threads}}, {"last_seq": 1}, session=session
        ).to_list(None)
        last = {counter["_id"]: counter["last_seq"] for counter in counters}
        return {t: last[t] - blocks[t][0] + 1 for t in threads}

    async def _reserve(
        self, thread_id: str, count: int, has_blobs: bool = False, session: Any = None
    ) -> int:
        """Reserve ``count`` seqs of a thread; return the first.

        ``has_blobs`` marks the thread as having out-of-line fields, so that
        deleting the thread knows to delete blobs too.
        """
        update = _counter_update(count, has_blobs)
        for attempt in range(1, _UPSERT_ATTEMPTS + 1):
            try:
                counter = await self._counters.find_one_and_update(
                    {"_id": thread_id},
                    update,
                    upsert=True,
                    return_document=ReturnDocument.AFTER,
                    session=session,
                )
            except DuplicateKeyError:
                # Two writers upserted the thread's first counter at once and
                # this one lost; the document exists now, so try again.
                if session is not None or attempt == _UPSERT_ATTEMPTS:
                    raise
                continue
            if counter is not None:
                break
            # Some servers answer a lost upsert race with no document at all.
            if session is not None or attempt == _UPSERT_ATTEMPTS:
                raise StorageError(
                    f"the server returned no counter for thread {thread_id!r}", retryable=True
                )
        last: int = counter["last_seq"]
        return last - count + 1

    async def _insert(
        self, prepared: list[_Prepared], by_thread: dict[str, list[int]], session: Any
    ) -> None:
        """Insert blobs, then events; outside a transaction, undo a partial insert on failure."""
        documents = [item.document for item in prepared]
        if not self._bson_server:
            # Store what BSON would: plain JSON types (an IntEnum becomes int).
            for document in documents:
                document["content"] = copy_json(document["content"])
                document["metadata"] = copy_json(document["metadata"])
        files = [file for item in prepared for file in item.files]
        chunks = [chunk for item in prepared for chunk in item.chunks]
        try:
            if files:
                await self._blob_chunks.insert_many(chunks, ordered=True, session=session)
                await self._blob_files.insert_many(files, ordered=True, session=session)
            await self._events.insert_many(documents, ordered=True, session=session)
        except (PyMongoError, BSONError) as exc:
            if session is None:
                await self._remove_partial_write(documents, files, by_thread)
            raise translate(exc, "writing events") from exc

    async def _remove_partial_write(
        self,
        documents: list[dict[str, Any]],
        files: list[dict[str, Any]],
        by_thread: dict[str, list[int]],
    ) -> None:
        """Undo what part of a failed plain-mode insert reached the server."""
        threads = {"$in": list(by_thread)}
        try:
            await self._events.delete_many(
                {"thread_id": threads, "_id": {"$in": [document["_id"] for document in documents]}}
            )
            if files:
                file_ids = [file["_id"] for file in files]
                await self._delete_blobs(threads, file_ids, None)
        except PyMongoError:
            logger.exception(
                "could not remove a partly written batch (threads %s); "
                "some of its events or blobs may remain",
                sorted(by_thread),
            )

    async def _delete_blobs(self, thread_id: Any, file_ids: list[Any] | None, session: Any) -> None:
        """Delete blobs of ``thread_id`` (a value or a query): those in ``file_ids``, or all."""
        chunks: dict[str, Any] = {"thread_id": thread_id}
        files: dict[str, Any] = {"metadata.thread_id": thread_id}
        if file_ids is not None:
            chunks["files_id"] = {"$in": file_ids}
            files["_id"] = {"$in": file_ids}
        await self._blob_files.delete_many(files, session=session)
        await self._blob_chunks.delete_many(chunks, session=session)

    async def _in_transaction(self, body: Any, action: str) -> Any:
        """Run ``body(session)`` in a transaction, retrying transient errors for a while."""
        deadline = time.monotonic() + self._retry_seconds
        attempt = 0
        while True:
            attempt += 1
            with translated(action):
                session = await _compat.start_session(self._database)
            try:
                await _compat.start_transaction(session)
                result = await body(session)
                await self._commit(session, deadline)
                return result
            except Exception as exc:
                if session.in_transaction:
                    await self._abort(session)
                # The body may have translated the driver's error already.
                driver_error = exc if isinstance(exc, (PyMongoError, BSONError)) else exc.__cause__
                transient = isinstance(driver_error, PyMongoError) and driver_error.has_error_label(
                    "TransientTransactionError"
                )
                if not transient or time.monotonic() >= deadline:
                    if isinstance(exc, (PyMongoError, BSONError)):
                        raise translate(exc, action) from exc
                    raise
                logger.debug(
                    "%s: transient error on attempt %d, retrying: %s", action, attempt, exc
                )
                count_retry()
                await asyncio.sleep(_backoff(attempt))
            finally:
                await _end_quietly(session)

    async def _commit(self, session: Any, deadline: float) -> None:
        """Commit, retrying while the outcome is unknown (commit is idempotent)."""
        attempt = 0
        while True:
            attempt += 1
            try:
                await session.commit_transaction()
                return
            except PyMongoError as exc:
                unknown = exc.has_error_label("UnknownTransactionCommitResult")
                if not unknown or time.monotonic() >= deadline:
                    raise
                await asyncio.sleep(_backoff(attempt))

    async def _abort(self, session: Any) -> None:
        try:
            await session.abort_transaction()
        except PyMongoError:
            logger.debug(
                "abort failed; the server discards the transaction by itself", exc_info=True
            )

    # --- reads ----------------------------------------------------------------

    async def _find(
        self, query: dict[str, Any], sort: int, limit: int | None, action: str
    ) -> list[dict[str, Any]]:
        """Run one find, sorted by seq, and return validated records."""
        await self._ensure_ready()
        options: dict[str, Any] = {"sort": [("seq", sort)]}
        if limit is not None:
            # The whole page in the first reply: no getMore round trip. (The
            # driver overflows past 2**31 with both set; replies cap at 16 MiB
            # anyway.)
            options.update(limit=limit, batch_size=min(limit, _MAX_BATCH))
        with translated(action):
            documents = await self._events.find(query, _PROJECTION, **options).to_list(None)
            return await self._records(documents, None)

    async def _records(self, documents: list[dict[str, Any]], session: Any) -> list[dict[str, Any]]:
        """Validated records from stored documents, out-of-line fields read back in."""
        blob_ids = [
            file_id for document in documents for file_id in document.get(BLOBS_FIELD, {}).values()
        ]
        if blob_ids:
            chunks = await self._blob_chunks.find(
                {"thread_id": documents[0]["thread_id"], "files_id": {"$in": blob_ids}},
                sort=[("files_id", ASCENDING), ("n", ASCENDING)],
                session=session,
            ).to_list(None)
            blobs = assemble(chunks)
            for document in documents:
                for field, file_id in document.pop(BLOBS_FIELD, {}).items():
                    if file_id not in blobs:
                        raise StorageError(
                            f"the out-of-line {field} of seq {document['seq']} of thread "
                            f"{document['thread_id']!r} is missing"
                        )
                    document[field] = decode_field(blobs[file_id])
        return stored_records([from_document(document) for document in documents])

    @observed("list_messages")
    async def list_messages(
        self,
        thread_id: str,
        *,
        limit: int = 50,
        before_seq: int | None = None,
        after_seq: int | None = None,
        user_id: str | None = None,
    ) -> list[dict[str, Any]]:
        check_id(thread_id, "thread_id")
        check_page(limit, before_seq, after_seq)
        query = _owned({"thread_id": thread_id, "category": MESSAGE_CATEGORY}, user_id)
        return await self._page(query, limit, before_seq, after_seq, "listing messages")

    @observed("list_messages_by_run")
    async def list_messages_by_run(
        self,
        thread_id: str,
        run_id: str,
        *,
        limit: int = 50,
        before_seq: int | None = None,
        after_seq: int | None = None,
        user_id: str | None = None,
    ) -> list[dict[str, Any]]:
        check_id(thread_id, "thread_id")
        check_id(run_id, "run_id")
        check_page(limit, before_seq, after_seq)
        query = _owned(
            {"thread_id": thread_id, "run_id": run_id, "category": MESSAGE_CATEGORY}, user_id
        )
        return await self._page(query, limit, before_seq, after_seq, "listing a run's messages")

    async def _page(
        self,
        query: dict[str, Any],
        limit: int,
        before_seq: int | None,
        after_seq: int | None,
        action: str,
    ) -> list[dict[str, Any]]:
        """The cursor rules of ``list_messages``: one find, ascending or newest-first then reversed."""
        bounds: dict[str, int] = {}
        if after_seq is not None:
            bounds["$gt"] = after_seq
        if before_seq is not None:
            bounds["$lt"] = before_seq
        if bounds:
            query["seq"] = bounds
        if after_seq is not None:
            return await self._find(query, ASCENDING, limit, action)
        newest_first = await self._find(query, DESCENDING, limit, action)
        newest_first.reverse()
        return newest_first

    @observed("list_events")
    async def list_events(
        self,
        thread_id: str,
        run_id: str,
        *,
        event_types: list[str] | None = None,
        limit: int = 500,
        task_id: str | None = None,
        after_seq: int | None = None,
        user_id: str | None = None,
    ) -> list[dict[str, Any]]:
        check_id(thread_id, "thread_id")
        check_id(run_id, "run_id")
        types = check_event_types(event_types)
        check_page(limit, None, after_seq)
        check_filter(task_id, "task_id")
        if (types is not None and not types) or task_id == "":
            return []
        query = _owned({"thread_id": thread_id, "run_id": run_id}, user_id)
        if types is not None:
            query["event_type"] = {"$in": types}
        if task_id is not None:
            query["metadata.task_id"] = task_id
        if after_seq is not None:
            query["seq"] = {"$gt": after_seq}
        return await self._find(query, ASCENDING, limit, "listing events")

    @observed("read_after")
    async def read_after(
        self,
        thread_id: str,
        after_seq: int,
        category: str | None = None,
        user_id: str | None = None,
        limit: int = 500,
    ) -> list[dict[str, Any]]:
        """The thread's first ``limit`` events after ``after_seq`` (of ``category``, if given).

        The read behind :meth:`watch`, served by the thread's seq index (or its
        category index when a category is given).
        """
        check_id(thread_id, "thread_id")
        check_page(limit, None, after_seq)
        query = _owned({"thread_id": thread_id, "seq": {"$gt": after_seq}}, user_id)
        if category is not None:
            query["category"] = check_id(category, "category")
        return await self._find(query, ASCENDING, limit, "reading new events")

    async def watch(
        self,
        thread_id: str,
        *,
        after_seq: int | None = None,
        category: str | None = None,
        user_id: str | None = None,
        poll_interval: float = 0.1,
        max_poll_interval: float = 2.0,
    ) -> AsyncGenerator[dict[str, Any], None]:
        """Yield the thread's events after ``after_seq``, then new ones as they are written.

        Each event once, in seq order, until the caller stops iterating. Uses a
        change stream where the deployment has one and polls with back-off
        where it has not; ``category="message"`` follows what a chat UI shows.
        See :mod:`mongo_runevents.tail`.
        """
        check_id(thread_id, "thread_id")
        check_cursor(after_seq, "after_seq")
        if category is not None:
            check_id(category, "category")
        check_optional_id(user_id, "user_id")
        await self._ensure_ready()
        async for record in follow(
            self,
            thread_id,
            after_seq=after_seq or 0,
            category=category,
            user_id=user_id,
            poll_interval=poll_interval,
            max_poll_interval=max_poll_interval,
        ):
            yield record

    @observed("count_events")
    async def count_events(
        self,
        thread_id: str,
        *,
        run_id: str | None = None,
        category: str | None = None,
        user_id: str | None = None,
    ) -> int:
        """How many events the thread (or one run of it, or one category) holds; one command."""
        check_id(thread_id, "thread_id")
        query = _owned({"thread_id": thread_id}, user_id)
        if check_optional_id(run_id, "run_id") is not None:
            query["run_id"] = run_id
        if check_optional_id(category, "category") is not None:
            query["category"] = category
        await self._ensure_ready()
        with translated("counting events"):
            count: int = await self._events.count_documents(query)
        return count

    @observed("count_messages")
    async def count_messages(self, thread_id: str, *, user_id: str | None = None) -> int:
        check_id(thread_id, "thread_id")
        query = _owned({"thread_id": thread_id, "category": MESSAGE_CATEGORY}, user_id)
        await self._ensure_ready()
        with translated("counting messages"):
            count: int = await self._events.count_documents(query)
        return count

    @observed("get_last_visible_ai_seq_by_run")
    async def get_last_visible_ai_seq_by_run(
        self, thread_id: str, run_ids: list[str], *, user_id: str | None = None
    ) -> dict[str, int]:
        check_id(thread_id, "thread_id")
        wanted = check_ids(run_ids, "run_ids")
        match = _owned(
            {
                "thread_id": thread_id,
                "run_id": {"$in": wanted},
                "category": MESSAGE_CATEGORY,
                "event_type": {"$in": list(AI_REPLY_TYPES)},
                "metadata.caller": {"$not": Regex(f"^{re.escape(HIDDEN_CALLER_PREFIX)}")},
            },
            user_id,
        )
        if not wanted:
            return {}
        await self._ensure_ready()
        pipeline = [{"$match": match}, {"$group": {"_id": "$run_id", "seq": {"$max": "$seq"}}}]
        with translated("finding the last visible AI replies"):
            # pymongo's async aggregate() is a coroutine, Motor's returns the cursor.
            cursor = await _compat.resolve(self._events.aggregate(pipeline))
            rows = await cursor.to_list(None)
        return {row["_id"]: row["seq"] for row in rows}

    # --- moving history in and out -------------------------------------------

    async def export_events(
        self, thread_id: str | None = None, *, page_size: int = 500
    ) -> AsyncGenerator[dict[str, Any], None]:
        """Yield every stored record of one thread, or of all threads, in (thread, seq) order.

        Close it (``contextlib.aclosing``) when stopping early, to free its cursor.
        """
        if thread_id is not None:
            check_id(thread_id, "thread_id")
        await self._ensure_ready()
        if thread_id is not None:
            threads: list[str] = [thread_id]
        else:
            with translated("listing threads"):
                cursor = self._counters.find({}, {"_id": 1}, sort=[("_id", ASCENDING)])
                threads = [row["_id"] for row in await cursor.to_list(None)]
        for thread in threads:
            after = 0
            while True:
                page = await self.read_after(thread, after, limit=page_size)
                for record in page:
                    yield record
                if len(page) < page_size:
                    break
                after = page[-1]["seq"]

    @observed("import_events")
    async def import_events(self, records: Iterable[Mapping[str, Any]]) -> ImportResult:
        """Store records exported elsewhere, keeping their seqs and timestamps.

        Each record needs the fields of a stored record, ``seq`` and
        ``created_at`` included. A record whose thread already holds its seq
        (or its ``event_id``) is skipped, so re-running an import never
        duplicates. Counters are raised to the highest imported seq first, so
        later writes continue after it. Everything is validated before
        anything is written.
        """
        batch = [
            imported_event(record, index, self._policy) for index, record in enumerate(records)
        ]
        if not batch:
            return ImportResult()
        await self._ensure_ready()  # first: the retention may come from the database
        prepared = [
            self._prepare(index, event, event.created_at or "")
            for index, (event, _) in enumerate(batch)
        ]
        for (_, seq), item in zip(batch, prepared, strict=True):
            item.document["seq"] = seq
        result = ImportResult()
        highest: dict[str, int] = {}
        for event, seq in batch:
            highest[event.thread_id] = max(seq, highest.get(event.thread_id, 0))
        with translated("importing events"):
            for thread_id in sorted(highest):
                await self._counters.update_one(
                    {"_id": thread_id}, {"$max": {"last_seq": highest[thread_id]}}, upsert=True
                )
            # Blobs only for events not stored yet, so a re-run leaves no orphans.
            with_blobs = [item for item in prepared if item.files]
            if with_blobs:
                stored = await self._stored_seqs(with_blobs)
                files = [f for item in with_blobs if _key(item) not in stored for f in item.files]
                chunks = [c for item in with_blobs if _key(item) not in stored for c in item.chunks]
                if files:
                    await self._blob_chunks.insert_many(chunks, ordered=True)
                    await self._blob_files.insert_many(files, ordered=True)
            try:
                await self._events.insert_many([item.document for item in prepared], ordered=False)
                result.inserted = len(prepared)
            except BulkWriteError as exc:
                errors = exc.details.get("writeErrors", [])
                if any(error.get("code") != DUPLICATE_KEY for error in errors):
                    raise
                # A refused record whose seq its thread holds was imported
                # before (whichever unique index spoke first); one whose seq is
                # free was refused for an event_id held under another seq.
                refused = [prepared[error["index"]] for error in errors]
                taken = await self._stored_seqs(refused)
                result.conflicts = sum(_key(item) not in taken for item in refused)
                result.skipped = len(errors) - result.conflicts
                result.inserted = len(prepared) - len(errors)
        return result

    async def _stored_seqs(self, prepared: list[_Prepared]) -> set[tuple[str, int]]:
        """Which (thread_id, seq) of ``prepared`` the collection already holds."""
        by_thread: dict[str, list[int]] = {}
        for item in prepared:
            by_thread.setdefault(item.document["thread_id"], []).append(item.document["seq"])
        found: set[tuple[str, int]] = set()
        for thread_id, seqs in by_thread.items():
            rows = await self._events.find(
                {"thread_id": thread_id, "seq": {"$in": seqs}}, {"_id": 0, "seq": 1}
            ).to_list(None)
            found.update((thread_id, row["seq"]) for row in rows)
        return found

    # --- deletes --------------------------------------------------------------

    @observed("delete_by_thread")
    async def delete_by_thread(self, thread_id: str, *, user_id: str | None = None) -> int:
        check_id(thread_id, "thread_id")
        check_optional_id(user_id, "user_id")
        await self._ensure_ready()
        async with self._thread_locks.hold([thread_id]):
            if user_id is not None:
                return await self._delete_users_events(thread_id, user_id)
            if self._transactions:
                deleted: int = await self._in_transaction(
                    functools.partial(self._delete_thread, thread_id), "deleting a thread"
                )
                return deleted
            with translated("deleting a thread"):
                return await self._delete_thread(thread_id, None)

    async def _delete_users_events(self, thread_id: str, user_id: str) -> int:
        """Delete one user's part of a shared thread; a thread left empty starts again at 1.

        While any event of the thread remains, the numbering goes on. (Called
        under the thread's lock, so this process writes nothing in between.)
        """
        deleted = await self._delete_events({"thread_id": thread_id, "user_id": user_id})
        if self._transactions:
            await self._in_transaction(
                functools.partial(self._reset_if_empty, thread_id), "deleting a thread"
            )
        else:
            with translated("deleting a thread"):
                await self._reset_if_empty(thread_id, None)
        return deleted

    async def _reset_if_empty(self, thread_id: str, session: Any) -> None:
        """Delete the thread's counter (and blobs) if it holds no event.

        In a transaction, a writer that adds an event meanwhile has updated the
        counter, so deleting it conflicts and the check runs again.
        """
        remaining = await self._events.find_one(
            {"thread_id": thread_id}, {"_id": 1}, session=session
        )
        if remaining is None:
            await self._delete_thread(thread_id, session)

    async def _delete_thread(self, thread_id: str, session: Any) -> int:
        # Events first, then the counter. In plain mode a writer in another
        # process that reserved a seq before the delete may still insert it
        # afterwards; this order makes that race fail loudly later (a duplicate
        # seq raises IntegrityError) instead of deleting the write silently.
        result = await self._events.delete_many({"thread_id": thread_id}, session=session)
        counter = await self._counters.find_one_and_delete({"_id": thread_id}, session=session)
        if counter is not None and counter.get("has_blobs"):
            await self._delete_blobs(thread_id, None, session)
        deleted: int = result.deleted_count
        return deleted

    @observed("delete_by_run")
    async def delete_by_run(
        self, thread_id: str, run_id: str, *, user_id: str | None = None
    ) -> int:
        check_id(thread_id, "thread_id")
        check_id(run_id, "run_id")
        query = _owned({"thread_id": thread_id, "run_id": run_id}, user_id)
        await self._ensure_ready()
        return await self._delete_events(query)

    async def _delete_events(self, query: dict[str, Any]) -> int:
        """Delete the events matching ``query`` (within one thread) and their blobs."""
        with translated("deleting events"):
            # Blobs are found first and deleted after their events, so that no
            # reader ever meets an event whose blob is gone; a crash in between
            # leaves an orphan blob, never a dangling reference. Only threads
            # whose counter says they ever had blobs are searched for them:
            # reading the counter by _id is cheap on every server.
            with_blobs: list[dict[str, Any]] = []
            flagged = await self._counters.find_one(
                {"_id": query["thread_id"], "has_blobs": True}, {"_id": 1}
            )
            if flagged is not None:
                with_blobs = await self._events.find(
                    {**query, BLOBS_FIELD: {"$exists": True}}, {BLOBS_FIELD: 1}
                ).to_list(None)
            result = await self._events.delete_many(query)
            file_ids = [file_id for doc in with_blobs for file_id in doc[BLOBS_FIELD].values()]
            if file_ids:
                await self._delete_blobs(query["thread_id"], file_ids, None)
        deleted: int = result.deleted_count
        return deleted


@dataclass
class ImportResult:
    """How many imported records were stored, were already there, or clashed."""

    inserted: int = 0
    #: Records whose thread already holds their seq (imported before).
    skipped: int = 0
    #: Records whose ``event_id`` the thread holds under another seq: not stored.
    conflicts: int = 0


def _counter_update(count: int, has_blobs: bool) -> dict[str, Any]:
    """The update that reserves ``count`` seqs of a thread's counter (and marks blobs)."""
    update: dict[str, Any] = {"$inc": {"last_seq": count}}
    if has_blobs:
        update["$set"] = {"has_blobs": True}
    return update


def _key(item: _Prepared) -> tuple[str, int]:
    return item.document["thread_id"], item.document["seq"]


def _check_retention(retention: Mapping[str, timedelta] | None) -> dict[str, timedelta]:
    """The retention setting: categories mapped to positive ``timedelta`` periods."""
    checked: dict[str, timedelta] = {}
    for category, period in (retention or {}).items():
        if not isinstance(category, str) or not category:
            raise ConfigurationError(f"retention: {category!r} is not a category name")
        if not isinstance(period, timedelta) or period <= timedelta(0):
            raise ConfigurationError(f"retention[{category!r}] must be a positive timedelta")
        checked[category] = period
    return checked


def _owned(query: dict[str, Any], user_id: str | None) -> dict[str, Any]:
    """``query`` restricted to one user's events when ``user_id`` is given."""
    if check_optional_id(user_id, "user_id") is not None:
        query["user_id"] = user_id
    return query


def _is_event_id_collision(exc: BaseException) -> bool:
    """Whether ``exc`` is the unique (thread_id, event_id) index refusing a key."""
    return any(
        "event_id" in refusal["keyPattern"] or refusal["index"] == BY_EVENT_ID
        for refusal in duplicate_key_refusals(exc)
    )


def _backoff(attempt: int) -> float:
    """Seconds to wait before retry ``attempt``: exponential, capped, with full jitter."""
    return random.uniform(0, min(0.2, 0.002 * 2**attempt))


async def _end_quietly(session: Any) -> None:
    try:
        await _compat.end_session(session)
    except (PyMongoError, StorageError):
        logger.debug("ending a session failed", exc_info=True)
