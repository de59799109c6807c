"""A run's events as a timeline: paired spans, token sums and errors. Pure functions, no I/O.

A page of a run's events (every category, in seq order) becomes

- *spans*: the time between an event that starts something and the one that
  ends it, measured from their ``created_at``: a model call (``llm.start`` to
  ``llm.end`` or ``llm.error``), a tool call (``tool.start`` to ``tool.end``,
  ``tool.result`` or ``tool.error``; and an AI message's ``tool_calls`` to the
  ``llm.tool.result`` answering each, by tool call id), a subagent
  (``subagent.start`` to ``subagent.end``). Where a page has no ``llm.start``
  at all (DeerFlow's journal writes none), an AI message with
  ``metadata.latency_ms`` is drawn as a model call ending at its time. Ends are matched to starts by an id
  in the metadata or content where there is one (``tool_call_id``,
  ``llm_call_id``, ``call_id``, ``span_id``; ``task_id`` for subagents), else
  in order among the starts of the same caller and task;
- *token usage*: ``metadata.usage`` summed per caller and in total. One model
  call is counted once: DeerFlow-style journals record its usage both on the
  ``llm.end`` trace and on the AI message that follows, so an AI message whose
  usage equals that of the caller's last uncounted ``llm.end`` is not added again;
- *errors*: events of category ``error``, of a type ending in ``.error``, and
  tool results whose ``status`` is ``error``.

Only the page given is looked at: a span whose start is on an earlier page is
not drawn, and one whose end is on a later page is drawn open to the page's end.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from ..models import AI_REPLY_TYPES

#: Event types that open a span, by kind of span.
START_TYPES: Mapping[str, frozenset[str]] = {
    "llm": frozenset({"llm.start", "llm_start"}),
    "tool": frozenset({"tool.start", "tool_start", "tool.call", "tool_call"}),
    "subagent": frozenset({"subagent.start"}),
}
#: Event types that close a span, by kind of span.
END_TYPES: Mapping[str, frozenset[str]] = {
    "llm": frozenset({"llm.end", "llm_end", "llm.error"}),
    "tool": frozenset(
        {"tool.end", "tool_end", "tool.result", "tool_result", "tool.error", "llm.tool.result"}
    ),
    "subagent": frozenset({"subagent.end", "subagent.error"}),
}
#: Where an id that ties an end to its start may be found (metadata first, then content).
ID_KEYS: Mapping[str, tuple[str, ...]] = {
    "llm": ("llm_call_id", "call_id", "span_id"),
    "tool": ("tool_call_id", "call_id", "span_id"),
    "subagent": ("task_id", "span_id"),
}
TOOL_RESULT_TYPE = "llm.tool.result"
ERROR_CATEGORY = "error"

_ISO = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?"
    r"\s*(Z|[+-]\d{2}(?::?\d{2})?)?",
    re.IGNORECASE,
)


def parse_time(text: Any) -> datetime | None:
    """A ``created_at`` string as an aware datetime (UTC when it names no offset), else ``None``."""
    if not isinstance(text, str):
        return None
    match = _ISO.fullmatch(text.strip())
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    try:
        moment = datetime(
            int(year),
            int(month),
            int(day),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            int((fraction or "0").ljust(6, "0")[:6]),
            tzinfo=timezone.utc,
        )
    except ValueError:
        return None
    if offset and offset.upper() != "Z":
        digits = offset[1:].replace(":", "")
        shift = timedelta(hours=int(digits[:2]), minutes=int(digits[2:4] or 0))
        moment -= shift if offset[0] == "+" else -shift
    return moment


def is_error(record: Mapping[str, Any]) -> bool:
    """Whether an event records a failure."""
    if record.get("category") == ERROR_CATEGORY:
        return True
    event_type = record.get("event_type")
    if isinstance(event_type, str) and event_type.endswith(".error"):
        return True
    content = record.get("content")
    return (
        event_type == TOOL_RESULT_TYPE
        and isinstance(content, dict)
        and content.get("status") == "error"
    )


def caller_of(record: Mapping[str, Any]) -> str:
    """``metadata.caller`` as text, or ``""``."""
    metadata = record.get("metadata")
    caller = metadata.get("caller") if isinstance(metadata, dict) else None
    return caller if isinstance(caller, str) else ""


@dataclass(frozen=True)
class Usage:
    """Token counts; ``total`` is ``input + output`` when the record gives no total."""

    input: int = 0
    output: int = 0
    total: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.input + other.input, self.output + other.output, self.total + other.total)


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def usage_of(record: Mapping[str, Any]) -> Usage | None:
    """The token usage in ``metadata.usage`` (LangChain or OpenAI names), if any."""
    metadata = record.get("metadata")
    usage = metadata.get("usage") if isinstance(metadata, dict) else None
    if not isinstance(usage, dict):
        return None
    given_input = _count(usage.get("input_tokens")) or _count(usage.get("prompt_tokens"))
    given_output = _count(usage.get("output_tokens")) or _count(usage.get("completion_tokens"))
    total = _count(usage.get("total_tokens")) or given_input + given_output
    if not (given_input or given_output or total):
        return None
    return Usage(given_input, given_output, total)


@dataclass
class TokenSums:
    """Token usage of a page of a run: in total, by caller, and how many events it came from."""

    total: Usage = field(default_factory=Usage)
    by_caller: dict[str, Usage] = field(default_factory=dict)
    #: The seqs whose usage was counted (an AI message repeating its llm.end's is not).
    counted: set[int] = field(default_factory=set)


def sum_tokens(records: Iterable[Mapping[str, Any]]) -> TokenSums:
    """Sum ``metadata.usage`` over the records, counting each model call once (module docstring)."""
    sums = TokenSums()
    uncounted_end: dict[str, Usage] = {}
    for record in records:
        usage = usage_of(record)
        if usage is None:
            continue
        caller = caller_of(record)
        event_type = record.get("event_type")
        if event_type in END_TYPES["llm"]:
            uncounted_end[caller] = usage
        elif event_type in AI_REPLY_TYPES and uncounted_end.get(caller) == usage:
            del uncounted_end[caller]
            continue
        sums.total += usage
        sums.by_caller[caller] = sums.by_caller.get(caller, Usage()) + usage
        if isinstance(record.get("seq"), int):
            sums.counted.add(record["seq"])
    return sums


@dataclass(frozen=True)
class Span:
    """Something that took time: a model call, a tool call or a subagent."""

    kind: str
    label: str
    start_seq: int
    end_seq: int | None
    start: datetime
    end: datetime | None
    #: ``metadata.latency_ms`` of the end event, as the writer measured it.
    reported_ms: float | None
    error: bool

    @property
    def duration_ms(self) -> float | None:
        """Milliseconds from start to end, by ``created_at``; ``None`` while open."""
        if self.end is None:
            return None
        return (self.end - self.start).total_seconds() * 1000


@dataclass
class _Open:
    kind: str
    label: str
    seq: int
    start: datetime


def _id_in(record: Mapping[str, Any], kind: str) -> str | None:
    for container in (record.get("metadata"), record.get("content")):
        if isinstance(container, dict):
            for key in ID_KEYS[kind]:
                value = container.get(key)
                if isinstance(value, str) and value:
                    return value
    return None


def _order_key(record: Mapping[str, Any]) -> tuple[str, str]:
    metadata = record.get("metadata")
    task = metadata.get("task_id") if isinstance(metadata, dict) else None
    return caller_of(record), task if isinstance(task, str) else ""


def _kind(event_type: Any, types: Mapping[str, frozenset[str]]) -> str | None:
    for kind, names in types.items():
        if event_type in names:
            return kind
    return None


def _label(record: Mapping[str, Any], kind: str) -> str:
    content = record.get("content")
    name = content.get("name") or content.get("model") if isinstance(content, dict) else None
    parts = [kind, name if isinstance(name, str) else "", caller_of(record)]
    return " · ".join(part for part in parts if part)


def _tool_calls(record: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(id, name) of each tool call an AI message asks for."""
    content = record.get("content")
    calls = content.get("tool_calls") if isinstance(content, dict) else None
    found = []
    for call in calls if isinstance(calls, list) else ():
        if isinstance(call, dict) and isinstance(call.get("id"), str) and call["id"]:
            name = call.get("name")
            found.append((call["id"], name if isinstance(name, str) else "tool"))
    return found


def _reported_ms(record: Mapping[str, Any]) -> float | None:
    metadata = record.get("metadata")
    value = metadata.get("latency_ms") if isinstance(metadata, dict) else None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
        return float(value)
    return None


def pair_spans(records: Iterable[Mapping[str, Any]]) -> list[Span]:
    """The spans of a page of events, ordered by where they start."""
    records = list(records)
    starts_recorded = any(r.get("event_type") in START_TYPES["llm"] for r in records)
    by_id: dict[tuple[str, str], _Open] = {}
    in_order: dict[tuple[str, str, str], deque[_Open]] = {}
    spans: list[Span] = []
    for record in records:
        when = parse_time(record.get("created_at"))
        seq = record.get("seq")
        if when is None or not isinstance(seq, int):
            continue
        event_type = record.get("event_type")
        if event_type in AI_REPLY_TYPES:
            for call_id, name in _tool_calls(record):
                by_id[("tool", call_id)] = _Open("tool", f"tool · {name}", seq, when)
            latency = _reported_ms(record)
            if not starts_recorded and latency is not None:
                began = when - timedelta(milliseconds=latency)
                label = " · ".join(part for part in ("llm", caller_of(record)) if part)
                spans.append(Span("llm", label, seq, seq, began, when, latency, False))
            continue
        start_kind = _kind(event_type, START_TYPES)
        if start_kind is not None:
            opened = _Open(start_kind, _label(record, start_kind), seq, when)
            ident = _id_in(record, start_kind)
            if ident is not None:
                by_id[(start_kind, ident)] = opened
            else:
                key = (start_kind, *_order_key(record))
                in_order.setdefault(key, deque()).append(opened)
            continue
        end_kind = _kind(event_type, END_TYPES)
        if end_kind is None:
            continue
        ident = _id_in(record, end_kind)
        start = by_id.pop((end_kind, ident), None) if ident is not None else None
        if start is None:
            queue = in_order.get((end_kind, *_order_key(record)))
            start = queue.popleft() if queue else None
        if start is None:
            continue  # its start is on an earlier page, or was never written
        spans.append(
            Span(
                start.kind,
                start.label,
                start.seq,
                seq,
                start.start,
                when,
                _reported_ms(record),
                is_error(record),
            )
        )
    for opened in [*by_id.values(), *(o for queue in in_order.values() for o in queue)]:
        spans.append(
            Span(opened.kind, opened.label, opened.seq, None, opened.start, None, None, False)
        )
    spans.sort(key=lambda span: span.start_seq)
    return spans


@dataclass(frozen=True)
class Bar:
    """Where a span sits in the page's time window, in thousandths of its width."""

    span: Span
    x: int
    width: int


def bars(spans: Iterable[Span], window_start: datetime, window_end: datetime) -> list[Bar]:
    """Horizontal bars for the spans: offset and width in 0..1000 of the window.

    Every bar is at least 2 wide, so an instant span still shows; an open span
    runs to the end of the window.
    """
    width_of_window = max((window_end - window_start).total_seconds(), 1e-6)
    placed = []
    for span in spans:
        end = span.end or window_end
        x = (span.start - window_start).total_seconds() / width_of_window * 1000
        width = (end - span.start).total_seconds() / width_of_window * 1000
        x = min(max(x, 0.0), 998.0)
        placed.append(Bar(span, round(x), max(2, min(round(width), 1000 - round(x)))))
    return placed


def time_window(records: Iterable[Mapping[str, Any]]) -> tuple[datetime, datetime] | None:
    """The earliest and latest ``created_at`` of the records, if any parse."""
    times = [t for t in (parse_time(r.get("created_at")) for r in records) if t is not None]
    return (min(times), max(times)) if times else None
