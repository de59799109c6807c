"""The events the benchmark writes, generated deterministically.

*Realistic* events come from :mod:`mongo_runevents.cli.workload`, the synthetic
DeerFlow-style agent thread: AI messages shaped like LangChain's ``AIMessage``
with tool calls and usage metadata, tool outputs of 1 to 100 KiB, ``llm.start``
/ ``llm.end`` traces with usage, latency and caller, context-window and
middleware events. A seeded ``random.Random`` drives the content, so the same
seed gives the same payloads (run ids and timestamps differ from run to run).

*Small* events (about 300 bytes) are used where the number of events matters
more than their size: the scale test and the concurrency test's lock-step.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

from mongo_runevents.cli.workload import AgentThread, Journal, write_run
from mongo_runevents.models import utc_now_iso

#: The size of a run journal's flush: what the benchmark writes per ``put_batch``.
BATCH_SIZE = 20


class _Capture:
    """Stands in for a store: keeps what a :class:`Journal` flushes, in order."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    async def put_batch(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        self.events.extend(events)
        return []


async def _agent_events(seed: int, count: int) -> list[dict[str, Any]]:
    capture = _Capture()
    rng = random.Random(seed)
    thread = AgentThread("generated", rng, Journal(capture))  # type: ignore[arg-type]
    run_number = 0
    while len(capture.events) < count:
        await write_run(thread, run_number, steps=rng.randint(3, 8))
        run_number += 1
    return capture.events[:count]


def agent_events(count: int, seed: int = 20250601) -> list[dict[str, Any]]:
    """``count`` realistic events of consecutive agent runs, in the order a journal writes them."""
    return asyncio.run(_agent_events(seed, count))


def retarget(events: list[dict[str, Any]], thread_id: str) -> list[dict[str, Any]]:
    """Shallow copies of ``events`` in thread ``thread_id`` (content objects are shared)."""
    return [{**event, "thread_id": thread_id} for event in events]


def batches(events: list[dict[str, Any]], size: int = BATCH_SIZE) -> list[list[dict[str, Any]]]:
    """``events`` cut into consecutive batches of ``size`` (a short last batch is dropped)."""
    return [events[i : i + size] for i in range(0, len(events) - size + 1, size)]


def messages_only(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The chat messages among ``events`` (``category == "message"``)."""
    return [event for event in events if event["category"] == "message"]


def small_event(thread_id: str, index: int, *, runs_of: int = 50) -> dict[str, Any]:
    """A small event (about 300 bytes): odd indexes are messages, even ones traces."""
    message = index % 2 == 1
    return {
        "thread_id": thread_id,
        "run_id": f"run-{index // runs_of:06d}",
        "event_type": "llm.ai.response" if message else "llm.end",
        "category": "message" if message else "trace",
        "content": (
            {"type": "ai", "content": f"step {index}: checked the worker log, nothing new."}
            if message
            else {"model": "gpt-4o-2024-08-06", "finish_reason": "stop"}
        ),
        "metadata": {
            "caller": "lead_agent",
            "usage": {"input_tokens": 1200 + index % 500, "output_tokens": 80},
            "latency_ms": 300 + index % 4000,
        },
    }


def raw_template(event: dict[str, Any]) -> dict[str, Any]:
    """The document a hand-written writer would insert for ``event``, without ``seq`` and ``_id``.

    The store keeps the same fields (plus ``seq`` and ``_id``), so the raw
    baseline writes documents of the same shape and size.
    """
    return {
        "thread_id": event["thread_id"],
        "run_id": event["run_id"],
        "event_type": event["event_type"],
        "category": event["category"],
        "created_at": event.get("created_at") or utc_now_iso(),
        "content": event.get("content", ""),
        "metadata": event.get("metadata") or {},
    }
