"""TEMP (viewer branch): the cursor of ``list_threads`` until main has its own."""

from __future__ import annotations

import base64
import json
from typing import Any

from .errors import InvalidEventError


def encode_cursor(updated_at: str, thread_id: str) -> str:
    """An opaque cursor naming a row of ``list_threads``."""
    return base64.urlsafe_b64encode(json.dumps([updated_at, thread_id]).encode()).decode()


def decode_cursor(cursor: str) -> tuple[str, str]:
    """The (updated_at, thread_id) a cursor names."""
    try:
        updated_at, thread_id = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, TypeError) as exc:
        raise InvalidEventError("not a cursor of list_threads", field="before") from exc
    if not isinstance(updated_at, str) or not isinstance(thread_id, str):
        raise InvalidEventError("not a cursor of list_threads", field="before")
    return updated_at, thread_id


def thread_row(thread_id: str, last_seq: int, updated_at: str) -> dict[str, Any]:
    """One row of ``list_threads``."""
    return {
        "thread_id": thread_id,
        "last_seq": last_seq,
        "updated_at": updated_at,
        "cursor": encode_cursor(updated_at, thread_id),
    }
