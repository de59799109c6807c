"""DeerFlow's stores on disk, written the way its code writes them (f1f4af99b), for migration tests.

- :func:`write_jsonl_store`: ``JsonlRunEventStore``: ``threads/<thread>/runs/<run>.jsonl``,
  each ``put_batch`` appended to the file of its first event's run (so seeds of
  several runs share one file), ``json.dumps(record, default=str, ensure_ascii=False)``.
- :func:`write_sqlite_store`: ``DbRunEventStore`` on SQLite through SQLAlchemy:
  the ``run_events`` and ``threads_meta`` tables of its models; a content that
  is not a string stored as JSON text with ``content_is_json`` (and
  ``content_is_dict``) in the metadata; ``created_at`` as SQLAlchemy writes a
  ``DateTime`` to SQLite (``2026-12-06 15:46:37.481681``, its offset dropped).
- :func:`deerflow_db_reads_back`: what ``DbRunEventStore._row_to_dict`` returns
  for a written event (the comparison the tests make).
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

RUN_EVENTS_DDL = """
CREATE TABLE run_events (
    id INTEGER NOT NULL PRIMARY KEY,
    thread_id VARCHAR(64) NOT NULL,
    run_id VARCHAR(64) NOT NULL,
    user_id VARCHAR(64),
    event_type VARCHAR(128) NOT NULL,
    category VARCHAR(64) NOT NULL,
    content TEXT,
    event_metadata JSON,
    seq INTEGER NOT NULL,
    created_at DATETIME,
    CONSTRAINT uq_events_thread_seq UNIQUE (thread_id, seq)
)
"""
THREADS_META_DDL = """
CREATE TABLE threads_meta (
    thread_id VARCHAR(64) NOT NULL PRIMARY KEY,
    assistant_id VARCHAR(128),
    user_id VARCHAR(64),
    display_name VARCHAR(256),
    status VARCHAR(20) NOT NULL,
    metadata_json JSON NOT NULL,
    created_at DATETIME NOT NULL,
    updated_at DATETIME NOT NULL
)
"""


def write_jsonl_store(base: Path, batches: list[list[dict[str, Any]]]) -> dict[str, int]:
    """Write ``put_batch`` calls as DeerFlow's JSONL store does; the last seq of each thread."""
    last: dict[str, int] = {}
    for batch in batches:
        thread_id = batch[0]["thread_id"]
        lines = []
        for event in batch:
            last[thread_id] = last.get(thread_id, 0) + 1
            record = {
                "thread_id": thread_id,
                "run_id": event["run_id"],
                "event_type": event["event_type"],
                "category": event["category"],
                "content": event.get("content", ""),
                "metadata": event.get("metadata") or {},
                "seq": last[thread_id],
                "created_at": event["created_at"],
            }
            lines.append(json.dumps(record, default=str, ensure_ascii=False) + "\n")
        path = base / "threads" / thread_id / "runs" / f"{batch[0]['run_id']}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as file:
            file.write("".join(lines))
    return last


def _sqlalchemy_sqlite_time(created_at: str) -> str:
    """How SQLAlchemy's SQLite ``DateTime`` stores ``datetime.fromisoformat(created_at)``.

    DeerFlow runs on Python 3.12, whose ``fromisoformat`` takes any number of
    fraction digits and a ``Z``; Python 3.10's takes 3 or 6 and no ``Z``, so
    the text is brought to that form first.
    """
    padded = re.sub(r"\.(\d{1,6})", lambda m: "." + m[1].ljust(6, "0"), created_at, count=1)
    moment = datetime.fromisoformat(re.sub(r"Z$", "+00:00", padded))
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")


def _content_to_db(content: Any, metadata: dict[str, Any] | None) -> tuple[str, dict[str, Any]]:
    metadata = metadata or {}
    if isinstance(content, str):
        return content, metadata
    metadata = {**metadata, "content_is_json": True}
    if isinstance(content, dict):
        metadata["content_is_dict"] = True
    return json.dumps(content, default=str, ensure_ascii=False), metadata


def write_sqlite_store(
    path: Path, events: list[dict[str, Any]], owners: Mapping[str, str | None]
) -> list[dict[str, Any]]:
    """DeerFlow's database with ``events`` (numbered per thread) and ``owners``; the rows' events."""
    connection = sqlite3.connect(path)
    connection.execute(RUN_EVENTS_DDL)
    connection.execute(THREADS_META_DDL)
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")
    for thread_id, user_id in owners.items():
        connection.execute(
            "INSERT INTO threads_meta VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (thread_id, "lead_agent", user_id, None, "idle", "{}", now, now),
        )
    last: dict[str, int] = {}
    written = []
    for event in events:
        thread_id = event["thread_id"]
        last[thread_id] = last.get(thread_id, 0) + 1
        content, metadata = _content_to_db(event.get("content", ""), event.get("metadata"))
        connection.execute(
            "INSERT INTO run_events (thread_id, run_id, user_id, event_type, category, content, "
            "event_metadata, seq, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                thread_id,
                event["run_id"],
                event.get("user_id"),
                event["event_type"],
                event["category"],
                content,
                json.dumps(metadata, ensure_ascii=False),
                last[thread_id],
                _sqlalchemy_sqlite_time(event["created_at"]),
            ),
        )
        written.append({**event, "seq": last[thread_id]})
    connection.commit()
    connection.close()
    return written


def deerflow_db_reads_back(event: dict[str, Any]) -> dict[str, Any]:
    """What DeerFlow's ``DbRunEventStore`` returns for ``event`` stored in SQLite (user_id aside)."""
    content, metadata = _content_to_db(event.get("content", ""), event.get("metadata"))
    if metadata.get("content_is_json") or metadata.get("content_is_dict"):
        content = json.loads(content)
    # SQLite drops the offset; DeerFlow's coerce_iso takes the naive time as UTC.
    naive = datetime.strptime(_sqlalchemy_sqlite_time(event["created_at"]), "%Y-%m-%d %H:%M:%S.%f")
    return {
        "thread_id": event["thread_id"],
        "run_id": event["run_id"],
        "event_type": event["event_type"],
        "category": event["category"],
        "content": content,
        "metadata": metadata,
        "seq": event["seq"],
        "created_at": naive.replace(tzinfo=timezone.utc).isoformat(),
    }
