"""Checks that a value is JSON-compatible in the sense every store guarantees.

A value is accepted only if it can be stored and read back *equal*, in every
store: ``dict`` (string keys), ``list``, ``str``, ``int``, ``float``, ``bool``
and ``None``, with these limits, which MongoDB (BSON) imposes and which the
Memory store enforces too so that both behave the same:

- integers fit in 64 bits, signed;
- floats are finite (NaN never compares equal, and JSON has no infinities);
- strings and keys are valid Unicode (no lone surrogates, which UTF-8 cannot carry);
- containers nest at most ``MAX_NESTING`` levels deep.

Tuples, sets, bytes, datetimes, ``Decimal`` and other objects are refused rather
than converted, because they would not come back as what was given.
"""

from __future__ import annotations

import math
import re
from typing import Any

from .errors import InvalidEventError

#: Deepest container nesting accepted inside ``content`` or ``metadata``.
#: MongoDB refuses documents nested deeper than 100 levels; the record itself
#: takes two, and this leaves room to spare.
MAX_NESTING = 90

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

_SURROGATE = re.compile("[\ud800-\udfff]")


def check_json_value(value: Any, field: str) -> int:
    """Raise :class:`InvalidEventError` unless ``value`` is JSON-compatible; return a size bound.

    ``field`` names where the value sits (``"content"``, ``"metadata"``); the
    error message extends it with the path inside the value. The returned
    number is at least the size of the value as BSON (and as JSON), so a store
    can tell cheaply that a value is small without encoding it.
    """
    return _check(value, [field], 0)


def _where(path: list[str]) -> str:
    return path[0] + "".join(path[1:])


# Per-element overhead of BSON and JSON beyond the key and the value's own
# bytes (type byte, NUL, length prefixes, quotes, separators), rounded up.
_ELEMENT = 16
# Bytes per character, at most: UTF-8 takes up to 4, a JSON escape up to 6.
_PER_CHAR = 6


def _check(value: Any, path: list[str], depth: int) -> int:
    if value is None or value is True or value is False:
        return _ELEMENT
    if isinstance(value, str):
        # ASCII text (most of it) cannot hold a surrogate; isascii() is far
        # cheaper than the search.
        if not value.isascii() and _SURROGATE.search(value) is not None:
            raise InvalidEventError(
                "string holds a lone surrogate (not valid Unicode)", field=_where(path)
            )
        return _ELEMENT + _PER_CHAR * len(value)
    if isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            raise InvalidEventError("integer does not fit in 64 bits", field=_where(path))
        return _ELEMENT + 20
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidEventError(f"{value!r} is not a JSON number", field=_where(path))
        return _ELEMENT + 24
    if isinstance(value, dict):
        if depth >= MAX_NESTING:
            raise InvalidEventError(f"nested deeper than {MAX_NESTING} levels", field=_where(path))
        size = _ELEMENT
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidEventError(
                    f"dict key {key!r} is a {type(key).__name__}, not a str", field=_where(path)
                )
            path.append(f"[{key!r}]")
            if not key.isascii() and _SURROGATE.search(key) is not None:
                raise InvalidEventError(
                    "key holds a lone surrogate (not valid Unicode)", field=_where(path)
                )
            size += _PER_CHAR * len(key) + _check(item, path, depth + 1)
            path.pop()
        return size
    if isinstance(value, list):
        if depth >= MAX_NESTING:
            raise InvalidEventError(f"nested deeper than {MAX_NESTING} levels", field=_where(path))
        size = _ELEMENT
        for index, item in enumerate(value):
            path.append(f"[{index}]")
            size += 8 + _check(item, path, depth + 1)
            path.pop()
        return size
    raise InvalidEventError(
        f"{type(value).__name__} is not JSON-compatible (use dict, list, str, int, float, bool or None)",
        field=_where(path),
    )


def copy_json(value: Any) -> Any:
    """Deep-copy a checked JSON value, as the plain JSON types every store gives back.

    Subclasses (an ``IntEnum``, a ``str`` enum, an ``OrderedDict``) become the
    base type, equal to what was given: that is what MongoDB returns, and every
    store must return the same. Several times faster than ``copy.deepcopy``.
    """
    kind = type(value)
    if kind is str or kind is int or kind is float or kind is bool or value is None:
        return value
    if isinstance(value, dict):
        return {str.__str__(key): copy_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [copy_json(item) for item in value]
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, int):
        return int(value)
    return float(value)
