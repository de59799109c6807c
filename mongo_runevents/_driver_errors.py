"""The one place where driver exceptions become this package's errors.

Callers never see a pymongo (or Motor, or mongomock) exception: every call the
MongoDB store makes runs inside :func:`translated`, which re-raises the
driver's error as a :class:`~mongo_runevents.errors.RunEventStoreError` with
the original as ``__cause__``. The messages are the driver's, which never
carry credentials.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from bson.errors import BSONError
from pymongo.errors import (
    BulkWriteError,
    ConnectionFailure,
    DocumentTooLarge,
    DuplicateKeyError,
    OperationFailure,
    PyMongoError,
)
from pymongo.errors import (
    ConfigurationError as DriverConfigurationError,
)

from .errors import (
    ConfigurationError,
    EventTooLargeError,
    IntegrityError,
    InvalidEventError,
    RunEventStoreError,
    StorageError,
    StoreUnavailableError,
)

#: Labels with which the server or driver says that trying again may work.
RETRYABLE_LABELS = (
    "TransientTransactionError",
    "RetryableWriteError",
    "UnknownTransactionCommitResult",
)

_DUPLICATE_KEY = 11000


def _is_duplicate_key(exc: PyMongoError) -> bool:
    if isinstance(exc, DuplicateKeyError):
        return True
    if isinstance(exc, BulkWriteError):
        return any(
            error.get("code") == _DUPLICATE_KEY for error in exc.details.get("writeErrors", [])
        )
    return isinstance(exc, OperationFailure) and exc.code == _DUPLICATE_KEY


def is_retryable(exc: PyMongoError) -> bool:
    """Whether the same operation may succeed if tried again."""
    return isinstance(exc, ConnectionFailure) or any(
        exc.has_error_label(label) for label in RETRYABLE_LABELS
    )


def translate(exc: BaseException, action: str) -> RunEventStoreError:
    """This package's error for a driver exception raised while doing ``action``."""
    if isinstance(exc, RunEventStoreError):
        return exc
    message = f"{action} failed: {exc}"
    if isinstance(exc, DocumentTooLarge):
        return EventTooLargeError(
            f"{action} failed: an event is larger than a MongoDB document allows ({exc})"
        )
    if isinstance(exc, BSONError):
        return InvalidEventError(message)
    if isinstance(exc, DriverConfigurationError):
        return ConfigurationError(message)
    if not isinstance(exc, PyMongoError):
        return StorageError(message)
    timeout = bool(getattr(exc, "timeout", False))
    if _is_duplicate_key(exc):
        return IntegrityError(message)
    if isinstance(exc, ConnectionFailure):
        return StoreUnavailableError(message, retryable=True, timeout=timeout)
    return StorageError(message, retryable=is_retryable(exc), timeout=timeout)


@contextmanager
def translated(action: str) -> Iterator[None]:
    """Run a block of driver calls, re-raising driver errors as this package's."""
    try:
        yield
    except (PyMongoError, BSONError, NotImplementedError) as exc:
        raise translate(exc, action) from exc
