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


def encode_field(value: Any) -> bytes:
    """A stored field value as blob bytes (compact JSON, UTF-8)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


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
