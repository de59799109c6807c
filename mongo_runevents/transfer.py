"""Reading event records from files, for ``mongo-runevents import``.

Three formats:

- ``jsonl``: what ``mongo-runevents export`` writes, one stored record per
  line. Every key must be a record field; an unknown key makes the line bad.
- ``deerflow-jsonl``: DeerFlow's JSONL store, a folder holding
  ``threads/<thread_id>/runs/<run_id>.jsonl``. Each line holds ``event_type``,
  ``category``, ``content``, ``metadata``, ``seq`` and ``created_at``;
  ``thread_id`` and ``run_id`` come from the path when the line lacks them
  (and must agree with it when it has them).
- ``deerflow-db``: rows of DeerFlow's SQL store, as JSON Lines or as one JSON
  array. ``metadata`` may be named ``event_metadata`` and may be a JSON
  string; ``content`` holding a JSON object or array as a string is decoded,
  any other string is kept as it is.

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
from pathlib import Path
from typing import Any, NamedTuple, TypeAlias

from .errors import InvalidEventError
from .models import RECORD_FIELDS, imported_event

#: The formats ``import`` reads; ``auto`` picks one from the path (:func:`detect_format`).
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
class BadLine:
    """A line that holds no valid record, and why."""

    path: str
    line_number: int
    reason: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line_number}: {self.reason}"


#: What a reader yields.
Item: TypeAlias = SourceRecord | BadLine


# --- choosing the format and the files ------------------------------------------------


def detect_format(path: Path) -> str:
    """The format ``auto`` means for ``path``.

    A folder holding ``threads/`` is DeerFlow's JSONL store, a ``.json`` file
    DeerFlow's SQL rows, anything else JSON Lines as ``export`` writes them.
    """
    if path.is_dir():
        return "deerflow-jsonl" if (path / "threads").is_dir() else "jsonl"
    if path.suffix.lower() == ".json":
        return "deerflow-db"
    return "jsonl"


def source_files(path: Path, fmt: str) -> list[Path]:
    """The files to read for ``path`` in format ``fmt`` (not ``auto``), in a stable order.

    A single file is read as it is. For a folder: ``deerflow-jsonl`` takes the
    run files of its ``threads/`` tree, ``jsonl`` every ``*.jsonl`` file below
    it, ``deerflow-db`` every ``*.json`` and ``*.jsonl`` file below it.
    """
    if fmt not in FORMATS or fmt == "auto":
        raise ValueError(f"unknown format {fmt!r}")
    if not path.exists():
        raise SourceError(f"{path}: no such file or folder")
    if fmt == "deerflow-jsonl":
        if path.is_file():
            deerflow_ids(path)  # refuses a file outside the layout
            return [path]
        threads = path / "threads"
        if not threads.is_dir():
            raise SourceError(
                f"{path} has no threads/ folder (DeerFlow's layout is {DEERFLOW_LAYOUT})"
            )
        return sorted(file for file in threads.glob("*/runs/*.jsonl") if file.is_file())
    if path.is_file():
        return [path]
    patterns = ["*.jsonl"] if fmt == "jsonl" else ["*.json", "*.jsonl"]
    return sorted(file for pattern in patterns for file in path.rglob(pattern) if file.is_file())


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
                yield BadLine(label, number, f"not valid JSON ({_json_problem(exc)})")
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
                label, line, f"not valid JSON ({_json_problem(exc)}); the rest is not read"
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


def _json_problem(exc: BaseException) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} at column {exc.colno}"
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
    """A line of a DeerFlow run file, completed with the ids its path gives."""
    if not isinstance(value, dict):
        raise ValueError(f"a record must be a JSON object, got {_json_type(value)}")
    record = {name: value[name] for name in RECORD_FIELDS if name in value}
    for name, from_path in (("thread_id", thread_id), ("run_id", run_id)):
        given = record.get(name)
        if given is None:
            record[name] = from_path
        elif given != from_path:
            raise ValueError(f"{name}: {given!r} does not match the file's path ({from_path!r})")
    return record


def deerflow_db_record(row: Any) -> dict[str, Any]:
    """A row of DeerFlow's SQL store as a record: JSON strings in content and metadata decoded."""
    if not isinstance(row, dict):
        raise ValueError(f"a row must be a JSON object, got {_json_type(row)}")
    record = {
        name: row[name]
        for name in ("thread_id", "run_id", "event_type", "category", "seq", "created_at")
        if name in row
    }
    for name in ("event_id", "user_id"):
        if row.get(name) is not None:
            record[name] = row[name]
    if "content" in row:
        record["content"] = decode_content(row["content"])
    metadata = row["metadata"] if "metadata" in row else row.get("event_metadata")
    record["metadata"] = decode_metadata(metadata)
    return record


def decode_content(content: Any) -> Any:
    """``content`` with a JSON object or array held in a string decoded; anything else as it is."""
    if not isinstance(content, str) or content.lstrip()[:1] not in ("{", "["):
        return content
    try:
        decoded = json.loads(content)
    except (ValueError, RecursionError):
        return content
    return decoded if isinstance(decoded, (dict, list)) else content


def decode_metadata(metadata: Any) -> Any:
    """``metadata``, decoded if it is a JSON string; it must then hold an object (or null)."""
    if not isinstance(metadata, str):
        return metadata
    try:
        decoded = json.loads(metadata)
    except (ValueError, RecursionError) as exc:
        raise ValueError(
            f"metadata: a string that is not valid JSON ({_json_problem(exc)})"
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
