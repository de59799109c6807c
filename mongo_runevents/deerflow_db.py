"""DeerFlow's SQL store, read directly: its ``run_events`` rows and its thread owners.

DeerFlow keeps its application tables in one database (SQLite by default,
``{sqlite_dir}/deerflow.db``, or PostgreSQL): ``run_events`` (the events of
its ``DbRunEventStore``) and ``threads_meta`` (one row per thread, with the
``user_id`` that owns it). This module reads both, read-only, so that
``import`` and ``verify`` need no export step:

- ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db`` (SQLAlchemy's
  spelling, ``sqlite+aiosqlite:`` too), through the standard library;
- ``postgresql://user:password@host:port/database`` (``postgres:``,
  ``postgresql+asyncpg:``, ``postgresql+psycopg:`` too), through ``psycopg``,
  an optional extra (``pip install 'mongo-runevents[postgres]'``).

Rows come out as dicts with DeerFlow's column names; turning them into
records is :func:`mongo_runevents.formats.deerflow_db_record`'s job.
"""

from __future__ import annotations

import importlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from .formats import BadLine, SourceError, SourceRecord, check_record, deerflow_db_record

#: The columns of DeerFlow's ``run_events`` read (its own ``id`` identifies a row in messages).
RUN_EVENT_COLUMNS = (
    "id",
    "thread_id",
    "run_id",
    "user_id",
    "event_type",
    "category",
    "content",
    "event_metadata",
    "seq",
    "created_at",
)
_SELECT_ROWS = f"SELECT {', '.join(RUN_EVENT_COLUMNS)} FROM run_events ORDER BY thread_id, seq, id"
_SELECT_OWNERS = "SELECT thread_id, user_id FROM threads_meta WHERE user_id IS NOT NULL"
#: Rows fetched per round trip.
_FETCH = 2000


def masked(url: str) -> str:
    """``url`` without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host += f":{parts.port}"
    netloc = f"{parts.username}:***@{host}" if parts.username else f"***@{host}"
    return urlunsplit(parts._replace(netloc=netloc))


def _scheme(url: str) -> str:
    return url.split(":", 1)[0].split("+", 1)[0].lower()


class DeerFlowDatabase:
    """An open, read-only connection to DeerFlow's database."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.label = f"{masked(url)} run_events"
        scheme = _scheme(url)
        if scheme == "sqlite":
            self._connection: Any = _open_sqlite(url)
            self._postgres = False
        elif scheme in ("postgresql", "postgres"):
            self._connection = _open_postgres(url)
            self._postgres = True
        else:
            raise SourceError(f"{masked(url)}: not a sqlite:/// or postgresql:// URL")

    def rows(self) -> Iterator[dict[str, Any]]:
        """Every row of ``run_events``, by thread and seq, a few thousand in memory at a time."""
        if self._postgres:
            # A server-side cursor, so that a large table is not loaded whole.
            cursor = self._connection.cursor(name="mongo_runevents_rows")
            cursor.itersize = _FETCH
        else:
            cursor = self._connection.cursor()
        try:
            cursor.execute(_SELECT_ROWS)
        except Exception as exc:
            raise SourceError(
                f"{masked(self.url)}: cannot read DeerFlow's run_events table ({exc})"
            ) from None
        try:
            while True:
                batch = cursor.fetchmany(_FETCH)
                if not batch:
                    return
                for row in batch:
                    yield dict(zip(RUN_EVENT_COLUMNS, row, strict=True))
        finally:
            cursor.close()

    def owners(self) -> dict[str, str]:
        """The owner of each thread, from ``threads_meta`` (``{}`` when the table is missing)."""
        cursor = self._connection.cursor()
        try:
            cursor.execute(_SELECT_OWNERS)
            return {str(thread_id): str(user_id) for thread_id, user_id in cursor.fetchall()}
        except Exception:
            if self._postgres:
                self._connection.rollback()
            return {}
        finally:
            cursor.close()

    def close(self) -> None:
        self._connection.close()

    def __enter__(self) -> DeerFlowDatabase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def sqlite_path(url: str) -> Path:
    """The file of a ``sqlite:///...`` URL: three slashes a relative path, four an absolute one."""
    rest = url.split(":", 1)[1]
    if not rest.startswith("///"):
        raise SourceError(
            f"{url}: a SQLite URL is sqlite:///relative/path.db or sqlite:////absolute/path.db"
        )
    path = rest[3:].split("?", 1)[0]
    if not path or path == ":memory:":
        raise SourceError(f"{url}: names no database file")
    return Path(path)


def _open_sqlite(url: str) -> sqlite3.Connection:
    path = sqlite_path(url)
    if not path.is_file():
        raise SourceError(f"{url}: no such database file ({path})")
    # Read-only: an import or a check never changes DeerFlow's database.
    connection = sqlite3.connect(f"file:{quote(str(path.resolve()))}?mode=ro", uri=True)
    try:
        connection.execute("SELECT 1 FROM run_events LIMIT 1")
    except sqlite3.DatabaseError as exc:
        connection.close()
        raise SourceError(f"{url}: not DeerFlow's database ({exc})") from None
    return connection


def postgres_conninfo(url: str) -> str:
    """The libpq URL of a SQLAlchemy one: ``postgresql+asyncpg://`` and ``postgres://`` become ``postgresql://``."""
    scheme, rest = url.split(":", 1)
    if _scheme(scheme) not in ("postgresql", "postgres"):
        raise SourceError(f"{masked(url)}: not a postgresql:// URL")
    return "postgresql:" + rest


def _psycopg() -> Any:
    """The PostgreSQL driver (an optional extra, typed or not, installed or not)."""
    return importlib.import_module("psycopg")


def _open_postgres(url: str) -> Any:
    try:
        psycopg = _psycopg()
    except ImportError:
        raise SourceError(
            "reading PostgreSQL needs psycopg: pip install 'mongo-runevents[postgres]'"
        ) from None
    try:
        connection = psycopg.connect(postgres_conninfo(url), autocommit=False)
        connection.read_only = True
    except psycopg.Error as exc:
        raise SourceError(f"{masked(url)}: cannot connect ({exc})") from None
    return connection


def read_database(database: DeerFlowDatabase) -> Iterator[SourceRecord | BadLine]:
    """The rows of ``run_events`` as records (as DeerFlow returns them), or bad rows, by row id."""
    for row in database.rows():
        where = int(row["id"]) if isinstance(row.get("id"), int) else 0
        try:
            record = check_record(deerflow_db_record(row))
        except ValueError as exc:
            yield BadLine(database.label, where, str(exc))
            continue
        yield SourceRecord(database.label, where, record)
