"""Progress of long commands on stderr: totals, rates, percentage and time left, in one format.

Shown only when the stream is a terminal, so that logs and pipes never receive
it. With the ``progress`` extra (``pip install 'mongo_runevents[progress]'``,
which brings rich) it is a live bar; without it, one line rewritten in place.
Both show the same text, made by :func:`progress_text` with the number
formats of :mod:`.output`: counts with thousands separators (``12,345``),
sizes in binary units (``1.5 MiB``), rates per second, durations as ``m:ss``.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Any, TextIO

from .output import human_size, number_of

#: How often the text is rebuilt, in seconds.
REFRESH_SECONDS = 0.2


def duration(seconds: float) -> str:
    """``0:07``, ``12:30``, ``1:02:03``: a duration as a clock shows it."""
    whole = max(0, round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


@dataclass
class Tally:
    """What a command has done so far, and the totals when they are known."""

    items: int = 0
    items_total: int | None = None
    size: int = 0
    size_total: int | None = None
    files: int = 0
    files_total: int | None = None


def progress_text(label: str, unit: str, tally: Tally, elapsed: float) -> str:
    """``importing 1,200 of 5,000 events (24.0%), 3.1 MiB, 2 of 3 files, 950 events/s, 0:04 left``.

    The percentage and the time left come from the item total when it is
    known, else from the byte total.
    """
    if tally.items_total is None:
        parts = [f"{label} {number_of(tally.items, unit)}"]
    else:
        parts = [f"{label} {tally.items:,} of {number_of(tally.items_total, unit)}"]
    done, total = (
        (tally.items, tally.items_total)
        if tally.items_total is not None
        else (tally.size, tally.size_total)
    )
    fraction = None
    if total:
        fraction = min(done / total, 1.0)
        parts[0] += f" ({fraction:.1%})"
    if tally.size or tally.size_total:
        size = human_size(tally.size)
        parts.append(size if not tally.size_total else f"{size} of {human_size(tally.size_total)}")
    if tally.files_total is not None and tally.files_total > 1:
        parts.append(f"{tally.files:,} of {tally.files_total:,} files")
    if elapsed > 0 and tally.items:
        parts.append(f"{tally.items / elapsed:,.0f} {unit}s/s")
    if fraction is not None and 0 < fraction < 1 and elapsed > 0:
        parts.append(f"{duration(elapsed * (1 - fraction) / fraction)} left")
    return ", ".join(parts)


def _rich_available() -> bool:
    try:
        import rich.progress  # noqa: F401
    except ImportError:
        return False
    return True


class Progress:
    """A running tally on ``stream`` (default stderr), shown only on a terminal.

    ``fancy``: a rich bar (default: when rich is installed) or a plain line.
    """

    def __init__(
        self,
        label: str,
        *,
        unit: str = "event",
        stream: TextIO | None = None,
        fancy: bool | None = None,
    ) -> None:
        self.label = label
        self.unit = unit
        self.stream = sys.stderr if stream is None else stream
        self.enabled = self.stream.isatty()
        self.tally = Tally()
        self._started = time.monotonic()
        self._shown_at = 0.0
        self._on_screen = 0  # length of the plain line now shown, 0 if none
        self._bar: Any = None
        self._task: Any = None
        if self.enabled and (_rich_available() if fancy is None else fancy):
            self._start_bar()

    @property
    def count(self) -> int:
        """How many items were counted."""
        return self.tally.items

    def text(self) -> str:
        """What the progress shows now."""
        return progress_text(self.label, self.unit, self.tally, time.monotonic() - self._started)

    def restart(self, label: str, *, total: int | None = None, unit: str | None = None) -> None:
        """Start a new phase (reading, then importing) with a new label and item total."""
        self.label = label
        self.unit = unit or self.unit
        self.tally = Tally(items_total=total)
        self._started = time.monotonic()
        self._refresh(force=True)

    def totals(
        self, *, items: int | None = None, size: int | None = None, files: int | None = None
    ) -> None:
        """Set the totals that are known."""
        if items is not None:
            self.tally.items_total = items
        if size is not None:
            self.tally.size_total = size
        if files is not None:
            self.tally.files_total = files

    def advance(self, items: int = 1, *, size: int = 0, files: int = 0) -> None:
        """Count ``items`` more (and ``size`` bytes, ``files`` files); refresh now and then."""
        self.tally.items += items
        self.tally.size += size
        self.tally.files += files
        self._refresh()

    def note(self, message: str) -> None:
        """Print ``message`` on a line of its own, above the progress."""
        if self._bar is not None:
            self._bar.console.print(message, markup=False, highlight=False, soft_wrap=True)
            return
        self._erase()
        print(message, file=self.stream, flush=True)
        self._refresh(force=True)

    def finish(self) -> None:
        """Show the final tally and end the progress (a no-op when nothing was shown)."""
        if not self.enabled:
            return
        if self._bar is not None:
            self._refresh(force=True)
            self._bar.stop()
            self._bar = None
            return
        if self._on_screen:
            self._show(self.text())
            self.stream.write("\n")
            self.stream.flush()
            self._on_screen = 0

    # --- drawing -----------------------------------------------------------------

    def _start_bar(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, TextColumn
        from rich.progress import Progress as Bar

        console = Console(file=self.stream, force_terminal=True, highlight=False)
        self._bar = Bar(
            BarColumn(bar_width=24),
            TextColumn("{task.description}", markup=False),
            console=console,
            auto_refresh=True,
            refresh_per_second=5,
            transient=False,
        )
        self._task = self._bar.add_task(self.text(), total=None)
        self._bar.start()

    def _refresh(self, *, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._shown_at < REFRESH_SECONDS:
            return
        self._shown_at = now
        if self._bar is not None:
            tally = self.tally
            done, total = (
                (tally.items, tally.items_total)
                if tally.items_total is not None
                else (tally.size, tally.size_total)
            )
            self._bar.update(self._task, description=self.text(), completed=done, total=total)
            return
        self._show(self.text())

    def _show(self, text: str) -> None:
        self._erase()
        self.stream.write(text)
        self.stream.flush()
        self._on_screen = len(text)

    def _erase(self) -> None:
        if self._on_screen:
            self.stream.write("\r" + " " * self._on_screen + "\r")
            self._on_screen = 0
