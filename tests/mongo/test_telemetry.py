"""Each store call leaves a structured log record and, with OpenTelemetry, a span."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from mongo_runevents import InvalidEventError, MongoRunEventStore
from tests.factories import event


async def test_calls_are_logged_with_structured_fields(
    mongo_database: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A call logs operation, thread, run, rows, retries and duration; never content."""
    caplog.set_level(logging.DEBUG, logger="mongo_runevents")
    store = MongoRunEventStore(mongo_database)
    await store.put_batch([event(content="very secret text") for _ in range(3)])
    await store.list_events("thread-1", "run-1")
    records = {r.operation: r for r in caplog.records if hasattr(r, "operation")}
    listed = records["list_events"]
    assert (listed.thread_id, listed.run_id, listed.rows, listed.retries) == (
        "thread-1",
        "run-1",
        3,
        0,
    )
    assert listed.duration_ms >= 0
    assert records["put_batch"].rows == 3
    assert "very secret text" not in caplog.text


async def test_failed_calls_are_logged_as_warnings(
    mongo_database: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A failing call logs a WARNING naming the error type."""
    caplog.set_level(logging.DEBUG, logger="mongo_runevents")
    store = MongoRunEventStore(mongo_database)
    with pytest.raises(InvalidEventError):
        await store.list_messages("thread-1", limit=0)
    [failed] = [r for r in caplog.records if getattr(r, "operation", None) == "list_messages"]
    assert failed.levelno == logging.WARNING
    assert failed.error == "InvalidEventError"


async def test_calls_open_opentelemetry_spans(mongo_database: Any) -> None:
    """With an OpenTelemetry SDK configured, each call is a span with the call's attributes."""
    pytest.importorskip("opentelemetry.sdk")
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from mongo_runevents import telemetry

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    original = telemetry._tracer
    telemetry._tracer = tracer
    try:
        store = MongoRunEventStore(mongo_database)
        await store.put(**event())
        await store.count_messages("thread-1")
    finally:
        telemetry._tracer = original
    spans = {span.name: span for span in exporter.get_finished_spans()}
    count = spans["mongo_runevents.count_messages"]
    assert count.attributes["thread_id"] == "thread-1"
    assert count.attributes["rows"] == 1
    assert "mongo_runevents.put" in spans
