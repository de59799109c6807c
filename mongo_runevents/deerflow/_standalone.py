"""DeerFlow's user-context rules, for when DeerFlow itself is not installed.

The same three-state ``user_id`` semantics as ``deerflow.runtime.user_context``:
``AUTO`` reads the signed-in user from a context variable (and is an error
when none is set), a ``str`` is used as given, ``None`` means every user.
Set :data:`current_user_id` in a request's middleware.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any


class _Auto:
    """Stands in for DeerFlow's ``AUTO``: resolve the user from the context."""

    def __repr__(self) -> str:
        return "<AUTO>"


AUTO = _Auto()

#: The signed-in user's id, set by the caller's middleware.
current_user_id: ContextVar[str | None] = ContextVar("mongo_runevents_user", default=None)


@dataclass(frozen=True)
class _User:
    id: str


class Interface:
    """The base of the DeerFlow store when DeerFlow's own interface cannot be imported."""


def get_current_user() -> _User | None:
    """The context's user, as DeerFlow's ``get_current_user`` gives it."""
    user_id = current_user_id.get()
    return None if user_id is None else _User(user_id)


def resolve_user_id(value: Any, *, method_name: str = "repository method") -> str | None:
    """DeerFlow's rule: ``AUTO`` from the context (required), a ``str`` as given, or ``None``."""
    if isinstance(value, _Auto):
        user = get_current_user()
        if user is None:
            raise RuntimeError(
                f"{method_name} called with user_id=AUTO but no user context is set; pass an "
                "explicit user_id, set the user in the request context, or pass user_id=None"
            )
        return user.id
    # Anything else goes to the store as given, which refuses what is not an id.
    given: str | None = value
    return given
