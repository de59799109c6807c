"""Spans, token sums and errors from a page of a run's events: pure functions, no server."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from mongo_runevents.cli import journal_runs
from mongo_runevents.web import timeline
from mongo_runevents.web.spans import pair_spans

T0 = datetime(2025, 6, 1, 2, 0, tzinfo=timezone.utc)


def event(seq: int, event_type: str, ms: float, **fields: Any) -> dict[str, Any]:
    """A record at ``ms`` milliseconds after T0."""
    return {
        "thread_id": "t",
        "run_id": "r",
        "seq": seq,
        "event_type": event_type,
        "category": fields.pop("category", "trace"),
        "content": fields.pop("content", ""),
        "metadata": fields.pop("metadata", {}),
        "created_at": (T0 + timedelta(milliseconds=ms)).isoformat(),
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-06-01T02:00:00+00:00", T0),
        ("2025-06-01T02:00:00Z", T0),
        ("2025-06-01 02:00", T0),
        ("2025-06-01", T0 - timedelta(hours=2)),
        ("2025-06-01T07:30:00+05:30", T0),
        ("2025-06-01T07:30:00+0530", T0),
        ("2025-06-01T04:00:00+02", T0),
        ("2025-05-31T23:00:00-03:00", T0),
        ("2025-06-01T02:00:00.123456789Z", T0 + timedelta(microseconds=123456)),
        ("2025-06-01T02:00:00,5", T0 + timedelta(milliseconds=500)),
    ],
)
def test_parse_time_reads_every_iso_form_the_stores_accept(text: str, expected: datetime) -> None:
    """Dates, T or space, fractions to 9 digits with . or , and every offset form; UTC by default."""
    assert timeline.parse_time(text) == expected


@pytest.mark.parametrize(
    "text",
    # The last: Arabic-Indic digits, which \\d and int() take and the stores refuse.
    ["", "yesterday", "2025-13-01", "2025-06-01T25:00", None, 5, "\u0662\u0660\u0662\u0665-06-01"],
)
def test_parse_time_gives_none_for_anything_else(text: Any) -> None:
    """A created_at that is not ISO-8601 (as the stores read it) has no place on the time axis."""
    assert timeline.parse_time(text) is None


def test_llm_calls_pair_in_order_per_caller() -> None:
    """llm.start/llm.end pair in order within a caller, so interleaved callers stay apart."""
    records = [
        event(1, "llm.start", 0, metadata={"caller": "lead"}),
        event(2, "llm.start", 10, metadata={"caller": "subagent:x", "task_id": "c1"}),
        event(3, "llm.end", 30, metadata={"caller": "subagent:x", "task_id": "c1"}),
        event(4, "llm.end", 100, metadata={"caller": "lead", "latency_ms": 98}),
    ]
    spans = pair_spans(records)
    assert [(s.start_seq, s.end_seq, s.duration_ms) for s in spans] == [(1, 4, 100), (2, 3, 20)]
    assert spans[0].reported_ms == 98
    assert (spans[0].label, spans[0].caller) == ("llm", "lead")


def test_ids_in_metadata_or_content_pair_ends_with_their_starts() -> None:
    """With call ids, ends pair with their own start whatever the order."""
    records = [
        event(1, "tool.start", 0, metadata={"tool_call_id": "a"}, content={"name": "ls"}),
        event(2, "tool.start", 5, content={"tool_call_id": "b", "name": "cat"}),
        event(3, "tool.end", 20, content={"tool_call_id": "b"}),
        event(4, "tool.error", 50, metadata={"tool_call_id": "a"}),
    ]
    spans = pair_spans(records)
    assert [(s.label, s.end_seq, s.duration_ms, s.error) for s in spans] == [
        ("ls", 4, 50, True),
        ("cat", 3, 15, False),
    ]


def test_ai_tool_calls_pair_with_their_tool_results() -> None:
    """An AI message's tool calls open spans that the llm.tool.result of each call id closes."""
    records = [
        event(
            1,
            "llm.ai.response",
            0,
            category="message",
            content={
                "type": "ai",
                "tool_calls": [{"id": "c1", "name": "bash"}, {"id": "c2", "name": "ls"}],
            },
        ),
        event(2, "llm.tool.result", 40, category="message", content={"tool_call_id": "c2"}),
        event(
            3,
            "llm.tool.result",
            70,
            category="message",
            content={"tool_call_id": "c1", "status": "error"},
        ),
    ]
    spans = pair_spans(records)
    assert sorted((s.label, s.duration_ms, s.error) for s in spans) == [
        ("bash", 70, True),
        ("ls", 40, False),
    ]


def test_unpaired_events_are_open_spans_or_ignored() -> None:
    """A start without its end on the page is open; an end without its start is not drawn."""
    records = [
        event(1, "llm.end", 0),
        event(2, "subagent.start", 10, metadata={"task_id": "t1"}),
        event(3, "llm.start", 20),
    ]
    spans = pair_spans(records)
    assert [(s.kind, s.start_seq, s.end, s.duration_ms) for s in spans] == [
        ("subagent", 2, None, None),
        ("llm", 3, None, None),
    ]


def test_ai_messages_with_latency_are_model_calls_when_no_llm_start_is_recorded() -> None:
    """DeerFlow writes no llm.start: an AI reply's latency_ms becomes a span ending at its time."""
    records = [event(1, "llm.ai.response", 500, category="message", metadata={"latency_ms": 400})]
    [span] = pair_spans(records)
    assert (span.kind, span.duration_ms, span.end_seq) == ("llm", 400, 1)
    with_start = [event(0, "llm.start", 0), *records]
    assert [s.start_seq for s in pair_spans(with_start)] == [0]


def test_tokens_are_summed_per_caller_and_each_model_call_counted_once() -> None:
    """An AI message repeating the usage of its caller's llm.end is not counted again."""
    usage = {"input_tokens": 100, "output_tokens": 20, "total_tokens": 120}
    records = [
        event(1, "llm.end", 0, metadata={"caller": "lead", "usage": usage}),
        event(
            2, "llm.ai.response", 1, category="message", metadata={"caller": "lead", "usage": usage}
        ),
        event(
            3, "llm.ai.response", 2, category="message", metadata={"caller": "lead", "usage": usage}
        ),
        event(
            4,
            "middleware.title",
            3,
            metadata={"caller": "mw", "usage": {"prompt_tokens": 7, "completion_tokens": 3}},
        ),
        event(5, "llm.end", 4, metadata={"usage": {"total_tokens": True}}),
        event(6, "llm.end", 5, metadata={"usage": "lots"}),
    ]
    sums = timeline.sum_tokens(records)
    assert sums.total == timeline.Usage(207, 43, 250)
    assert sums.by_caller == {"lead": timeline.Usage(200, 40, 240), "mw": timeline.Usage(7, 3, 10)}
    assert sums.counted == {1, 3, 4}


@pytest.mark.parametrize(
    ("record", "error"),
    [
        ({"category": "error", "event_type": "run.failed"}, True),
        ({"category": "trace", "event_type": "llm.error"}, True),
        (
            {
                "category": "message",
                "event_type": "llm.tool.result",
                "content": {"status": "error"},
            },
            True,
        ),
        (
            {
                "category": "message",
                "event_type": "llm.tool.result",
                "content": {"status": "success"},
            },
            False,
        ),
        ({"category": "trace", "event_type": "llm.end"}, False),
        ({"category": "trace", "event_type": "errors.count"}, False),
    ],
)
def test_is_error(record: dict[str, Any], error: bool) -> None:
    """Category error, a type ending in .error, and failed tool results are errors."""
    assert timeline.is_error(record) is error


def test_bars_place_spans_in_the_window() -> None:
    """Offsets and widths are thousandths of the window; tiny spans still show; open ones run on."""
    records = [
        event(1, "llm.start", 0),
        event(2, "llm.end", 500),
        event(3, "tool.start", 500),
        event(4, "tool.end", 500),
        event(5, "subagent.start", 750),
        event(6, "run.end", 1000),
    ]
    window = timeline.time_window(records)
    assert window == (T0, T0 + timedelta(seconds=1))
    placed = timeline.bars(pair_spans(records), *window)
    assert [(b.span.kind, b.x, b.width) for b in placed] == [
        ("llm", 0, 500),
        ("tool", 500, 2),
        ("subagent", 750, 250),
    ]


def test_a_page_without_times_has_no_window() -> None:
    """Records whose created_at does not parse give no window and no spans."""
    records = [{"seq": 1, "event_type": "llm.start", "created_at": "soon"}]
    assert timeline.time_window(records) is None
    assert pair_spans(records) == []


def test_a_start_without_an_end_does_not_shift_the_later_pairs() -> None:
    """Pairing is by identity: a call that never ended stays open, the next pairs stay right."""
    records = [
        event(1, "llm.start", 0, metadata={"caller": "lead"}),  # never ends
        event(2, "llm.start", 1_000, metadata={"caller": "lead"}),
        event(3, "llm.end", 3_000, metadata={"caller": "lead", "latency_ms": 2_000}),
        event(4, "llm.start", 4_000, metadata={"caller": "lead"}),
        event(5, "llm.end", 4_500, metadata={"caller": "lead"}),  # no latency: the latest start
    ]
    spans = pair_spans(records)
    assert [(s.start_seq, s.end_seq, s.duration_ms) for s in spans] == [
        (1, None, None),
        (2, 3, 2_000),
        (4, 5, 500),
    ]
    assert not any(s.mismatch for s in spans)


def test_a_drawn_duration_far_from_the_reported_one_is_flagged() -> None:
    """Start and end events 101 s apart for a call that reports 2.3 s: drawn, and flagged."""
    records = [
        event(1, "llm.start", 0, metadata={"caller": "lead"}),
        event(2, "llm.end", 101_000, metadata={"caller": "lead", "latency_ms": 2_300}),
        event(3, "llm.start", 200_000, metadata={"caller": "lead"}),
        event(4, "llm.end", 202_400, metadata={"caller": "lead", "latency_ms": 2_300}),
    ]
    first, second = pair_spans(records)
    assert (first.duration_ms, first.reported_ms, first.mismatch) == (101_000, 2_300, True)
    assert second.mismatch is False  # 100 ms apart: within the tolerance


def test_odd_stored_values_never_break_a_page() -> None:
    """A date pushed out of range by its offset, or a latency of 1e20, is just not drawn."""
    assert timeline.parse_time("0001-01-01T00:00+01:00") is None
    assert timeline.parse_time("9999-12-31T23:59-01:00") is None
    records = [
        {"seq": 1, "event_type": "llm.ai.response", "created_at": "0001-01-01T00:00+01:00"},
        event(2, "llm.ai.response", 0, metadata={"latency_ms": 1e20}),
        event(3, "llm.ai.response", 10, metadata={"latency_ms": float("inf")}),
        {**event(4, "llm.ai.response", 20, metadata={"latency_ms": 5}), "created_at": "0001-01-01"},
    ]
    assert pair_spans(records) == []
    assert timeline.outcome(records).status == "no end recorded"


def _journal_runs() -> dict[str, list[dict[str, Any]]]:
    """The demo's DeerFlow-shaped thread, numbered as a store would, by run."""
    events, run_ids = journal_runs.journal_thread("t", start=T0)
    by_run: dict[str, list[dict[str, Any]]] = {run_id: [] for run_id in run_ids}
    for seq, record in enumerate(events, start=1):
        by_run[record["run_id"]].append({**record, "seq": seq})
    return by_run


def test_a_deerflow_run_with_parallel_tools_and_a_subagent_is_a_tree() -> None:
    """Parallel tool results pair by tool_call_id; the subagent and its calls nest under its task."""
    succeeded = next(iter(_journal_runs().values()))
    spans = pair_spans(succeeded)
    shape = [(s.depth, s.kind, s.label, s.caller) for s in spans]
    assert shape == [
        (0, "llm", journal_runs.MODEL, "lead_agent"),
        (0, "tool", "bash", "lead_agent"),
        (0, "tool", "ls", "lead_agent"),
        (0, "llm", journal_runs.MODEL, "lead_agent"),
        (0, "tool", "task", "lead_agent"),
        (1, "subagent", "find where 'amount' is parsed", ""),
        (2, "llm", journal_runs.MODEL, journal_runs.SUBAGENT),
        (2, "tool", "read_file", journal_runs.SUBAGENT),
        (2, "llm", journal_runs.MODEL, journal_runs.SUBAGENT),
        (0, "llm", journal_runs.MODEL, "lead_agent"),
    ]
    bash, ls = spans[1], spans[2]
    assert (bash.duration_ms, ls.duration_ms) == (1_600, 180)  # ls answered first
    assert spans[0].duration_ms == spans[0].reported_ms == 2_350
    assert spans[0].usage == timeline.Usage(1830, 96, 1926)
    assert not any(s.end is None or s.error or s.mismatch for s in spans)
    assert timeline.outcome(succeeded).status == "succeeded"


def test_a_failed_deerflow_run_says_why_and_where() -> None:
    """run.error gives the reason; the failed tool, the LLM error and the unfinished call show."""
    failed = list(_journal_runs().values())[1]
    outcome = timeline.outcome(failed)
    assert (outcome.status, outcome.error_type) == ("failed", "GraphRecursionError")
    assert outcome.reason is not None
    assert outcome.reason.startswith("Recursion limit of 25")
    assert outcome.errors == 3
    first_error = next(r for r in failed if r["seq"] == outcome.first_error_seq)
    assert first_error["content"]["status"] == "error"  # the timed-out tool came first
    spans = pair_spans(failed)
    errors = [(s.kind, s.label) for s in spans if s.error]
    assert errors == [("tool", "bash"), ("llm", "model call failed")]
    [last] = [s for s in spans if s.end is None]
    assert (last.kind, last.unfinished) == ("tool", True)  # the run ended without it
    retry = next(s for s in spans if s.kind == "llm" and s.start_seq > spans[2].start_seq)
    assert retry.ident == "call-3"  # the failed call used up index 2


def test_a_run_cut_off_has_no_end_and_an_open_call() -> None:
    """No run.end nor run.error: no end recorded, and the call that never answered is open."""
    cut_off = list(_journal_runs().values())[2]
    assert timeline.outcome(cut_off).status == "no end recorded"
    [open_span] = [s for s in pair_spans(cut_off) if s.end is None]
    assert (open_span.ident, open_span.unfinished) == ("call_git_diff", False)


async def test_the_demo_writer_gives_its_runs_a_real_runs_timing() -> None:
    """On its simulated clock every span of the demo lasts what its writer reported: no slivers."""
    from mongo_runevents import MemoryRunEventStore
    from mongo_runevents.cli.workload import AgentThread, Journal, write_run

    store = MemoryRunEventStore()
    journal = Journal(store, clock=T0)
    thread = AgentThread(thread_id="demo", rng=random.Random(7), journal=journal)
    run_id = await write_run(thread, 3, 4)  # its first step is a subagent task
    spans = pair_spans(await store.list_events("demo", run_id))
    assert len(spans) >= 10
    assert not any(span.end is None or span.mismatch for span in spans)
    assert all(span.duration_ms == span.reported_ms for span in spans if span.kind == "llm")
    task = next(span for span in spans if span.label == "task")
    assert task.duration_ms is not None
    assert task.duration_ms > 1_000
    assert [span.depth for span in spans if span.caller.startswith("subagent:")] == [1, 1]
