"""Converting a costly batch a slice at a time, so that the event loop runs between slices.

A batch the fast path refuses, with much to convert (:data:`SLICED_COST`),
has ``json_default`` applied to its objects ahead of the validation, in
slices of :data:`SLICE_SECONDS` with the loop given a turn between them
(:func:`mongo_runevents.models.new_events_yielding`): the ``str()`` of 400
LangChain messages in a ``run.end`` no longer holds the loop in one piece.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from ._json import DefaultsAhead, conversion_cost, defaulted_objects
from .policy import WritePolicy

#: A batch the fast path refuses has its objects converted in slices when its
#: conversion is estimated to take longer than a slice (about a microsecond a
#: unit, see :func:`~mongo_runevents._json.conversion_cost`): a run.end of 50
#: LangChain messages.
SLICED_COST = 1000
#: The longest the conversion of objects holds the event loop at a time.
SLICE_SECONDS = 0.001


async def defaults_in_slices(
    events: list[Any] | tuple[Any, ...], policy: WritePolicy
) -> WritePolicy:
    """``policy`` with ``json_default`` applied ahead to the events' objects, in slices."""
    default = policy.json_default
    if default is None:
        return policy  # strict: objects are refused, nothing to convert
    ahead = DefaultsAhead(default)
    objects = [
        found
        for event in events
        if type(event) is dict
        for name in ("content", "metadata")
        for found in defaulted_objects(event.get(name))
    ]
    started = time.perf_counter()
    for found in objects:
        ahead.compute(found)
        if time.perf_counter() - started >= SLICE_SECONDS:
            await asyncio.sleep(0)
            started = time.perf_counter()
    return WritePolicy(ahead, policy.max_trace_content)


def costly(events: list[Any] | tuple[Any, ...]) -> bool:
    """Whether converting the events' content and metadata is worth doing in slices."""
    cost = 0
    for event in events:
        if type(event) is dict:
            for name in ("content", "metadata"):
                cost += conversion_cost(event.get(name), SLICED_COST - cost)
                if cost >= SLICED_COST:
                    return True
    return False
