"""The query parameters of a viewer request: ids and cursors, checked before any store read.

Ids arrive as query parameters (any string, URL-encoded), never as path
segments, so no id can change which route answers. A missing required
parameter, one longer than :data:`MAX_ID_CHARS` or a seq that is not a whole
number in the store's range is a 400 page.
"""

from __future__ import annotations

import re

from starlette.exceptions import HTTPException
from starlette.requests import Request

#: The longest id or cursor a request may name.
MAX_ID_CHARS = 4096
_INT64_MAX = 2**63 - 1
_DIGITS = re.compile(r"[0-9]{1,19}")


def text(request: Request, name: str, *, required: bool = False) -> str | None:
    """The parameter ``name``; an empty one counts as missing."""
    value = request.query_params.get(name)
    if value is None or value == "":
        if required:
            raise HTTPException(400, f"the {name} parameter is missing")
        return None
    if len(value) > MAX_ID_CHARS:
        raise HTTPException(400, f"the {name} parameter is longer than {MAX_ID_CHARS} characters")
    return value


def required(request: Request, name: str) -> str:
    """The parameter ``name``, which the page cannot do without."""
    value = text(request, name, required=True)
    assert value is not None
    return value


def seq(request: Request, name: str, *, minimum: int = 0) -> int | None:
    """The parameter ``name`` as a seq from ``minimum`` to 2**63-1, or None when missing."""
    value = text(request, name)
    if value is None:
        return None
    if _DIGITS.fullmatch(value) is None or not minimum <= int(value) <= _INT64_MAX:
        raise HTTPException(400, f"{name} must be a whole number from {minimum} to 2**63-1")
    return int(value)
