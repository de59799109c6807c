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
:data:`~.events.SOURCE_SEQ_FIELD`, which reads leave out and later imports look for.
"""

from __future__ import annotations

from pymongo.errors import BulkWriteError

from ..fields import EventFields, copy_fields
from ..importing import ImportLookup, StoredChunk, ThreadHoldings, chunk_seqs, latest_time
from ..records import StoredRecord
from . import counters, events
from .codec import DocumentBuilder, Prepared
from .compat import Document, Session
from .counters import ThreadLocks
from .driver_errors import DUPLICATE_KEY
from .events import SOURCE_SEQ_FIELD, SOURCE_SEQS_PROJECTION
from .setup import Collections, Deployment
from .transactions import Retrying


class Importer:
    """The import flow of one store."""

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

    async def look_up(self, lookups: list[ImportLookup]) -> dict[str, ThreadHoldings]:
        """What the collection holds of each looked-up thread: its counter and the matching events."""
        states = await counters.import_states(
            self._collections.counters, [lookup.thread_id for lookup in lookups]
        )
        return {
            lookup.thread_id: await self._holdings(lookup, state)
            for lookup in lookups
            if (state := states.get(lookup.thread_id)) is not None
        }

    async def _find(self, query: Document) -> list[StoredRecord]:
        return await events.find_records(self._collections.events, self._collections.blobs, query)

    async def _holdings(self, lookup: ImportLookup, state: counters.ImportState) -> ThreadHoldings:
        wanted = set(lookup.seqs)
        found: dict[int, StoredRecord] = {}
        for query in events.lookup_filters(lookup):
            for record in await self._find(query):
                if record["seq"] in wanted or record.get("event_id") in lookup.event_ids:
                    found[record["seq"]] = record
        sources: dict[int, int] = {}
        if state.renumbered and lookup.sources and lookup.seqs:
            sources = await self._source_seqs(lookup.thread_id, sorted(wanted), stored=False)
            missing = sorted(seq for seq in sources if seq not in found)
            if missing:
                for record in await self._find(
                    {"thread_id": lookup.thread_id, "seq": {"$in": missing}}
                ):
                    found[record["seq"]] = record
            # Also the source seqs of the records found by seq or key: one of
            # them may be a renumbered event, which stands for its source seq.
            others = sorted(seq for seq in found if seq not in sources)
            if others:
                sources.update(await self._source_seqs(lookup.thread_id, others, stored=True))
        return ThreadHoldings(
            state.last_seq,
            state.renumbered,
            tuple(found[seq] for seq in sorted(found)),
            {seq: source for seq, source in sources.items() if seq in found},
        )

    async def _source_seqs(
        self, thread_id: str, seqs: list[int], *, stored: bool
    ) -> dict[int, int]:
        rows = await self._collections.events.find(
            events.source_seqs_filter(thread_id, seqs, stored=stored), SOURCE_SEQS_PROJECTION
        ).to_list(None)
        return {row["seq"]: row[SOURCE_SEQ_FIELD] for row in rows}

    async def import_chunk(
        self,
        thread_id: str,
        records: list[tuple[EventFields, int]],
        renumber: bool,
        deployment: Deployment,
    ) -> StoredChunk:
        """Store one chunk of a thread atomically (see the module's docstring); the seq each got."""
        # Copies: the import's plan keeps comparing the records' fields.
        prepared = self._documents.prepare([copy_fields(event) for event, _ in records], deployment)
        files = [file for files in prepared.files.values() for file in files]
        chunks = [chunk for chunks in prepared.chunks.values() for chunk in chunks]
        stored: list[int | None] = []
        async with self._locks.hold([thread_id]):
            try:
                # The counter first, outside any transaction (see counters.ensure),
                # then the blobs, as a writer does: they need no seq.
                ensuring = self._retrying.attempts(
                    "importing events",
                    transactions=False,
                    transaction_lifetime_seconds=deployment.transaction_lifetime_seconds,
                )
                async for attempt in ensuring:
                    async with attempt:
                        await counters.ensure(self._collections.counters, thread_id)
                await self._collections.blobs.insert(files, chunks, None)
                attempts = self._retrying.attempts(
                    "importing events",
                    transactions=deployment.transactions,
                    transaction_lifetime_seconds=deployment.transaction_lifetime_seconds,
                )
                async for attempt in attempts:
                    async with attempt as session:
                        stored = await self._write_chunk(
                            thread_id, records, prepared, renumber, session
                        )
            finally:
                if stored:
                    left_out = [position for position, seq in enumerate(stored) if seq is None]
                else:  # the write failed: nothing of the chunk is stored
                    left_out = list(range(len(records)))
                await self._remove_blobs(thread_id, prepared, left_out)
        return StoredChunk(stored)

    async def _write_chunk(
        self,
        thread_id: str,
        records: list[tuple[EventFields, int]],
        prepared: Prepared,
        renumber: bool,
        session: Session | None,
    ) -> list[int | None]:
        """One attempt: leave out held keys, take the seqs on the counter, insert."""
        keys = [event["event_id"] for event, _ in records if "event_id" in event]
        held: set[str] = set()
        if keys:
            found = await self._collections.events.find(
                events.keys_filter(thread_id, keys), {"_id": 0, "event_id": 1}, session=session
            ).to_list(None)
            held = {row["event_id"] for row in found}
        fresh = [
            position
            for position, (event, _) in enumerate(records)
            if event.get("event_id") not in held
        ]
        stored: list[int | None] = [None] * len(records)
        if not fresh:
            return stored
        own = [records[position][1] for position in fresh]
        # Each user's activity: the time of their latest event stored (not the import's).
        by_user: dict[str, list[str]] = {}
        for position in fresh:
            event = records[position][0]
            if "user_id" in event:
                by_user.setdefault(event["user_id"], []).append(event["created_at"] or "")
        activity = counters.import_activity(
            latest_time(event["created_at"] or "" for event, _ in records),
            any(position in prepared.files for position in fresh),
            {user: latest_time(times) or "" for user, times in by_user.items()},
        )
        table = self._collections.counters
        moved = renumber or not await counters.keep_import_seqs(
            table, thread_id, own, activity, session
        )
        seqs = own
        if moved:
            before = await counters.renumber_import(table, thread_id, len(own), activity, session)
            seqs, _ = chunk_seqs(before, own, True)
        documents = []
        for position, seq in zip(fresh, seqs, strict=True):
            document = dict(prepared.documents[position])
            document["seq"] = seq
            if moved:
                document[SOURCE_SEQ_FIELD] = records[position][1]
            documents.append(document)
            stored[position] = seq
        try:
            await self._collections.events.insert_many(
                documents, ordered=session is not None, session=session
            )
        except BulkWriteError as exc:
            # Plain mode only: a key another process stored after the check.
            errors = exc.details.get("writeErrors", [])
            if session is not None or any(e.get("code") != DUPLICATE_KEY for e in errors):
                raise
            for error in errors:
                stored[fresh[error["index"]]] = None
        return stored

    async def _remove_blobs(self, thread_id: str, prepared: Prepared, left_out: list[int]) -> None:
        """Delete the blobs written for records not stored, so that none is left without its event."""
        file_ids = [
            file["_id"] for position in left_out for file in prepared.files.get(position, ())
        ]
        if file_ids:
            await self._collections.blobs.delete(thread_id, file_ids, None)
