"""Writes: reserve seqs on the threads' counters, then insert the documents (and blobs).

One flow for ``put``, ``put_batch`` and ``put_if_absent``, in one loop of
attempts (:mod:`.transactions`: which reasons retry a write, and how). In
transaction mode each attempt runs in one transaction, so a batch is
all-or-nothing and leaves no seq gap. In plain mode (standalone, mongomock) a
failed insert is cleaned up before the error is raised, but its reserved seqs
stay unused. Events with an ``event_id`` are idempotent: in a transaction
they are written optimistically and looked up only when the ``_id`` index
refuses one (their ``_id`` is derived from thread and key); in plain mode
they are looked up first, since a refused insert would waste the seqs it
reserved. Documents come from :mod:`.codec` (measured or not, see
:meth:`~.codec.DocumentBuilder.measures`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, cast

from bson.errors import BSONError
from pymongo import ASCENDING
from pymongo.errors import ConnectionFailure, PyMongoError

from .._json import copy_json
from ..errors import EventIdConflictError
from ..fields import EventFields, same_event
from ..models import utc_now_iso
from ..queries import existing_as_seen_by
from ..records import AnotherUsersEvent, StoredRecord
from . import counters, events
from .codec import DocumentBuilder, Prepared, singleton_document_id
from .compat import Document, Session
from .counters import Block, CounterRace, ThreadLocks
from .setup import Collections, Deployment
from .transactions import Retrying

logger = logging.getLogger(__name__)


@dataclass
class Written:
    """What a write returns: the records, in input order.

    ``created`` is false when ``put_if_absent`` found the run's event of that
    type already there.
    """

    records: list[StoredRecord | AnotherUsersEvent] = field(default_factory=list)
    created: bool = True


@dataclass
class _Plan:
    """Which events of an attempt are new, grouped by thread, and what each thread reserves."""

    fresh: list[int]
    by_thread: dict[str, list[int]]
    blocks: dict[str, Block]


def _plan(batch: list[EventFields], prepared: Prepared, known: list[Any]) -> _Plan:
    """The events not known yet (by key), by thread, and the block of seqs each thread needs."""
    if any(known):
        fresh = [index for index, record in enumerate(known) if record is None]
    else:  # the usual case: every event is new
        fresh = list(range(len(batch)))
    threads = [batch[index]["thread_id"] for index in fresh]
    by_thread: dict[str, list[int]] = {}
    if len(set(threads)) == 1:  # the usual case: one thread
        by_thread[threads[0]] = fresh
    else:
        for index, thread_id in zip(fresh, threads, strict=True):
            by_thread.setdefault(thread_id, []).append(index)
    blocks = {}
    for thread_id, indexes in by_thread.items():
        owners = [batch[index].get("user_id") for index in indexes]
        users = tuple(dict.fromkeys([user for user in owners if user is not None]))
        has_blobs = bool(prepared.files) and any(index in prepared.files for index in indexes)
        blocks[thread_id] = Block(len(indexes), has_blobs, users)
    return _Plan(fresh, by_thread, blocks)


def _conflict(index: int, fields: EventFields, found: StoredRecord) -> EventIdConflictError:
    return EventIdConflictError(
        f"event {index}: thread {fields['thread_id']!r} already holds a different "
        f"event with event_id {fields['event_id']!r} (seq {found['seq']})"
    )


class Writer:
    """The write flow of one store."""

    def __init__(
        self,
        collections: Collections,
        documents: DocumentBuilder,
        retrying: Retrying,
        locks: ThreadLocks,
    ) -> None:
        self._collections = collections
        self._documents = documents
        self._retrying = retrying
        self._locks = locks

    async def write(
        self, batch: list[EventFields], deployment: Deployment, *, if_absent: bool = False
    ) -> Written:
        """Store validated events; their records in input order.

        The events' fields become their documents and records
        (:meth:`~.codec.DocumentBuilder.prepare`): the caller hands them over.

        ``if_absent`` (``put_if_absent``, one event): unless its run holds
        one of its type. One event per (thread, run, type), whoever wrote it:
        the look-up spans users (another user's event is reported, not shown:
        see :func:`~mongo_runevents.queries.existing_as_seen_by`). The event's
        ``_id`` is derived from thread, run and type
        (:func:`~.codec.singleton_document_id`), so the ``_id`` index refuses
        a second one written by any process, on every deployment; the writer
        that loses looks again and returns the winner's. An event with an
        ``event_id`` keeps that key's ``_id`` (a retried ``put`` with the key
        must find it): its uniqueness per run and type rests on the look-up,
        which is atomic across processes only in transaction mode.
        """
        now = utc_now_iso()
        with_ids = False
        # The events whose time the store fills in (compared only when given,
        # should a key be found again).
        timed_here: set[int] = set()
        for index, fields in enumerate(batch):
            if fields["created_at"] is None:
                fields["created_at"] = now
                timed_here.add(index)
            if "event_id" in fields:
                with_ids = True
        first = batch[0]
        document_id = (
            singleton_document_id(first["thread_id"], first["run_id"], first["event_type"])
            if if_absent and not with_ids
            else None
        )
        # Keys are looked up before writing where a refused insert would waste
        # seqs (plain mode) and for put_if_absent; elsewhere after a collision.
        look_up_first = with_ids and (if_absent or not deployment.transactions)
        attempts = self._retrying.attempts(
            "writing events",
            transactions=deployment.transactions,
            transaction_lifetime_seconds=deployment.transaction_lifetime_seconds,
            measured=if_absent or self._documents.measures(deployment),
            keyed=with_ids or if_absent,
        )
        prepared: Prepared | None = None
        existing: StoredRecord | AnotherUsersEvent | None = None
        known: list[Any] = []
        fresh: list[int] = []
        async with self._locks.hold({fields["thread_id"] for fields in batch}):
            async for attempt in attempts:
                if prepared is None:
                    prepared = self._documents.prepare(
                        batch, deployment, measure=attempt.measured, document_id=document_id
                    )
                elif attempt.measured:
                    self._documents.measure(prepared, deployment)
                # The attempt's body is written out here rather than in a function
                # of its own: the journal's put_batch reaches its first round trip
                # (the counter) in five frames, and one loop retries it for every
                # reason (see .transactions).
                async with attempt as session:
                    existing = await self._of_type(first, session) if if_absent else None
                    if existing is not None:
                        continue
                    known = [None] * len(batch)
                    if look_up_first or attempt.look_up_keys:
                        known = await self._stored_by_key(batch, timed_here, session)
                    plan = _plan(batch, prepared, known)
                    fresh = plan.fresh
                    documents = [prepared.documents[index] for index in fresh]
                    files: list[Document] = []
                    chunks: list[Document] = []
                    if prepared.files:
                        files = [file for i in fresh for file in prepared.files.get(i, ())]
                        chunks = [chunk for i in fresh for chunk in prepared.chunks.get(i, ())]
                    try:
                        # Blobs first: they need no seq, so the thread's counter is held
                        # for as short a time as possible (reserve, insert, commit).
                        if files:
                            await self._collections.blobs.insert(files, chunks, session)
                        if len(plan.blocks) == 1:
                            [(thread_id, block)] = plan.blocks.items()
                            firsts = {
                                thread_id: await counters.reserve(
                                    self._collections.counters, thread_id, block, now, session
                                )
                            }
                        else:  # several threads, or none (every event was known)
                            firsts = await counters.reserve_blocks(
                                self._collections.counters, plan.blocks, now, session
                            )
                        for thread_id, indexes in plan.by_thread.items():
                            seq = firsts[thread_id]
                            for index in indexes:
                                prepared.documents[index]["seq"] = seq
                                seq += 1
                        if documents:
                            await self._collections.events.insert_many(
                                self._sent(prepared, fresh, documents, deployment),
                                ordered=True,
                                session=session,
                            )
                    except (PyMongoError, BSONError, CounterRace) as exc:
                        if session is not None or not await self._recovered(
                            exc, documents, files, plan.by_thread
                        ):
                            raise
        if existing is not None:
            return Written([existing], created=False)
        # Written: the documents become the records (not before: an attempt may be retried).
        assert prepared is not None
        if len(fresh) == len(known):
            return Written(cast("list[StoredRecord | AnotherUsersEvent]", prepared.finished(fresh)))
        for index, record in zip(fresh, prepared.finished(fresh), strict=True):
            known[index] = record
        return Written(known)

    @staticmethod
    def _sent(
        prepared: Prepared, fresh: list[int], documents: list[Document], deployment: Deployment
    ) -> list[Any]:
        """What ``insert_many`` is given for the events at ``fresh``.

        A server that speaks BSON gets the bytes ``prepare`` encoded (seq
        patched in), or the documents themselves when unmeasured. mongomock
        keeps the very objects it is given: it gets copies, content and
        metadata included.
        """
        if deployment.bson_server:
            if prepared.measured:
                return [prepared.sent(index) for index in fresh]
            return documents
        return [
            {
                **document,
                "content": copy_json(document["content"]),
                "metadata": copy_json(document["metadata"]),
            }
            for document in documents
        ]

    async def _of_type(
        self, fields: EventFields, session: Session | None
    ) -> StoredRecord | AnotherUsersEvent | None:
        """The run's oldest event of the type of ``fields``, as its writer's user may see it."""
        rows = await self._collections.events.find(
            events.of_type_filter(fields["thread_id"], fields["run_id"], fields["event_type"]),
            events.PROJECTION,
            sort=[("seq", ASCENDING)],
            limit=1,
            session=session,
        ).to_list(None)
        if not rows:
            return None
        [record] = await events.records(rows, self._collections.blobs, session)
        return existing_as_seen_by(record, fields.get("user_id"))

    async def _stored_by_key(
        self, batch: list[EventFields], timed_here: set[int], session: Session | None
    ) -> list[StoredRecord | None]:
        """Per event, the record the thread holds under its key (``None``: none, or no key).

        A different event under the key is refused: :class:`EventIdConflictError`.
        """
        keys: dict[str, list[str]] = {}
        for fields in batch:
            if "event_id" in fields:
                keys.setdefault(fields["thread_id"], []).append(fields["event_id"])
        stored: dict[tuple[str, str | None], StoredRecord] = {}
        for thread_id, event_ids in keys.items():
            found = await self._collections.events.find(
                events.keys_filter(thread_id, event_ids), events.PROJECTION, session=session
            ).to_list(None)
            for record in await events.records(found, self._collections.blobs, session):
                stored[(thread_id, record["event_id"])] = record
        known: list[StoredRecord | None] = []
        for index, fields in enumerate(batch):
            held = stored.get((fields["thread_id"], fields.get("event_id")))
            if held is not None and not same_event(
                fields, held, times_given=index not in timed_here
            ):
                raise _conflict(index, fields, held)
            known.append(held)
        return known

    async def _recovered(
        self,
        exc: BaseException,
        documents: list[Document],
        files: list[Document],
        by_thread: dict[str, list[int]],
    ) -> bool:
        """After a failed plain-mode write: whether it took effect whole after all.

        When the reply was lost (a broken connection, a time-out) the insert
        may have been applied: if every document is there, the write
        succeeded, and deleting it would let a reader see its events twice
        (now, and again under new seqs when the caller retries). Otherwise the
        part that reached the server is removed, so that nothing of a failed
        batch stays.

        Both look only at what this attempt wrote (:func:`~.events.own_documents`):
        an event with an ``event_id`` has a deterministic ``_id``, and another
        process may have stored the same key meanwhile, under its own seq.
        """
        if isinstance(exc, ConnectionFailure) and documents:
            try:
                landed = await self._collections.events.count_documents(
                    events.own_documents(documents)
                )
            except PyMongoError:
                landed = -1
            if landed == len(documents):
                return True
        await self._remove_partial_write(documents, files, by_thread)
        return False

    async def _remove_partial_write(
        self, documents: list[Document], files: list[Document], by_thread: dict[str, list[int]]
    ) -> None:
        """Undo what part of a failed plain-mode insert reached the server (its own documents only)."""
        threads = {"$in": list(by_thread)}
        try:
            if documents:
                await self._collections.events.delete_many(events.own_documents(documents))
            if files:
                await self._collections.blobs.delete(threads, [file["_id"] for file in files], None)
        except PyMongoError:
            logger.exception(
                "could not remove a partly written batch (threads %s); "
                "some of its events or blobs may remain",
                sorted(by_thread),
            )
