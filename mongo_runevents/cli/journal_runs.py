"""A thread of three runs shaped as DeerFlow's ``RunJournal`` writes them, with a real run's timing.

``serve`` writes it into an empty embedded database, and the viewer's tests
and screenshots use it, so that what the viewer is shown is what a DeerFlow
server stores (``runtime/journal.py``, ``subagents/step_events.py`` at
f1f4af99b):

- no ``llm.start``: a model call is its ``llm.ai.response`` (category
  ``message``) with ``metadata.latency_ms``, ``llm_call_index`` and ``usage``;
  a failed one is an ``llm.error`` (category ``trace``, the error as text, no
  metadata), and its retry takes the next call index;
- a tool result is an ``llm.tool.result`` (a ``ToolMessage`` dump carrying
  ``tool_call_id`` and ``status``, no metadata); parallel calls of one AI
  message answer in the order they finish;
- a subagent is ``subagent.start`` / ``subagent.step`` / ``subagent.end``
  (category ``subagent``) with ``metadata.task_id``, the id of the ``task``
  tool call that spawned it; its own model calls are ``llm.ai.response``
  events of caller ``subagent:<name>`` that carry no task id;
- ``run.start`` (``trace``), ``run.end`` (``outputs``, ``metadata.status``),
  ``run.error`` (``error``, ``metadata.error_type``), ``middleware:<tag>``.

The runs: one that succeeds (two parallel tool calls, then a subagent task),
one that fails (a failed tool, a rate-limited model call and its retry, then
LangGraph's recursion limit), and one cut off mid-tool-call (no end at all).
Times are spread as a real run's are: seconds per model call, not microseconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

MODEL = "gpt-4o-2024-08-06"
SUBAGENT = "subagent:general-purpose"
LEAD = "lead_agent"
RECURSION_ERROR = (
    "Recursion limit of 25 reached without hitting a stop condition. You can increase the "
    "limit by setting the `recursion_limit` config key."
)
RATE_LIMIT_ERROR = (
    "Error code: 429 - {'error': {'message': 'Rate limit reached for gpt-4o in organization "
    "org-demo on tokens per min (TPM): Limit 30000, Used 29410, Requested 1873. Please try "
    "again in 2.566s.', 'type': 'tokens', 'param': None, 'code': 'rate_limit_exceeded'}}"
)

_LISTING = "\n".join(
    f"-rw-r--r--  1 agent agent {size:>8} 2025-05-{day:02d} 0{day % 10}:{day * 7 % 60:02d} {name}"
    for size, day, name in (
        (18_204, 12, "ingest/loader.py"),
        (4_019, 14, "ingest/schema.py"),
        (912, 2, "ingest/__init__.py"),
        (33_871, 28, "ingest/transform.py"),
        (7_340, 30, "ingest/retry.py"),
        (2_208, 31, "ingest/settings.py"),
    )
)
_LOG = "\n".join(
    (
        "2025-06-01T01:58:02.114Z INFO    worker[3] fetched batch 8812 from ingest.events (500 records)",
        "2025-06-01T01:58:02.530Z INFO    worker[3] wrote 500 rows to warehouse.orders in 402 ms",
        "2025-06-01T01:58:09.877Z WARNING worker[3] retrying storage.internal (1/5): connection reset",
        "2025-06-01T01:58:19.901Z WARNING worker[3] retrying storage.internal (2/5): connection reset",
        "2025-06-01T01:58:39.950Z ERROR   worker[3] batch 8813 failed: schema mismatch on column 'amount'",
        "2025-06-01T01:58:39.951Z ERROR   worker[3]   expected DECIMAL(12,2), got STRING ('12,40')",
        "2025-06-01T01:58:40.002Z INFO    worker[3] job ingest-nightly exited with status 1",
    )
)


@dataclass
class _Run:
    """The events of one run, stamped with a clock that moves as the run's work takes time."""

    thread_id: str
    run_id: str
    clock: datetime
    user_id: str | None
    events: list[dict[str, Any]] = field(default_factory=list)
    call_index: int = 0

    def put(
        self,
        wait_ms: float,
        event_type: str,
        category: str,
        content: Any,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """An event ``wait_ms`` after the previous one."""
        self.clock += timedelta(milliseconds=wait_ms)
        event: dict[str, Any] = {
            "thread_id": self.thread_id,
            "run_id": self.run_id,
            "event_type": event_type,
            "category": category,
            "content": content,
            "metadata": metadata or {},
            "created_at": self.clock.isoformat(),
        }
        if self.user_id is not None:
            event["user_id"] = self.user_id
        self.events.append(event)

    def start(self, question: str) -> None:
        """``run.start`` and the user's question."""
        self.put(0, "run.start", "trace", {"chain": "lead_agent"}, {"caller": LEAD})
        self.put(
            35,
            "llm.human.input",
            "message",
            {"type": "human", "content": question, "id": f"{self.run_id}-human"},
            {"caller": LEAD},
        )

    def model(
        self,
        latency_ms: int,
        text: str,
        calls: list[tuple[str, str, dict[str, Any]]],
        usage: tuple[int, int],
        caller: str = LEAD,
    ) -> None:
        """A model call that answered after ``latency_ms``: its ``llm.ai.response``."""
        self.call_index += 1
        tokens = {"input_tokens": usage[0], "output_tokens": usage[1], "total_tokens": sum(usage)}
        self.put(
            latency_ms,
            "llm.ai.response",
            "message",
            {
                "type": "ai",
                "content": text,
                "tool_calls": [
                    {"name": name, "args": args, "id": call_id, "type": "tool_call"}
                    for call_id, name, args in calls
                ],
                "response_metadata": {
                    "finish_reason": "tool_calls" if calls else "stop",
                    "model_name": MODEL,
                },
                "id": f"{self.run_id}-ai-{self.call_index}",
                "usage_metadata": tokens,
            },
            {
                "caller": caller,
                "usage": tokens,
                "latency_ms": latency_ms,
                "llm_call_index": self.call_index,
            },
        )

    def model_error(self, after_ms: int, error: str) -> None:
        """A model call that failed: ``llm.error`` (its index is used up, as on_chat_model_start counts it)."""
        self.call_index += 1
        self.put(after_ms, "llm.error", "trace", error)

    def tool_result(
        self, after_ms: int, call_id: str, name: str, output: str, status: str = "success"
    ) -> None:
        """The ``ToolMessage`` of a finished tool call."""
        self.put(
            after_ms,
            "llm.tool.result",
            "message",
            {
                "type": "tool",
                "content": output,
                "name": name,
                "tool_call_id": call_id,
                "id": f"{self.run_id}-tool-{call_id}",
                "status": status,
            },
        )


def _succeeded(thread_id: str, start: datetime, user_id: str | None) -> _Run:
    run = _Run(thread_id, "run-7f3a9c2e1b04", start, user_id)
    run.start("Why did last night's ingestion job fail, and how do we fix it?")
    run.model(
        2350,
        "",
        [
            ("call_bash_log", "bash", {"command": "tail -n 200 /var/log/ingest/worker.log"}),
            ("call_ls_src", "ls", {"path": "/mnt/user-data/workspace/ingest"}),
        ],
        (1830, 96),
    )
    run.tool_result(180, "call_ls_src", "ls", _LISTING)
    run.tool_result(1420, "call_bash_log", "bash", _LOG)
    task_args = {
        "description": "find where 'amount' is parsed",
        "prompt": "Find where the ingest job parses the 'amount' column and why '12,40' fails.",
        "subagent_type": "general-purpose",
    }
    run.model(3710, "", [("call_task_amount", "task", task_args)], (2950, 141))
    task = {"task_id": "call_task_amount"}
    run.put(
        95, "subagent.start", "subagent", {**task, "description": task_args["description"]}, task
    )
    run.model(
        3120,
        "",
        [("call_sub_read", "read_file", {"path": "/mnt/user-data/workspace/ingest/transform.py"})],
        (1210, 64),
        caller=SUBAGENT,
    )
    step = {"task_id": "call_task_amount", "kind": "ai", "text": "", "truncated": False}
    run.put(
        40,
        "subagent.step",
        "subagent",
        {**step, "message_index": 1, "tool_calls": [{"name": "read_file", "args": {}}]},
        {**task, "message_index": 1},
    )
    run.put(
        610,
        "subagent.step",
        "subagent",
        {
            **task,
            "message_index": 2,
            "kind": "tool",
            "text": "def parse_amount(raw): ...",
            "truncated": False,
            "tool_name": "read_file",
        },
        {**task, "message_index": 2},
    )
    finding = (
        "transform.parse_amount() calls Decimal(raw) on the raw CSV value; the supplier "
        "switched to a decimal comma on 31 May, so '12,40' raises InvalidOperation."
    )
    run.model(4080, finding, [], (2475, 188), caller=SUBAGENT)
    run.put(
        45,
        "subagent.step",
        "subagent",
        {**step, "message_index": 3, "text": finding, "tool_calls": []},
        {**task, "message_index": 3},
    )
    run.put(
        60,
        "subagent.end",
        "subagent",
        {
            **task,
            "status": "completed",
            "model_name": MODEL,
            "result": finding,
            "usage": {"input_tokens": 3685, "output_tokens": 252, "total_tokens": 3937},
        },
        task,
    )
    run.tool_result(70, "call_task_amount", "task", f"Task Succeeded. Result: {finding}")
    answer = (
        "The nightly ingestion failed on batch 8813: the supplier's CSV now writes amounts "
        "with a decimal comma ('12,40'), and `transform.parse_amount()` passes the raw text "
        "to `Decimal`, which raises.\n\nFix: normalise the separator before parsing "
        "(`raw.replace(',', '.')` when the feed's locale is `de_DE`), add a test with "
        "'12,40', and re-run batch 8813."
    )
    run.model(6240, answer, [], (3580, 214))
    run.put(
        820,
        "middleware:title",
        "middleware",
        {
            "name": "TitleMiddleware",
            "hook": "after_model",
            "action": "generate_title",
            "changes": {"title": "Nightly ingestion failure"},
        },
    )
    run.put(
        40,
        "run.end",
        "outputs",
        {"messages": 9, "title": "Nightly ingestion failure"},
        {"status": "success"},
    )
    return run


def _failed(thread_id: str, start: datetime, user_id: str | None) -> _Run:
    run = _Run(thread_id, "run-c41e08d5a7f2", start, user_id)
    run.start("Fix the flaky test in the payment worker and run the whole suite.")
    run.model(
        2890,
        "",
        [("call_pytest_1", "bash", {"command": "cd payments && pytest -x -q"})],
        (2140, 71),
    )
    run.tool_result(
        120_000,
        "call_pytest_1",
        "bash",
        "Error: Command timed out after 120 s (killed)\n"
        "tests/test_worker.py::test_retry_on_failover ... (no output for 118 s)",
        status="error",
    )
    run.model_error(30_100, RATE_LIMIT_ERROR)
    run.model(
        4620,
        "The suite hangs in test_retry_on_failover; I will run it alone with a timeout.",
        [
            (
                "call_pytest_2",
                "bash",
                {"command": "pytest -q tests/test_worker.py -k failover --timeout 30"},
            )
        ],
        (2460, 118),
    )
    for attempt in range(3, 12):
        run.tool_result(
            3200 + attempt * 150,
            f"call_pytest_{attempt - 1}",
            "bash",
            "FAILED tests/test_worker.py::test_retry_on_failover - TimeoutError: lease not "
            f"released (attempt {attempt - 2})",
        )
        run.model(
            2400 + attempt * 110,
            "",
            [
                (
                    f"call_pytest_{attempt}",
                    "bash",
                    {"command": f"pytest -q -k failover --timeout {30 + attempt}"},
                )
            ],
            (2500 + attempt * 240, 60 + attempt),
        )
    run.put(
        6200,
        "run.error",
        "error",
        RECURSION_ERROR,
        {"error_type": "GraphRecursionError"},
    )
    return run


def _cut_off(thread_id: str, start: datetime, user_id: str | None) -> _Run:
    run = _Run(thread_id, "run-e9b2d7410c6a", start, user_id)
    run.start("Compare the last two releases and list what changed in the public API.")
    run.model(
        3050,
        "",
        [
            ("call_git_log", "bash", {"command": "git log --oneline v2.3.0..v2.4.0"}),
            ("call_git_diff", "bash", {"command": "git diff v2.3.0 v2.4.0 -- src/api"}),
        ],
        (1960, 88),
    )
    run.tool_result(
        640,
        "call_git_log",
        "bash",
        "4e1c2d9 api: add cursor to list_orders\n"
        "9a0f7b1 api: deprecate /v1/refunds\n1c77e02 docs: changelog for 2.4",
    )
    # The server stopped here: the diff never answered, and no run.end or run.error was written.
    return run


def journal_thread(
    thread_id: str, *, start: datetime | None = None, user_id: str | None = None
) -> tuple[list[dict[str, Any]], list[str]]:
    """The events of the three runs (in order, with ``created_at`` set) and the runs' ids.

    ``start`` is when the first run begins (default: 20 minutes ago), the
    others follow a few minutes apart.
    """
    begin = start or datetime.now(timezone.utc) - timedelta(minutes=20)
    runs = [
        _succeeded(thread_id, begin, user_id),
        _failed(thread_id, begin + timedelta(minutes=4), user_id),
        _cut_off(thread_id, begin + timedelta(minutes=12), user_id),
    ]
    return [event for run in runs for event in run.events], [run.run_id for run in runs]


async def write_journal_thread(store: Any, thread_id: str, **options: Any) -> list[str]:
    """Write :func:`journal_thread` in batches of 20 (as the journal flushes); the runs' ids."""
    events, run_ids = journal_thread(thread_id, **options)
    for first in range(0, len(events), 20):
        await store.put_batch(events[first : first + 20])
    return run_ids
