"""Event content as text for a page: bounded previews and pretty-printed JSON. Pure functions.

Content is untrusted model output of any size and shape. Nothing here
recurses: a preview walks the value with an explicit stack and stops as soon
as it has enough characters, so a 15 MiB tool result costs no more than a
short one; the pretty-printer cuts long strings and deep nesting before it
hands the value to :func:`json.dumps`. The text returned is plain text: the
templates escape it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

#: Strings longer than this are cut on the event page unless it is opened in full.
EVENT_STRING_LIMIT = 64 * 1024
#: Containers nested deeper than this are not expanded (stores refuse more than 90).
MAX_DEPTH = 100

_END = object()


def _scalar(value: Any, room: int) -> str:
    """A JSON scalar as text, with a string cut to about ``room`` characters first."""
    if isinstance(value, str):
        return json.dumps(value[: room + 1], ensure_ascii=False)
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return json.dumps(str(value)[: room + 1], ensure_ascii=False)


def preview(value: Any, limit: int = 200) -> tuple[str, bool]:
    """Compact text of ``value`` of at most ``limit`` characters, and whether it was cut.

    A string is shown as it is; anything else as compact JSON.
    """
    if isinstance(value, str):
        return (value, False) if len(value) <= limit else (value[:limit], True)
    parts: list[str] = []
    size = 0
    stack: list[Any] = [value]
    while stack and size <= limit:
        item = stack.pop()
        if isinstance(item, tuple) and len(item) == 2 and item[0] is _END:
            text = item[1]  # a closing bracket or a separator
        elif isinstance(item, dict):
            text = "{"
            entries: list[Any] = [(_END, "}")]
            for index, (key, element) in enumerate(reversed(item.items())):
                entries.append(element)
                separator = "" if index == len(item) - 1 else ", "
                entries.append((_END, separator + _scalar(str(key), limit) + ": "))
            stack.extend(entries)
        elif isinstance(item, list):
            text = "["
            entries = [(_END, "]")]
            for index, element in enumerate(reversed(item)):
                entries.append(element)
                if index != len(item) - 1:
                    entries.append((_END, ", "))
            stack.extend(entries)
        else:
            text = _scalar(item, limit - size)
        parts.append(text)
        size += len(text)
    text = "".join(parts)
    if len(text) > limit or stack:
        return text[:limit], True
    return text, False


@dataclass(frozen=True)
class Pretty:
    """A value pretty-printed, and what was left out of it."""

    text: str
    #: How many strings were cut to :data:`EVENT_STRING_LIMIT` characters.
    cut_strings: int
    #: How many containers deeper than :data:`MAX_DEPTH` were left out.
    cut_containers: int


def pretty(value: Any, *, string_limit: int | None = EVENT_STRING_LIMIT) -> Pretty:
    """``value`` as indented JSON; long strings cut (unless ``string_limit`` is ``None``)."""
    cut_strings = 0
    cut_containers = 0

    def shorten(item: Any) -> Any:
        nonlocal cut_strings
        if string_limit is not None and isinstance(item, str) and len(item) > string_limit:
            cut_strings += 1
            left = len(item) - string_limit
            return f"{item[:string_limit]}… [{left:,} more characters: open the event in full]"
        return item

    # Copy the value with an explicit stack: (source, target container, key in target, depth).
    root: list[Any] = [None]
    stack: list[tuple[Any, Any, Any, int]] = [(value, root, 0, 0)]
    while stack:
        source, target, key, depth = stack.pop()
        if isinstance(source, (dict, list)) and depth >= MAX_DEPTH:
            cut_containers += 1
            target[key] = f"… [nested deeper than {MAX_DEPTH} levels]"
        elif isinstance(source, dict):
            copied: dict[str, Any] = {}
            target[key] = copied
            for name, element in source.items():
                copied[str(name)] = None
                stack.append((element, copied, str(name), depth + 1))
        elif isinstance(source, list):
            items: list[Any] = [None] * len(source)
            target[key] = items
            stack.extend((element, items, index, depth + 1) for index, element in enumerate(source))
        else:
            target[key] = shorten(source)
    text = json.dumps(root[0], indent=2, ensure_ascii=False, default=str)
    return Pretty(text, cut_strings, cut_containers)


def human_size(size: float) -> str:
    """A byte count as ``12.3 KiB``."""
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")
