"""A synthetic DeerFlow-style agent thread, for ``mongo-runevents demo`` and the benchmarks.

Each run writes what an agent server records: ``run.start``, the user's
question, model calls (``llm.start`` / ``llm.end`` traces with usage and
latency), AI messages with tool calls, tool results of 1 to 100 KiB,
context-window and middleware events, the final answer and ``run.end``. Events
go through a :class:`Journal` that buffers 20 and flushes with ``put_batch``,
as a run journal does. Content is generated from a seeded ``random.Random``,
so the same seed writes the same thread.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from ..base import RunEventStore
from ..models import MESSAGE_CATEGORY, utc_now_iso

#: How many events the journal buffers before it calls ``put_batch``.
JOURNAL_BATCH_SIZE = 20


_QUESTIONS = (
    "Why did last night's ingestion job fail, and how do we fix it?",
    "Which endpoints of the orders API got slower this week, and why?",
    "Draft release notes for version 2.4 from what changed in the repository.",
    "Is the retry logic in the payment worker safe when the database fails over?",
    "Summarise the open TODOs in the codebase and rank them by risk.",
)
_TOOLS = ("ls", "read_file", "bash", "task")
_MODEL = "gpt-4o-2024-08-06"
_MAX_CONTEXT_TOKENS = 128_000
_CLOCK_START = datetime(2025, 6, 1, 2, 0, tzinfo=timezone.utc)
_LOG_LEVELS = ("DEBUG", "INFO", "INFO", "INFO", "WARNING", "ERROR")
_LOG_MESSAGES = (
    "fetched batch {n} from queue ingest.events ({k} records)",
    "wrote {k} rows to warehouse.orders in {ms} ms",
    "retrying request to storage.internal ({k}/5): connection reset by peer",
    "checkpoint saved at offset {n}",
    "slow query on orders_by_customer took {ms} ms",
    "worker heartbeat ok, {k} tasks in flight",
)
_SOURCE_LINES = (
    "def handle_batch_{n}(records: list[dict]) -> int:",
    '    """Process one batch of records and return how many were stored."""',
    "    stored = 0",
    "    for record in records:",
    "        if record.get('status') == 'failed':",
    "            logger.warning('skipping record %s', record['id'])",
    "            continue",
    "        stored += repository.save(record, retries={k})",
    "    return stored",
    "",
)


def _uuid(rng: random.Random) -> str:
    """A UUID-4 string drawn from ``rng`` (deterministic for a seed)."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _generate_text(size: int, line: Callable[[int], str]) -> str:
    """Exactly ``size`` characters (ASCII, so bytes) made of the lines ``line(0)``, ``line(1)``..."""
    parts: list[str] = []
    total = 0
    number = 0
    while total < size:
        text = line(number) + "\n"
        parts.append(text)
        total += len(text)
        number += 1
    return "".join(parts)[:size]


def _file_listing(rng: random.Random, size: int) -> str:
    def line(n: int) -> str:
        if n == 0:
            return f"total {rng.randint(1000, 99999)}"
        kind = rng.choice(("src", "tests", "docs", "data"))
        ext = rng.choice(("py", "md", "json", "csv", "txt"))
        when = _CLOCK_START - timedelta(minutes=rng.randint(0, 60 * 24 * 90))
        return (
            f"-rw-r--r--  1 agent agent {rng.randint(12, 9_999_999):>9} "
            f"{when:%Y-%m-%d %H:%M} {kind}/module_{n:05d}.{ext}"
        )

    return _generate_text(size, line)


def _log_text(rng: random.Random, size: int) -> str:
    clock = _CLOCK_START

    def line(n: int) -> str:
        nonlocal clock
        clock += timedelta(milliseconds=rng.randint(1, 5000))
        message = rng.choice(_LOG_MESSAGES).format(
            n=n, k=rng.randint(1, 500), ms=rng.randint(1, 9000)
        )
        level = rng.choice(_LOG_LEVELS)
        return f"{clock:%Y-%m-%dT%H:%M:%S.%f}Z {level:<7} worker[{rng.randint(1, 8)}] {message}"

    return _generate_text(size, line)


def _source_text(rng: random.Random, size: int) -> str:
    def line(n: int) -> str:
        template = _SOURCE_LINES[n % len(_SOURCE_LINES)]
        return template.format(n=n // len(_SOURCE_LINES), k=rng.randint(1, 5))

    return _generate_text(size, line)


def _tool_call(rng: random.Random, tool: str, question: str) -> tuple[dict[str, Any], str]:
    """Arguments for a call of ``tool`` and its (large) output text of 1 to 100 KiB."""
    size = rng.randint(1024, 100 * 1024)
    workspace = "/mnt/user-data/workspace"
    if tool == "ls":
        return {"path": f"{workspace}/{rng.choice(('src', 'tests', 'data'))}"}, _file_listing(
            rng, size
        )
    if tool == "read_file":
        path = f"{workspace}/src/pipeline_{rng.randint(1, 40):02d}.py"
        return {"path": path}, _source_text(rng, size)
    if tool == "bash":
        command = f"tail -n {rng.randint(500, 5000)} /var/log/app/worker.log"
        return {"command": command, "description": "read the worker log"}, _log_text(rng, size)
    args = {
        "description": "investigate in a subagent",
        "prompt": f"Look into this and report back: {question}",
        "subagent_type": "general-purpose",
    }
    return args, "Subagent report\n\n" + _log_text(rng, size)


@dataclass
class Journal:
    """Buffers a run's events and writes them with ``put_batch``, as a run journal does."""

    store: RunEventStore
    batch_size: int = JOURNAL_BATCH_SIZE
    buffer: list[dict[str, Any]] = field(default_factory=list)
    events_written: int = 0
    batches: int = 0
    by_category: dict[str, int] = field(default_factory=dict)
    #: A simulated clock: when set, each event is stamped ``wait_ms`` after the one before,
    #: so the thread has the timing of a real run (``demo``); else with the current time.
    clock: datetime | None = None

    async def record(
        self,
        *,
        thread_id: str,
        run_id: str,
        category: str,
        event_type: str,
        content: Any,
        metadata: dict[str, Any],
        wait_ms: float = 5,
    ) -> None:
        """Buffer one event, stamped with the time; flush when the buffer is full."""
        if self.clock is not None:
            self.clock += timedelta(milliseconds=wait_ms)
            created_at = self.clock.isoformat()
        else:
            created_at = utc_now_iso()
        self.buffer.append(
            {
                "thread_id": thread_id,
                "run_id": run_id,
                "category": category,
                "event_type": event_type,
                "content": content,
                "metadata": metadata,
                "created_at": created_at,
            }
        )
        if len(self.buffer) >= self.batch_size:
            await self.flush()

    async def flush(self) -> None:
        """Write the buffered events in one ``put_batch`` call."""
        if not self.buffer:
            return
        batch, self.buffer = self.buffer, []
        await self.store.put_batch(batch)
        self.batches += 1
        self.events_written += len(batch)
        for event in batch:
            self.by_category[event["category"]] = self.by_category.get(event["category"], 0) + 1


def _usage(input_tokens: int, output_tokens: int) -> dict[str, int]:
    return {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "total_tokens": input_tokens + output_tokens,
    }


def _ai_message(
    rng: random.Random,
    content: str,
    tool_calls: list[dict[str, Any]],
    usage: dict[str, int],
) -> dict[str, Any]:
    """A chat model's reply, shaped like LangChain's ``AIMessage.model_dump()``."""
    return {
        "type": "ai",
        "content": content,
        "additional_kwargs": {},
        "response_metadata": {
            "finish_reason": "tool_calls" if tool_calls else "stop",
            "model_name": _MODEL,
            "system_fingerprint": "fp_demo",
        },
        "name": None,
        "id": f"run-{_uuid(rng)}-0",
        "example": False,
        "tool_calls": tool_calls,
        "invalid_tool_calls": [],
        "usage_metadata": usage,
    }


@dataclass
class AgentThread:
    """The state of the demo conversation, carried from run to run."""

    thread_id: str
    rng: random.Random
    journal: Journal
    messages: int = 0
    context_tokens: int = 2_000
    title: str | None = None
    tool_output_bytes: int = 0


async def _llm_call(
    thread: AgentThread,
    run_id: str,
    *,
    caller: str,
    output_tokens: int,
    task_id: str | None = None,
) -> tuple[dict[str, int], int]:
    """Record the ``llm.start`` / ``llm.end`` traces of one model call; return its usage and latency."""
    rng = thread.rng
    extra = {} if task_id is None else {"task_id": task_id}
    await thread.journal.record(
        thread_id=thread.thread_id,
        run_id=run_id,
        category="trace",
        event_type="llm.start",
        content={"model": _MODEL, "message_count": thread.messages},
        metadata={"caller": caller, **extra},
    )
    usage = _usage(thread.context_tokens, output_tokens)
    latency_ms = rng.randint(300, 6000)
    await thread.journal.record(
        thread_id=thread.thread_id,
        run_id=run_id,
        category="trace",
        event_type="llm.end",
        content={"model": _MODEL, "finish_reason": "stop"},
        metadata={"caller": caller, "usage": usage, "latency_ms": latency_ms, **extra},
        wait_ms=latency_ms,
    )
    return usage, latency_ms


async def write_run(thread: AgentThread, run_number: int, steps: int) -> str:
    """Write one run of the agent (start, question, tool steps, answer, end); return its id."""
    rng = thread.rng
    journal = thread.journal
    thread_id = thread.thread_id
    run_id = f"run-{uuid.uuid4().hex[:12]}"
    question = _QUESTIONS[run_number % len(_QUESTIONS)]
    lead = "lead_agent"

    await journal.record(
        thread_id=thread_id,
        run_id=run_id,
        category="lifecycle",
        event_type="run.start",
        content={"assistant_id": lead, "run_number": run_number + 1, "input": question},
        metadata={"caller": lead},
    )
    await journal.record(
        thread_id=thread_id,
        run_id=run_id,
        category=MESSAGE_CATEGORY,
        event_type="llm.human.input",
        content={"type": "human", "content": question, "id": _uuid(rng)},
        metadata={"caller": lead},
    )
    thread.messages += 1
    thread.context_tokens += len(question) // 4 + 10

    for step in range(steps):
        tool = _TOOLS[(run_number + step) % len(_TOOLS)]
        call_id = f"call_{_uuid(rng).replace('-', '')[:24]}"
        args, output = _tool_call(rng, tool, question)
        usage, latency_ms = await _llm_call(
            thread, run_id, caller=lead, output_tokens=rng.randint(20, 300)
        )
        tool_calls = [{"name": tool, "args": args, "id": call_id, "type": "tool_call"}]
        await journal.record(
            thread_id=thread_id,
            run_id=run_id,
            category=MESSAGE_CATEGORY,
            event_type="llm.ai.response",
            content=_ai_message(rng, "", tool_calls, usage),
            metadata={"caller": lead, "usage": usage, "latency_ms": latency_ms},
        )
        thread.messages += 1
        asked_at = journal.clock

        if tool == "task":
            # The subagent's own model calls, tagged with the task they serve.
            for _ in range(2):
                await _llm_call(
                    thread,
                    run_id,
                    caller="subagent:general-purpose",
                    output_tokens=rng.randint(100, 800),
                    task_id=call_id,
                )

        result = {
            "type": "tool",
            "content": output,
            "name": tool,
            "tool_call_id": call_id,
            "id": _uuid(rng),
            "status": "success",
            "artifact": None,
        }
        tool_ms = rng.randint(20, 3000)  # drawn after the id, as it always was
        # The tool's latency counts from the AI message: a task's includes its subagent.
        reported_ms = tool_ms
        if asked_at is not None and journal.clock is not None:
            reported_ms += round((journal.clock - asked_at).total_seconds() * 1000)
        await journal.record(
            thread_id=thread_id,
            run_id=run_id,
            category=MESSAGE_CATEGORY,
            event_type="llm.tool.result",
            content=result,
            metadata={
                "caller": lead,
                "latency_ms": reported_ms,
                **({"task_id": call_id} if tool == "task" else {}),
            },
            wait_ms=tool_ms,
        )
        thread.messages += 1
        thread.tool_output_bytes += len(output)
        thread.context_tokens += len(output) // 4

        await journal.record(
            thread_id=thread_id,
            run_id=run_id,
            category="context",
            event_type="context.window",
            content={
                "tokens": thread.context_tokens,
                "max_tokens": _MAX_CONTEXT_TOKENS,
                "messages": thread.messages,
            },
            metadata={"caller": "middleware:summarization"},
        )
        if thread.context_tokens > _MAX_CONTEXT_TOKENS * 3 // 4:
            before = thread.context_tokens
            thread.context_tokens = _MAX_CONTEXT_TOKENS // 8
            await journal.record(
                thread_id=thread_id,
                run_id=run_id,
                category="middleware",
                event_type="middleware.summarization",
                content={"tokens_before": before, "tokens_after": thread.context_tokens},
                metadata={"caller": "middleware:summarization"},
            )

    answer = (
        f"Here is what I found after {steps} steps: the evidence points to one root cause, "
        "and I have listed the fix and the follow-up checks below."
    )
    usage, latency_ms = await _llm_call(
        thread, run_id, caller=lead, output_tokens=rng.randint(200, 900)
    )
    await journal.record(
        thread_id=thread_id,
        run_id=run_id,
        category=MESSAGE_CATEGORY,
        event_type="llm.ai.response",
        content=_ai_message(rng, answer, [], usage),
        metadata={"caller": lead, "usage": usage, "latency_ms": latency_ms},
    )
    thread.messages += 1

    if thread.title is None:
        thread.title = question.split(",")[0].rstrip("?.")[:60]
        await journal.record(
            thread_id=thread_id,
            run_id=run_id,
            category="middleware",
            event_type="middleware.title",
            content={"title": thread.title},
            metadata={"caller": "middleware:title", "usage": _usage(150, 12)},
        )
    await journal.record(
        thread_id=thread_id,
        run_id=run_id,
        category="lifecycle",
        event_type="run.end",
        content={"status": "success", "messages": thread.messages, "title": thread.title},
        metadata={"caller": lead},
    )
    await journal.flush()
    return run_id
