"""The events collection: its indexes, every filter the store sends it, and reading records from it.

Every filter names the thread, so each read is served by one of the thread's
indexes and, on a cluster sharded by thread, goes to one shard. A document
the store wrote and marked is returned as it is; any other is validated, a
page at a time (:func:`~mongo_runevents.records.trust_marked`). Nothing here
translates driver errors (the store facade does).
"""

from __future__ import annotations

import re
from typing import Any, cast

from bson import Regex
from pymongo import ASCENDING, IndexModel

from ..importing import ImportLookup
from ..models import AI_REPLY_TYPES, HIDDEN_CALLER_PREFIX, MESSAGE_CATEGORY
from ..queries import EventCount, LastVisibleReplies, MessagePage, RunEvents, ThreadEvents
from ..records import StoredRecord, plain_stored_records, stored_records, trust_marked
from .blobs import Blobs, MissingBlobError
from .codec import EXPIRES_AT_FIELD, IDENTITY_FIELD, event_document_id, from_document
from .compat import Collection, Document, Session

#: Index names: by thread (unique seq), by thread and category, by thread and run,
#: by thread and message identity.
BY_SEQ, BY_CATEGORY, BY_RUN = "thread_seq", "thread_category_seq", "thread_run_seq"
BY_IDENTITY = "thread_identity_seq"

#: The indexes of the events collection: the two the interface's reads need,
#: the run index and the identity index. Every query and delete the store
#: sends names the thread and is served by one of them. Idempotency keys need
#: no index of their own: an event with an ``event_id`` gets a deterministic
#: ``_id`` (see :func:`~.codec.event_document_id`), so the ``_id`` index
#: refuses a second copy; blobs are found through the bucket's own indexes.
EVENT_INDEXES = (
    IndexModel([("thread_id", ASCENDING), ("seq", ASCENDING)], name=BY_SEQ, unique=True),
    IndexModel(
        [("thread_id", ASCENDING), ("category", ASCENDING), ("seq", ASCENDING)], name=BY_CATEGORY
    ),
    IndexModel([("thread_id", ASCENDING), ("run_id", ASCENDING), ("seq", ASCENDING)], name=BY_RUN),
    # Not partial (on messages only): SecantusDB's planner ignores a partial index for
    # an ``$in``, and a look-up must stay k index seeks. Traces get a null key.
    IndexModel(
        [("thread_id", ASCENDING), (IDENTITY_FIELD, ASCENDING), ("seq", ASCENDING)],
        name=BY_IDENTITY,
    ),
)

#: Indexes earlier versions created on the events collection, which no query
#: needs any more; set-up drops them (each cost every write an index update).
OBSOLETE_INDEXES = ("thread_run_blobs", "thread_event_id")

#: On an event an import stored under another seq than its own: its seq in the source.
SOURCE_SEQ_FIELD = "source_seq"

#: Fields never returned to callers (``source_seq`` is not a record field).
PROJECTION = {"_id": 0, EXPIRES_AT_FIELD: 0, IDENTITY_FIELD: 0, SOURCE_SEQ_FIELD: 0}

#: The largest first batch asked for; a reply is capped at 16 MiB anyway.
_MAX_BATCH = 100_000

#: How often a read is tried again when an event's blob vanished under it.
_MISSING_BLOB_ATTEMPTS = 3


# --- filters ------------------------------------------------------------------------


def owned(query: Document, user_id: str | None) -> Document:
    """``query`` restricted to one user's events when ``user_id`` is given."""
    if user_id is not None:
        query["user_id"] = user_id
    return query


def page_filter(query: MessagePage) -> Document:
    """The filter of a page of messages (of a thread, or of one run)."""
    found: Document = {"thread_id": query.thread_id}
    if query.run_id is not None:
        found["run_id"] = query.run_id
    found["category"] = MESSAGE_CATEGORY
    bounds: dict[str, int] = {}
    if query.after_seq is not None:
        bounds["$gt"] = query.after_seq
    if query.before_seq is not None:
        bounds["$lt"] = query.before_seq
    if bounds:
        found["seq"] = bounds
    return owned(found, query.user_id)


def run_filter(query: RunEvents) -> Document:
    """The filter of a run's events."""
    found = owned({"thread_id": query.thread_id, "run_id": query.run_id}, query.user_id)
    if query.event_types is not None:
        found["event_type"] = {"$in": list(query.event_types)}
    if query.task_id is not None:
        # A scalar match only: MongoDB would also match a list holding the
        # value, which the Memory store (and DeerFlow's stores) do not.
        found["metadata.task_id"] = {"$eq": query.task_id, "$not": {"$type": "array"}}
    if query.after_seq is not None:
        found["seq"] = {"$gt": query.after_seq}
    return found


def after_filter(query: ThreadEvents) -> Document:
    """The filter of a thread's events after a seq."""
    found = owned({"thread_id": query.thread_id, "seq": {"$gt": query.after_seq}}, query.user_id)
    if query.category is not None:
        found["category"] = query.category
    return found


def count_filter(query: EventCount) -> Document:
    """The filter of a count."""
    found: Document = {"thread_id": query.thread_id}
    if query.run_id is not None:
        found["run_id"] = query.run_id
    if query.category is not None:
        found["category"] = query.category
    return owned(found, query.user_id)


#: A visible reply's caller: anything but a string starting with the hidden
#: prefix. A list is visible whatever it holds (MongoDB's own matching would
#: look inside it; the Memory store, like DeerFlow's, does not).
_VISIBLE_CALLER = {
    "$or": [
        {"metadata.caller": {"$not": Regex(f"^{re.escape(HIDDEN_CALLER_PREFIX)}")}},
        {"metadata.caller": {"$type": "array"}},
    ]
}


def replies_filter(query: LastVisibleReplies) -> Document:
    """The filter of the visible AI replies of some runs."""
    return owned(
        {
            "thread_id": query.thread_id,
            "run_id": {"$in": list(query.run_ids)},
            "category": MESSAGE_CATEGORY,
            "event_type": {"$in": list(AI_REPLY_TYPES)},
            **_VISIBLE_CALLER,
        },
        query.user_id,
    )


def identities_filter(thread_id: str, identities: list[str], user_id: str | None) -> Document:
    """The messages of a thread with one of ``identities`` (only messages carry one)."""
    return owned({"thread_id": thread_id, IDENTITY_FIELD: {"$in": identities}}, user_id)


def keys_filter(thread_id: str, event_ids: list[str]) -> Document:
    """The events of a thread stored under one of ``event_ids`` (through the ``_id`` index)."""
    document_ids = [event_document_id(thread_id, event_id) for event_id in event_ids]
    return {"thread_id": thread_id, "_id": {"$in": document_ids}}


def of_type_filter(thread_id: str, run_id: str, event_type: str) -> Document:
    """A run's events of one type (``put_if_absent``'s look-up)."""
    return {"thread_id": thread_id, "run_id": run_id, "event_type": event_type}


def own_documents(documents: list[Document]) -> Document:
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


def lookup_filters(lookup: ImportLookup) -> list[Document]:
    """The finds of one thread that an import's ``lookup`` asks for, each one served by an index.

    Separate finds rather than one ``$or``: some servers (SecantusDB) scan the
    whole collection for an ``$or``.
    """
    thread = {"thread_id": lookup.thread_id}
    filters: list[Document] = []
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


def source_seqs_filter(thread_id: str, seqs: list[int], *, stored: bool) -> Document:
    """Renumbered imported events: by their source seq, or (``stored``) by their seq."""
    if stored:
        return {"thread_id": thread_id, "seq": {"$in": seqs}, SOURCE_SEQ_FIELD: {"$exists": True}}
    return {"thread_id": thread_id, SOURCE_SEQ_FIELD: {"$in": seqs}}


#: What a look-up of source seqs reads of each event.
SOURCE_SEQS_PROJECTION = {"_id": 0, "seq": 1, SOURCE_SEQ_FIELD: 1}


# --- reading records ----------------------------------------------------------------


async def records(
    documents: list[Document], blobs: Blobs, session: Session | None
) -> list[StoredRecord]:
    """Records from stored documents: marked ones as they are, the others validated.

    Documents this version wrote and marked are records already
    (:func:`~mongo_runevents.records.trust_marked`). The others are validated
    together, in one call; if that fails (escaped keys or out-of-line fields:
    fields records have not), they are restored, their out-of-line fields read
    back in, and validated again.
    """
    # The same list, its documents made records: in place by trust_marked, by assignment below.
    found = cast("list[StoredRecord]", documents)
    untrusted = trust_marked(documents)
    if not untrusted:
        return found
    checked = [documents[position] for position in untrusted]
    validated = plain_stored_records(checked)
    if validated is None:
        await blobs.fill(checked, session)
        validated = stored_records([from_document(document) for document in checked])
    for position, record in zip(untrusted, validated, strict=True):
        found[position] = record
    return found


async def find_records(
    events: Collection,
    blobs: Blobs,
    query: Document,
    sort: int = ASCENDING,
    limit: int | None = None,
    session: Session | None = None,
) -> list[StoredRecord]:
    """Run one find, sorted by seq, and return validated records."""
    options: Document = {"sort": [("seq", sort)]}
    if limit is not None:
        # The whole page in the first reply: no getMore round trip. (The
        # driver overflows past 2**31 with both set; replies cap at 16 MiB
        # anyway.)
        options.update(limit=limit, batch_size=min(limit, _MAX_BATCH))
    for attempt in range(1, _MISSING_BLOB_ATTEMPTS + 1):
        documents = await events.find(query, PROJECTION, session=session, **options).to_list(None)
        try:
            return await records(documents, blobs, session)
        except MissingBlobError:
            # Its event was deleted (or expired) while this read ran. Read
            # again; the event is gone now. In a transaction the snapshot
            # cannot change, so do not retry.
            if session is not None or attempt == _MISSING_BLOB_ATTEMPTS:
                raise
    raise AssertionError("unreachable")  # pragma: no cover
