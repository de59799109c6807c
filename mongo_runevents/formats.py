"""The formats ``import`` reads: each line (or row) of a file turned into a record, or a bad line.

Three formats:

- ``jsonl``: what ``mongo-runevents export`` writes, one stored record per
  line. Every key must be a record field; an unknown key makes the line bad.
- ``deerflow-jsonl``: DeerFlow's JSONL store, a folder holding
  ``threads/<thread_id>/runs/<run_id>.jsonl``. Each line holds ``event_type``,
  ``category``, ``content``, ``metadata``, ``seq`` and ``created_at``;
  ``thread_id`` and ``run_id`` come from the path when the line lacks them.
  The line's ``thread_id`` must agree with its folder; its ``run_id`` may
  differ from the file's name: DeerFlow writes a batch to the file of its
  first event's run, so branch and checkpoint seeds of several runs share a
  file, and DeerFlow reads them back with their own ``run_id``.
- ``deerflow-db``: DeerFlow's SQL store, read directly (``sqlite:///path``,
  ``postgresql://...``: its ``run_events`` table, see :mod:`.deerflow_db`) or
  as rows dumped to JSON Lines or one JSON array. Each row becomes what
  DeerFlow's ``DbRunEventStore`` returns for it: ``content`` decoded from
  JSON only when ``metadata`` says ``content_is_json`` (or
  ``content_is_dict``), any other content kept as stored; ``created_at`` as
  DeerFlow serves it (UTC, ISO-8601 with ``T`` and offset: SQLite's
  ``2026-12-06 15:46:37.481681`` becomes ``2026-12-06T15:46:37.481681+00:00``);
  ``metadata`` may be named ``event_metadata`` and may be a JSON string.

Which files a source holds, and its owners: :mod:`mongo_runevents.transfer`.

The DeerFlow readers take the record fields they know and ignore other keys
(a row's own ``id``, for instance). Every reader yields, in file order, a
:class:`SourceRecord` whose record passed the same validation as
``import_events`` (:func:`mongo_runevents.models.imported_event`), or a
:class:`BadLine` saying which line of which file is wrong and why. A problem
with the whole source (a missing path, a folder without ``threads/``) raises
:class:`SourceError`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NamedTuple, TypeAlias

from .errors import InvalidEventError
from .models import RECORD_FIELDS, imported_event
from .times import utc_moment

#: The formats ``import`` reads; ``auto`` picks one from the path (:func:`mongo_runevents.transfer.detect_format`).
FORMATS = ("auto", "jsonl", "deerflow-jsonl", "deerflow-db")

#: Where DeerFlow's JSONL store keeps the events of a run, below its base folder.
DEERFLOW_LAYOUT = "threads/<thread_id>/runs/<run_id>.jsonl"


class SourceError(Exception):
    """The source as a whole cannot be read: a missing path, or not the layout its format needs."""


class SourceRecord(NamedTuple):
    """A valid record and where it was read: ``(source_label, line_number, record_dict)``."""

    source: str
    line_number: int
    record: dict[str, Any]


@dataclass(frozen=True)
class SourcePosition:
    """Where a record was read: its file (or database, or ``<stdin>``) and line (or row)."""

    source: str
    line: int

    def __str__(self) -> str:
        return f"{self.source}:{self.line}"


@dataclass(frozen=True)
class BadLine:
    """A line that holds no valid record, and why."""

    path: str
    line_number: int
    reason: str

    @property
    def position(self) -> SourcePosition:
        """Where the line is."""
        return SourcePosition(self.path, self.line_number)

    def __str__(self) -> str:
        return f"{self.path}:{self.line_number}: {self.reason}"


#: What a reader yields.
Item: TypeAlias = SourceRecord | BadLine


def deerflow_ids(path: Path) -> tuple[str, str]:
    """The (thread_id, run_id) of a DeerFlow run file ``.../threads/<thread_id>/runs/<run_id>.jsonl``."""
    parts = path.parts
    if len(parts) < 4 or parts[-4] != "threads" or parts[-2] != "runs" or path.suffix != ".jsonl":
        raise SourceError(f"{path} is not a DeerFlow run file ({DEERFLOW_LAYOUT})")
    return parts[-3], path.name[: -len(".jsonl")]


# --- reading ---------------------------------------------------------------------------


def read_file(path: Path, fmt: str) -> Iterator[Item]:
    """The records and bad lines of one file in format ``fmt`` (not ``auto``), in file order."""
    if fmt == "jsonl":
        return read_jsonl(path)
    if fmt == "deerflow-jsonl":
        return read_deerflow_run(path)
    if fmt == "deerflow-db":
        return read_deerflow_rows(path)
    raise ValueError(f"unknown format {fmt!r}")


def read_jsonl(path: Path) -> Iterator[Item]:
    """Records as ``export`` writes them, one per line."""
    return _read_lines(path, exported_record)


def read_deerflow_run(path: Path) -> Iterator[Item]:
    """The lines of one DeerFlow run file, with thread and run ids taken from its path."""
    thread_id, run_id = deerflow_ids(path)
    return _read_lines(path, lambda value: deerflow_jsonl_record(value, thread_id, run_id))


def read_deerflow_rows(path: Path) -> Iterator[Item]:
    """DeerFlow SQL rows: a JSON array, or JSON Lines, told apart by the first character."""
    with path.open("rb") as file:
        head = file.read(4096)
    if head.removeprefix(b"\xef\xbb\xbf").lstrip().startswith(b"["):
        return _read_array(path, deerflow_db_record)
    return _read_lines(path, deerflow_db_record)


def _read_lines(path: Path, convert: Callable[[Any], dict[str, Any]]) -> Iterator[Item]:
    """Each non-blank line of ``path`` parsed as JSON, converted and validated."""
    label = str(path)
    with path.open("rb") as file:
        for number, raw in enumerate(file, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield BadLine(label, number, f"not valid UTF-8 ({exc.reason} at byte {exc.start})")
                continue
            if number == 1:
                text = text.removeprefix("\ufeff")
            if not text.strip():
                continue
            try:
                value = json.loads(text)
            except (ValueError, RecursionError) as exc:
                yield BadLine(label, number, f"not valid JSON ({json_problem(exc)})")
                continue
            try:
                record = check_record(convert(value))
            except ValueError as exc:
                yield BadLine(label, number, str(exc))
                continue
            yield SourceRecord(label, number, record)


def _read_array(path: Path, convert: Callable[[Any], dict[str, Any]]) -> Iterator[Item]:
    """The elements of a JSON array file, each with the line it starts on.

    A syntax error in the array ends the reading with one bad line: where the
    next element starts cannot be told reliably after it.
    """
    label = str(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SourceError(f"{path} is not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
    decoder = json.JSONDecoder()
    position = _skip_whitespace(text, 0) + 1  # past the "["
    line, counted_to = 1, 0
    while True:
        position = _skip_whitespace(text, position)
        line += text.count("\n", counted_to, position)
        counted_to = position
        if text.startswith("]", position):
            return
        try:
            value, position = decoder.raw_decode(text, position)
        except (ValueError, RecursionError) as exc:
            yield BadLine(
                label, line, f"not valid JSON ({json_problem(exc)}); the rest is not read"
            )
            return
        try:
            item: Item = SourceRecord(label, line, check_record(convert(value)))
        except ValueError as exc:
            item = BadLine(label, line, str(exc))
        yield item
        position = _skip_whitespace(text, position)
        if text.startswith(",", position):
            position += 1
        elif not text.startswith("]", position):
            line += text.count("\n", counted_to, position)
            yield BadLine(label, line, "expected ',' or ']' after an element; the rest is not read")
            return


def _skip_whitespace(text: str, position: int) -> int:
    """The first position at or after ``position`` that is not JSON whitespace."""
    while position < len(text) and text[position] in " \t\r\n":
        position += 1
    return position


def json_problem(exc: BaseException) -> str:
    if isinstance(exc, json.JSONDecodeError):
        # Some messages end with "at" already ("Unterminated string starting at").
        at = "" if exc.msg.endswith(" at") else " at"
        return f"{exc.msg}{at} column {exc.colno}"
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    return str(exc)


# --- turning a parsed line into a record ----------------------------------------------


def check_record(record: dict[str, Any]) -> dict[str, Any]:
    """``record`` unchanged if ``import_events`` would accept it, else ``ValueError`` saying why."""
    try:
        imported_event(record, 0)
    except InvalidEventError as exc:
        raise ValueError(f"{exc.field}: {exc.reason}" if exc.field else exc.reason) from None
    return record


def exported_record(value: Any) -> dict[str, Any]:
    """A line of the ``jsonl`` format: the record as it is."""
    if not isinstance(value, dict):
        raise ValueError(f"a record must be a JSON object, got {_json_type(value)}")
    return value


def deerflow_jsonl_record(value: Any, thread_id: str, run_id: str) -> dict[str, Any]:
    """A line of a DeerFlow run file, completed with the ids its path gives.

    Its ``thread_id``, if any, must be the folder's; its ``run_id`` is its own
    (a seed of another run written into this run's file keeps it).
    """
    if not isinstance(value, dict):
        raise ValueError(f"a record must be a JSON object, got {_json_type(value)}")
    record = {name: value[name] for name in RECORD_FIELDS if name in value}
    given = record.get("thread_id")
    if given is None:
        record["thread_id"] = thread_id
    elif given != thread_id:
        raise ValueError(f"thread_id: {given!r} does not match the file's folder ({thread_id!r})")
    if record.get("run_id") is None:
        record["run_id"] = run_id
    return record


def deerflow_db_record(row: Any) -> dict[str, Any]:
    """A row of DeerFlow's SQL store as its ``DbRunEventStore`` returns it (read its ``_row_to_dict``)."""
    if not isinstance(row, dict):
        raise ValueError(f"a row must be a JSON object, got {_json_type(row)}")
    record = {
        name: row[name]
        for name in ("thread_id", "run_id", "event_type", "category", "seq")
        if name in row
    }
    for name in ("event_id", "user_id"):
        if row.get(name) is not None:
            record[name] = row[name]
    if "created_at" in row:
        record["created_at"] = deerflow_time(row["created_at"])
    metadata = row["metadata"] if "metadata" in row else row.get("event_metadata")
    metadata = decode_metadata(metadata)
    record["metadata"] = metadata
    if "content" in row:
        record["content"] = decode_content(row["content"], metadata)
    return record


def decode_content(content: Any, metadata: Any) -> Any:
    """``content`` as DeerFlow returns it: decoded when the row's metadata marks it as JSON.

    DeerFlow stores a non-string content as ``json.dumps(value)`` and marks
    it ``content_is_json``; a string it stores as it is, whatever it looks
    like (``'{"answer": 42}'``, ``'5'`` stay strings). A marked content that
    does not parse is kept as the string, as DeerFlow does.
    """
    marked = isinstance(metadata, dict) and bool(
        metadata.get("content_is_json") or metadata.get("content_is_dict")
    )
    if not marked or not isinstance(content, str):
        return content
    try:
        return json.loads(content)
    except (ValueError, RecursionError):
        return content


def deerflow_time(value: Any) -> Any:
    """A ``created_at`` as DeerFlow's SQL store serves it: UTC, ISO-8601 with ``T`` and offset.

    SQLite hands back ``2026-12-06 15:46:37.481681`` (naive: DeerFlow takes it
    as UTC), PostgreSQL an aware ``datetime``; both become
    ``datetime.isoformat()`` in UTC, as DeerFlow's ``coerce_iso`` makes them.
    A value that is not a time is returned as it is (validation refuses it).
    """
    if isinstance(value, str):
        moment = utc_moment(value)
        if moment is None:
            return value
        value = moment
    if not isinstance(value, datetime):
        return value
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    try:
        return value.astimezone(timezone.utc).isoformat()
    except OverflowError:
        return value


def decode_metadata(metadata: Any) -> Any:
    """``metadata``, decoded if it is a JSON string; it must then hold an object (or null)."""
    if not isinstance(metadata, str):
        return metadata
    try:
        decoded = json.loads(metadata)
    except (ValueError, RecursionError) as exc:
        raise ValueError(
            f"metadata: a string that is not valid JSON ({json_problem(exc)})"
        ) from None
    if decoded is not None and not isinstance(decoded, dict):
        raise ValueError(f"metadata: the JSON string holds {_json_type(decoded)}, not an object")
    return decoded


def _json_type(value: Any) -> str:
    """The JSON name of a parsed value's type."""
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    return names.get(type(value), "a number")
