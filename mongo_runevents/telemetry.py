"""What each store call did: a log record, and an OpenTelemetry span when that is installed.

Every public call of :class:`~mongo_runevents.MongoRunEventStore` runs inside
:func:`observed`. It logs one record on the ``mongo_runevents`` logger at
DEBUG level (at WARNING when the call failed), with structured fields in
``extra``: ``operation``, ``thread_id``, ``run_id``, ``rows``, ``retries``,
``duration_ms`` and, on failure, ``error``. With the ``otel`` extra installed
(``opentelemetry-api``), it also opens a span ``mongo_runevents.<operation>``
carrying the same attributes; without a configured OpenTelemetry SDK the span
is a no-op. Nothing here ever logs content, metadata or connection strings.
"""

from __future__ import annotations

import functools
import inspect
import logging
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, ParamSpec, TypeVar

from ._version import __version__

logger = logging.getLogger("mongo_runevents")

try:  # the optional "otel" extra
    from opentelemetry import trace as _otel_trace
except ImportError:  # pragma: no cover - depends on the environment
    _otel_trace = None  # type: ignore[assignment]

_tracer = _otel_trace.get_tracer("mongo_runevents", __version__) if _otel_trace else None

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


@contextmanager
def _span(name: str, attributes: dict[str, Any]) -> Iterator[Any]:
    if _tracer is None:
        yield None
        return
    with _tracer.start_as_current_span(name, attributes=attributes) as span:
        yield span


AsyncMethod = Callable[P, Coroutine[Any, Any, R]]


def observed(operation: str) -> Callable[[AsyncMethod[P, R]], AsyncMethod[P, R]]:
    """Log (and trace) each call of an async store method as ``operation``."""

    def decorate(method: AsyncMethod[P, R]) -> AsyncMethod[P, R]:
        signature = inspect.signature(method)

        @functools.wraps(method)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            bound = signature.bind_partial(*args, **kwargs).arguments
            fields: dict[str, Any] = {
                name: bound[name] for name in _TRACED_ARGUMENTS if isinstance(bound.get(name), str)
            }
            token = _retries.set(0)
            started = time.perf_counter()
            try:
                with _span(f"mongo_runevents.{operation}", fields) as span:
                    try:
                        result = await method(*args, **kwargs)
                    except Exception as exc:
                        fields["error"] = type(exc).__name__
                        raise
                    finally:
                        fields["retries"] = _retries.get()
                        fields["duration_ms"] = round((time.perf_counter() - started) * 1000, 3)
                        if span is not None:
                            span.set_attributes(fields)
                    rows = _rows(result)
                    if rows is not None:
                        fields["rows"] = rows
                        if span is not None:
                            span.set_attribute("rows", rows)
            except Exception:
                logger.warning("%s failed", operation, extra={"operation": operation, **fields})
                raise
            finally:
                _retries.reset(token)
            logger.debug("%s", operation, extra={"operation": operation, **fields})
            return result

        return wrapper

    return decorate
