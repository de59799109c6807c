"""Out-of-line storage for event fields too large for one MongoDB document.

A ``run.end`` event carries the whole final state of a thread and can pass the
16 MiB document limit. Such a field (content first, then metadata if still
needed) is moved into a GridFS bucket beside the events collection
(``<events>_blobs.files`` / ``<events>_blobs.chunks``), and the event document
keeps a reference: ``blobs: {"content": <file id>}``. The documents follow the
GridFS layout, so GridFS tools can read them, but the store writes them itself
rather than through pymongo's ``GridFSBucket``, which refuses to run inside a
transaction: this way blobs are written and deleted in the same transaction
as their event, so a failed batch leaves no orphan blob and a reader never
sees an event whose blob is missing. Chunks and files also carry the thread
id, so that they can be sharded with their events.

The blob is the field's JSON text (UTF-8), in its stored form (keys escaped as
in the event document), so reading it back fills the document exactly as if
the field had been stored inline.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from bson import Binary, ObjectId
from pymongo import ASCENDING, IndexModel

from ..errors import StorageError
from .compat import Collection, Document, Session

#: GridFS chunk size used for blobs (GridFS allows any; 4 MiB keeps chunks few).
CHUNK_BYTES = 4 * 1024 * 1024

#: The field of an event document that references its out-of-line fields.
BLOBS_FIELD = "blobs"

FILES_INDEXES = (
    IndexModel([("filename", ASCENDING), ("uploadDate", ASCENDING)], name="filename_uploadDate"),
    IndexModel(
        [("metadata.thread_id", ASCENDING), ("metadata.run_id", ASCENDING)], name="thread_run"
    ),
)
CHUNKS_INDEXES = (
    IndexModel([("files_id", ASCENDING), ("n", ASCENDING)], name="files_id_n", unique=True),
    IndexModel([("thread_id", ASCENDING), ("files_id", ASCENDING)], name="thread_files_id"),
)


class MissingBlobError(StorageError):
    """An event's out-of-line field is gone: the event was deleted or expired while being read.

    Retryable: a new read will not find that event any more (reads retry it
    themselves, see :mod:`.events`).
    """


def encode_field(value: Any) -> bytes:
    """A stored field value as blob bytes (compact JSON, UTF-8)."""
    # NaN and the infinities are kept (as json keeps them), like inline fields.
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def decode_field(data: bytes) -> Any:
    """The field value a blob holds."""
    return json.loads(data.decode())


def blob_documents(
    data: bytes, *, thread_id: str, run_id: str, field: str
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The GridFS ``files`` document and ``chunks`` documents holding ``data``."""
    file_id = ObjectId()
    file_document = {
        "_id": file_id,
        "length": len(data),
        "chunkSize": CHUNK_BYTES,
        "uploadDate": datetime.now(timezone.utc),
        "filename": f"{thread_id}/{run_id}/{field}",
        "metadata": {"thread_id": thread_id, "run_id": run_id, "field": field},
    }
    chunks = [
        {
            "files_id": file_id,
            "n": number,
            "thread_id": thread_id,
            "data": Binary(data[start : start + CHUNK_BYTES]),
        }
        for number, start in enumerate(range(0, max(len(data), 1), CHUNK_BYTES))
    ]
    return file_document, chunks


def assemble(chunks: list[dict[str, Any]]) -> dict[ObjectId, bytes]:
    """Blob bytes by file id, from chunk documents sorted by (files_id, n)."""
    parts: dict[ObjectId, list[bytes]] = {}
    for chunk in chunks:
        parts.setdefault(chunk["files_id"], []).append(bytes(chunk["data"]))
    return {file_id: b"".join(pieces) for file_id, pieces in parts.items()}


class Blobs:
    """The bucket of one events collection: writes, reads and deletes of out-of-line fields.

    Every method takes the session of the caller's transaction (or ``None``),
    so blobs are written and deleted together with their events.
    """

    def __init__(self, files: Collection, chunks: Collection) -> None:
        self.files = files
        self.chunks = chunks

    async def create_indexes(self) -> None:
        """The bucket's indexes (GridFS's own, plus look-ups by thread)."""
        await self.files.create_indexes(list(FILES_INDEXES))
        await self.chunks.create_indexes(list(CHUNKS_INDEXES))

    async def insert(
        self, files: list[Document], chunks: list[Document], session: Session | None
    ) -> None:
        """Store blobs: chunks first, so a ``files`` document never names missing chunks."""
        if files:
            await self.chunks.insert_many(chunks, ordered=True, session=session)
            await self.files.insert_many(files, ordered=True, session=session)

    async def file_ids(self, thread_id: str, run_id: str) -> list[Any]:
        """The ids of a run's blobs (the ``files`` collection's (thread, run) index)."""
        rows = await self.files.find(
            {"metadata.thread_id": thread_id, "metadata.run_id": run_id}, {"_id": 1}
        ).to_list(None)
        return [row["_id"] for row in rows]

    async def sizes(
        self, thread_id: str, file_ids: list[Any], session: Session | None
    ) -> dict[Any, int]:
        """The length in bytes of each blob of a thread, from its ``files`` document."""
        rows = await self.files.find(
            {"metadata.thread_id": thread_id, "_id": {"$in": file_ids}},
            {"length": 1},
            session=session,
        ).to_list(None)
        return {row["_id"]: row["length"] for row in rows}

    async def fill(self, documents: list[Document], session: Session | None) -> None:
        """Put the out-of-line fields of event documents (all of one thread) back in place.

        Raises :class:`MissingBlobError` (retryable) if a blob is missing: its event
        was deleted or expired while it was being read, and a new read will
        not find that event any more.
        """
        file_ids = [
            file_id for document in documents for file_id in document.get(BLOBS_FIELD, {}).values()
        ]
        if not file_ids:
            return
        chunks = await self.chunks.find(
            {"thread_id": documents[0]["thread_id"], "files_id": {"$in": file_ids}},
            sort=[("files_id", ASCENDING), ("n", ASCENDING)],
            session=session,
        ).to_list(None)
        blobs = assemble(chunks)
        for document in documents:
            for field, file_id in document.pop(BLOBS_FIELD, {}).items():
                if file_id not in blobs:
                    raise MissingBlobError(
                        f"the out-of-line {field} of seq {document['seq']} of thread "
                        f"{document['thread_id']!r} is missing",
                        retryable=True,
                    )
                document[field] = decode_field(blobs[file_id])

    async def delete(
        self, thread_id: Any, file_ids: list[Any] | None, session: Session | None
    ) -> None:
        """Delete blobs of ``thread_id`` (a value or a query): those in ``file_ids``, or all."""
        chunks: dict[str, Any] = {"thread_id": thread_id}
        files: dict[str, Any] = {"metadata.thread_id": thread_id}
        if file_ids is not None:
            chunks["files_id"] = {"$in": file_ids}
            files["_id"] = {"$in": file_ids}
        await self.files.delete_many(files, session=session)
        await self.chunks.delete_many(chunks, session=session)
