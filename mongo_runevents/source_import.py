"""Importing a whole source into a store, every outcome located by file and line.

A source is what ``mongo-runevents import`` reads (:mod:`.transfer`): files,
a folder, standard input or DeerFlow's database. :class:`SourceImport` reads
every record of it into a stage first (:mod:`.staging`: a bad line can stop
the import before anything is written, and standard input works like a
file), then imports whole threads per ``import_events`` call in the stable
order (thread, seq, ``created_at``, file, line), so that the rules of
:mod:`mongo_runevents.importing` apply to each whole thread whatever order the
files had. Its :class:`SourceImportResult` names each conflict, renumbering
and bad line by its :class:`~mongo_runevents.formats.SourcePosition`; the
command line only prints it.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from .base import RunEventStore
from .formats import BadLine, SourceError, SourcePosition
from .importing import ON_CONFLICT, ImportResult, OnConflict
from .staging import Stage, Staged
from .transfer import Owners, Source, load_owners, open_source

#: What an import does at a bad line: report it and import the rest, or stop before writing.
OnError = Literal["skip", "stop"]


@dataclass(frozen=True)
class LocatedConflict:
    """A record that collided with another event: where it was read, its thread and seq, why.

    ``reason`` names the other record of the source, when it is one, by its
    position (also in ``other``). ``outcome``: ``"skipped"`` (not stored) or
    ``"renumbered"`` (stored under a new seq).
    """

    position: SourcePosition
    thread_id: str
    seq: int
    reason: str
    outcome: Literal["skipped", "renumbered"]
    other: SourcePosition | None = None


@dataclass(frozen=True)
class LocatedRenumbering:
    """A record stored (or, in a dry run, to be stored) under a new seq, and where it was read."""

    position: SourcePosition
    thread_id: str
    old_seq: int
    new_seq: int


@dataclass
class SourceImportResult:
    """What an import of a source did (or, with ``dry_run``, would do).

    ``lines`` counts the lines (or rows) read, good and bad; ``records`` the
    good ones. ``stopped`` says why nothing was written when the import
    stopped: ``"bad_line"`` (``on_error="stop"``; the last of ``bad_lines``)
    or ``"conflict"`` (``on_conflict="stop"``; ``conflicts`` lists them all).
    """

    source: str
    format: str
    files: int = 0
    lines: int = 0
    records: int = 0
    inserted: int = 0
    already_there: int = 0
    skipped: int = 0
    #: Records that had no ``user_id`` and got one from the owners given.
    owners_set: int = 0
    #: Records left without any owner (a gateway reading by user shows them to nobody).
    unowned: int = 0
    dry_run: bool = False
    stopped: Literal["bad_line", "conflict"] | None = None
    conflicts: list[LocatedConflict] = field(default_factory=list)
    renumbered: list[LocatedRenumbering] = field(default_factory=list)
    bad_lines: list[BadLine] = field(default_factory=list)


class ImportProgress(Protocol):
    """What an import reports as it goes (the command line's progress display is one)."""

    def restart(self, label: str, *, total: int | None = None, unit: str | None = None) -> None:
        """Start a new phase: ``reading``, ``checking`` or ``importing``."""

    def totals(
        self, *, items: int | None = None, size: int | None = None, files: int | None = None
    ) -> None:
        """What the phase will go through, as far as known."""

    def advance(self, items: int = 1, *, size: int = 0, files: int = 0) -> None:
        """Some of it done."""

    def finish(self) -> None:
        """The phase is over."""


class _Silent:
    """Progress that goes nowhere."""

    def restart(self, label: str, *, total: int | None = None, unit: str | None = None) -> None:
        """Nothing to show."""

    def totals(
        self, *, items: int | None = None, size: int | None = None, files: int | None = None
    ) -> None:
        """Nothing to show."""

    def advance(self, items: int = 1, *, size: int = 0, files: int = 0) -> None:
        """Nothing to show."""

    def finish(self) -> None:
        """Nothing to show."""


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def read_into_stage(
    source: Source,
    owners: Owners,
    stage: Stage,
    result: SourceImportResult,
    *,
    on_error: OnError = "skip",
    progress: ImportProgress | None = None,
    on_bad_line: Callable[[BadLine], None] | None = None,
) -> None:
    """Read and check every line (or row) of ``source`` into ``stage``, owners set.

    Each bad line goes to ``result.bad_lines`` (and ``on_bad_line``); with
    ``on_error="stop"`` the first one ends the reading (``result.stopped``).
    """
    progress = progress or _Silent()
    result.format = source.fmt
    result.files = len(source.labels)
    sizes = [_file_size(path) for path in source.files]
    progress.totals(size=sum(sizes), files=len(source.labels))
    for number, (reader, label) in enumerate(zip(source.readers(), source.labels, strict=True)):
        size = sizes[number] if number < len(sizes) else 0
        staged = shown = 0
        for item in reader:
            result.lines += 1
            if isinstance(item, BadLine):
                bad = BadLine(label, item.line_number, item.reason)
                result.bad_lines.append(bad)
                if on_error == "stop":
                    result.stopped = "bad_line"
                    return
                if on_bad_line is not None:
                    on_bad_line(bad)
                progress.advance()
                continue
            had_owner = item.record.get("user_id") is not None
            if owners.apply(item.record):
                result.owners_set += not had_owner
            else:
                result.unowned += 1
            staged += stage.add(number, item.line_number, item.record)
            result.records += 1
            # The staged size stands for the bytes read, up to the file's size.
            step, shown = min(staged, size) - shown, min(staged, size)
            progress.advance(size=step)
        progress.advance(0, size=size - shown, files=1)


class SourceImport:
    """One import of a source into ``store``; :meth:`run` does it, :attr:`result` says what it did.

    ``owners`` (a DeerFlow database URL, or a file mapping thread to user)
    and ``owner`` (the owner of every event that has none after it) give the
    events that name no ``user_id`` an owner; a DeerFlow database source gives
    its own by default. ``batch`` is the number of records per
    ``import_events`` call, in whole threads. ``on_error``, ``on_conflict`` and
    ``dry_run`` are as for ``mongo-runevents import``.
    """

    def __init__(
        self,
        store: RunEventStore,
        source: str,
        *,
        format: str = "auto",
        owners: str | None = None,
        owner: str | None = None,
        on_error: OnError = "skip",
        on_conflict: OnConflict = "renumber",
        dry_run: bool = False,
        batch: int = 500,
        progress: ImportProgress | None = None,
        on_bad_line: Callable[[BadLine], None] | None = None,
    ) -> None:
        if on_error not in ("skip", "stop"):
            raise ValueError(f"on_error must be 'skip' or 'stop', got {on_error!r}")
        if on_conflict not in ON_CONFLICT:
            raise ValueError(f"on_conflict must be one of {ON_CONFLICT}, got {on_conflict!r}")
        if batch < 1:
            raise ValueError(f"batch must be at least 1, got {batch}")
        self.store = store
        self.source = source
        self.owners, self.owner = owners, owner
        self.on_error: OnError = on_error
        self.on_conflict: OnConflict = on_conflict
        self.dry_run = dry_run
        self.batch = batch
        self.progress: ImportProgress = progress or _Silent()
        self.on_bad_line = on_bad_line
        self.result = SourceImportResult(source=source, format=format, dry_run=dry_run)
        #: What the import is doing: ``reading``, ``checking`` (a dry run, or
        #: ``on_conflict="stop"`` before it writes) or ``importing``.
        self.phase = "reading"
        self._labels: list[str] = []

    async def run(self) -> SourceImportResult:
        """Read the source, then import it; ``SourceError`` if it cannot be read."""
        self.progress.restart("reading", unit="line")
        with tempfile.TemporaryDirectory(prefix="mongo-runevents-import-") as folder:
            stage = Stage(Path(folder))
            source: Source | None = None
            try:
                try:
                    source = open_source(self.source, self.result.format, Path(folder))
                    owners = load_owners(self.owners, self.owner, source)
                    self._labels = source.labels
                    read_into_stage(
                        source,
                        owners,
                        stage,
                        self.result,
                        on_error=self.on_error,
                        progress=self.progress,
                        on_bad_line=self.on_bad_line,
                    )
                except OSError as exc:
                    raise SourceError(str(exc)) from exc
                finally:
                    self.progress.finish()
                if self.result.stopped is None:
                    await self._import(stage)
            finally:
                stage.close()
                if source is not None:
                    source.close()
        return self.result

    async def _import(self, stage: Stage) -> None:
        """Import the staged records in batches of whole threads, as ``on_conflict`` says."""
        result = self.result
        # A dry run, and on_conflict="stop" (which writes nothing if any record
        # collides), plan every batch first; stop plans as skip, to list the conflicts.
        if self.dry_run or self.on_conflict == "stop":
            self.phase = "checking"
            planned_as: OnConflict = "skip" if self.on_conflict == "stop" else self.on_conflict
            await self._calls(stage, planned_as, dry_run=True)
            if self.on_conflict == "stop" and result.conflicts:
                result.inserted = result.skipped = 0  # stopping, nothing is written
                result.stopped = "conflict"
            if self.dry_run or result.stopped is not None:
                return
            result.inserted = result.already_there = result.skipped = 0
            result.conflicts.clear()
            result.renumbered.clear()
        self.phase = "importing"
        await self._calls(stage, self.on_conflict, dry_run=False)

    async def _calls(self, stage: Stage, on_conflict: OnConflict, *, dry_run: bool) -> None:
        self.progress.restart(self.phase, total=stage.count, unit="event")
        for batch in stage.batches(self.batch):
            called = await self.store.import_events(
                [item.record for item in batch], on_conflict=on_conflict, dry_run=dry_run
            )
            self._tally(called, batch)
            self.progress.advance(len(batch), size=sum(item.size for item in batch))
        self.progress.finish()

    def _tally(self, called: ImportResult, batch: list[Staged]) -> None:
        """Add one call's result, each conflict and renumbering located in the source."""

        def position(index: int) -> SourcePosition:
            return SourcePosition(self._labels[batch[index].source], batch[index].line)

        result = self.result
        result.inserted += called.inserted
        result.already_there += called.already_there
        result.skipped += len(called.skipped)
        skipped = {item.index for item in called.skipped}
        for conflict in called.conflicts:
            result.conflicts.append(
                LocatedConflict(
                    position(conflict.index),
                    conflict.thread_id,
                    conflict.seq,
                    conflict.describe(lambda index: str(position(index))),
                    "skipped" if conflict.index in skipped else "renumbered",
                    None if conflict.other is None else position(conflict.other),
                )
            )
        for change in called.renumbered:
            result.renumbered.append(
                LocatedRenumbering(
                    position(change.index), change.thread_id, change.old_seq, change.new_seq
                )
            )


async def import_source(
    store: RunEventStore,
    source: str,
    *,
    format: str = "auto",
    owners: str | None = None,
    owner: str | None = None,
    on_error: OnError = "skip",
    on_conflict: OnConflict = "renumber",
    dry_run: bool = False,
    batch: int = 500,
) -> SourceImportResult:
    """Import ``source`` into ``store`` (the options of :class:`SourceImport`); what it did."""
    job = SourceImport(
        store,
        source,
        format=format,
        owners=owners,
        owner=owner,
        on_error=on_error,
        on_conflict=on_conflict,
        dry_run=dry_run,
        batch=batch,
    )
    return await job.run()
