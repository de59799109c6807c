"""The estimate that decides whether an event's conversion gives the event loop turns."""

from __future__ import annotations

import collections
import enum
from typing import Any
from unittest import mock

import pytest

from mongo_runevents import InvalidEventError, _slices
from mongo_runevents._json import (
    _DEFAULTED_COST,
    DefaultsAhead,
    conversion_cost,
    defaulted_objects,
    storable,
)


class Opaque:
    """An object that goes through json_default."""


class Hostile(dict):  # type: ignore[type-arg]
    """A dict subclass whose methods must not be called by the estimate."""

    def __len__(self) -> int:
        raise AssertionError("len called")

    def values(self) -> Any:
        raise AssertionError("values called")


@pytest.mark.parametrize(
    ("value", "cost"),
    [
        ("text", 1),
        (None, 1),
        ([1, 2.5, True], 4),
        ({"a": 1, "b": [None]}, 1 + 2 + 1 + 1 + 1),
        ((1, 2), 3),
        (Opaque(), _DEFAULTED_COST),
        ({"messages": [Opaque(), Opaque()]}, 1 + 1 + 1 + 2 * _DEFAULTED_COST),
    ],
)
def test_values_count_one_and_objects_for_the_default_count_more(value: Any, cost: int) -> None:
    """Each value, key and container counts 1; an object that goes through default counts 20."""
    assert conversion_cost(value, 10**6) == cost


def test_the_count_stops_at_the_limit_whatever_the_size() -> None:
    """A list of a million values is counted only up to the limit."""
    assert 100 <= conversion_cost(list(range(10**6)), 100) <= 100 + _DEFAULTED_COST
    assert conversion_cost([[Opaque()] * 10**6], 100) < 100 + _DEFAULTED_COST


def test_deep_nesting_is_counted_without_recursion() -> None:
    """A value nested 100,000 levels deep is walked without a RecursionError."""
    value: Any = 0
    for _ in range(100_000):
        value = [value]
    assert conversion_cost(value, 10**6) == 100_001


def test_subclasses_are_objects_and_their_methods_are_not_called() -> None:
    """A dict subclass counts as an object: the estimate calls none of its methods."""
    assert conversion_cost({"x": Hostile(a=1)}, 10**6) == 2 + _DEFAULTED_COST
    assert conversion_cost(collections.OrderedDict(a=1), 10**6) == _DEFAULTED_COST


def test_a_run_end_of_100_messages_is_costly_and_one_of_10_is_not() -> None:
    """The threshold slices the conversion of a run.end of 100 objects, not one of 10."""

    def batch(messages: int) -> list[dict[str, Any]]:
        state = {"messages": [Opaque() for _ in range(messages)], "title": "t"}
        return [{"content": {"n": 1}}, {"content": state, "metadata": {"status": "success"}}]

    assert _slices.costly(batch(100))
    assert not _slices.costly(batch(10))
    assert not _slices.costly([{"content": list(range(500))}])
    assert _slices.costly([{"content": list(range(5000))}])


class Role(str, enum.Enum):
    """A str subclass: converted as a str, never given to default."""

    AI = "ai"


def test_the_objects_for_the_default_are_found_in_order_without_recursion() -> None:
    """defaulted_objects lists what storable hands to default, depth-first, even 100,000 levels deep."""
    first, second, third = Opaque(), Opaque(), Opaque()
    value = {"a": [first, 1, Role.AI, (second,)], "b": {"c": third}, "d": Hostile(x=Opaque())}
    # A dict subclass is converted as a dict, not given to default: not looked into here.
    assert defaulted_objects(value) == [first, second, third]
    deep: Any = first
    for _ in range(100_000):
        deep = [deep]
    assert defaulted_objects(deep) == [first]


def test_results_computed_ahead_convert_as_the_default_would() -> None:
    """A DefaultsAhead gives the same stored value, and the same error at the same path."""
    objects = [Opaque() for _ in range(5)]
    value = {"messages": objects, "when": 7}
    ahead = DefaultsAhead(str)
    for found in defaulted_objects(value):
        ahead.compute(found)
    assert storable(value, "content", ahead).value == storable(value, "content", str).value

    def refuse_the_third(item: Any) -> Any:
        if item is objects[2]:
            raise RuntimeError("no")
        return str(item)

    ahead = DefaultsAhead(refuse_the_third)
    for found in objects:
        ahead.compute(found)
    assert set(ahead.results) == {id(item) for item in objects} - {id(objects[2])}
    with pytest.raises(InvalidEventError, match=r"content\['messages'\]\[2\]"):
        storable(value, "content", ahead)


def test_an_object_faking_its_class_is_found_for_the_default() -> None:
    """A Mock(spec=str) passes isinstance but is no str: it goes to default, ahead too."""
    fake = mock.Mock(spec=str)
    assert defaulted_objects({"x": [fake]}) == [fake]
    ahead = DefaultsAhead(str)
    ahead.compute(fake)
    assert storable([fake], "content", ahead).value == storable([fake], "content", str).value
