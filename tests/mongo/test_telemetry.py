"""Each store call leaves a structured log record and, with OpenTelemetry, a span."""

from __future__ import annotations

import logging
import subprocess
import sys
from typing import Any

import pytest

from mongo_runevents import (
    InvalidEventError,
    MemoryRunEventStore,
    MongoRunEventStore,
    StoreUnavailableError,
)
from mongo_runevents.embedded import free_port
from tests.factories import event


def run_python(script: str) -> subprocess.CompletedProcess[str]:
    """Run ``script`` in a fresh interpreter (its own logging and tracing state)."""
    return subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )


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


async def test_invalid_input_is_logged_at_debug_not_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A call refused for the caller's own input logs at DEBUG, naming operation, thread and error."""
    caplog.set_level(logging.DEBUG, logger="mongo_runevents")
    store = MemoryRunEventStore()
    with pytest.raises(InvalidEventError):
        await store.list_messages("thread-1", limit=0)
    [failed] = [r for r in caplog.records if getattr(r, "operation", None) == "list_messages"]
    assert failed.levelno == logging.DEBUG
    assert failed.error == "InvalidEventError"
    assert failed.getMessage().startswith(
        "list_messages failed (thread 'thread-1'): InvalidEventError: limit: "
    )
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_database_failures_are_warnings_that_say_what_where_and_why(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An unreachable server is a WARNING whose text holds the operation, the thread and the error."""
    caplog.set_level(logging.DEBUG, logger="mongo_runevents")
    uri = f"mongodb://127.0.0.1:{free_port()}/"
    store = MongoRunEventStore.connect(uri, client_kwargs={"serverSelectionTimeoutMS": 200})
    try:
        with pytest.raises(StoreUnavailableError):
            await store.count_messages("thread-9")
    finally:
        await store.close()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings, caplog.text
    text = warnings[-1].getMessage()
    assert text.startswith("count_messages failed (thread 'thread-9'): StoreUnavailableError: ")
    assert warnings[-1].thread_id == "thread-9"
    assert warnings[-1].error_message in text


def test_the_package_logger_prints_nothing_unless_configured() -> None:
    """The package logger has a NullHandler: a failing call prints no stray line on stderr."""
    assert any(
        isinstance(handler, logging.NullHandler)
        for handler in logging.getLogger("mongo_runevents").handlers
    )
    script = (
        "import asyncio\n"
        "from mongo_runevents import MongoRunEventStore, StoreUnavailableError\n"
        "async def main():\n"
        f"    store = MongoRunEventStore.connect('mongodb://127.0.0.1:{free_port()}/',\n"
        "        client_kwargs={'serverSelectionTimeoutMS': 200})\n"
        "    try:\n"
        "        await store.ensure_indexes()\n"
        "    except StoreUnavailableError:\n"
        "        print('refused')\n"
        "    await store.close()\n"
        "asyncio.run(main())\n"
    )
    done = run_python(script)
    assert (done.returncode, done.stdout, done.stderr) == (0, "refused\n", "")


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


def test_spans_wait_for_a_configured_sdk() -> None:
    """No span is opened while OpenTelemetry has no tracer provider; one is, once it has."""
    pytest.importorskip("opentelemetry.sdk")
    script = (
        "import asyncio\n"
        "from opentelemetry import trace\n"
        "from opentelemetry.sdk.trace import TracerProvider\n"
        "from opentelemetry.sdk.trace.export import SimpleSpanProcessor\n"
        "from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter\n"
        "from mongo_runevents import MemoryRunEventStore, telemetry\n"
        "opened = []\n"
        "start = telemetry._tracer.start_as_current_span\n"
        "def counting(*args, **kwargs):\n"
        "    opened.append(args[0])\n"
        "    return start(*args, **kwargs)\n"
        "telemetry._tracer.start_as_current_span = counting\n"
        "store = MemoryRunEventStore()\n"
        "event = dict(thread_id='t', run_id='r', event_type='e', category='message')\n"
        "asyncio.run(store.put(**event))\n"
        "print(len(opened))\n"
        "exporter = InMemorySpanExporter()\n"
        "provider = TracerProvider()\n"
        "provider.add_span_processor(SimpleSpanProcessor(exporter))\n"
        "trace.set_tracer_provider(provider)\n"
        "asyncio.run(store.put(**event))\n"
        "print(len(opened), [span.name for span in exporter.get_finished_spans()])\n"
    )
    done = run_python(script)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.splitlines() == ["0", "1 ['mongo_runevents.put']"]
