"""The viewer's routes: threads, a conversation, a run's timeline, one event, a live tail.

Each page answers with at most one store call, and that call reads at most
one page (:data:`THREADS_PAGE` threads, :data:`MESSAGES_PAGE` messages,
:data:`EVENTS_PAGE` events, or one event), so a page of a huge thread costs
what a page of a small one does. Pages link to the next with the store's own
cursors: ``before`` for threads, ``before_seq`` / ``after_seq`` for the
conversation, ``after_seq`` for a timeline. Ids arrive as query parameters
(any string, URL-encoded), never as path segments, so no id can change which
route answers.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from ..base import RunEventStore
from ..errors import InvalidEventError, RunEventStoreError
from . import live, render, timeline
from .security import Guard
from .values import EVENT_STRING_LIMIT, pretty

logger = logging.getLogger(__name__)

THREADS_PAGE = 50
MESSAGES_PAGE = 20
EVENTS_PAGE = 500
#: The longest id or cursor a request may name.
MAX_ID_CHARS = 4096
_INT64_MAX = 2**63 - 1
_DIGITS = re.compile(r"[0-9]{1,19}")
_STATIC = {"viewer.css": "text/css; charset=utf-8", "live.js": "text/javascript; charset=utf-8"}


#: The viewer reads through the store interface (``RunEventStore``), nothing else.
ViewerStore = RunEventStore


def _text(request: Request, name: str, *, required: bool = False) -> str | None:
    value = request.query_params.get(name)
    if value is None or value == "":
        if required:
            raise HTTPException(400, f"the {name} parameter is missing")
        return None
    if len(value) > MAX_ID_CHARS:
        raise HTTPException(400, f"the {name} parameter is longer than {MAX_ID_CHARS} characters")
    return value


def _required(request: Request, name: str) -> str:
    value = _text(request, name, required=True)
    assert value is not None
    return value


def _seq(request: Request, name: str, *, minimum: int = 0) -> int | None:
    text = _text(request, name)
    if text is None:
        return None
    if _DIGITS.fullmatch(text) is None or not minimum <= int(text) <= _INT64_MAX:
        raise HTTPException(400, f"{name} must be a whole number from {minimum} to 2**63-1")
    return int(text)


class Viewer:
    """The pages, over one store."""

    def __init__(self, store: ViewerStore, title: str) -> None:
        self.store = store
        self.title = title
        self.env = render.environment()
        folder = resources.files("mongo_runevents.web") / "static"
        self.static = {name: (folder / name).read_bytes() for name in _STATIC}

    def page(self, request: Request, template: str, status: int = 200, **context: Any) -> Response:
        """A rendered template; every page gets the title, the links and the user filter."""
        links: render.Links = context.pop("links", None) or self.links(request)
        html = self.env.get_template(template).render(
            title=self.title, links=links, user=links.user, **context
        )
        return HTMLResponse(html, status_code=status)

    @staticmethod
    def links(request: Request) -> render.Links:
        """The link builder of a request: its root path and user filter."""
        return render.Links(request.scope.get("root_path", ""), _text(request, "user"))

    async def threads(self, request: Request) -> Response:
        """Threads, newest activity first, a page at a time."""
        links = self.links(request)
        before = _text(request, "before")
        rows = await self.store.list_threads(limit=THREADS_PAGE, before=before, user_id=links.user)
        older = links.threads(rows[-1]["cursor"]) if len(rows) == THREADS_PAGE else None
        return self.page(
            request,
            "threads.html",
            links=links,
            page_title="Threads",
            rows=rows,
            older=older,
            paged=before is not None,
        )

    async def conversation(self, request: Request) -> Response:
        """A thread's messages as a chat: the newest page, or one before / after a seq."""
        links = self.links(request)
        thread_id = _required(request, "id")
        before_seq = _seq(request, "before_seq")
        after_seq = _seq(request, "after_seq")
        records = await self.store.list_messages(
            thread_id,
            limit=MESSAGES_PAGE,
            before_seq=before_seq,
            after_seq=after_seq,
            user_id=links.user,
        )
        full = len(records) == MESSAGES_PAGE
        older = newer = None
        if records and (full or after_seq is not None):
            older = links.thread(thread_id, before_seq=records[0]["seq"])
        if records and (before_seq is not None or (after_seq is not None and full)):
            newer = links.thread(thread_id, after_seq=records[-1]["seq"])
        runs = list(dict.fromkeys(record["run_id"] for record in records))
        return self.page(
            request,
            "conversation.html",
            links=links,
            page_title=f"Thread {thread_id}",
            thread_id=thread_id,
            messages=[render.chat_message(record) for record in records],
            runs=runs,
            older=older,
            newer=newer,
            latest=before_seq is None and after_seq is None,
        )

    async def run(self, request: Request) -> Response:
        """A run's timeline: every category in seq order, spans as bars, tokens, errors."""
        links = self.links(request)
        thread_id = _required(request, "thread")
        run_id = _required(request, "id")
        after_seq = _seq(request, "after_seq")
        records = await self.store.list_events(
            thread_id, run_id, limit=EVENTS_PAGE, after_seq=after_seq, user_id=links.user
        )
        window = timeline.time_window(records)
        spans = timeline.pair_spans(records)
        bars = timeline.bars(spans, *window) if window else []
        rows = render.timeline_rows(records, window[0] if window else None)
        more = None
        if len(records) == EVENTS_PAGE:
            more = links.run(thread_id, run_id, after_seq=records[-1]["seq"])
        return self.page(
            request,
            "timeline.html",
            links=links,
            page_title=f"Run {run_id}",
            thread_id=thread_id,
            run_id=run_id,
            rows=rows,
            bars=bars,
            tokens=timeline.sum_tokens(records),
            errors=sum(1 for row in rows if row.error),
            categories=sorted(Counter(r["category"] for r in records).items()),
            window_ms=(window[1] - window[0]).total_seconds() * 1000 if window else None,
            after_seq=after_seq,
            more=more,
        )

    async def event(self, request: Request) -> Response:
        """One event in full; out-of-line fields are read only with ``full=1``."""
        links = self.links(request)
        thread_id = _required(request, "thread")
        seq = _seq(request, "seq", minimum=1)
        if seq is None:
            raise HTTPException(400, "the seq parameter is missing")
        full = request.query_params.get("full") == "1"
        record = await self.store.get_event(
            thread_id, seq, user_id=links.user, load_large_fields=full
        )
        if record is None:
            raise HTTPException(404, f"thread {thread_id!r} has no event {seq} to show")
        large: dict[str, int] = record.pop("large_fields", None) or {}
        limit = None if full else EVENT_STRING_LIMIT
        text = None if "content" in large else render.main_text(record["content"])
        return self.page(
            request,
            "event.html",
            links=links,
            page_title=f"Event {seq} of {thread_id}",
            record=record,
            large=large,
            full=full,
            string_limit=EVENT_STRING_LIMIT,
            text=text if full or text is None else text[:EVENT_STRING_LIMIT],
            text_cut=text is not None and not full and len(text) > EVENT_STRING_LIMIT,
            content=None if "content" in large else pretty(record["content"], string_limit=limit),
            metadata=None
            if "metadata" in large
            else pretty(record["metadata"], string_limit=limit),
            error=timeline.is_error(record),
            extra={k: v for k, v in record.items() if k not in render.SHOWN_FIELDS},
        )

    async def live_page(self, request: Request) -> Response:
        """The live tail: the newest messages, then events as they are written (server-sent)."""
        links = self.links(request)
        thread_id = _required(request, "thread")
        category = _text(request, "category")
        records = await self.store.list_messages(thread_id, limit=live.BACKLOG, user_id=links.user)
        after_seq = records[-1]["seq"] if records else 0
        return self.page(
            request,
            "live.html",
            links=links,
            page_title=f"Live: {thread_id}",
            thread_id=thread_id,
            backlog=[render.stream_item(record, links) for record in records],
            stream=links.stream(thread_id, after_seq, category=category),
            category=category,
            supported=callable(getattr(self.store, "watch", None)),
        )

    async def live_events(self, request: Request) -> Response:
        """The server-sent events of the live tail, fed by ``store.watch``."""
        links = self.links(request)
        thread_id = _required(request, "thread")
        after_seq = _seq(request, "after_seq") or 0
        resumed = request.headers.get("last-event-id", "")
        if _DIGITS.fullmatch(resumed) and int(resumed) <= _INT64_MAX:
            after_seq = int(resumed)  # EventSource reconnecting after the last event it got
        watch = getattr(self.store, "watch", None)
        if not callable(watch):
            raise HTTPException(404, "this store has no watch(): no live tail")
        return live.response(watch, thread_id, after_seq, _text(request, "category"), links)

    async def no_icon(self, request: Request) -> Response:
        """Browsers ask for an icon; there is none."""
        return Response(status_code=204)

    async def static_file(self, request: Request) -> Response:
        """The viewer's style sheet and the live tail's script."""
        name = request.path_params["name"]
        if name not in self.static:
            raise HTTPException(404, "no such file")
        return Response(self.static[name], media_type=_STATIC[name])

    async def failed(self, request: Request, exc: Exception) -> Response:
        """An error page; a store failure is described by its kind only (details go to the log)."""
        if isinstance(exc, HTTPException):
            status, message = exc.status_code, exc.detail
        elif isinstance(exc, InvalidEventError):
            status, message = 400, str(exc)
        else:
            logger.warning("a page could not be read: %s: %s", type(exc).__name__, exc)
            status = 503
            message = f"the store could not be read ({type(exc).__name__}); see the server's log"
        return self.page(request, "error.html", status, page_title="Error", message=message)


def create_app(
    store: ViewerStore,
    *,
    token: str | None = None,
    title: str = "mongo_runevents",
    allowed_hosts: list[str] | None = None,
) -> Guard:
    """The viewer as an ASGI app over ``store``; read-only.

    With ``token``, every page needs it (see :mod:`.security`); without, only
    requests to a loopback host name (or to ``allowed_hosts``) are answered.
    """
    viewer = Viewer(store, title)
    handler: Callable[[Request, Exception], Awaitable[Response]] = viewer.failed
    app = Starlette(
        routes=[
            Route("/", viewer.threads, methods=["GET"]),
            Route("/thread", viewer.conversation, methods=["GET"]),
            Route("/run", viewer.run, methods=["GET"]),
            Route("/event", viewer.event, methods=["GET"]),
            Route("/live", viewer.live_page, methods=["GET"]),
            Route("/live/events", viewer.live_events, methods=["GET"]),
            Route("/static/{name}", viewer.static_file, methods=["GET"]),
            Route("/favicon.ico", viewer.no_icon, methods=["GET"]),
        ],
        exception_handlers={
            HTTPException: handler,
            InvalidEventError: handler,
            RunEventStoreError: handler,
        },
    )
    return Guard(app, token=token, allowed_hosts=allowed_hosts)
