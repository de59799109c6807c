"""What the commands print: JSON, JSON Lines, previews of content, event lines, counts and sizes."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping
from typing import Any, TextIO


def print_json(value: Any, stream: TextIO | None = None) -> None:
    """Print ``value`` as indented JSON on ``stream`` (default: stdout)."""
    print(json.dumps(value, indent=2, ensure_ascii=False), file=stream or sys.stdout)


#: Characters that JSON leaves raw in strings but that some line splitters (Python's
#: ``str.splitlines``, JavaScript) take for line ends; escaped in JSON Lines output.
_LINE_BREAKS = str.maketrans({"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})


def json_line(record: Mapping[str, Any]) -> str:
    """``record`` as one line of JSON Lines: UTF-8 text, with no character any reader splits on."""
    return json.dumps(record, ensure_ascii=False).translate(_LINE_BREAKS)


def preview(content: Any, width: int = 70) -> str:
    """A one-line preview of an event's content, at most ``width`` characters."""
    line = " ".join(_content_text(content).split())
    return line if len(line) <= width else line[: width - 3] + "..."


def _content_text(content: Any) -> str:
    """The readable part of a content value: a message's text or tool calls, else its JSON."""
    if isinstance(content, str):
        return content
    if isinstance(content, dict) and ("content" in content or "tool_calls" in content):
        text = content.get("content")
        calls = content.get("tool_calls")
        if not text and isinstance(calls, list) and calls:
            text = "calls " + ", ".join(
                f"{call.get('name')}({json.dumps(call.get('args'))})"
                if isinstance(call, dict)
                else json.dumps(call)
                for call in calls
            )
        if not isinstance(text, str):
            text = json.dumps(text, ensure_ascii=False)
        if content.get("type") == "tool":
            text = f"[{content.get('name')}] {text}"
        return text
    return json.dumps(content, ensure_ascii=False)


def event_line(record: Mapping[str, Any]) -> str:
    """One event on one line: seq, category, event type and a preview of the content."""
    return (
        f"{record['seq']:>6}  {record['category']:<10} {record['event_type']:<22} "
        f"{preview(record['content'], 60)}"
    )


def message_rows(messages: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Seq, run, event type and a preview of each message: what the message listings show."""
    return [
        {
            "seq": m["seq"],
            "run_id": m["run_id"],
            "event_type": m["event_type"],
            "preview": preview(m["content"]),
        }
        for m in messages
    ]


def print_messages(title: str, rows: list[dict[str, Any]]) -> None:
    """Print ``title``, then one line per row of :func:`message_rows` (or ``(none)``).

    A line ``run RUN_ID`` comes before the first message of each run, so the
    ids ``events THREAD RUN`` takes are on screen.
    """
    print(title)
    if not rows:
        print("  (none)")
    run_id = None
    for row in rows:
        if row.get("run_id") is not None and row["run_id"] != run_id:
            run_id = row["run_id"]
            print(f"  run {run_id}")
        print(f"  {row['seq']:>5}  {row['event_type']:<16} {row['preview']}")


def number_of(count: int, noun: str) -> str:
    """``1 file``, ``2 files``, ``12,345 events``: a count and a noun, plural unless the count is 1.

    Every count the commands print goes through here (or is written ``f"{n:,}"``),
    so numbers look the same everywhere.
    """
    return f"{count:,} {noun}" if count == 1 else f"{count:,} {noun}s"


def human_size(size: float) -> str:
    """A byte count as a person reads it: ``512 B``, ``1.5 KiB``, ``3.2 GiB``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")  # pragma: no cover
