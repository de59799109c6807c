"""The records a store accepts and returns, as Pydantic models.

:class:`NewEvent` is what a caller hands to ``put`` / ``put_batch``;
:class:`RunEvent` is a stored record, the same fields plus the ``seq`` the store
assigned. Stores validate every event written against :class:`NewEvent`'s
rules (how it is converted and cut: :mod:`mongo_runevents.policy`) into its
validated fields, a plain ``dict`` (:data:`EventFields`): the common case in
one call into pydantic-core for a whole batch (:mod:`mongo_runevents._fastpath`),
anything else through the model itself. Those fields become the stored
document and, with the ``seq``, the record the write returns, with no copy
in between. Reads return the same fields (:mod:`mongo_runevents.records`).

Pydantic errors never reach callers: :func:`new_event` turns them into
:class:`~mongo_runevents.errors.InvalidEventError`, naming the field and, in a
batch, the event's index.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StrictInt,
    StrictStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import SchemaValidator

from . import _fastpath
from ._json import (
    _SURROGATE,
    StorableValue,
    storable,
)
from ._slices import costly, defaults_in_slices
from .errors import InvalidEventError
from .fields import CheckedFields, EventFields
from .policy import DEFAULT_POLICY, TRACE_CATEGORY, WritePolicy, truncated
from .times import check_iso_8601

#: A non-empty string; ``strict`` refuses anything that is not already a
#: ``str`` (a dict in an id field is a query-injection attempt, not a typo).
Identifier = Annotated[StrictStr, Field(min_length=1)]

#: The longest id (thread, run, type, category, event or user id) accepted, in
#: UTF-8 bytes: MongoDB's index keys (thread id, category and seq together)
#: have been limited to 1024 bytes, and one huge id slows a whole collection.
MAX_ID_BYTES = 512

#: The keys a ``put_batch`` event dict may have: ``put``'s keyword arguments.
EVENT_FIELDS = (
    "thread_id",
    "run_id",
    "event_type",
    "category",
    "content",
    "metadata",
    "created_at",
    "event_id",
    "user_id",
)

#: Record keys present only when the event has them.
OPTIONAL_FIELDS = ("event_id", "user_id")

#: The event types of an AI reply (``ai_message`` is the legacy name).
AI_REPLY_TYPES = ("llm.ai.response", "ai_message")
#: Callers whose AI replies are internal, not shown to the user.
HIDDEN_CALLER_PREFIX = "middleware:"

#: The category of the events a chat UI displays.
MESSAGE_CATEGORY = "message"

#: The keys of every record a store returns (``event_id`` only when the event has one).
RECORD_FIELDS = (*EVENT_FIELDS, "seq")

#: The highest seq an import may bring: JavaScript's largest exact integer, so a
#: browser reads it as it is, and far enough below 2**63 that the thread can
#: go on for as many events again as anyone will ever write.
MAX_IMPORTED_SEQ = 2**53 - 1


#: The last second :func:`utc_now_iso` formatted, and its text to the second.
_FORMATTED_SECOND: list[tuple[int, str]] = [(-1, "")]


def utc_now_iso() -> str:
    """Now, in UTC, as ISO-8601 with microseconds and offset: ``2026-12-06T19:42:30.123456+00:00``.

    What ``datetime.now(timezone.utc).isoformat(timespec="microseconds")``
    gives, at a tenth of its cost: the text up to the second is formatted
    once a second (each write takes the time once).
    """
    second, microsecond = divmod(time.time_ns() // 1000, 1_000_000)
    formatted = _FORMATTED_SECOND[0]
    if formatted[0] != second:
        text = datetime.fromtimestamp(second, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
        formatted = _FORMATTED_SECOND[0] = (second, text)
    return f"{formatted[1]}.{microsecond:06d}+00:00"


def id_problem(value: str) -> str | None:
    """What is wrong with a (non-empty) id string, or ``None``: no lone surrogate, a bounded length."""
    if value.isascii():
        if len(value) > MAX_ID_BYTES:
            return f"is {len(value)} bytes long; ids are limited to {MAX_ID_BYTES} bytes"
        return None
    if _SURROGATE.search(value) is not None:
        return "holds a lone surrogate (not valid Unicode)"
    size = len(value.encode("utf-8"))
    if size > MAX_ID_BYTES:
        return f"is {size} bytes long (UTF-8); ids are limited to {MAX_ID_BYTES} bytes"
    return None


def _check_identifier_text(value: str) -> str:
    problem = id_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


class _EventFields(BaseModel):
    """The fields a caller provides, shared by new and stored events."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    thread_id: Identifier
    run_id: Identifier
    event_type: Identifier
    category: Identifier

    @field_validator("thread_id", "run_id", "event_type", "category")
    @classmethod
    def _valid_unicode(cls, value: str) -> str:
        return _check_identifier_text(value)


class NewEvent(_EventFields):
    """An event as a caller writes it, before the store assigns its ``seq``."""

    content: Any = ""
    metadata: dict[Any, Any] | None = Field(default=None, validate_default=True)
    created_at: StrictStr | None = None
    #: The caller's idempotency key, unique within the thread: writing an event
    #: whose key the thread already holds returns the stored record instead.
    event_id: Identifier | None = None
    #: The owner of the event; reads given a ``user_id`` see only its events.
    user_id: Identifier | None = None

    #: Set by the full validation; events validated on the fast path
    #: (:mod:`mongo_runevents._fastpath`) have no private state and need no encoding.
    _needs_encoding: bool = PrivateAttr(default=False)

    @field_validator("metadata")
    @classmethod
    def _metadata_default(cls, value: dict[str, Any] | None) -> dict[str, Any]:
        return {} if value is None else value

    @model_validator(mode="after")
    def _storable_content_and_metadata(self, info: ValidationInfo) -> NewEvent:
        policy = info.context if isinstance(info.context, WritePolicy) else DEFAULT_POLICY
        content = storable(self.content, "content", policy.json_default)
        metadata = storable(self.metadata, "metadata", policy.json_default)
        if policy.max_trace_content is not None and self.category == TRACE_CATEGORY:
            content, metadata = truncated(content, metadata, policy.max_trace_content)
        # The model is frozen for callers; validation fills in the converted values.
        object.__setattr__(self, "content", content.value)
        object.__setattr__(self, "metadata", metadata.value)
        self._needs_encoding = content.needs_encoding or metadata.needs_encoding
        return self

    @property
    def needs_encoding(self) -> bool:
        """Whether content or metadata hold keys or integers MongoDB must store encoded."""
        private = self.__pydantic_private__
        return private is not None and bool(private["_needs_encoding"])

    @field_validator("created_at")
    @classmethod
    def _created_at_is_iso(cls, value: str | None) -> str | None:
        return None if value is None else check_iso_8601(value)

    @field_validator("event_id", "user_id")
    @classmethod
    def _optional_id_is_unicode(cls, value: str | None) -> str | None:
        return None if value is None else _check_identifier_text(value)

    def fields(self) -> EventFields:
        """This event's validated fields, as the write path carries them (see :data:`EventFields`)."""
        values = self.__dict__
        fields = CheckedFields(
            {name: values[name] for name in _ALWAYS_PRESENT}, self.needs_encoding
        )
        # OPTIONAL_FIELDS, only when the event has them.
        if values["event_id"] is not None:
            fields["event_id"] = values["event_id"]
        if values["user_id"] is not None:
            fields["user_id"] = values["user_id"]
        return fields


#: The keys every event's validated fields hold (``created_at`` may be ``None``).
_ALWAYS_PRESENT = EVENT_FIELDS[:7]
assert _ALWAYS_PRESENT[-1] == "created_at"
assert EVENT_FIELDS[7:] == OPTIONAL_FIELDS


class RunEvent(_EventFields):
    """A stored event: what every read and write of a store returns (as a dict)."""

    content: Any
    metadata: dict[str, Any]
    seq: Annotated[StrictInt, Field(ge=1)]
    created_at: StrictStr
    event_id: Identifier | None = None
    user_id: Identifier | None = None

    def as_dict(self) -> dict[str, Any]:
        """The record as the plain dict the interface returns (no copying)."""
        record = {name: getattr(self, name) for name in RECORD_FIELDS}
        for name in OPTIONAL_FIELDS:
            if record[name] is None:
                del record[name]
        return record


_FAST_EVENT, _FAST_EVENTS = _fastpath.event_validators(MAX_ID_BYTES)


def _fast_validated(validator: SchemaValidator, data: Any, policy: WritePolicy) -> Any:
    """``data`` through a fast-path validator: its fields, ``None`` if the fast path refuses it.

    The result is the validator's (one event's fields, or a list of them),
    finished: ids given as ``None`` left out, trace content cut as ``policy``
    says, and every event's fields made :class:`CheckedFields` when the call
    met an integer past 32 bits (see :func:`~mongo_runevents._fastpath.event_validators`).
    """
    seen = _fastpath.WideIntegers()
    try:
        validated = validator.validate_python(data, context=seen)
    except ValidationError:
        return None
    batch: list[EventFields] = validated if type(validated) is list else [validated]
    limit = policy.max_trace_content
    for position, fields in enumerate(batch):
        # OPTIONAL_FIELDS, spelt out: an id given as None is no id.
        if fields.get("event_id", "") is None:
            del fields["event_id"]
        if fields.get("user_id", "") is None:
            del fields["user_id"]
        if limit is not None and fields["category"] == TRACE_CATEGORY:
            content, metadata = truncated(
                StorableValue(fields["content"], 0, False),
                StorableValue(fields["metadata"], 0, False),
                limit,
            )
            fields["content"], fields["metadata"] = content.value, metadata.value
        if seen.found:
            batch[position] = CheckedFields(fields)
    return batch if type(validated) is list else batch[0]


#: The keys an event dict may have (the fast path's validators ignore others).
_EVENT_KEYS = frozenset(EVENT_FIELDS)


def _fast_event(data: Any, policy: WritePolicy) -> EventFields | None:
    """``data`` validated on the fast path, or ``None`` if it needs the full validation."""
    if type(data) is not dict or not _EVENT_KEYS.issuperset(data):
        return None
    fields: EventFields | None = _fast_validated(_FAST_EVENT, data, policy)
    return fields


def _invalid(exc: ValidationError, index: int | None) -> InvalidEventError:
    """The first problem Pydantic found, as this package's error."""
    first = exc.errors(include_url=False)[0]
    cause = first.get("ctx", {}).get("error")
    if isinstance(cause, InvalidEventError):
        # Raised by a JSON check inside a validator: it already names the path.
        return type(cause)(cause.reason, field=cause.field, index=index)
    field = ".".join(str(part) for part in first["loc"]) or None
    message = str(cause) if cause is not None else first["msg"]
    if first["type"] == "extra_forbidden":
        message = f"unknown field (an event has only {', '.join(EVENT_FIELDS)})"
    elif first["type"] in ("string_type", "int_type", "dict_type"):
        message = f"{first['msg'].lower()}, got {type(first['input']).__name__}"
    return InvalidEventError(message, field=field, index=index)


def new_event(
    data: Mapping[str, Any], *, index: int | None = None, policy: WritePolicy = DEFAULT_POLICY
) -> EventFields:
    """Validate one event as given to ``put`` / ``put_batch`` (``index`` is its batch position)."""
    fast = _fast_event(data, policy)
    if fast is not None:
        return fast
    return _fully_validated(data, index, policy)


def _fully_validated(data: Any, index: int | None, policy: WritePolicy) -> EventFields:
    """One event validated by Pydantic and the Python walk (the fast path did not take it)."""
    if not isinstance(data, Mapping):
        raise InvalidEventError(f"an event must be a dict, got {type(data).__name__}", index=index)
    try:
        return NewEvent.model_validate(data, context=policy).fields()
    except ValidationError as exc:
        raise _invalid(exc, index) from None


async def new_event_from_arguments_yielding(
    arguments: dict[str, Any], policy: WritePolicy = DEFAULT_POLICY
) -> EventFields:
    """Validate the keyword arguments of ``put`` / ``put_if_absent`` (their ``locals()``).

    A costly event lets the event loop run while it is converted, as in
    :func:`new_events_yielding`.
    """
    data = {name: arguments[name] for name in EVENT_FIELDS}
    fast = _fast_event(data, policy)
    if fast is not None:
        return fast
    if costly([data]):
        policy = await defaults_in_slices([data], policy)
    return _fully_validated(data, None, policy)


def imported_event(
    record: Any, index: int, policy: WritePolicy = DEFAULT_POLICY
) -> tuple[EventFields, int]:
    """Validate a whole stored record brought in from elsewhere: the event and its ``seq``.

    ``created_at`` is required here (an import keeps the original times).
    """
    if not isinstance(record, Mapping):
        raise InvalidEventError(
            f"a record must be a dict, got {type(record).__name__}", index=index
        )
    seq = record.get("seq")
    if not isinstance(seq, int) or isinstance(seq, bool) or not 1 <= seq <= MAX_IMPORTED_SEQ:
        raise InvalidEventError(
            f"must be an int from 1 to {MAX_IMPORTED_SEQ} (2**53-1, so that the thread can "
            f"continue after it), got {seq!r}",
            field="seq",
            index=index,
        )
    if record.get("created_at") is None:
        raise InvalidEventError(
            "is required in an imported record", field="created_at", index=index
        )
    event = new_event(
        {name: value for name, value in record.items() if name != "seq"}, index=index, policy=policy
    )
    return event, seq


def _fast_events(
    events: list[Any] | tuple[Any, ...], policy: WritePolicy
) -> list[EventFields] | None:
    """A whole batch validated in one call on the fast path, or ``None`` if it cannot be."""
    if type(events) is not list:
        return None
    for event in events:
        if type(event) is not dict or not _EVENT_KEYS.issuperset(event):
            return None
    validated: list[EventFields] | None = _fast_validated(_FAST_EVENTS, events, policy)
    return validated


def new_events(events: Any, policy: WritePolicy = DEFAULT_POLICY) -> list[EventFields]:
    """Validate the argument of ``put_batch``: a list of event dicts."""
    _check_is_batch(events)
    validated = _fast_events(events, policy)
    if validated is None:
        validated = _each_validated(events, policy)
    return _unique_event_ids(validated)


async def new_events_yielding(
    events: Any, policy: WritePolicy = DEFAULT_POLICY
) -> list[EventFields]:
    """:func:`new_events`, letting the event loop run while a costly batch is converted.

    A batch the fast path takes is validated at once (it is cheap). One it
    refuses, with much to convert, has ``json_default`` applied to its
    objects first, a slice at a time with the loop given a turn between them
    (:mod:`mongo_runevents._slices`), and is then validated with those results:
    the ``str()`` of 400 LangChain messages in a ``run.end`` (several
    milliseconds) no longer holds the loop in one piece. What is stored is
    the same. The caller must not change the events while the call runs, as
    with any call that awaits.
    """
    _check_is_batch(events)
    validated = _fast_events(events, policy)
    if validated is None:
        if costly(events):
            policy = await defaults_in_slices(events, policy)
        validated = _each_validated(events, policy)
    return _unique_event_ids(validated)


def _check_is_batch(events: Any) -> None:
    if not isinstance(events, (list, tuple)):
        raise InvalidEventError(
            f"put_batch takes a list of event dicts, got {type(events).__name__}", field="events"
        )


def _each_validated(events: list[Any] | tuple[Any, ...], policy: WritePolicy) -> list[EventFields]:
    """The events validated one by one (the fast path did not take the batch whole)."""
    return [new_event(event, index=index, policy=policy) for index, event in enumerate(events)]


def _unique_event_ids(validated: list[EventFields]) -> list[EventFields]:
    """``validated``, unless two events of a thread share an ``event_id``."""
    keys: set[tuple[str, str]] = set()
    for index, fields in enumerate(validated):
        if "event_id" in fields:
            key = (fields["thread_id"], fields["event_id"])
            if key in keys:
                raise InvalidEventError(
                    "repeats an event_id of an earlier event of the same thread in this batch",
                    field="event_id",
                    index=index,
                )
            keys.add(key)
    return validated
