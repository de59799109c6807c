"""The common case of validation, in pydantic-core (Rust), with no Python call per value.

Most events an agent server writes are plain JSON: dicts with ``str`` keys,
lists, strings, numbers, booleans and ``None``, shallowly nested, with keys
MongoDB has no special meaning for. :func:`event_validators` builds
pydantic-core validators that accept exactly such events and produce, in one
call into Rust per batch, the fields the full validation (Pydantic plus the
Python walk of :func:`mongo_runevents._json.storable`) would produce for them:
a plain dict each (:data:`~mongo_runevents.fields.EventFields`). Anything else fails here and goes
through the full validation, which converts it or raises the error callers
see. So the rule for this module is one-sided: what it accepts, the full
validation accepts with the same result; what it refuses may well be valid.

It refuses, leaving them to the full validation:

- values that are not of a JSON type (tuples, sets, objects for
  ``json_default``), dict keys that are not ``str``, NaN and the infinities,
  integers past 64 bits, strings or keys with a lone surrogate;
- keys holding ``.``, ``$``, NUL or ``%`` (they must be escaped for MongoDB);
- containers nested deeper than :data:`FAST_NESTING` levels (each level is a
  distinct schema, to refuse what passes ``MAX_NESTING``; pydantic-core copies
  a schema used twice, so their number grows as 2**levels);
- an id longer than ``MAX_ID_BYTES`` bytes, or than a quarter of that in
  characters when it is not ASCII;
- a ``created_at`` outside :data:`~mongo_runevents.times.ISO_8601_FAST` (the
  one grammar of :mod:`mongo_runevents.times`, field ranges and leap years
  spelt out in the pattern);
- anything else Pydantic would refuse.

Subclasses of ``str``, ``int``, ``float``, ``dict`` and ``list`` become the
plain types, as in the Python walk (a dict subclass is read through its
``items()``, a list subclass through its storage, in both).

The validators of stored records (:func:`record_validator`) are here too: a
union tried left to right, ``str`` first, instead of Pydantic's ``JsonValue``,
whose discriminator is a Python call per value.
"""

from __future__ import annotations

from typing import Any

from pydantic_core import SchemaValidator, core_schema

from ._json import INT64_MAX, INT64_MIN, MAX_NESTING
from .times import ISO_8601_FAST

#: Containers nested up to this many levels are validated in Rust; deeper
#: ones (rare: a graph state, say) by the Python walk.
FAST_NESTING = 10
assert FAST_NESTING < MAX_NESTING

#: A string that UTF-8 can encode. Unconstrained, strict ``str`` hands the
#: object through unchecked; any constraint makes pydantic-core read it as
#: UTF-8, which refuses a lone surrogate (``string_unicode``). A pattern that
#: matches at the start costs nothing more, where a length would count every
#: character.
_TEXT = core_schema.str_schema(strict=True, pattern="^")
#: A key that needs no escaping in MongoDB (and so no encoding by the codec).
_PLAIN_KEY = core_schema.str_schema(strict=True, pattern=r"^[^.$\x00%]*$")


#: The integers BSON stores as int32, which pymongo reads back as ``int``; it
#: reads the larger ones (int64) back as its ``Int64``, a subclass.
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


class WideIntegers:
    """A validation's context: whether it met an integer past 32 bits (see :func:`_scalars`)."""

    __slots__ = ("found",)

    def __init__(self) -> None:
        self.found = False


def _wide_integer(value: int, info: core_schema.ValidationInfo) -> int:
    """Note, in the validation's :class:`WideIntegers`, an integer that BSON stores as int64."""
    context = info.context
    if isinstance(context, WideIntegers):
        context.found = True
    return value


#: A 32-bit integer: after strings, the commonest value in agents' events.
_INT32 = core_schema.int_schema(strict=True, ge=INT32_MIN, le=INT32_MAX)


def _other_scalars() -> list[core_schema.CoreSchema]:
    """JSON's other scalars; an integer past 32 bits is noted in the context (a Python call, for those only).

    Strict ``int`` refuses a ``bool``, so the order of the two does not matter.
    """
    return [
        # Strict float takes an int (one past 64 bits too): only a float may be one here.
        core_schema.chain_schema(
            [
                core_schema.is_instance_schema(float),
                core_schema.float_schema(strict=True, allow_inf_nan=False),
            ]
        ),
        core_schema.bool_schema(strict=True),
        core_schema.none_schema(),
        core_schema.with_info_after_validator_function(
            _wide_integer, core_schema.int_schema(strict=True, ge=INT64_MIN, le=INT64_MAX)
        ),
    ]


#: A union that fails reports one error of its own, not one per choice. The
#: fast path never shows its errors (a refused event goes to the full
#: validation), and pydantic-core labels each choice's error with the choice's
#: name, which for these nested levels is the whole schema below, spelt out:
#: a value that is not JSON (a LangChain message in a ``run.end``) cost about
#: half a millisecond per object in building names no one reads.
_ONE_ERROR: dict[str, Any] = {
    "custom_error_type": "not_fast_json",
    "custom_error_message": "not a value the fast path takes",
}


def _json_levels(prefix: str) -> list[core_schema.CoreSchema]:
    """``<prefix>0`` .. ``<prefix>N``: a JSON value whose containers sit at level 0 .. N-1.

    The choices are tried left to right, each failure costing a little: the
    commonest first (strings, small integers, dicts, lists in agents' events).
    """
    levels: list[core_schema.CoreSchema] = []
    for level in range(FAST_NESTING, -1, -1):
        choices: list[core_schema.CoreSchema | tuple[core_schema.CoreSchema, str]] = [
            _TEXT,
            _INT32,
        ]
        if level < FAST_NESTING:
            inner = core_schema.definition_reference_schema(f"{prefix}{level + 1}")
            choices.append(core_schema.dict_schema(_PLAIN_KEY, inner, strict=True))
            choices.append(core_schema.list_schema(inner, strict=True))
        choices += _other_scalars()
        levels.append(
            core_schema.union_schema(
                choices, mode="left_to_right", ref=f"{prefix}{level}", **_ONE_ERROR
            )
        )
    return levels


def _empty_dict(_: None) -> dict[str, Any]:
    return {}


def _field(
    schema: core_schema.CoreSchema, *, required: bool = True, **default: Any
) -> core_schema.TypedDictField:
    if default:
        schema = core_schema.with_default_schema(schema, **default)
    return core_schema.typed_dict_field(schema, required=required and not default)


def _identifier(max_bytes: int) -> core_schema.CoreSchema:
    """A non-empty id of at most ``max_bytes`` bytes of UTF-8, with no lone surrogate.

    ASCII up to the limit, or up to a quarter of it in characters of any kind
    (4 bytes of UTF-8 at most each); longer ids of other characters take the
    full check. The pattern also makes pydantic-core refuse a lone surrogate.
    """
    return core_schema.str_schema(
        strict=True, pattern=f"(?s)^(?:[\\x00-\\x7f]{{1,{max_bytes}}}|.{{1,{max_bytes // 4}}})$"
    )


def _stored_identifier() -> core_schema.CoreSchema:
    return core_schema.str_schema(strict=True, min_length=1)


def event_validators(max_id_bytes: int) -> tuple[SchemaValidator, SchemaValidator]:
    """Validators of one event dict and of a list of them, producing their validated fields.

    Ids are limited to ``max_id_bytes`` bytes of UTF-8. The fields are a new
    dict in ``EVENT_FIELDS``' order: ``content``, ``metadata`` and
    ``created_at`` always (``created_at`` may be ``None``), ``event_id`` and
    ``user_id`` when given (``None`` too: the caller drops those). Pass a
    :class:`WideIntegers` as the context: it says whether an integer past 32
    bits was met. Keys other than those are ignored, not refused: give the
    validators only dicts whose keys are all fields of an event.
    """
    content = core_schema.definition_reference_schema("c0")
    metadata = core_schema.union_schema(
        [
            core_schema.dict_schema(
                _PLAIN_KEY, core_schema.definition_reference_schema("c1"), strict=True
            ),
            core_schema.no_info_after_validator_function(_empty_dict, core_schema.none_schema()),
        ],
        mode="left_to_right",
        **_ONE_ERROR,
    )
    identifier = _identifier(max_id_bytes)
    optional_identifier = core_schema.nullable_schema(identifier)
    one = core_schema.typed_dict_schema(
        {
            "thread_id": _field(identifier),
            "run_id": _field(identifier),
            "event_type": _field(identifier),
            "category": _field(identifier),
            "content": _field(content, default=""),
            "metadata": _field(metadata, default_factory=dict),
            "created_at": _field(
                core_schema.nullable_schema(
                    core_schema.str_schema(strict=True, pattern=ISO_8601_FAST)
                ),
                default=None,
            ),
            "event_id": _field(optional_identifier, required=False),
            "user_id": _field(optional_identifier, required=False),
        },
        # Unknown keys are the caller's to refuse, before: pydantic-core's
        # "forbid" costs 3,300 instructions an event, a set's superset test 300.
        extra_behavior="ignore",
        strict=True,
    )
    definitions = _json_levels("c")
    return (
        SchemaValidator(core_schema.definitions_schema(one, definitions)),
        SchemaValidator(
            core_schema.definitions_schema(core_schema.list_schema(one, strict=True), definitions)
        ),
    )


def record_validator() -> SchemaValidator:
    """A validator of a page of stored records (a list of dicts): ``StoredRecord``'s rules.

    Content and metadata may hold any JSON value, NaN and integers of any size
    included; the driver's ``Int64`` becomes ``int``. Keys inside them are not
    checked: a decoded BSON document's keys are always strings.
    """
    value = core_schema.definition_reference_schema("json")
    json_value = core_schema.union_schema(
        [
            core_schema.str_schema(strict=True),
            core_schema.dict_schema(values_schema=value, strict=True),
            core_schema.list_schema(value, strict=True),
            core_schema.bool_schema(strict=True),
            core_schema.int_schema(strict=True),
            core_schema.float_schema(strict=True),
            core_schema.none_schema(),
        ],
        mode="left_to_right",
        ref="json",
    )

    def field(schema: core_schema.CoreSchema, required: bool = True) -> core_schema.TypedDictField:
        return core_schema.typed_dict_field(schema, required=required)

    record = core_schema.typed_dict_schema(
        {
            "thread_id": field(_stored_identifier()),
            "run_id": field(_stored_identifier()),
            "event_type": field(_stored_identifier()),
            "category": field(_stored_identifier()),
            "content": field(value),
            "metadata": field(core_schema.dict_schema(values_schema=value, strict=True)),
            "created_at": field(core_schema.str_schema(strict=True)),
            "event_id": field(_stored_identifier(), required=False),
            "user_id": field(_stored_identifier(), required=False),
            # Last, as the write path puts it (mongo_runevents.models.RECORD_FIELDS).
            "seq": field(core_schema.int_schema(strict=True, ge=1)),
        },
        extra_behavior="forbid",
        strict=True,
    )
    return SchemaValidator(
        core_schema.definitions_schema(core_schema.list_schema(record, strict=True), [json_value])
    )
