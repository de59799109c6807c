"""The live tail: a thread's new events as server-sent events, fed by ``store.watch``.

One connection sends at most :data:`BATCH` events and then ends; the
browser's ``EventSource`` reconnects by itself with ``Last-Event-ID`` (the seq
of the last event it got), and the tail goes on from there. So no single
answer reads an unbounded part of a thread, however far behind it starts.
Each event is one ``data:`` line of JSON (ASCII, so no raw line break can
split it) with a summary and the link to its page; the page's script puts
them on the page as text, never as HTML.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from typing import Any

from starlette.responses import StreamingResponse

from ..errors import RunEventStoreError
from .render import Links, stream_item

logger = logging.getLogger(__name__)

#: Messages the live page shows before it starts following.
BACKLOG = 20
#: Events one connection sends before it ends and the browser reconnects.
BATCH = 500
#: How long the browser waits before reconnecting, in milliseconds.
RETRY_MS = 1000


def encode(name: str, data: Any, event_id: int | None = None) -> str:
    """One server-sent event."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {name}\ndata: {json.dumps(data, ensure_ascii=True)}\n\n"


async def events(
    watch: Callable[..., Any],
    thread_id: str,
    after_seq: int,
    category: str | None,
    links: Links,
    batch: int = BATCH,
) -> AsyncIterator[str]:
    """The text of the stream: the retry interval, then up to ``batch`` events."""
    yield f"retry: {RETRY_MS}\n\n"
    options: dict[str, Any] = {"after_seq": after_seq, "category": category}
    if links.user is not None:
        options["user_id"] = links.user
    sent = 0
    try:
        async with aclosing(watch(thread_id, **options)) as followed:
            async for record in followed:
                yield encode("event", stream_item(record, links), record["seq"])
                sent += 1
                if sent >= batch:
                    return
    except RunEventStoreError as exc:
        logger.warning("live tail of thread %r stopped: %s", thread_id, exc)
        yield encode("failure", {"message": f"the store failed ({type(exc).__name__})"})


def response(
    watch: Callable[..., Any],
    thread_id: str,
    after_seq: int,
    category: str | None,
    links: Links,
) -> StreamingResponse:
    """The streaming answer of ``/live/events``."""
    return StreamingResponse(
        events(watch, thread_id, after_seq, category, links),
        media_type="text/event-stream",
        headers={"x-accel-buffering": "no"},
    )
