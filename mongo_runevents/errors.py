"""The errors a store raises.

Every error is a :class:`RunEventStoreError`. Callers branch on two questions
rather than on classes: is the input wrong (:class:`InvalidEventError`, also a
``ValueError``: fix the call, do not retry) or did the database fail
(:class:`StorageError`, whose ``retryable`` and ``timeout`` say whether the same
call may succeed later). Driver exceptions never escape: they are wrapped in
exactly one place (``mongo_runevents.mongo.driver_errors``) and kept as ``__cause__``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class RunEventStoreError(Exception):
    """Base class of every error this package raises."""

    #: Whether repeating the same call may succeed (a transient fault).
    retryable: bool = False
    #: Whether the failure was a time-out (the operation may or may not have run).
    timeout: bool = False


class InvalidEventError(RunEventStoreError, ValueError):
    """An argument or an event is not valid; nothing was written.

    ``field`` names the offending field (``"metadata.usage"``, ``"limit"``) and
    ``index`` the position of the event in a ``put_batch`` call, when it applies.
    """

    def __init__(self, message: str, *, field: str | None = None, index: int | None = None):
        where = []
        if index is not None:
            where.append(f"event {index}")
        if field is not None:
            where.append(field)
        prefix = f"{', '.join(where)}: " if where else ""
        super().__init__(prefix + message)
        self.reason = message
        self.field = field
        self.index = index


class EventTooLargeError(InvalidEventError):
    """An event does not fit in one database document; nothing was written."""


class StorageError(RunEventStoreError):
    """The database failed or refused an operation that was valid."""

    def __init__(self, message: str, *, retryable: bool = False, timeout: bool = False):
        super().__init__(message)
        self.retryable = retryable
        self.timeout = timeout


class StoreUnavailableError(StorageError):
    """The server could not be reached or the connection broke (usually retryable)."""


class IntegrityError(StorageError):
    """A uniqueness rule of the store was broken (for example a duplicate ``seq``)."""


class EventIdConflictError(IntegrityError):
    """An ``event_id`` the thread already holds was reused for a different event.

    ``event_id`` is an idempotency key: repeating a write with it returns the
    stored record, but only if the event is the same one. Nothing was written.
    """


class ImportConflictError(IntegrityError):
    """An import (``on_conflict="stop"``) met records that collide with other events; nothing was written.

    ``conflicts`` lists them (:class:`~mongo_runevents.importing.ImportConflict`):
    which record of the input, its thread and seq, and what it collides with.
    """

    def __init__(self, message: str, *, conflicts: Sequence[Any] = ()) -> None:
        super().__init__(message)
        self.conflicts = list(conflicts)


class ConfigurationError(RunEventStoreError):
    """The store was set up in a way that cannot work (bad URI, missing extra)."""


class StoreClosedError(StorageError):
    """The store was closed (``close()`` or the end of its ``async with`` block); not retryable."""


__all__ = [
    "ConfigurationError",
    "EventIdConflictError",
    "EventTooLargeError",
    "ImportConflictError",
    "IntegrityError",
    "InvalidEventError",
    "RunEventStoreError",
    "StorageError",
    "StoreClosedError",
    "StoreUnavailableError",
]
