"""A run's events as a timeline: token sums, errors, the run's outcome; no I/O.

A page of a run's events (every category, in seq order) becomes *spans*
and their tree (:mod:`.spans`), drawn as bars (:func:`bars`), and

- *token usage*: ``metadata.usage`` summed per caller and in total. One model
  call is counted once: journals that record its usage both on the
  ``llm.end`` trace and on the AI message that follows are not counted twice;
- *errors*: events of category ``error``, of a type ending in ``.error``, and
  tool results whose ``status`` is ``error``;
- the run's *outcome* (:func:`outcome`): ``run.error`` (failed, and why),
  ``run.end`` (its status), or neither (no end recorded).

Only the records given are looked at. Nothing here raises on odd values: a
date out of range or a latency of 1e20 is simply not drawn.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..models import AI_REPLY_TYPES
from ..times import utc_moment

if TYPE_CHECKING:
    from .spans import Span

SUBAGENT_CALLER_PREFIX = "subagent:"

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
SUBAGENT_STEP_TYPE = "subagent.step"
ERROR_CATEGORY = "error"


def parse_time(text: Any) -> datetime | None:
    """A ``created_at`` string as an aware datetime in UTC (UTC when it names no offset), else ``None``.

    The stores' own grammar (:mod:`mongo_runevents.times`): what they accept
    is what is drawn.
    """
    return utc_moment(text) if isinstance(text, str) else None


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


#: Event types that end a run.
RUN_END_TYPES = frozenset({"run.end", "run.error"})
#: ``subagent.end`` statuses that are failures.
FAILED_TASK_STATUSES = frozenset({"failed", "timed_out", "cancelled", "error"})


def text_field(container: Any, key: str) -> str | None:
    """``container[key]`` when ``container`` is a dict and it is a non-empty string."""
    value = container.get(key) if isinstance(container, dict) else None
    return value if isinstance(value, str) and value else None


def failed_task(record: Mapping[str, Any]) -> bool:
    """Whether a ``subagent.end`` says its task failed."""
    content = record.get("content")
    return isinstance(content, dict) and content.get("status") in FAILED_TASK_STATUSES


@dataclass
class Outcome:
    """How a run went, from its lifecycle events: status, why it failed, first error."""

    status: str
    reason: str | None = None
    error_type: str | None = None
    started: datetime | None = None
    ended: datetime | None = None
    end_seq: int | None = None
    first_error_seq: int | None = None
    errors: int = 0

    @property
    def failed(self) -> bool:
        """Whether the run ended in an error."""
        return self.status == "failed"

    @property
    def duration_ms(self) -> float | None:
        """From ``run.start`` to the run's end, if both are known."""
        if self.started is None or self.ended is None:
            return None
        return (self.ended - self.started).total_seconds() * 1000


#: Event types that tell how a run went (read for a run's header and a thread's run list).
OUTCOME_TYPES = (
    "run.start",
    "run.end",
    "run.error",
    "llm.error",
    "tool.error",
    "subagent.end",
    "subagent.error",
)
#: Longest failure reason shown in a header.
REASON_LIMIT = 600


def outcome(records: Iterable[Mapping[str, Any]]) -> Outcome:
    """The run's outcome from any of its events (each seq counted once): ``run.error`` wins."""
    result = Outcome("no end recorded")
    seen: set[int] = set()
    for record in records:
        event_type = record.get("event_type")
        seq = record.get("seq")
        if isinstance(seq, int):
            if seq in seen:
                continue  # the same event, from two reads
            seen.add(seq)
        when = parse_time(record.get("created_at"))
        if event_type == "run.start" and result.started is None:
            result.started = when
        error = is_error(record) or (event_type == "subagent.end" and failed_task(record))
        if error and isinstance(seq, int):
            result.errors += 1
            if result.first_error_seq is None or seq < result.first_error_seq:
                result.first_error_seq = seq
        if event_type == "run.error" and not result.failed:
            result.status = "failed"
            result.reason = _reason(record.get("content"))
            metadata = record.get("metadata")
            result.error_type = text_field(metadata, "error_type")
            result.ended, result.end_seq = when, seq if isinstance(seq, int) else None
        elif event_type == "run.end" and not result.failed:
            status = text_field(record.get("metadata"), "status") or text_field(
                record.get("content"), "status"
            )
            result.status = "succeeded" if status in (None, "success") else status
            result.ended, result.end_seq = when, seq if isinstance(seq, int) else None
    return result


def _reason(content: Any) -> str:
    if isinstance(content, dict):
        for key in ("error", "message", "content"):
            text = text_field(content, key)
            if text is not None:
                content = text
                break
    text = content if isinstance(content, str) else str(content)
    return text if len(text) <= REASON_LIMIT else text[:REASON_LIMIT] + "…"


def time_window(records: Iterable[Mapping[str, Any]]) -> tuple[datetime, datetime] | None:
    """The earliest and latest ``created_at`` of the records, if any parse."""
    times = [t for t in (parse_time(r.get("created_at")) for r in records) if t is not None]
    return (min(times), max(times)) if times else None


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


def span_window(
    records: Iterable[Mapping[str, Any]], spans: Iterable[Span]
) -> tuple[datetime, datetime] | None:
    """The page's time window, widened to the starts of spans drawn from reported latencies."""
    window = time_window(records)
    if window is None:
        return None
    starts = [span.start for span in spans]
    return (min([window[0], *starts]), window[1])
