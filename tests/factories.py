"""Small builders for the events the tests write."""

from __future__ import annotations

from typing import Any


def event(
    thread_id: str = "thread-1",
    run_id: str = "run-1",
    *,
    event_type: str = "llm.ai.response",
    category: str = "message",
    **fields: Any,
) -> dict[str, Any]:
    """A ``put`` / ``put_batch`` event dict; ``fields`` add or override keys."""
    return {
        "thread_id": thread_id,
        "run_id": run_id,
        "event_type": event_type,
        "category": category,
        **fields,
    }


def trace(thread_id: str = "thread-1", run_id: str = "run-1", **fields: Any) -> dict[str, Any]:
    """A trace event (not a message)."""
    return event(thread_id, run_id, event_type="llm.start", category="trace", **fields)


def seqs(records: list[dict[str, Any]]) -> list[int]:
    """The seq of each record, in order."""
    return [record["seq"] for record in records]
