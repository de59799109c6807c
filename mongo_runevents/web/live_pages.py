"""The live tail's pages: the page with the newest events, and its stream of server-sent events.

The page reads ``get_thread`` and one ``read_after`` of the thread's last
seqs; the stream is :func:`.live.response`, fed by ``store.watch``.
"""

from __future__ import annotations

import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from . import live, params, render
from .pages import Pages

logger = logging.getLogger(__name__)


class LivePages(Pages):
    """``/live`` (the page) and ``/live/events`` (its event stream)."""

    async def live_page(self, request: Request) -> Response:
        """The live tail: the newest events, then events as they are written (server-sent).

        The backlog is the thread's last :data:`live.BACKLOG` events of every
        category (or of the category followed): ``get_thread`` names the last
        seq, and one ``read_after`` reads the few seqs before it.
        """
        links = self.links(request)
        thread_id = params.required(request, "thread")
        category = params.text(request, "category")
        info = await self.store.get_thread(thread_id)
        last_seq = int(info["last_seq"]) if info else 0
        generation = int(info.get("generation", 0)) if info else 0
        window = live.BACKLOG if category is None else live.BACKLOG_SCAN
        records = await self.store.read_after(
            thread_id,
            max(0, last_seq - window),
            category=category,
            user_id=links.user,
            limit=window,
        )
        records = records[-live.BACKLOG :]
        return self.page(
            request,
            "live.html",
            links=links,
            page_title=f"Live: {thread_id}",
            thread_id=thread_id,
            backlog=[render.stream_item(record, links) for record in records],
            stream=links.stream(
                thread_id,
                max(last_seq, records[-1]["seq"] if records else 0),
                category=category,
                generation=generation,
            ),
            category=category,
            supported=callable(getattr(self.store, "watch", None)),
        )

    async def live_events(self, request: Request) -> Response:
        """The server-sent events of the live tail, fed by ``store.watch``.

        The cursor is ``after_seq`` (and the generation ``gen`` it was read
        in), or the ``Last-Event-ID`` a reconnecting browser sends
        (``<generation>-<seq>``). A cursor from another generation of the
        thread (it was reset since) starts again from seq 1.
        """
        links = self.links(request)
        thread_id = params.required(request, "thread")
        if not callable(getattr(self.store, "watch", None)):
            raise HTTPException(404, "this store has no watch(): no live tail")
        after_seq = params.seq(request, "after_seq") or 0
        cursor_generation = params.seq(request, "gen")
        resumed = live.parse_event_id(request.headers.get("last-event-id", ""))
        if resumed is not None:  # EventSource reconnecting after the last event it got
            cursor_generation, after_seq = resumed
        current = await live.generation_of(self.store, thread_id)
        if cursor_generation is not None and current is not None and cursor_generation != current:
            logger.info(
                "live tail of thread %r: reset since generation %d; following from seq 1",
                thread_id,
                cursor_generation,
            )
            after_seq = 0
        return live.response(
            self.store, thread_id, after_seq, params.text(request, "category"), links, current
        )
