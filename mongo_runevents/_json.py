"""Content and metadata made storable: one pass that checks, converts and copies.

Callers put what their framework hands them into an event: DeerFlow's journal
writes ``run.end`` with the whole graph state, LangChain message objects
included. DeerFlow's persistent stores keep such values as
``json.dumps(value, default=str)`` would, so by default this module does the
same, natively (no JSON text round trip):

- ``dict`` (keys made strings as ``json`` makes them: ``1`` -> ``"1"``,
  ``True`` -> ``"true"``, ``None`` -> ``"null"``), ``list``, ``str``, ``int``,
  ``float``, ``bool`` and ``None`` are kept; subclasses (an ``IntEnum``, a
  ``str`` enum, an ``OrderedDict``) become the base type;
- tuples become lists;
- any other value goes through ``default`` (``str`` unless the caller gives
  another, such as one calling ``model_dump()``), and what it returns is
  converted again; a key of another type becomes ``str(default(key))``;
- NaN, the infinities and integers of any size are kept, as ``json`` keeps
  them (MongoDB stores integers past 64 bits in an encoded form, see
  ``_codec``).

With ``default=None`` (strict), only the JSON types above are accepted, with
integers in 64 bits and finite floats: everything else is refused.

Both modes refuse what no store can keep: strings or keys holding a lone
surrogate (UTF-8, hence BSON and DeerFlow's own stores, cannot carry one) and
nesting deeper than ``MAX_NESTING`` levels (MongoDB refuses documents nested
deeper than 100).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from .errors import InvalidEventError

#: Deepest container nesting accepted inside ``content`` or ``metadata``.
#: MongoDB refuses documents nested deeper than 100 levels; the record itself
#: takes two, and this leaves room to spare.
MAX_NESTING = 90

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

_SURROGATE = re.compile("[\ud800-\udfff]")

#: What turns a value that is not JSON into one; ``None`` refuses such values.
JsonDefault = Callable[[Any], Any] | None

# Per-element overhead of BSON and JSON beyond the key and the value's own
# bytes (type byte, NUL, length prefixes, quotes, separators), rounded up.
_ELEMENT = 16
# Bytes per character, at most: UTF-8 takes up to 4, a JSON escape up to 6.
_PER_CHAR = 6
# Characters MongoDB treats specially in a field name (and ``%``, the escape).
_SPECIAL_KEY = re.compile(r"[.$\x00%]")

_JSON_KEYS = {True: "true", False: "false", None: "null"}
#: Values the converter handles without calling ``default``.
_NOT_DEFAULTED = (str, int, float, dict, list, tuple, type(None))
#: How many times ``default`` may be applied to one value in a row.
_DEFAULT_STEPS = 8


class _Refused(Exception):
    """A value that cannot be stored; the path to it is added while unwinding."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.path: list[str] = []


class StorableValue:
    """A value converted for storage, with what a store needs to know about it.

    ``value`` shares no container with the caller's object. ``size_bound`` is at
    least its size as BSON and as JSON, so a store can tell cheaply that an
    event is small. ``needs_encoding`` says that it holds a key MongoDB treats
    specially or an integer past 64 bits, which the MongoDB codec must encode.
    """

    __slots__ = ("needs_encoding", "size_bound", "value")

    def __init__(self, value: Any, size_bound: int, needs_encoding: bool) -> None:
        self.value = value
        self.size_bound = size_bound
        self.needs_encoding = needs_encoding


class _Converter:
    """One walk over one value; keeps the size and the encoding flag as it goes."""

    __slots__ = ("default", "needs_encoding", "size")

    def __init__(self, default: JsonDefault) -> None:
        self.default = default
        self.size = 0
        self.needs_encoding = False

    def convert(self, value: Any, depth: int) -> Any:
        kind = type(value)
        if kind is str:
            # ASCII text (most of it) cannot hold a surrogate; isascii() is far
            # cheaper than the search.
            if not value.isascii() and _SURROGATE.search(value) is not None:
                raise _Refused("string holds a lone surrogate (not valid Unicode)")
            self.size += _ELEMENT + _PER_CHAR * len(value)
            return value
        if kind is int:
            if not INT64_MIN <= value <= INT64_MAX:
                if self.default is None:
                    raise _Refused("integer does not fit in 64 bits")
                self.needs_encoding = True
                self.size += _ELEMENT + len(str(value))
            self.size += _ELEMENT + 20
            return value
        if kind is dict:
            return self._dict(value, depth)
        if kind is list or kind is tuple:
            if kind is tuple and self.default is None:
                raise _Refused("tuple is not JSON-compatible (use a list)")
            return self._list(value, depth)
        if kind is float:
            if self.default is None and not math.isfinite(value):
                raise _Refused(f"{value!r} is not a JSON number")
            self.size += _ELEMENT + 24
            return value
        if value is None or kind is bool:
            self.size += _ELEMENT
            return value
        return self._other(value, depth)

    def _dict(self, value: dict[Any, Any], depth: int) -> dict[str, Any]:
        if depth >= MAX_NESTING:
            raise _Refused(f"nested deeper than {MAX_NESTING} levels")
        self.size += _ELEMENT
        copied: dict[str, Any] = {}
        for key, item in value.items():
            if type(key) is not str:
                key = self._key(key)
            elif not key.isascii() and _SURROGATE.search(key) is not None:
                error = _Refused("key holds a lone surrogate (not valid Unicode)")
                error.path.append(f"[{key!r}]")
                raise error
            if not self.needs_encoding and _SPECIAL_KEY.search(key) is not None:
                self.needs_encoding = True
            self.size += _PER_CHAR * len(key)
            try:
                copied[key] = self.convert(item, depth + 1)
            except _Refused as error:
                error.path.append(f"[{key!r}]")
                raise
        return copied

    def _list(self, value: list[Any] | tuple[Any, ...], depth: int) -> list[Any]:
        if depth >= MAX_NESTING:
            raise _Refused(f"nested deeper than {MAX_NESTING} levels")
        self.size += _ELEMENT + 8 * len(value)
        copied = []
        for index, item in enumerate(value):
            try:
                copied.append(self.convert(item, depth + 1))
            except _Refused as error:
                error.path.append(f"[{index}]")
                raise
        return copied

    def _key(self, key: Any) -> str:
        """A dict key that is not a ``str``, made one as ``json`` does (or through ``default``)."""
        text: str
        # The real type (``type``), not ``isinstance``: an object may fake its
        # class (a ``Mock(spec=str)``, a proxy forwarding ``__class__``), and
        # ``json`` looks at the real type too.
        kind = type(key)
        if issubclass(kind, str):
            text = str.__str__(key)
        elif self.default is None:
            raise _Refused(f"dict key {key!r} is a {type(key).__name__}, not a str")
        elif key is None or kind is bool:
            return _JSON_KEYS[key]
        elif issubclass(kind, int):
            return int.__repr__(key)
        elif issubclass(kind, float):
            return _float_key(key)
        else:
            converted = self._call_default(key)
            text = str.__str__(converted) if issubclass(type(converted), str) else str(converted)
        if not text.isascii() and _SURROGATE.search(text) is not None:
            raise _Refused("key holds a lone surrogate (not valid Unicode)")
        return text

    def _other(self, value: Any, depth: int) -> Any:
        """A subclass of a JSON type as its base type; anything else through ``default``.

        Subclasses are told by the real type (``type``), as ``json`` tells
        them: an object that fakes its class (``Mock(spec=str)``, a proxy
        forwarding ``__class__``) passes ``isinstance`` but is no ``str``, and
        goes through ``default`` like any other object.
        """
        kind = type(value)
        if issubclass(kind, str):
            return self.convert(str.__str__(value), depth)
        if issubclass(kind, int):
            return self.convert(int.__int__(value), depth)
        if issubclass(kind, float):
            return self.convert(float.__float__(value), depth)
        if issubclass(kind, dict):
            return self._dict(value, depth)
        if issubclass(kind, list):
            # Its items as stored, whatever its __iter__ says, as json.dumps
            # (and pydantic-core, on the fast path) read a list subclass.
            return self._list(list.copy(value), depth)
        if issubclass(kind, tuple) and self.default is not None:
            return self._list(value, depth)
        if self.default is None:
            raise _Refused(
                f"{type(value).__name__} is not JSON-compatible "
                "(use dict, list, str, int, float, bool or None)"
            )
        # What default returns is converted again (as json does); a default
        # that keeps returning objects that are not JSON is given up on.
        for _ in range(_DEFAULT_STEPS):
            value = self._call_default(value)
            if not issubclass(type(value), _NOT_DEFAULTED):
                continue
            return self.convert(value, depth)
        raise _Refused(
            f"{type(value).__name__} is still not JSON after {_DEFAULT_STEPS} conversions"
        )

    def _call_default(self, value: Any) -> Any:
        assert self.default is not None
        try:
            return self.default(value)
        except Exception as exc:
            raise _Refused(
                f"{type(value).__name__} is not JSON and the default conversion failed: {exc!r}"
            ) from exc


def _float_key(key: float) -> str:
    """A float key as ``json`` writes it."""
    if key != key:
        return "NaN"
    if math.isinf(key):
        return "Infinity" if key > 0 else "-Infinity"
    return float.__repr__(key)


def storable(value: Any, field: str, default: JsonDefault = str) -> StorableValue:
    """Convert ``value`` for storage, or raise :class:`InvalidEventError` naming where it failed.

    ``field`` names where the value sits (``"content"``, ``"metadata"``); the
    error message extends it with the path inside the value.
    """
    converter = _Converter(default)
    try:
        converted = converter.convert(value, 0)
    except _Refused as error:
        where = field + "".join(reversed(error.path))
        raise InvalidEventError(error.reason, field=where) from error.__cause__
    return StorableValue(converted, converter.size, converter.needs_encoding)


#: Types :func:`conversion_cost` counts as cheap to convert.
_PLAIN_TYPES = frozenset((str, int, float, bool, type(None)))
#: The estimated cost of an object that goes through ``default``: the ``str()``
#: of a LangChain message takes 15 to 20 microseconds.
_DEFAULTED_COST = 20


def conversion_cost(value: Any, limit: int) -> int:
    """About how many microseconds :func:`storable` would take on ``value``, counted up to ``limit``.

    Each value, key and container counts 1; any other object (it goes through
    ``default``, such as a LangChain message through ``str()``) counts
    ``_DEFAULTED_COST``. The count stops once it reaches ``limit``, so it
    visits at most ``limit`` values, whatever the size of ``value``. Only the
    exact types ``dict``, ``list`` and ``tuple`` are looked into: no method of
    the caller's objects is called.
    """
    cost = 0
    pending = [iter((value,))]
    while pending:
        for item in pending[-1]:
            kind = type(item)
            if kind is dict:
                cost += 1 + len(item)
                pending.append(iter(item.values()))
            elif kind is list or kind is tuple:
                cost += 1
                pending.append(iter(item))
            elif kind in _PLAIN_TYPES:
                cost += 1
            else:
                cost += _DEFAULTED_COST
            if cost >= limit:
                return cost
            if kind is dict or kind is list or kind is tuple:
                break  # go into the container just found
        else:
            pending.pop()
    return cost


class DefaultsAhead:
    """A ``default`` whose results for some objects were computed ahead of the conversion.

    A store that must convert many objects (the LangChain messages of a
    ``run.end``) calls :meth:`compute` on each of :func:`defaulted_objects`
    in slices, letting its event loop run between them; the conversion then
    gets the results from this object, which it calls as its ``default``.
    An object it has no result for (one that failed, or that ``default``
    returned) goes to ``default`` as usual, so what is stored, and any error
    and where it is reported, are the same as without this.
    """

    __slots__ = ("default", "results")

    def __init__(self, default: Callable[[Any], Any]) -> None:
        self.default = default
        #: ``id(obj)`` -> ``(obj, default(obj))``; holding ``obj`` keeps its id unique.
        self.results: dict[int, tuple[Any, Any]] = {}

    def compute(self, value: Any) -> None:
        """Apply ``default`` to ``value`` now; a failure is left for the conversion to report."""
        try:
            self.results[id(value)] = (value, self.default(value))
        except Exception:
            return

    def __call__(self, value: Any) -> Any:
        found = self.results.get(id(value))
        if found is not None and found[0] is value:
            return found[1]
        return self.default(value)


def defaulted_objects(value: Any) -> list[Any]:
    """The objects inside ``value`` that :func:`storable` would hand to ``default``, in order.

    Only the exact types ``dict`` (its values), ``list`` and ``tuple`` are looked
    into, without recursion; no method of the caller's objects is called.
    """
    found = []
    pending = [iter((value,))]
    while pending:
        for item in pending[-1]:
            kind = type(item)
            if kind is dict:
                pending.append(iter(item.values()))
                break
            if kind is list or kind is tuple:
                pending.append(iter(item))
                break
            # As the conversion tells them: by the real type, not isinstance.
            if kind not in _PLAIN_TYPES and not issubclass(kind, _NOT_DEFAULTED):
                found.append(item)
        else:
            pending.pop()
    return found


def copy_json(value: Any) -> Any:
    """Deep-copy a converted value (plain JSON types only): several times faster than ``copy.deepcopy``."""
    kind = type(value)
    if kind is dict:
        return {key: copy_json(item) for key, item in value.items()}
    if kind is list:
        return [copy_json(item) for item in value]
    return value


def same_json(first: Any, second: Any) -> bool:
    """Whether two converted values are the same, types included all the way down.

    ``1``, ``1.0`` and ``True`` are equal in Python but not the same event; two
    NaNs are the same value here, and ``0.0`` is not ``-0.0``.
    """
    kind = type(first)
    if kind is not type(second):
        return False
    if kind is dict:
        return first.keys() == second.keys() and all(
            same_json(item, second[key]) for key, item in first.items()
        )
    if kind is list:
        return len(first) == len(second) and all(
            same_json(a, b) for a, b in zip(first, second, strict=True)
        )
    if kind is float:
        return bool(first.hex() == second.hex())
    return bool(first == second)
