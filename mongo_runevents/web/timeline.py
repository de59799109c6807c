"""A run's events as a timeline: a span tree, token sums, errors and the run's outcome. No I/O.

A page of a run's events (every category, in seq order) becomes

- *spans*, paired by identity: a model call is an AI message with
  ``metadata.latency_ms`` (DeerFlow's journal writes no ``llm.start``: the
  span ends at the message and starts its latency earlier), or an
  ``llm.start`` / ``llm.end`` pair; a tool call runs from the AI message that
  asks for it to the ``llm.tool.result`` carrying its ``tool_call_id`` (or a
  ``tool.start`` / ``tool.end`` pair with the same id); a subagent runs from
  ``subagent.start`` to ``subagent.end`` of its ``task_id``. Ends with no id
  pair with a start of the same caller and task: the one their reported
  latency points at, else the latest, so a start that never ended stays open
  rather than taking a later call's end. A drawn duration that disagrees with
  the reported latency is flagged (:attr:`Span.mismatch`);
- a *tree*: a subagent nests under the ``task`` tool call whose id is its
  ``task_id``, and the subagent's model and tool calls (its ``task_id``, or
  its ``subagent:`` caller while that subagent is the only one running) nest
  under it;
- *token usage*: ``metadata.usage`` summed per caller and in total. One model
  call is counted once: journals that record its usage both on the
  ``llm.end`` trace and on the AI message that follows are not counted twice;
- *errors*: events of category ``error``, of a type ending in ``.error``, and
  tool results whose ``status`` is ``error``;
- the run's *outcome* (:func:`outcome`): ``run.error`` (failed, and why),
  ``run.end`` (its status), or neither (no end recorded).

Only the records given are looked at: a span whose start is on an earlier page
is not drawn, one whose end is on a later page is open, and one the run ended
without is ``unfinished``. Nothing here raises on odd values: a date out of
range or a latency of 1e20 is simply not drawn.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ..models import AI_REPLY_TYPES
from ..times import utc_moment

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


@dataclass
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
    #: The id that ties it together (tool call id, task id, model call index), or ``""``.
    ident: str = ""
    #: The key (``kind:ident``) of the span it was spawned by, or ``""``.
    parent: str = ""
    caller: str = ""
    usage: Usage | None = None
    #: Nesting depth in the span tree (0: the run's own calls).
    depth: int = 0
    #: The start was not written: it is the end's time less its reported latency.
    estimated_start: bool = False
    #: No end was written, and the run ended (``run.end`` / ``run.error``) without it.
    unfinished: bool = False

    @property
    def key(self) -> str:
        """How children name this span."""
        return f"{self.kind}:{self.ident}" if self.ident else f"{self.kind}#{self.start_seq}"

    @property
    def duration_ms(self) -> float | None:
        """Milliseconds from start to end, by ``created_at``; ``None`` while open."""
        if self.end is None:
            return None
        return (self.end - self.start).total_seconds() * 1000

    @property
    def mismatch(self) -> bool:
        """Whether the drawn duration disagrees with the reported latency (by > 25 % and > 250 ms)."""
        drawn, reported = self.duration_ms, self.reported_ms
        if drawn is None or reported is None or self.estimated_start:
            return False
        return abs(drawn - reported) > max(MISMATCH_MIN_MS, MISMATCH_SHARE * reported)


#: A drawn duration this far from the reported one is flagged (both must be exceeded).
MISMATCH_MIN_MS = 250.0
MISMATCH_SHARE = 0.25
#: Event types that end a run.
RUN_END_TYPES = frozenset({"run.end", "run.error"})
#: ``subagent.end`` statuses that are failures.
FAILED_TASK_STATUSES = frozenset({"failed", "timed_out", "cancelled", "error"})


@dataclass
class _Open:
    kind: str
    label: str
    seq: int
    start: datetime
    ident: str
    parent: str
    caller: str


def _text_field(container: Any, key: str) -> str | None:
    value = container.get(key) if isinstance(container, dict) else None
    return value if isinstance(value, str) and value else None


def _id_in(record: Mapping[str, Any], kind: str) -> str | None:
    for container in (record.get("metadata"), record.get("content")):
        for key in ID_KEYS[kind]:
            value = _text_field(container, key)
            if value is not None:
                return value
    return None


def task_of(record: Mapping[str, Any]) -> str | None:
    """``task_id`` of the subagent an event belongs to (metadata, else content), if any."""
    return _text_field(record.get("metadata"), "task_id") or _text_field(
        record.get("content"), "task_id"
    )


def _order_key(record: Mapping[str, Any]) -> tuple[str, str]:
    return caller_of(record), task_of(record) or ""


def _kind(event_type: Any, types: Mapping[str, frozenset[str]]) -> str | None:
    for kind, names in types.items():
        if event_type in names:
            return kind
    return None


def _label(record: Mapping[str, Any], kind: str) -> str:
    content = record.get("content")
    for key in ("name", "model", "description"):
        name = _text_field(content, key)
        if name is not None:
            return name
    return kind


def _model_name(record: Mapping[str, Any]) -> str:
    content = record.get("content")
    meta = content.get("response_metadata") if isinstance(content, dict) else None
    return _text_field(meta, "model_name") or _text_field(content, "model") or "model call"


def tool_calls(record: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(id, name) of each tool call an AI message asks for."""
    content = record.get("content")
    calls = content.get("tool_calls") if isinstance(content, dict) else None
    found = []
    for call in calls if isinstance(calls, list) else ():
        if isinstance(call, dict) and isinstance(call.get("id"), str) and call["id"]:
            name = call.get("name")
            found.append((call["id"], name if isinstance(name, str) and name else "tool"))
    return found


def _reported_ms(record: Mapping[str, Any]) -> float | None:
    metadata = record.get("metadata")
    value = metadata.get("latency_ms") if isinstance(metadata, dict) else None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value < 1e15:
        return float(value)
    return None


def _before(moment: datetime, ms: float) -> datetime | None:
    """``moment`` less ``ms`` milliseconds, or ``None`` where that is no date."""
    try:
        return moment - timedelta(milliseconds=ms)
    except (OverflowError, ValueError):
        return None


def _call_index(record: Mapping[str, Any]) -> str:
    metadata = record.get("metadata")
    index = metadata.get("llm_call_index") if isinstance(metadata, dict) else None
    return str(index) if isinstance(index, int) and not isinstance(index, bool) else ""


def _failed_task(record: Mapping[str, Any]) -> bool:
    content = record.get("content")
    return isinstance(content, dict) and content.get("status") in FAILED_TASK_STATUSES


class _Pairing:
    """The state of :func:`pair_spans` while it walks a page."""

    def __init__(self) -> None:
        self.by_id: dict[tuple[str, str], _Open] = {}
        self.in_order: dict[tuple[str, str, str], list[_Open]] = {}
        self.spans: list[Span] = []

    def open_tasks(self) -> list[str]:
        """Ids of the subagents (else ``task`` tool calls) still running."""
        tasks = [ident for (kind, ident) in self.by_id if kind == "subagent"]
        if tasks:
            return tasks
        return [
            o.ident for (kind, _), o in self.by_id.items() if kind == "tool" and o.label == "task"
        ]

    def parent_of(self, record: Mapping[str, Any]) -> str:
        """The task an event runs in: its ``task_id``, or the only subagent open for its caller."""
        task = task_of(record)
        if task is None and caller_of(record).startswith(SUBAGENT_CALLER_PREFIX):
            running = self.open_tasks()
            task = running[0] if len(running) == 1 else None
        return f"task:{task}" if task else ""

    def take_start(self, kind: str, record: Mapping[str, Any], end: datetime) -> _Open | None:
        """The start an end closes: by id; else the one its latency points at; else the latest."""
        ident = _id_in(record, kind)
        if ident is not None:
            found = self.by_id.pop((kind, ident), None)
            if found is not None:
                return found
        queue = self.in_order.get((kind, *_order_key(record)))
        if not queue:
            return None
        reported = _reported_ms(record)
        began = _before(end, reported) if reported is not None else None
        if began is not None:
            tolerance = max(MISMATCH_MIN_MS, MISMATCH_SHARE * (reported or 0)) / 1000
            closest = min(queue, key=lambda o: abs((o.start - began).total_seconds()))
            if abs((closest.start - began).total_seconds()) <= tolerance:
                queue.remove(closest)
                return closest
        # One caller makes one call at a time: an end closes its latest start, so a
        # start that never ended stays open instead of stealing a later call's end.
        return queue.pop()

    def close_subagent_tool(self, record: Mapping[str, Any], seq: int, when: datetime) -> None:
        """A subagent's tool step closes its task's earliest open call of that tool.

        The journal records a subagent's tool results only as ``subagent.step``
        events (``kind: tool``, ``tool_name``), with no tool call id.
        """
        content = record.get("content")
        if not isinstance(content, dict) or content.get("kind") != "tool":
            return
        parent = self.parent_of(record)
        for key, opened in self.by_id.items():
            if (
                key[0] == "tool"
                and opened.parent == parent
                and opened.label == content.get("tool_name")
            ):
                self.close(self.by_id.pop(key), record, seq, when)
                return

    def close(self, start: _Open, record: Mapping[str, Any], seq: int, when: datetime) -> None:
        """A span from ``start`` to this end event."""
        self.spans.append(
            Span(
                start.kind,
                start.label,
                start.seq,
                seq,
                start.start,
                when,
                _reported_ms(record),
                is_error(record) or _failed_task(record),
                start.ident,
                start.parent,
                start.caller,
                usage_of(record),
            )
        )


def pair_spans(records: Iterable[Mapping[str, Any]]) -> list[Span]:
    """The spans of a page of events as a tree: each span followed by those it spawned.

    Pairs ends with starts by identity (module docstring); ``depth`` says how
    deep a span is nested. A start whose end is not on the page is open
    (``end`` is ``None``), or ``unfinished`` when the run ended without it.
    """
    records = list(records)
    starts_recorded = any(r.get("event_type") in START_TYPES["llm"] for r in records)
    state = _Pairing()
    run_ended: datetime | None = None
    for record in records:
        when = parse_time(record.get("created_at"))
        seq = record.get("seq")
        if when is None or not isinstance(seq, int):
            continue
        event_type = record.get("event_type")
        caller = caller_of(record)
        if event_type in RUN_END_TYPES:
            run_ended = when
        if event_type in AI_REPLY_TYPES:
            parent = state.parent_of(record)
            for call_id, name in tool_calls(record):
                state.by_id[("tool", call_id)] = _Open(
                    "tool", name, seq, when, call_id, parent, caller
                )
            latency = _reported_ms(record)
            began = _before(when, latency) if latency is not None else None
            if not starts_recorded and latency is not None and began is not None:
                index = _call_index(record)
                state.spans.append(
                    Span(
                        "llm",
                        _model_name(record),
                        seq,
                        seq,
                        began,
                        when,
                        latency,
                        False,
                        f"call-{index}" if index else "",
                        parent,
                        caller,
                        usage_of(record),
                        estimated_start=True,
                    )
                )
            continue
        if event_type == SUBAGENT_STEP_TYPE:
            state.close_subagent_tool(record, seq, when)
            continue
        start_kind = _kind(event_type, START_TYPES)
        if start_kind is not None:
            ident = _id_in(record, start_kind)
            parent = state.parent_of(record)
            if start_kind == "subagent":
                parent = f"tool:{ident}" if ident else ""
            opened = _Open(
                start_kind, _label(record, start_kind), seq, when, ident or "", parent, caller
            )
            if ident is not None:
                state.by_id[(start_kind, ident)] = opened
            else:
                state.in_order.setdefault((start_kind, *_order_key(record)), []).append(opened)
            continue
        end_kind = _kind(event_type, END_TYPES)
        if end_kind is None:
            continue
        start = state.take_start(end_kind, record, when)
        if start is not None:
            state.close(start, record, seq, when)
        elif is_error(record):
            # A failed call whose start was not written (DeerFlow's llm.error): an instant.
            label = "model call failed" if end_kind == "llm" else f"{end_kind} failed"
            state.spans.append(
                Span(
                    end_kind,
                    label,
                    seq,
                    seq,
                    when,
                    when,
                    None,
                    True,
                    "",
                    state.parent_of(record),
                    caller,
                )
            )
    leftover = [*state.by_id.values(), *(o for queue in state.in_order.values() for o in queue)]
    for opened in leftover:
        ended = run_ended is not None and run_ended >= opened.start
        state.spans.append(
            Span(
                opened.kind,
                opened.label,
                opened.seq,
                None,
                opened.start,
                None,
                None,
                False,
                opened.ident,
                opened.parent,
                opened.caller,
                unfinished=ended,
            )
        )
    return _as_tree(state.spans)


def _as_tree(spans: list[Span]) -> list[Span]:
    """Spans in tree order (children after their parent, each level by start), depths set."""
    keys = {span.key for span in spans}
    children: dict[str, list[Span]] = {}
    roots: list[Span] = []
    for span in spans:
        parent = span.parent
        if parent.startswith("task:"):
            ident = parent[len("task:") :]
            parent = next(
                (k for k in (f"subagent:{ident}", f"tool:{ident}") if k in keys and k != span.key),
                "",
            )
        if parent and parent in keys and parent != span.key:
            children.setdefault(parent, []).append(span)
        else:
            roots.append(span)
    ordered: list[Span] = []
    stack: list[tuple[Span, int]] = [(s, 0) for s in sorted(roots, key=_start_order, reverse=True)]
    seen: set[int] = set()
    while stack:
        span, depth = stack.pop()
        if id(span) in seen:
            continue
        seen.add(id(span))
        span.depth = depth
        ordered.append(span)
        below = sorted(children.get(span.key, ()), key=_start_order, reverse=True)
        stack.extend((child, depth + 1) for child in below)
    return ordered


def _start_order(span: Span) -> tuple[datetime, int]:
    return span.start, span.start_seq


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
        error = is_error(record) or (event_type == "subagent.end" and _failed_task(record))
        if error and isinstance(seq, int):
            result.errors += 1
            if result.first_error_seq is None or seq < result.first_error_seq:
                result.first_error_seq = seq
        if event_type == "run.error" and not result.failed:
            result.status = "failed"
            result.reason = _reason(record.get("content"))
            metadata = record.get("metadata")
            result.error_type = _text_field(metadata, "error_type")
            result.ended, result.end_seq = when, seq if isinstance(seq, int) else None
        elif event_type == "run.end" and not result.failed:
            status = _text_field(record.get("metadata"), "status") or _text_field(
                record.get("content"), "status"
            )
            result.status = "succeeded" if status in (None, "success") else status
            result.ended, result.end_seq = when, seq if isinstance(seq, int) else None
    return result


def _reason(content: Any) -> str:
    if isinstance(content, dict):
        for key in ("error", "message", "content"):
            text = _text_field(content, key)
            if text is not None:
                content = text
                break
    text = content if isinstance(content, str) else str(content)
    return text if len(text) <= REASON_LIMIT else text[:REASON_LIMIT] + "…"


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


def span_window(
    records: Iterable[Mapping[str, Any]], spans: Iterable[Span]
) -> tuple[datetime, datetime] | None:
    """The page's time window, widened to the starts of spans drawn from reported latencies."""
    window = time_window(records)
    if window is None:
        return None
    starts = [span.start for span in spans]
    return (min([window[0], *starts]), window[1])
