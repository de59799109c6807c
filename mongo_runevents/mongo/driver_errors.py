"""How driver exceptions become this package's errors, and what a driver error says.

Callers never see a pymongo (or Motor, or mongomock) exception: each
primitive of the store facade (:mod:`.store`) runs inside :func:`translated`,
which re-raises the driver's error as a
:class:`~mongo_runevents.errors.RunEventStoreError` with the original as
``__cause__``. Inside the package driver errors travel as the driver raised
them, so the retry policy (:func:`~.transactions.retry_reason`) reads them
directly; the predicates here (:func:`is_event_id_collision`,
:func:`refuses_as_too_large`) serve it.

The message says in words what failed and why (:func:`describe`): the
server's error text with its code name, never the raw reply document (no
``$clusterTime``, no signature hashes, no ``full error: {...}``) and never the
documents a write sent: a refused write names the event (its thread and seq,
or its position in the batch), the index and key fields, and the size of
anything long, but not the values of content or metadata.
"""

from __future__ import annotations

import re
from types import TracebackType
from typing import Any

from bson.errors import BSONError
from pymongo.errors import (
    BulkWriteError,
    ConnectionFailure,
    DocumentTooLarge,
    DuplicateKeyError,
    OperationFailure,
    PyMongoError,
    ServerSelectionTimeoutError,
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
    """For a driver's duplicate-key error: ``keyPattern`` and ``index`` of each refusal.

    Servers report the index's key pattern (mongod 4.2+) and name it in the
    message; mongomock only puts the key pattern in the message text.
    """
    if not isinstance(exc, PyMongoError) or not _is_duplicate_key(exc):
        return []
    details = getattr(exc, "details", None) or {}
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


def is_event_id_collision(exc: BaseException) -> bool:
    """Whether ``exc`` is the ``_id`` index refusing an event whose key the thread holds.

    Events with a key have a deterministic ``_id``; an ``ObjectId`` never
    collides. (mongomock names no key pattern for the ``_id`` index.)
    """
    return any(
        refusal["index"] == "_id_" or "_id" in refusal["keyPattern"] or not refusal["keyPattern"]
        for refusal in duplicate_key_refusals(exc)
    )


#: The server's code for a document past its size limit (``BSONObjectTooLarge``).
_OBJECT_TOO_LARGE = 10334


def refuses_as_too_large(exc: BaseException) -> bool:
    """Whether the driver or the server refused a document as too large.

    pymongo refuses one past the server's limit plus its command overhead
    allowance; the server refuses one in between, with ``BSONObjectTooLarge``
    (SecantusDB) or ``BadValue`` "object to insert too large" (mongod). A
    false match costs only a measured retry, so any write error saying "too
    large" counts.
    """
    if isinstance(exc, DocumentTooLarge):
        return True
    if getattr(exc, "code", None) == _OBJECT_TOO_LARGE:
        return True
    details = getattr(exc, "details", None)
    errors = details.get("writeErrors", []) if isinstance(details, dict) else []
    return any(
        error.get("code") == _OBJECT_TOO_LARGE
        or "too large" in str(error.get("errmsg", "")).lower()
        for error in errors
    )


def is_retryable(exc: PyMongoError) -> bool:
    """Whether the same operation may succeed if tried again."""
    return isinstance(exc, ConnectionFailure) or any(
        exc.has_error_label(label) for label in RETRYABLE_LABELS
    )


#: The longest piece of a server's or driver's text that a message quotes.
_MAX_TEXT = 300
#: The longest value (an id, a seq) a message shows; longer ones are given by their size.
_MAX_VALUE = 80

_DUP_KEY_IN_MESSAGE = re.compile(r"\s*dup key: \{.*", re.S)
_TOPOLOGY = re.compile(r",? Topology Description: .*", re.S)
_SELECTION_TIMEOUT = re.compile(r",? Timeout: ([0-9.]+)s")
_CONFIGURED = re.compile(r" \(configured timeouts: [^)]*\)")


def _short_text(text: str, limit: int = _MAX_TEXT) -> str:
    """``text``, cut to ``limit`` characters with a note of how much was left out."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit:,} more characters)"


def _value(value: Any) -> str:
    """A key value as a message shows it: its repr when short, else its type and size."""
    shown = repr(value)
    if len(shown) <= _MAX_VALUE:
        return shown
    size = len(value.encode("utf-8", "replace")) if isinstance(value, str) else len(shown)
    return f"<{type(value).__name__} of {size:,} bytes>"


def _keys(values: Any) -> str:
    """``thread_id='t', seq=5``: the fields of a key, each value shortened."""
    if not isinstance(values, dict):
        return ""
    return ", ".join(f"{name}={_value(value)}" for name, value in values.items())


def _event(document: Any) -> str:
    """Which event a refused document is: its thread and seq, and its largest fields' sizes."""
    if not isinstance(document, dict):
        return ""
    parts = [
        f"{name} {_value(document[name])}"
        for name in ("thread_id", "seq", "event_id")
        if name in document
    ]
    sizes = []
    for name in ("content", "metadata"):
        if name in document:
            size = len(repr(document[name]))
            if size > _MAX_VALUE:
                sizes.append(f"{name} about {size:,} bytes")
    return "; ".join(filter(None, [", ".join(parts), ", ".join(sizes)]))


def _server_text(error: dict[str, Any]) -> str:
    """A server error (a reply or one write error) in words: message, code name, key, event."""
    message = str(error.get("errmsg") or error.get("message") or "")
    key = _keys(error.get("keyValue"))
    if key or error.get("code") == DUPLICATE_KEY:
        message = _DUP_KEY_IN_MESSAGE.sub("", message)
    text = _short_text(message) or "the server refused it"
    name = error.get("codeName")
    code = error.get("code")
    if name or code is not None:
        text += f" ({', '.join(str(part) for part in (name, code and f'code {code}') if part)})"
    if key:
        text += f"; key {key}"
    event = _event(error.get("op"))
    if event:
        text += f"; event: {event}"
    if "index" in error and "op" in error:
        text += f"; document {error['index']} of the write"
    return text


def describe(exc: BaseException) -> str:
    """What went wrong, in words, without reply documents or the documents that were sent."""
    if isinstance(exc, BulkWriteError):
        details = exc.details or {}
        errors = list(details.get("writeErrors") or []) + list(
            details.get("writeConcernErrors") or []
        )
        if not errors:
            return "the server refused the write"
        first = _server_text(errors[0])
        if len(errors) == 1:
            return first
        return f"{len(errors)} documents refused; the first: {first}"
    if isinstance(exc, ServerSelectionTimeoutError):
        text = _CONFIGURED.sub("", _TOPOLOGY.sub("", str(exc)))
        waited = _SELECTION_TIMEOUT.search(text)
        text = _SELECTION_TIMEOUT.sub("", text)
        if waited:
            text = f"no server answered within {float(waited.group(1)):g} s ({_short_text(text)})"
        return _short_text(text)
    if isinstance(exc, OperationFailure):
        details = dict(exc.details or {})
        if not (details.get("errmsg") or details.get("message")):
            details["errmsg"] = str(exc).split(", full error:")[0]
        details.setdefault("code", exc.code)
        return _server_text(details)
    return _short_text(str(exc) or type(exc).__name__)


def translate(exc: BaseException, action: str) -> RunEventStoreError:
    """This package's error for a driver exception raised while doing ``action``."""
    if isinstance(exc, RunEventStoreError):
        return exc
    message = f"{action} failed: {describe(exc)}"
    if isinstance(exc, DocumentTooLarge):
        return EventTooLargeError(
            f"{action} failed: an event is larger than a MongoDB document allows ({describe(exc)})"
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


#: What :class:`translated` turns into this package's errors.
_DRIVER_ERRORS = (PyMongoError, BSONError, NotImplementedError)


class translated:
    """Run a block of driver calls, re-raising driver errors as this package's.

    A class rather than a generator-based context manager: it is entered on
    every call of the store, and this costs the least.
    """

    __slots__ = ("action",)

    def __init__(self, action: str) -> None:
        self.action = action

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if error is not None and isinstance(error, _DRIVER_ERRORS):
            raise translate(error, self.action) from error
