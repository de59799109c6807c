"""The MongoDB side of an import: the look-up, and each chunk of a thread written atomically.

What to do with each record is decided once for every store
(:mod:`mongo_runevents.importing`); this module answers the look-up and
writes a chunk of one thread as a writer writes a batch: the seqs are taken
on the thread's counter and the documents inserted in one transaction on
deployments with transactions, so no reader sees a seq before a lower one of
the thread is visible (writers of the thread conflict on its counter). In
plain mode (standalone) the thread's lock serialises the chunk with this
process's other writers, as for ``put_batch``; another process may interleave.

A chunk keeps its records' own seqs only if the counter is still below the
first of them at the write (a conditional update); otherwise the records are
numbered after the counter, and each keeps its own seq in
:data:`SOURCE_SEQ_FIELD`, which reads leave out and later imports look for.
"""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, ReturnDocument
from pymongo.errors import BulkWriteError, DuplicateKeyError

from ..importing import ImportLookup, StoredChunk, ThreadHoldings, chunk_seqs, latest_time
from ..models import NewEvent
from .codec import event_document_id
from .driver_errors import DUPLICATE_KEY, translated
from .reads import Reader
from .seqs import ThreadLocks, user_activity_path
from .setup import GENERATION_FIELD, UPDATED_AT_FIELD, USERS_FIELD, Collections, Deployment
from .transactions import TransactionRunner
from .writes import Prepared, Writer

#: Set on a thread's counter, to the counter's generation, once an import
#: renumbered some of its events: a later import then looks for its records
#: under their source seqs too. A reset of the thread (a new generation) makes it stale.
RENUMBERED_FIELD = "renumbered_by_import"
#: On an event an import stored under another seq than its own: its seq in the source.
SOURCE_SEQ_FIELD = "source_seq"


def _renumbered(counter: dict[str, Any]) -> bool:
    """Whether an import renumbered events of the thread in its current generation."""
    mark = counter.get(RENUMBERED_FIELD)
    return (
        isinstance(mark, int)
        and not isinstance(mark, bool)
        and mark == counter.get(GENERATION_FIELD, 0)
    )


def _lookup_filters(lookup: ImportLookup) -> list[dict[str, Any]]:
    """The finds of one thread that ``lookup`` asks for, each one served by an index.

    Separate finds rather than one ``$or``: some servers (SecantusDB) scan the
    whole collection for an ``$or``.
    """
    thread = {"thread_id": lookup.thread_id}
    filters: list[dict[str, Any]] = []
    if lookup.seqs:
        low, high = min(lookup.seqs), max(lookup.seqs)
        if high - low < 4 * len(lookup.seqs):
            # Dense seqs (an export, a run file): one range of the (thread, seq)
            # index, fast everywhere; the seqs not asked for are left out later.
            filters.append({**thread, "seq": {"$gte": low, "$lte": high}})
        else:
            filters.append({**thread, "seq": {"$in": sorted(lookup.seqs)}})
    if lookup.event_ids:
        filters.append({**thread, "event_id": {"$in": sorted(lookup.event_ids)}})
    return filters


class Importer:
    """The import primitives of one store."""

    def __init__(
        self,
        collections: Collections,
        reader: Reader,
        writer: Writer,
        runner: TransactionRunner,
        locks: ThreadLocks,
    ) -> None:
        self._collections = collections
        self._reader = reader
        self._writer = writer
        self._runner = runner
        self._locks = locks

    async def look_up(self, lookups: list[ImportLookup]) -> dict[str, ThreadHoldings]:
        """What the collection holds of each looked-up thread: its counter and the matching events."""
        threads = [lookup.thread_id for lookup in lookups]
        with translated("looking up imported events"):
            counters = await self._collections.counters.find(
                {"_id": {"$in": threads}},
                {"last_seq": 1, RENUMBERED_FIELD: 1, GENERATION_FIELD: 1},
            ).to_list(None)
        by_id = {counter["_id"]: counter for counter in counters}
        held = {}
        for lookup in lookups:
            counter = by_id.get(lookup.thread_id)
            if counter is None:
                continue
            renumbered = _renumbered(counter)
            held[lookup.thread_id] = await self._holdings(lookup, counter, renumbered)
        return held

    async def _holdings(
        self, lookup: ImportLookup, counter: dict[str, Any], renumbered: bool
    ) -> ThreadHoldings:
        action = "looking up imported events"
        wanted = set(lookup.seqs)
        found: dict[int, dict[str, Any]] = {}
        for query in _lookup_filters(lookup):
            for record in await self._reader.find(query, ASCENDING, None, action):
                if record["seq"] in wanted or record.get("event_id") in lookup.event_ids:
                    found[record["seq"]] = record
        sources: dict[int, int] = {}
        if renumbered and lookup.sources and lookup.seqs:
            with translated(action):
                moved = await self._collections.events.find(
                    {"thread_id": lookup.thread_id, SOURCE_SEQ_FIELD: {"$in": sorted(wanted)}},
                    {"_id": 0, "seq": 1, SOURCE_SEQ_FIELD: 1},
                ).to_list(None)
            sources = {row["seq"]: row[SOURCE_SEQ_FIELD] for row in moved}
            missing = sorted(seq for seq in sources if seq not in found)
            if missing:
                query = {"thread_id": lookup.thread_id, "seq": {"$in": missing}}
                for record in await self._reader.find(query, ASCENDING, None, action):
                    found[record["seq"]] = record
            # Also the source seqs of the records found by seq or key: one of
            # them may be a renumbered event, which stands for its source seq.
            others = sorted(seq for seq in found if seq not in sources)
            if others:
                sources.update(await self._source_seqs(lookup.thread_id, others))
        return ThreadHoldings(
            int(counter.get("last_seq", 0)),
            renumbered,
            tuple(found[seq] for seq in sorted(found)),
            {seq: source for seq, source in sources.items() if seq in found},
        )

    async def _source_seqs(self, thread_id: str, seqs: list[int]) -> dict[int, int]:
        with translated("looking up imported events"):
            rows = await self._collections.events.find(
                {"thread_id": thread_id, "seq": {"$in": seqs}, SOURCE_SEQ_FIELD: {"$exists": True}},
                {"_id": 0, "seq": 1, SOURCE_SEQ_FIELD: 1},
            ).to_list(None)
        return {row["seq"]: row[SOURCE_SEQ_FIELD] for row in rows}

    async def import_chunk(
        self,
        thread_id: str,
        records: list[tuple[NewEvent, int]],
        renumber: bool,
        deployment: Deployment,
    ) -> StoredChunk:
        """Store one chunk of a thread atomically (see the module's docstring); the seq each got."""
        prepared = [
            self._writer.prepare(index, event, event.created_at or "", deployment)
            for index, (event, _) in enumerate(records)
        ]
        files = [file for item in prepared for file in item.files]
        chunks = [chunk for item in prepared for chunk in item.chunks]
        latest = latest_time(event.created_at or "" for event, _ in records)
        async with self._locks.hold([thread_id]):
            with translated("importing events"):
                await self._ensure_counter(thread_id)
                # Blobs first, as a writer does: they need no seq.
                await self._collections.blobs.insert(files, chunks, None)

            async def attempt(session: Any) -> list[int | None]:
                return await self._write_chunk(
                    thread_id, records, prepared, renumber, latest, session
                )

            stored: list[int | None] = []
            try:
                if deployment.transactions:
                    stored = await self._runner.run(
                        attempt, "importing events", deployment.transaction_lifetime_seconds
                    )
                else:
                    with translated("importing events"):
                        stored = await attempt(None)
            finally:
                if stored:
                    left_out = [p for p, seq in zip(prepared, stored, strict=True) if seq is None]
                else:  # the write failed: nothing of the chunk is stored
                    left_out = prepared
                await self._remove_blobs(thread_id, left_out)
        return StoredChunk(stored)

    async def _ensure_counter(self, thread_id: str) -> None:
        """Create the thread's counter if it has none, so that the chunk's updates need no upsert.

        An upsert that finds the document missing cannot be made conditional on
        the counter's value; and a lost upsert race aborts a transaction.
        """
        for attempt in (1, 2):
            try:
                await self._collections.counters.update_one(
                    {"_id": thread_id},
                    {"$setOnInsert": {"last_seq": 0, UPDATED_AT_FIELD: ""}},
                    upsert=True,
                )
                return
            except DuplicateKeyError:
                if attempt == 2:
                    raise

    async def _write_chunk(
        self,
        thread_id: str,
        records: list[tuple[NewEvent, int]],
        prepared: list[Prepared],
        renumber: bool,
        latest: str | None,
        session: Any,
    ) -> list[int | None]:
        """One attempt: leave out held keys, take the seqs on the counter, insert."""
        events = self._collections.events
        keys = [event.event_id for event, _ in records if event.event_id is not None]
        held: set[str] = set()
        if keys:
            found = await events.find(
                {
                    "thread_id": thread_id,
                    "_id": {"$in": [event_document_id(thread_id, key) for key in keys]},
                },
                {"_id": 0, "event_id": 1},
                session=session,
            ).to_list(None)
            held = {row["event_id"] for row in found}
        fresh = [
            position
            for position, (event, _) in enumerate(records)
            if event.event_id is None or event.event_id not in held
        ]
        stored: list[int | None] = [None] * len(records)
        if not fresh:
            return stored
        own = [records[position][1] for position in fresh]
        update: dict[str, Any] = {}
        if latest is not None:
            update["$max"] = {UPDATED_AT_FIELD: latest}
        if any(prepared[position].files for position in fresh):
            update["$set"] = {"has_blobs": True}
        # Each user's activity: the time of their latest event stored (not the import's).
        by_user: dict[str, list[str]] = {}
        for position in fresh:
            event = records[position][0]
            if event.user_id is not None:
                by_user.setdefault(event.user_id, []).append(event.created_at or "")
        if by_user:
            update["$addToSet"] = {USERS_FIELD: {"$each": list(by_user)}}
            for user, times in by_user.items():
                when = latest_time(times)
                if when is not None:
                    update.setdefault("$max", {})[user_activity_path(user)] = when
        counters = self._collections.counters
        seqs: list[int] | None = None
        if not renumber:
            kept = await counters.find_one_and_update(
                {"_id": thread_id, "last_seq": {"$lt": own[0]}},
                {**update, "$max": {**update.get("$max", {}), "last_seq": own[-1]}},
                session=session,
            )
            if kept is not None:
                seqs = own
        moved = seqs is None
        if seqs is None:
            counter = await counters.find_one_and_update(
                {"_id": thread_id},
                {**update, "$inc": {"last_seq": len(own)}},
                return_document=ReturnDocument.AFTER,
                session=session,
            )
            seqs, _ = chunk_seqs(counter["last_seq"] - len(own), own, True)
            if not _renumbered(counter):
                await counters.update_one(
                    {"_id": thread_id},
                    {"$set": {RENUMBERED_FIELD: counter.get(GENERATION_FIELD, 0)}},
                    session=session,
                )
        documents = []
        for position, seq in zip(fresh, seqs, strict=True):
            document = dict(prepared[position].document)
            document["seq"] = seq
            if moved:
                document[SOURCE_SEQ_FIELD] = records[position][1]
            documents.append(document)
            stored[position] = seq
        try:
            await events.insert_many(documents, ordered=session is not None, session=session)
        except BulkWriteError as exc:
            # Plain mode only: a key another process stored after the check.
            errors = exc.details.get("writeErrors", [])
            if session is not None or any(e.get("code") != DUPLICATE_KEY for e in errors):
                raise
            for error in errors:
                stored[fresh[error["index"]]] = None
        return stored

    async def _remove_blobs(self, thread_id: str, left_out: list[Prepared]) -> None:
        """Delete the blobs written for records not stored, so that none is left without its event."""
        file_ids = [file["_id"] for item in left_out for file in item.files]
        if file_ids:
            with translated("removing the blobs of records not imported"):
                await self._collections.blobs.delete(thread_id, file_ids, None)
