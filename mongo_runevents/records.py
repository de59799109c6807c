"""Records read back from storage: trusted when the store wrote them, validated otherwise.

Every read of every store returns records with :class:`StoredRecord`'s fields.
Every record is validated once, on the way in. The MongoDB store marks each
document it builds from a validated record (:data:`STORE_MARK_FIELD`), and
reads return a marked document as it is (:func:`trust_marked`) when it holds
as many fields as a record. The mark says how much is trusted:
:data:`STORE_MARK` that the document holds only values pymongo reads back as
the very types the write returned; :data:`CHECKED_MARK` that it may hold
others (an integer past 32 bits comes back as pymongo's ``Int64``), so a
check in C of every value's type comes first. Any other document (an older
version's, another tool's, one that needs restoring) is validated as before,
a page at a time in one call into pydantic-core (:mod:`mongo_runevents._fastpath`
spells the rules as a core schema); a page that fails means the stored data
is corrupt, and says where.
"""

from __future__ import annotations

import gc
from typing import Annotated, Any

from pydantic import (
    ConfigDict,
    Field,
    JsonValue,
    StrictInt,
    StrictStr,
    ValidationError,
    with_config,
)
from typing_extensions import NotRequired, TypedDict

from . import _fastpath
from .errors import StorageError
from .models import Identifier


@with_config(ConfigDict(strict=True, extra="forbid"))
class StoredRecord(TypedDict):
    """A record as every read returns it: :class:`RunEvent`'s fields, as a plain dict.

    Reads validate whole pages against these rules in one call into
    pydantic-core (:func:`mongo_runevents._fastpath.record_validator` spells
    them as a core schema, so that no Python runs per value), which also turns
    the driver's ``Int64`` into ``int`` and refuses anything that is not JSON
    in content and metadata.
    """

    thread_id: Identifier
    run_id: Identifier
    event_type: Identifier
    category: Identifier
    content: JsonValue
    metadata: dict[str, JsonValue]
    created_at: StrictStr
    event_id: NotRequired[Identifier]
    user_id: NotRequired[Identifier]
    seq: Annotated[StrictInt, Field(ge=1)]


class LookedUpRecord(StoredRecord):
    """What ``get_event`` returns: a record, and the fields it left out of line.

    With ``load_large_fields=False``, ``large_fields`` names the fields stored
    out of line (which the record holds as ``None``) and their sizes in bytes.
    """

    large_fields: NotRequired[dict[str, int]]


class AnotherUsersEvent(TypedDict):
    """What ``put_if_absent`` returns of an existing event its caller may not see: the key asked about."""

    thread_id: str
    run_id: str
    event_type: str


#: Validates a page of :class:`StoredRecord` in one call, in Rust (see :mod:`._fastpath`).
_STORED_RECORDS = _fastpath.record_validator()


#: Set by the write path on every document it builds from a validated record
#: (:meth:`mongo_runevents.mongo.codec.DocumentBuilder.prepare`), imports
#: included. Versions before 0.x set none, and another tool would not by accident.
STORE_MARK_FIELD = "runevents_format"
#: The mark of a document holding only values a read gets back as they were
#: written: strings, floats, booleans, ``None``, integers of 32 bits, dicts and
#: lists of them. Returned as it is.
STORE_MARK = 2
#: The mark of a document that may hold values read back as another type
#: (integers past 32 bits, which pymongo reads as ``Int64``), and of every
#: marked document the previous version wrote: trusted once every value's
#: type is checked (:func:`_only_json_types`).
CHECKED_MARK = 1

#: How many fields a record has besides ``event_id`` and ``user_id``.
_REQUIRED_FIELD_COUNT = 8
#: The Python types of JSON values, exactly (``Int64`` and other subclasses are not).
_JSON_TYPES = frozenset((str, int, float, bool, type(None), dict, list))


def _only_json_types(values: list[Any]) -> bool:
    """Whether everything ``values`` holds, all the way down, is exactly of a JSON type.

    A walk in C, a level at a time: ``gc.get_referents`` lists what the dicts
    and lists of a level hold (strings and numbers hold nothing), and the set
    of their types is checked. It refuses the driver's ``Int64`` (which reads
    must return as ``int``) and every type JSON has not (dates, ObjectIds,
    binary data), at about a fifth of a validation's cost.
    """
    level = values
    while level:
        level = gc.get_referents(*level)
        if not _JSON_TYPES.issuperset(map(type, level)):
            return False
    return True


def _census_works() -> bool:
    """Whether this interpreter's ``gc.get_referents`` shows every value: else nothing is trusted."""
    from bson.int64 import Int64

    return _only_json_types([{"a": [1, {"b": "c"}]}]) and not any(
        _only_json_types([value])
        for value in ({"a": Int64(1)}, {"a": [{"b": Int64(1)}]}, [{"a": b""}])
    )


_CENSUS_WORKS = _census_works()


def _in_record_order(document: dict[str, Any]) -> None:
    """Put a checked document's fields in a record's order.

    The previous version stored ``created_at`` and the ids before ``content``.
    """
    document["created_at"] = document.pop("created_at", None)
    if "event_id" in document:
        document["event_id"] = document.pop("event_id")
    if "user_id" in document:
        document["user_id"] = document.pop("user_id")
    document["seq"] = document.pop("seq", None)


def trust_marked(documents: list[dict[str, Any]]) -> list[int]:
    """Make the marked documents records in place; the positions of those left to validate.

    Every document's mark is removed. A marked document is a record as it is
    when it holds as many fields as a record with its optional ones (a
    document with escaped keys or out-of-line fields has more, and is
    restored and validated): with :data:`STORE_MARK` at once if its ``seq``
    is an ``int`` (a seq past 2**31 comes back as ``Int64``: validated), with
    :data:`CHECKED_MARK` once the page's checked documents hold only JSON's
    types. The others are left for :func:`stored_records`. The fields are
    counted, not named (naming them costs about 8,000 instructions a
    document): what a tool changed in a marked document after the store
    wrote it is not seen unless it breaks one of these checks (see
    docs/semantics.md, "Validation").
    """
    checked: list[int] = []
    untrusted: list[int] = []
    for position, document in enumerate(documents):
        mark = document.pop(STORE_MARK_FIELD, None)
        if type(mark) is not int or len(document) != _REQUIRED_FIELD_COUNT + (
            "event_id" in document
        ) + ("user_id" in document):
            untrusted.append(position)
        elif mark == STORE_MARK and type(document.get("seq")) is int:
            continue
        elif mark == CHECKED_MARK:
            checked.append(position)
        else:
            untrusted.append(position)
    if not checked:
        return untrusted
    if not (_CENSUS_WORKS and _only_json_types([documents[position] for position in checked])):
        return sorted(untrusted + checked)
    for position in checked:
        _in_record_order(documents[position])
    return untrusted


def plain_stored_records(documents: list[dict[str, Any]]) -> list[StoredRecord] | None:
    """``documents`` validated as records as they are, or ``None`` if any is not one.

    Documents holding anything besides a record's fields (a mark of escaped
    keys, references to out-of-line fields) are not records yet: the caller
    restores them and calls :func:`stored_records`, which also says what is
    wrong with one that is corrupt.
    """
    try:
        records: list[StoredRecord] = _STORED_RECORDS.validate_python(documents)
    except ValidationError:
        return None
    return records


def stored_records(documents: list[dict[str, Any]]) -> list[StoredRecord]:
    """Validate records read back from storage; a failure means the stored data is corrupt."""
    try:
        records: list[StoredRecord] = _STORED_RECORDS.validate_python(documents)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"])
        raise StorageError(
            f"a stored record is not a valid event ({where}: {first['msg']})"
        ) from exc
    return records
