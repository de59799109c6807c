"""The MongoDB store: the facade whose primitives are the package's one error boundary.

Layout, by the collections the store owns:

- :mod:`.events`: the events collection (default ``run_events``), its indexes
  and every filter sent to it;
- :mod:`.counters`: the counters collection (``<events>_counters``, one
  document per thread) and every field of its documents;
- :mod:`.blobs`: the GridFS-layout bucket for fields too large for a
  document (``<events>_blobs``);
- :mod:`.codec`: records to documents and back, pure, shared by writes and imports;
- :mod:`.setup`: the collections, their indexes and what the deployment can
  do (a frozen :class:`~.setup.Deployment`), and the settings collection
  (``<events>_settings``, the recorded retention);
- the flows, thin orchestrations over those: :mod:`.writes`,
  :mod:`.deletes`, :mod:`.importer`, :mod:`.reads`; every write runs in the
  one loop of attempts of :mod:`.transactions`, whose
  :func:`~.transactions.retry_reason` decides every reason a write is retried.

Each primitive below runs its flow inside :func:`~.driver_errors.translated`:
the only place where a driver error becomes this package's. Inside the
package driver errors travel as raised.

Two write modes, chosen from the server's ``hello`` unless the caller says:

- *transactions* (replica set, sharded cluster): the counter updates and the
  insert run in one transaction, retried on transient errors. A batch is
  all-or-nothing, a failed write leaves no ``seq`` gap, and because writers
  of one thread conflict on its counter document, their commits land in
  ``seq`` order: no reader ever sees ``seq`` n+1 before n.
- *plain* (standalone server, mongomock): the same two steps without a
  transaction. A failed insert is cleaned up before the error is raised, but
  its reserved ``seq`` values stay unused, and writers in *different
  processes* may become visible out of ``seq`` order.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any, cast

from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError

from .._json import JsonDefault
from .._version import __version__
from ..base import RunEventStore
from ..errors import ConfigurationError
from ..fields import EventFields
from ..importing import ImportLookup, StoredChunk, ThreadHoldings
from ..models import MESSAGE_CATEGORY
from ..queries import (
    Deletion,
    EventCount,
    EventKey,
    LastVisibleReplies,
    MessagePage,
    MessageSeqs,
    RunEvents,
    ThreadEvents,
    ThreadList,
)
from ..records import AnotherUsersEvent, LookedUpRecord, StoredRecord
from ..tail import NewsWaiter
from ..telemetry import observed
from ..uri import mask_uri, redact, uri_hint
from . import compat, counters, reads
from .changes import ChangeHub
from .codec import DEFAULT_INLINE_LIMIT_BYTES, DEFAULT_MAX_EVENT_BYTES, DocumentBuilder
from .compat import Collection, Database, Document
from .counters import ThreadLocks
from .deletes import Deleter
from .driver_errors import translated
from .importer import Importer
from .setup import (
    Collections,
    Deployment,
    add_missing_identities,
    check_retention,
    set_up,
)
from .transactions import Retrying
from .writes import Writer

#: The database ``from_uri`` opens when it is given none (the CLI and the
#: DeerFlow settings use the same).
DEFAULT_DATABASE = "mongo_runevents"


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class MongoRunEventStore(RunEventStore):
    """A :class:`~mongo_runevents.RunEventStore` on MongoDB.

    ``database`` is an async database handle: from pymongo's
    ``AsyncMongoClient`` (preferred), from Motor, or from mongomock-motor. The
    constructor does no I/O; the first operation (or :meth:`ensure_indexes`)
    creates the indexes and reads the deployment's capabilities.

    ``transactions``: ``None`` (default) uses transactions when the server is a
    replica set member or ``mongos``; ``True`` / ``False`` force the choice.
    ``transaction_retry_seconds`` bounds how long a write keeps retrying
    transient transaction errors (write conflicts between processes writing
    the same thread) before it gives up with a retryable error; by default it
    outlasts the server's transaction lifetime (``transactionLifetimeLimitSeconds``,
    read at set-up; 60 s when the server does not say) by 15 s, so that a
    transaction left open by a killed writer delays the thread's other writers
    but does not fail them.

    An event whose document would pass ``inline_limit_bytes`` (default 16 MiB,
    MongoDB's own document limit) has its content, and if need be its metadata,
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

    ``json_default`` and ``max_trace_content``: see
    :class:`~mongo_runevents.policy.WritePolicy`.
    """

    def __init__(
        self,
        database: Database,
        *,
        collection: str = "run_events",
        counters_collection: str | None = None,
        transactions: bool | None = None,
        transaction_retry_seconds: float | None = None,
        inline_limit_bytes: int = DEFAULT_INLINE_LIMIT_BYTES,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        retention: Mapping[str, timedelta] | None = None,
        json_default: JsonDefault = str,
        max_trace_content: int | None = None,
    ) -> None:
        super().__init__(json_default=json_default, max_trace_content=max_trace_content)
        compat.check_database(database)
        if not isinstance(collection, str) or not collection:
            raise ConfigurationError("collection must be a non-empty str")
        if (
            not _is_int(inline_limit_bytes)
            or not 0 < inline_limit_bytes <= DEFAULT_INLINE_LIMIT_BYTES
        ):
            raise ConfigurationError(
                f"inline_limit_bytes must be an int between 1 and {DEFAULT_INLINE_LIMIT_BYTES}"
            )
        if not _is_int(max_event_bytes) or max_event_bytes < 1:
            raise ConfigurationError("max_event_bytes must be a positive int")
        if transactions is not None and not isinstance(transactions, bool):
            raise ConfigurationError("transactions must be True, False or None")
        self._collections = Collections.named(database, collection, counters_collection)
        self._transactions_requested = transactions
        self._retention_given = None if retention is None else check_retention(retention)
        self._deployment: Deployment | None = None
        #: Whether the server offers change streams, when a read asked before any set-up.
        self._change_streams_known: bool | None = None
        self._setup_lock: asyncio.Lock | None = None
        self._owned_client: AsyncMongoClient[Document] | None = None
        locks = ThreadLocks()
        retrying = Retrying(database, transaction_retry_seconds)
        documents = DocumentBuilder(inline_limit_bytes, max_event_bytes)
        self._documents = documents
        self._writer = Writer(self._collections, documents, retrying, locks)
        self._deleter = Deleter(self._collections, retrying, locks)
        self._importer = Importer(self._collections, documents, retrying, locks)
        self._changes = ChangeHub(self._collections.events, self._change_streams)

    @classmethod
    @asynccontextmanager
    async def from_uri(
        cls,
        uri: str,
        *,
        database: str = DEFAULT_DATABASE,
        client_kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> AsyncIterator[MongoRunEventStore]:
        """A store on its own ``AsyncMongoClient``, closed when the ``async with`` block ends.

        ``client_kwargs`` go to ``AsyncMongoClient`` (time-outs such as
        ``serverSelectionTimeoutMS``, ``server_api``, TLS options, event
        listeners); ``options`` go to the store's constructor.
        """
        store = cls.connect(uri, database=database, client_kwargs=client_kwargs, **options)
        try:
            yield store
        finally:
            await store.close()

    @classmethod
    def connect(
        cls,
        uri: str,
        *,
        database: str = DEFAULT_DATABASE,
        client_kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> MongoRunEventStore:
        """A store that owns a new ``AsyncMongoClient`` (no I/O yet); :meth:`close` closes it."""
        from pymongo.driver_info import DriverInfo

        if not isinstance(uri, str):
            raise ConfigurationError(f"the URI must be a str, got {type(uri).__name__}")
        keywords = {"driver": DriverInfo(name="mongo_runevents", version=__version__)}
        keywords.update(client_kwargs or {})
        try:
            client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri, **keywords)
        except (PyMongoError, ValueError, TypeError, OSError) as exc:
            # pymongo refuses a bad URI with its ConfigurationError, a plain
            # ValueError (a port out of range) or an OSError (a TLS file): ours
            # says which URI, with every secret in it masked.
            reason = redact(str(exc) or type(exc).__name__, uri)
            hint = "" if "quote_plus" in reason else uri_hint(uri)
            raise ConfigurationError(
                f"cannot use the MongoDB URI {mask_uri(uri)}: {reason}{hint}"
            ) from exc
        store = cls(client[database], **options)
        store._owned_client = client
        return store

    async def close(self) -> None:
        """Close the client if the store made it (:meth:`from_uri`, :meth:`connect`)."""
        await super().close()
        await self._changes.close()
        client, self._owned_client = self._owned_client, None
        if client is not None:
            await client.close()

    @property
    def events_collection(self) -> Collection:
        """The events collection (for operators' tools; write through the store)."""
        return self._collections.events

    @property
    def counters_collection(self) -> Collection:
        """The collection of per-thread counters (see :mod:`mongo_runevents.mongo.counters`)."""
        return self._collections.counters

    @property
    def blob_collections(self) -> tuple[Collection, Collection]:
        """The GridFS ``files`` and ``chunks`` collections of out-of-line fields."""
        return self._collections.blobs.files, self._collections.blobs.chunks

    @property
    def deployment(self) -> Deployment | None:
        """What set-up found (``None`` until the store is set up)."""
        return self._deployment

    @property
    def has_change_streams(self) -> bool:
        """Whether the deployment offers change streams (known once the store is set up)."""
        return self._deployment is not None and self._deployment.change_streams

    @property
    def uses_transactions(self) -> bool:
        """Whether writes run in transactions (known once the store is set up)."""
        return self._deployment is not None and self._deployment.transactions

    @property
    def retention(self) -> dict[str, timedelta]:
        """The retention in force: given, or recorded for the collection (known once set up)."""
        if self._deployment is None:
            return dict(self._retention_given or {})
        return dict(self._deployment.retention)

    # --- set-up -------------------------------------------------------------------

    @observed("ensure_indexes")
    async def ensure_indexes(self) -> None:
        """Create the indexes and read the server's capabilities; safe to repeat."""
        self._check_open()
        with translated("creating indexes"):
            self._deployment = await set_up(
                self._collections,
                transactions=self._transactions_requested,
                retention=self._retention_given,
            )

    async def add_missing_identities(self) -> int:
        """Give messages stored before ``get_message_seqs`` existed their identity (a scan).

        Explicit set-up, as ``mongo-runevents init`` runs it: returns how many
        messages got one.
        """
        self._check_open()
        await self._ready()
        with translated("adding message identities"):
            return await add_missing_identities(self._collections)

    async def _ready(self) -> Deployment:
        """The deployment, set up on first use (once, however many calls race)."""
        if self._deployment is None:
            if self._setup_lock is None:
                self._setup_lock = asyncio.Lock()
            async with self._setup_lock:
                if self._deployment is None:
                    await self.ensure_indexes()
        assert self._deployment is not None
        return self._deployment

    # --- the primitives: each one boundary where driver errors are translated ---------

    async def _write(self, events: list[EventFields]) -> list[StoredRecord]:
        deployment = await self._ready()
        with translated("writing events"):
            written = await self._writer.write(events, deployment)
        # Whole records: only an if_absent write can return another user's event's key.
        return cast("list[StoredRecord]", written.records)

    async def _write_if_absent(
        self, event: EventFields
    ) -> tuple[StoredRecord | AnotherUsersEvent, bool]:
        deployment = await self._ready()
        with translated("writing an event if absent"):
            written = await self._writer.write([event], deployment, if_absent=True)
        return written.records[0], written.created

    async def _import_lookup(self, lookups: list[ImportLookup]) -> dict[str, ThreadHoldings]:
        # A read: verify and dry runs work with the read role and create nothing.
        with translated("looking up imported events"):
            return await self._importer.look_up(lookups)

    async def _import_chunk(
        self, thread_id: str, records: list[tuple[EventFields, int]], renumber: bool
    ) -> StoredChunk:
        deployment = await self._ready()
        with translated("importing events"):
            return await self._importer.import_chunk(thread_id, records, renumber, deployment)

    async def _read_page(self, query: MessagePage) -> list[StoredRecord]:
        with translated("listing messages" if query.run_id is None else "listing a run's messages"):
            return await reads.read_page(self._collections, query)

    async def _read_run(self, query: RunEvents) -> list[StoredRecord]:
        with translated("listing events"):
            return await reads.read_run(self._collections, query)

    async def _read_after(self, query: ThreadEvents) -> list[StoredRecord]:
        with translated("reading new events"):
            return await reads.read_after(self._collections, query)

    async def _get_event(self, query: EventKey) -> LookedUpRecord | None:
        with translated("reading an event"):
            return await reads.get_event(self._collections, query)

    async def _list_threads(self, query: ThreadList) -> list[Document]:
        with translated("listing threads"):
            return await reads.list_threads(self._collections, query)

    async def _thread_info(self, thread_id: str) -> Document | None:
        with translated("reading a thread"):
            return await counters.thread_info(self._collections.counters, thread_id)

    async def _thread_ids(self, after: str | None, limit: int) -> list[str]:
        with translated("listing threads"):
            return await counters.thread_ids(self._collections.counters, after, limit)

    async def _count(self, query: EventCount) -> int:
        messages = query.category == MESSAGE_CATEGORY
        with translated("counting messages" if messages else "counting events"):
            return await reads.count(self._collections, query)

    async def _last_visible_replies(self, query: LastVisibleReplies) -> dict[str, int]:
        with translated("finding the last visible AI replies"):
            return await reads.last_visible_replies(self._collections, query)

    async def _message_seqs(self, query: MessageSeqs) -> dict[str, int]:
        with translated("finding message seqs"):
            return await reads.message_seqs(self._collections, query)

    async def _delete(self, query: Deletion) -> int:
        deployment = await self._ready()
        whole = query.run_id is None and query.user_id is None
        with translated("deleting a thread" if whole else "deleting events"):
            return await self._deleter.delete(query, deployment)

    async def _change_streams(self) -> bool:
        """Whether the deployment offers change streams: asked of the server, nothing created."""
        if self._deployment is not None:
            return self._deployment.change_streams
        if self._change_streams_known is None:
            with translated("connecting"):
                hello = await compat.server_hello(self._collections.database)
            self._change_streams_known = compat.supports_transactions(hello)
        return self._change_streams_known

    def _news(self, thread_id: str, max_wait: float) -> NewsWaiter:
        # Every tail of the store shares one change stream (see .changes).
        return self._changes.waiter(thread_id, max_wait)
