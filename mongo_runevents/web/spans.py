"""A run's events as spans of time, and their tree. No I/O.

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
  under it.

Only the records given are looked at: a span whose start is on an earlier page
is not drawn, one whose end is on a later page is open, and one the run ended
without is ``unfinished``. Nothing here raises on odd values.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ..models import AI_REPLY_TYPES
from .timeline import (
    END_TYPES,
    ID_KEYS,
    RUN_END_TYPES,
    START_TYPES,
    SUBAGENT_CALLER_PREFIX,
    SUBAGENT_STEP_TYPE,
    Usage,
    caller_of,
    failed_task,
    is_error,
    parse_time,
    text_field,
    usage_of,
)


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


@dataclass
class _Open:
    kind: str
    label: str
    seq: int
    start: datetime
    ident: str
    parent: str
    caller: str


def _id_in(record: Mapping[str, Any], kind: str) -> str | None:
    for container in (record.get("metadata"), record.get("content")):
        for key in ID_KEYS[kind]:
            value = text_field(container, key)
            if value is not None:
                return value
    return None


def task_of(record: Mapping[str, Any]) -> str | None:
    """``task_id`` of the subagent an event belongs to (metadata, else content), if any."""
    return text_field(record.get("metadata"), "task_id") or text_field(
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
        name = text_field(content, key)
        if name is not None:
            return name
    return kind


def _model_name(record: Mapping[str, Any]) -> str:
    content = record.get("content")
    meta = content.get("response_metadata") if isinstance(content, dict) else None
    return text_field(meta, "model_name") or text_field(content, "model") or "model call"


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
                is_error(record) or failed_task(record),
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
