"""The request user as DeerFlow keeps it: a context variable, and the AUTO sentinel's rules."""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

_current_user: ContextVar[Any] = ContextVar("stub_current_user", default=None)


class _AutoSentinel:
    def __repr__(self) -> str:
        return "<AUTO>"


AUTO = _AutoSentinel()


def set_current_user(user: Any) -> Any:
    return _current_user.set(user)


def reset_current_user(token: Any) -> None:
    _current_user.reset(token)


def get_current_user() -> Any:
    return _current_user.get()


def resolve_user_id(value: Any, *, method_name: str = "repository method") -> str | None:
    if isinstance(value, _AutoSentinel):
        user = _current_user.get()
        if user is None:
            raise RuntimeError(f"{method_name} called with user_id=AUTO but no user context is set")
        return str(user.id)
    return value
