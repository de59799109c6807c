"""An event's validated fields, as every store's write path carries them, and what is done with them.

Validation (:mod:`mongo_runevents.models`) turns each event a caller writes
into a plain ``dict`` of its fields, :data:`EventFields`; a write completes
that dict into the stored document and hands the same dict back as the
record, so that nothing is copied between validation and the record.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._json import same_json

#: An event's validated fields, as every store's write path carries them: a
#: plain ``dict`` with the keys of :data:`EVENT_FIELDS` in that order,
#: ``content`` and ``metadata`` converted, ``created_at`` ``None`` when the
#: store is to fill in its time, and ``event_id`` and ``user_id`` only when the
#: event has them. It becomes the stored document and then, with its ``seq``
#: last, the record a write returns (:data:`RECORD_FIELDS`' order), so a write
#: copies nothing. Made by :func:`new_events` and its siblings.
EventFields = dict[str, Any]


class CheckedFields(dict[str, Any]):
    """Validated fields whose stored document a read must check before trusting it.

    The fast path's plain dicts hold only values a read gets back as the very
    same Python types (integers of 32 bits, strings, floats, ...). These are
    the others: fields converted by the full validation (Pydantic and the
    Python walk: ``json_default``'s results, tuples, keys MongoDB needs
    escaped, integers of any size), and fields of a fast-path batch that
    holds an integer past 32 bits, which pymongo reads back as ``Int64``.
    Their documents get the mark :data:`~mongo_runevents.records.CHECKED_MARK`
    (:mod:`mongo_runevents.records`). ``needs_encoding``: content or metadata
    hold keys or integers MongoDB must store encoded (:mod:`~mongo_runevents.mongo.codec`).
    """

    __slots__ = ("needs_encoding",)

    def __init__(self, fields: EventFields, needs_encoding: bool = False) -> None:
        super().__init__(fields)
        self.needs_encoding = needs_encoding


def copy_fields(fields: EventFields) -> EventFields:
    """A copy of ``fields`` (their values shared), of the same kind."""
    if type(fields) is CheckedFields:
        return CheckedFields(fields, fields.needs_encoding)
    return dict(fields)


def needs_encoding(fields: EventFields) -> bool:
    """Whether ``fields`` hold keys or integers MongoDB must store encoded."""
    return type(fields) is CheckedFields and fields.needs_encoding


def same_event(fields: EventFields, stored: Mapping[str, Any], *, times_given: bool) -> bool:
    """Whether ``stored`` (a record with this event's key) records the event of ``fields``.

    ``times_given``: whether the caller gave the ``created_at`` (compared only
    then: a retry of the same call gets a new default time).
    """
    return (
        stored["run_id"] == fields["run_id"]
        and stored["event_type"] == fields["event_type"]
        and stored["category"] == fields["category"]
        and same_json(stored["content"], fields["content"])
        and same_json(stored["metadata"], fields["metadata"])
        and stored.get("user_id") == fields.get("user_id")
        and (not times_given or stored["created_at"] == fields["created_at"])
    )


def to_record(fields: EventFields, seq: int, created_at: str) -> dict[str, Any]:
    """A new record of the event of ``fields`` stored with ``seq``, at ``created_at``.

    Shares ``content`` and ``metadata`` with ``fields``: validation built them
    afresh from the caller's objects.
    """
    record = dict(fields)
    record["created_at"] = created_at
    record["seq"] = seq
    return record
