"""The records an ``import`` read, kept in a temporary SQLite file in the import's stable order.

``import`` reads every source first (so that a bad line can stop it before
anything is written, and so that standard input works like a file), then
imports thread by thread in the order (thread, seq, ``created_at``, file,
line): each ``import_events`` call holds whole threads, so its decisions about
conflicts and renumbering are those for the whole thread, whatever order the
files had. Memory holds one call's records at a time; the rest is on disk.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .importing import time_key

#: Rows written to SQLite per ``executemany``.
_CHUNK = 2000


@dataclass(frozen=True)
class Staged:
    """A record read from a source: which file (its index) and line, and the record."""

    source: int
    line: int
    record: dict[str, Any]
    size: int


class Stage:
    """A temporary SQLite table of records, read back in the stable order."""

    def __init__(self, folder: Path) -> None:
        self._db = sqlite3.connect(folder / "import.sqlite3")
        self._db.execute("PRAGMA journal_mode = OFF")
        self._db.execute("PRAGMA synchronous = OFF")
        self._db.execute(
            "CREATE TABLE records (thread_id TEXT, seq INTEGER, time_key INTEGER, "
            "time_text TEXT, source INTEGER, line INTEGER, record TEXT)"
        )
        self._pending: list[tuple[Any, ...]] = []
        self.count = 0
        self.size = 0

    def add(self, source: int, line: int, record: dict[str, Any]) -> int:
        """Keep ``record`` (read at ``line`` of source number ``source``); its size as staged."""
        text = json.dumps(record, ensure_ascii=False)
        key, time_text = time_key(str(record.get("created_at") or ""))
        self._pending.append(
            (record["thread_id"], record["seq"], key, time_text, source, line, text)
        )
        self.count += 1
        self.size += len(text)
        if len(self._pending) >= _CHUNK:
            self._flush()
        return len(text)

    def _flush(self) -> None:
        self._db.executemany("INSERT INTO records VALUES (?, ?, ?, ?, ?, ?, ?)", self._pending)
        self._pending.clear()

    def batches(self, size: int) -> Iterator[list[Staged]]:
        """The records in the stable order, in batches of whole threads of about ``size`` records.

        A thread is never split: one larger than ``size`` is a batch of its own.
        """
        self._flush()
        rows = self._db.execute(
            "SELECT thread_id, source, line, record FROM records "
            "ORDER BY thread_id, seq, time_key, time_text, source, line"
        )
        batch: list[Staged] = []
        thread: list[Staged] = []
        current: str | None = None
        for thread_id, source, line, text in rows:
            if thread_id != current:
                batch += thread
                thread = []
                current = thread_id
                if len(batch) >= size:
                    yield batch
                    batch = []
            thread.append(Staged(source, line, json.loads(text), len(text)))
            if len(batch) + len(thread) > size and batch:
                # This thread grows past the batch: send what precedes it first.
                yield batch
                batch = []
        batch += thread
        if batch:
            yield batch

    def close(self) -> None:
        """Close the SQLite file (the caller removes its folder)."""
        self._db.close()
