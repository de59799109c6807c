"""The live tail: a thread's new events as server-sent events, fed by ``store.watch``.

One connection sends at most :data:`BATCH` events and then ends; the
browser's ``EventSource`` reconnects by itself with ``Last-Event-ID``, and the
tail goes on from there. So no single answer reads an unbounded part of a
thread, however far behind it starts. An event's id is ``<generation>-<seq>``:
the thread's generation (``get_thread``, it changes when the thread is reset
by ``delete_by_thread``) and the seq. A browser that reconnects after a reset
names a generation that is no longer the thread's, and the tail starts again
from seq 1 of the new thread instead of waiting for seqs past the old one.
Each event is one ``data:`` line of JSON (ASCII, so no raw line break can
split it) with a summary and the link to its page; the page's script puts
them on the page as text, never as HTML.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

from starlette.responses import StreamingResponse

from ..errors import RunEventStoreError
from .render import Links, stream_item

logger = logging.getLogger(__name__)

#: Events the live page shows before it starts following (the last seqs of the thread).
BACKLOG = 30
#: Seqs the live page looks back through for the backlog of one category.
BACKLOG_SCAN = 300
#: Events one connection sends before it ends and the browser reconnects.
BATCH = 500
#: How long the browser waits before reconnecting, in milliseconds.
RETRY_MS = 1000
INT64_MAX = 2**63 - 1


def encode(name: str, data: Any, event_id: str | None = None) -> str:
    """One server-sent event."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {name}\ndata: {json.dumps(data, ensure_ascii=True)}\n\n"


def parse_event_id(text: str) -> tuple[int | None, int] | None:
    """``(generation, seq)`` of a ``Last-Event-ID`` (``gen-seq``, or a bare seq: generation unknown)."""
    head, dash, tail = text.partition("-")
    parts = (head, tail) if dash else ("", head)
    if not all(
        part == "" or (part.isascii() and part.isdigit() and len(part) <= 19) for part in parts
    ):
        return None
    if parts[1] == "" or (dash and parts[0] == ""):
        return None
    generation = int(parts[0]) if parts[0] else None
    seq = int(parts[1])
    if seq > INT64_MAX or (generation is not None and generation > INT64_MAX):
        return None
    return generation, seq


async def generation_of(store: Any, thread_id: str) -> int | None:
    """The thread's generation, or ``None`` if the store cannot tell."""
    get_thread = getattr(store, "get_thread", None)
    if not callable(get_thread):
        return None
    info = await get_thread(thread_id)
    return 0 if info is None else int(info.get("generation", 0))


async def events(
    store: Any,
    thread_id: str,
    after_seq: int,
    category: str | None,
    links: Links,
    batch: int = BATCH,
    generation: int | None = None,
) -> AsyncIterator[str]:
    """The text of the stream: the retry interval, then up to ``batch`` events.

    ``generation`` is the thread's generation when ``after_seq`` was read; an
    event's id carries the generation it belongs to (a reset met while
    following makes the seqs start again, and the generation is read anew).
    """
    yield f"retry: {RETRY_MS}\n\n"
    options: dict[str, Any] = {"after_seq": after_seq, "category": category}
    if links.user is not None:
        options["user_id"] = links.user
    sent = 0
    last_seq = after_seq
    try:
        async with aclosing(store.watch(thread_id, **options)) as followed:
            async for record in followed:
                if record["seq"] <= last_seq or generation is None:
                    generation = await generation_of(store, thread_id)
                last_seq = record["seq"]
                event_id = f"{generation}-{last_seq}" if generation is not None else str(last_seq)
                yield encode("event", stream_item(record, links), event_id)
                sent += 1
                if sent >= batch:
                    return
    except RunEventStoreError as exc:
        logger.warning("live tail of thread %r stopped: %s", thread_id, exc)
        yield encode("failure", {"message": f"the store failed ({type(exc).__name__})"})


def response(
    store: Any,
    thread_id: str,
    after_seq: int,
    category: str | None,
    links: Links,
    generation: int | None,
) -> StreamingResponse:
    """The streaming answer of ``/live/events``."""
    return StreamingResponse(
        events(store, thread_id, after_seq, category, links, generation=generation),
        media_type="text/event-stream",
        headers={"x-accel-buffering": "no"},
    )
