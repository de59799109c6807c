"""What ``import`` and ``verify`` read: a source's files (or database) and its owners.

A source is a file, a folder, standard input or DeerFlow's database
(:func:`open_source`); :func:`detect_format` says how ``auto`` reads it and
:func:`source_files` which files of a folder hold records. The formats
themselves (a line of each, turned into a record or a bad line) are in
:mod:`mongo_runevents.formats`. :class:`Owners` says who owns the events that
name no ``user_id`` (``--owners``, ``--owner``). A problem with the whole
source (a missing path, a folder without ``threads/``) raises
:class:`~mongo_runevents.formats.SourceError`.
"""

from __future__ import annotations

import csv
import json
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .deerflow_db import DeerFlowDatabase, read_database
from .formats import (
    DEERFLOW_LAYOUT,
    FORMATS,
    Item,
    SourceError,
    deerflow_ids,
    json_problem,
    read_file,
)
from .models import id_problem

# --- choosing the format and the files ------------------------------------------------


def detect_format(path: Path | str) -> str:
    """The format ``auto`` means for ``path``.

    A database URL (``sqlite:///...``, ``postgresql://...``) is DeerFlow's SQL
    store; a folder holding ``threads/`` DeerFlow's JSONL store, a ``.json``
    file DeerFlow's SQL rows, anything else JSON Lines as ``export`` writes them.
    """
    if is_database_url(str(path)):
        return "deerflow-db"
    path = Path(path)
    if path.is_dir():
        return "deerflow-jsonl" if (path / "threads").is_dir() else "jsonl"
    if path.suffix.lower() == ".json":
        return "deerflow-db"
    return "jsonl"


def is_database_url(source: str) -> bool:
    """Whether ``source`` names a database (``sqlite:``, ``postgresql:``, ``postgres:``) rather than a path."""
    scheme = source.split(":", 1)[0].split("+", 1)[0].lower()
    return ":" in source and scheme in ("sqlite", "postgresql", "postgres")


def _deerflow_level(path: Path) -> str | None:
    """What part of DeerFlow's layout ``path`` is, when it is one below its base folder."""
    if next(path.glob("*/runs/*.jsonl"), None) is not None:
        return f"{path} looks like DeerFlow's threads/ folder"
    if next(path.glob("runs/*.jsonl"), None) is not None:
        return f"{path} looks like the folder of one DeerFlow thread"
    return None


def source_files(path: Path, fmt: str) -> list[Path]:
    """The files to read for ``path`` in format ``fmt`` (not ``auto``), in a stable order.

    A single file is read as it is. For a folder: ``deerflow-jsonl`` takes the
    run files of its ``threads/`` tree, ``jsonl`` every ``*.jsonl`` file below
    it, ``deerflow-db`` every ``*.json`` and ``*.jsonl`` file below it. A
    folder with no such file is an error, and so is a part of DeerFlow's
    layout given in place of its base folder (its lines would go in with
    nothing to check their thread against).
    """
    if fmt not in FORMATS or fmt == "auto":
        raise ValueError(f"unknown format {fmt!r}")
    if not path.exists():
        raise SourceError(f"{path}: no such file or folder")
    if path.is_file():
        if fmt == "deerflow-jsonl":
            deerflow_ids(path)  # refuses a file outside the layout
        return [path]
    if fmt == "deerflow-jsonl":
        threads = path / "threads"
        if not threads.is_dir():
            level = _deerflow_level(path)
            hint = f"; {level}: give the folder that holds threads/" if level else ""
            raise SourceError(
                f"{path} has no threads/ folder (DeerFlow's layout is {DEERFLOW_LAYOUT}){hint}"
            )
        files = sorted(file for file in threads.glob("*/runs/*.jsonl") if file.is_file())
        what = f"no run file ({DEERFLOW_LAYOUT})"
    else:
        if fmt == "jsonl" and (level := _deerflow_level(path)) is not None:
            raise SourceError(
                f"{level}: give the folder that holds threads/ (DeerFlow's layout is "
                f"{DEERFLOW_LAYOUT}), or --format deerflow-jsonl"
            )
        patterns = ["*.jsonl"] if fmt == "jsonl" else ["*.json", "*.jsonl"]
        files = sorted(f for pattern in patterns for f in path.rglob(pattern) if f.is_file())
        what = "no " + " or ".join(p.lstrip("*") for p in patterns) + " file"
    if not files:
        raise SourceError(f"{path} holds {what}: nothing to import")
    return files


@dataclass
class Source:
    """What an import reads: its files (or database), their labels (as positions name them), its format."""

    fmt: str
    files: list[Path] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    database: DeerFlowDatabase | None = None

    def readers(self) -> list[Iterator[Item]]:
        """A reader of each file (or of the database), in the order of :attr:`labels`."""
        if self.database is not None:
            return [read_database(self.database)]
        return [read_file(path, self.fmt) for path in self.files]

    def close(self) -> None:
        """Close the database, if the source is one."""
        if self.database is not None:
            self.database.close()


def open_source(source: str, fmt: str, spool: Path) -> Source:
    """The files or database to read for ``source`` (``-``: standard input, copied to ``spool``)."""
    if source == "-":
        fmt = "jsonl" if fmt == "auto" else fmt
        if fmt == "deerflow-jsonl":
            raise SourceError("deerflow-jsonl needs a folder; standard input holds one file")
        target = spool / ("stdin.json" if fmt == "deerflow-db" else "stdin.jsonl")
        with target.open("wb") as copy:
            shutil.copyfileobj(sys.stdin.buffer, copy, 1 << 20)
        return Source(fmt, [target], ["<stdin>"])
    fmt = detect_format(source) if fmt == "auto" else fmt
    if is_database_url(source):
        if fmt != "deerflow-db":
            raise SourceError(f"a database URL is read as deerflow-db, not {fmt}")
        database = DeerFlowDatabase(source)
        return Source(fmt, labels=[database.label], database=database)
    files = source_files(Path(source), fmt)
    return Source(fmt, files, [str(file) for file in files])


# --- owners -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Owners:
    """Who owns the imported events that name no ``user_id``: per thread, else a default.

    DeerFlow's JSONL lines carry no ``user_id``, and its gateway reads by
    user: without an owner an imported thread shows nothing in its UI. A
    record's own ``user_id`` is never changed.
    """

    by_thread: dict[str, str]
    default: str | None = None

    def __bool__(self) -> bool:
        return bool(self.by_thread) or self.default is not None

    def owner_of(self, thread_id: str) -> str | None:
        """The owner given for ``thread_id``, if any."""
        return self.by_thread.get(thread_id, self.default)

    def apply(self, record: dict[str, Any]) -> bool:
        """Give ``record`` its owner if it has none; whether it has one now."""
        if record.get("user_id") is None:
            owner = self.owner_of(record["thread_id"])
            if owner is None:
                return False
            record["user_id"] = owner
        return True


def checked_owner(value: Any, where: str) -> str:
    """An owner id as an event's ``user_id`` must be, else :class:`SourceError` saying where."""
    if not isinstance(value, str) or not value:
        raise SourceError(f"{where}: an owner must be a non-empty string, got {value!r}")
    problem = id_problem(value)
    if problem is not None:
        raise SourceError(f"{where}: the owner {value!r} {problem}")
    return value


def read_owner_map(path: Path) -> dict[str, str]:
    """Thread owners from a file: a JSON object ``{thread_id: user_id}``, or CSV lines ``thread_id,user_id``."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceError(f"{path}: cannot read the owners ({exc})") from None
    if text.lstrip().startswith("{"):
        try:
            mapping = json.loads(text)
        except ValueError as exc:
            raise SourceError(f"{path}: not valid JSON ({json_problem(exc)})") from None
        return {
            checked_owner(thread, f"{path}"): checked_owner(user, f"{path} ({thread})")
            for thread, user in mapping.items()
        }
    owners: dict[str, str] = {}
    for number, row in enumerate(csv.reader(text.splitlines()), start=1):
        if not row or not "".join(row).strip() or row[0].startswith("#"):
            continue
        if len(row) != 2:
            raise SourceError(f"{path}:{number}: expected thread_id,user_id")
        thread, user = (cell.strip() for cell in row)
        if number == 1 and (thread, user) == ("thread_id", "user_id"):
            continue  # a header
        owners[checked_owner(thread, f"{path}:{number}")] = checked_owner(user, f"{path}:{number}")
    return owners


def load_owners(owners: str | None, owner: str | None, source: Source) -> Owners:
    """The owners ``owners`` (a database URL or a file) and ``owner`` (the default) give.

    Without ``owners``, a DeerFlow database source gives its own (its
    ``threads_meta`` table).
    """
    by_thread: dict[str, str] = {}
    if owners is not None and is_database_url(owners):
        with DeerFlowDatabase(owners) as database:
            by_thread = database.owners()
    elif owners is not None:
        by_thread = read_owner_map(Path(owners))
    elif source.database is not None:
        by_thread = source.database.owners()
    default = None if owner is None else checked_owner(owner, "--owner")
    return Owners(by_thread, default)
