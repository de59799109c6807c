"""What each store call did: a log record, and an OpenTelemetry span when that is installed.

Every public call of a :class:`~mongo_runevents.RunEventStore` runs inside
:func:`observed`. It logs one record on the ``mongo_runevents`` logger, with
structured fields in ``extra``: ``operation``, ``thread_id``, ``run_id``,
``rows``, ``retries``, ``duration_ms`` and, on failure, ``error`` (the error's
class) and ``error_message``. A call that succeeded, or failed because of the
caller's own input (:class:`~mongo_runevents.InvalidEventError`, an
``event_id`` or import conflict, a closed store), is logged at DEBUG: the
exception already tells the caller. Only a failure of the database (any other
:class:`~mongo_runevents.StorageError`) is a WARNING, and its text says what
failed, on which thread, and why: ``put_batch failed (thread 't-1'):
StoreUnavailableError: writing events failed: ...``.

The package logger has a :class:`logging.NullHandler`, so an application that
configures no logging sees nothing (not Python's last-resort output on
stderr). With the ``otel`` extra installed (``opentelemetry-api``), each call
also opens a span ``mongo_runevents.<operation>`` carrying the same
attributes, once an OpenTelemetry SDK's tracer provider is configured; until
then no span is opened at all. Nothing here ever logs content, metadata or
connection strings.
"""

from __future__ import annotations

import functools
import inspect
import logging
import time
from collections.abc import Callable, Coroutine
from contextvars import ContextVar
from typing import Any, ParamSpec, TypeVar

from ._version import __version__
from .errors import EventIdConflictError, ImportConflictError, StorageError, StoreClosedError

logger = logging.getLogger("mongo_runevents")
logger.addHandler(logging.NullHandler())

try:  # the optional "otel" extra
    from opentelemetry import trace as _otel_trace
except ImportError:  # pragma: no cover - depends on the environment
    _otel_trace = None  # type: ignore[assignment]

_tracer = _otel_trace.get_tracer("mongo_runevents", __version__) if _otel_trace else None


def _active_tracer() -> Any:
    """The tracer to open spans with, or ``None`` while no OpenTelemetry SDK is configured.

    Until an application installs a tracer provider, the API's tracer only
    makes non-recording spans; opening one still costs tens of microseconds
    a call (context attach and detach, attributes), so calls skip it then.
    """
    tracer = _tracer
    if tracer is None or isinstance(tracer, _otel_trace.NoOpTracer):
        return None
    if isinstance(tracer, _otel_trace.ProxyTracer) and isinstance(
        _otel_trace.get_tracer_provider(),
        (_otel_trace.ProxyTracerProvider, _otel_trace.NoOpTracerProvider),
    ):
        return None
    return tracer


#: Transient-error retries made by the current store call (see ``count_retry``).
_retries: ContextVar[int] = ContextVar("mongo_runevents_retries", default=0)

_TRACED_ARGUMENTS = ("thread_id", "run_id", "user_id")

P = ParamSpec("P")
R = TypeVar("R")


def count_retry() -> None:
    """Note one retry of a transient error in the current store call."""
    _retries.set(_retries.get() + 1)


def _rows(result: Any) -> int | None:
    if isinstance(result, list):
        return len(result)
    if isinstance(result, dict):
        return 1
    if isinstance(result, tuple):
        return 1
    if isinstance(result, int) and not isinstance(result, bool):
        return result
    return None


#: Storage errors that the caller's own call caused: logged at DEBUG, like invalid input.
_CALLERS_OWN = (EventIdConflictError, ImportConflictError, StoreClosedError)


def failure_level(exc: BaseException) -> int:
    """WARNING for a failure of the database, DEBUG for anything the caller's input caused."""
    if isinstance(exc, StorageError) and not isinstance(exc, _CALLERS_OWN):
        return logging.WARNING
    return logging.DEBUG


def _failure_text(operation: str, fields: dict[str, Any], exc: BaseException) -> str:
    """``put failed (thread 't-1', run 'r-1'): StorageError: ...``: what, where and why."""
    where = [
        f"{name.removesuffix('_id')} {fields[name]!r}"
        for name in _TRACED_ARGUMENTS
        if name in fields
    ]
    place = f" ({', '.join(where)})" if where else ""
    return f"{operation} failed{place}: {type(exc).__name__}: {exc}"


def _timing(started: float) -> dict[str, Any]:
    return {"duration_ms": round((time.perf_counter() - started) * 1000, 3)}


async def _traced(
    tracer: Any, operation: str, fields: dict[str, Any], call: Coroutine[Any, Any, R]
) -> R:
    """Await ``call`` inside a span of ``tracer`` carrying ``fields``, the retries and the rows."""
    with tracer.start_as_current_span(f"mongo_runevents.{operation}", attributes=fields) as span:
        try:
            result = await call
        finally:
            span.set_attribute("retries", _retries.get())
        rows = _rows(result)
        if rows is not None:
            span.set_attribute("rows", rows)
        return result


AsyncMethod = Callable[P, Coroutine[Any, Any, R]]


def observed(operation: str) -> Callable[[AsyncMethod[P, R]], AsyncMethod[P, R]]:
    """Log (and trace) each call of an async store method as ``operation``."""

    def decorate(method: AsyncMethod[P, R]) -> AsyncMethod[P, R]:
        names = list(inspect.signature(method).parameters)
        positions = {name: names.index(name) for name in _TRACED_ARGUMENTS if name in names}

        def traced_fields(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
            fields: dict[str, Any] = {}
            for name, position in positions.items():
                value = kwargs.get(name, args[position] if position < len(args) else None)
                if isinstance(value, str):
                    fields[name] = value
            return fields

        @functools.wraps(method)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            token = _retries.set(0)
            started = time.perf_counter()
            try:
                tracer = _active_tracer()
                if tracer is None:
                    result = await method(*args, **kwargs)
                else:
                    result = await _traced(
                        tracer, operation, traced_fields(args, kwargs), method(*args, **kwargs)
                    )
            except Exception as exc:
                level = failure_level(exc)
                if logger.isEnabledFor(level):
                    fields = traced_fields(args, kwargs)
                    text = _failure_text(operation, fields, exc)
                    fields.update(
                        _timing(started), error=type(exc).__name__, error_message=str(exc)
                    )
                    logger.log(level, "%s", text, extra={"operation": operation, **fields})
                raise
            finally:
                retries = _retries.get()
                _retries.reset(token)
            if logger.isEnabledFor(logging.DEBUG):
                fields = traced_fields(args, kwargs)
                fields.update(_timing(started), retries=retries)
                rows = _rows(result)
                if rows is not None:
                    fields["rows"] = rows
                logger.debug("%s", operation, extra={"operation": operation, **fields})
            return result

        return wrapper

    return decorate
