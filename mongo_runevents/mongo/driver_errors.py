"""The one place where driver exceptions become this package's errors.

Callers never see a pymongo (or Motor, or mongomock) exception: every call the
MongoDB store makes runs inside :func:`translated`, which re-raises the
driver's error as a :class:`~mongo_runevents.errors.RunEventStoreError` with
the original as ``__cause__``. The messages are the driver's, which never
carry credentials.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

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

from ..errors import (
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

DUPLICATE_KEY = 11000


def _is_duplicate_key(exc: PyMongoError) -> bool:
    if isinstance(exc, DuplicateKeyError):
        return True
    if isinstance(exc, BulkWriteError):
        return any(
            error.get("code") == DUPLICATE_KEY for error in exc.details.get("writeErrors", [])
        )
    return isinstance(exc, OperationFailure) and exc.code == DUPLICATE_KEY


_INDEX_IN_MESSAGE = re.compile(r"index: (\S+)")
_KEY_PATTERN_IN_MESSAGE = re.compile(r"'keyPattern': \{([^}]*)\}")


def duplicate_key_refusals(exc: BaseException) -> list[dict[str, Any]]:
    """For a duplicate-key error (or one caused by it): ``keyPattern`` and ``index`` of each refusal.

    Servers report the index's key pattern (mongod 4.2+) and name it in the
    message; mongomock only puts the key pattern in the message text.
    """
    driver_error = exc if isinstance(exc, PyMongoError) else exc.__cause__
    if not isinstance(driver_error, PyMongoError) or not _is_duplicate_key(driver_error):
        return []
    details = getattr(driver_error, "details", None) or {}
    refusals = []
    for error in details.get("writeErrors", [details]):
        message = str(error.get("errmsg", ""))
        pattern = error.get("keyPattern")
        if not isinstance(pattern, dict):
            found = _KEY_PATTERN_IN_MESSAGE.search(message)
            fields = re.findall(r"'([^']+)':", found.group(1)) if found else []
            pattern = dict.fromkeys(fields, 1)
        index = _INDEX_IN_MESSAGE.search(message)
        refusals.append({"keyPattern": pattern, "index": index.group(1) if index else None})
    return refusals


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
