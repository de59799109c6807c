"""DeerFlow's store factory: a backend name picks the store."""

from __future__ import annotations

from deerflow.runtime.events.store.base import RunEventStore


class MemoryRunEventStore:
    """Stands in for DeerFlow's memory store (only its type matters here)."""


def make_run_event_store(config=None):
    if config is None or config.backend == "memory":
        return MemoryRunEventStore()
    raise ValueError(f"Unknown run_events backend: {config.backend!r}")


__all__ = ["MemoryRunEventStore", "RunEventStore", "make_run_event_store"]
