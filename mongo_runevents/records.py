"""Records read back from storage, validated a page at a time.

Every read of every store returns records with :class:`StoredRecord`'s fields.
The MongoDB store validates each page it reads in one call into pydantic-core
(:mod:`mongo_runevents._fastpath` spells the rules as a core schema); a page
that fails means the stored data is corrupt, and says where.
"""

from __future__ import annotations

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
    seq: Annotated[StrictInt, Field(ge=1)]
    created_at: StrictStr
    event_id: NotRequired[Identifier]
    user_id: NotRequired[Identifier]


#: Validates a page of :class:`StoredRecord` in one call, in Rust (see :mod:`._fastpath`).
_STORED_RECORDS = _fastpath.record_validator()


def plain_stored_records(documents: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    """``documents`` validated as records as they are, or ``None`` if any is not one.

    Documents holding anything besides a record's fields (a mark of escaped
    keys, references to out-of-line fields) are not records yet: the caller
    restores them and calls :func:`stored_records`, which also says what is
    wrong with one that is corrupt.
    """
    try:
        records: list[dict[str, Any]] = _STORED_RECORDS.validate_python(documents)
    except ValidationError:
        return None
    return records


def stored_records(documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Validate records read back from storage; a failure means the stored data is corrupt."""
    try:
        records: list[dict[str, Any]] = _STORED_RECORDS.validate_python(documents)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"])
        raise StorageError(
            f"a stored record is not a valid event ({where}: {first['msg']})"
        ) from exc
    return records
