"""The viewer's routes: threads, a conversation, a run's timeline, one event, a live tail.

Every store read a page makes is bounded by a page size, so a page of a huge
thread costs what a page of a small one does. The reads per page:

- threads: one ``list_threads`` (:data:`THREADS_PAGE`);
- a conversation: one ``list_messages`` (:data:`MESSAGES_PAGE`), and for
  each of the newest :data:`RUNS_LISTED` runs on that page one
  ``list_events`` of its lifecycle, error and model-call types
  (:data:`RUN_SUMMARY_LIMIT`), for the run list; a search reads one page of
  :data:`SEARCH_PAGE` messages and nothing else;
- a run: one ``list_events`` page (:data:`EVENTS_PAGE`), one of its
  lifecycle and error events (:data:`OUTCOME_LIMIT`) and ``count_events``;
- an event: one ``get_event`` (its JSON too);
- the live page: ``get_thread`` and one ``read_after`` of its last seqs.

Pages link to the next with the store's own cursors: ``before`` for threads,
``before_seq`` / ``after_seq`` for the conversation, ``after_seq`` for a
timeline. Ids arrive as query parameters (any string, URL-encoded), never as
path segments, so no id can change which route answers.
"""

from __future__ import annotations

import asyncio
import json
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
from ..models import AI_REPLY_TYPES
from . import live, render, timeline
from .security import Guard
from .spans import pair_spans
from .values import EVENT_STRING_LIMIT, pretty

logger = logging.getLogger(__name__)

THREADS_PAGE = 50
MESSAGES_PAGE = 20
EVENTS_PAGE = 500
#: Runs whose outcome a thread page reads (the newest of the runs on the page).
RUNS_LISTED = 10
#: Events read per run for a thread page's run list: lifecycle, errors and model calls.
RUN_SUMMARY_LIMIT = 200
#: Lifecycle and error events the run page reads for the run's status.
OUTCOME_LIMIT = 100
#: Messages one search looks through.
SEARCH_PAGE = 500
#: Strings longer than this are cut even on an event opened in full (the raw JSON has them all).
FULL_STRING_LIMIT = 1024 * 1024
#: Event types a run summary reads.
SUMMARY_TYPES = (*timeline.OUTCOME_TYPES, *AI_REPLY_TYPES, "llm.end")
#: The longest id or cursor a request may name.
MAX_ID_CHARS = 4096
_INT64_MAX = 2**63 - 1
_DIGITS = re.compile(r"[0-9]{1,19}")
_STATIC = {
    "viewer.css": "text/css; charset=utf-8",
    "live.js": "text/javascript; charset=utf-8",
    "event.js": "text/javascript; charset=utf-8",
}


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
        """A thread's messages as a chat, with the outcome of each run on the page; or a search."""
        links = self.links(request)
        thread_id = _required(request, "id")
        before_seq = _seq(request, "before_seq")
        after_seq = _seq(request, "after_seq")
        query = _text(request, "q")
        if query is not None:
            return await self.search(request, links, thread_id, query, before_seq)
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
        run_ids = list(dict.fromkeys(record["run_id"] for record in reversed(records)))
        runs = await self.run_summaries(thread_id, run_ids[:RUNS_LISTED], links.user)
        messages = render.chat_messages(records)
        return self.page(
            request,
            "conversation.html",
            links=links,
            page_title=f"Thread {thread_id}",
            thread_id=thread_id,
            messages=messages,
            ends=render.run_ends(messages, {run.run_id: run.outcome for run in runs}),
            runs=runs,
            runs_left_out=max(0, len(run_ids) - RUNS_LISTED),
            older=older,
            newer=newer,
            latest=before_seq is None and after_seq is None,
            query=None,
            searched=None,
            searched_count=0,
        )

    async def run_summaries(
        self, thread_id: str, run_ids: list[str], user: str | None
    ) -> list[render.RunSummary]:
        """Each run's outcome, duration and tokens: one bounded read of its lifecycle and model events."""

        async def one(run_id: str) -> render.RunSummary:
            records = await self.store.list_events(
                thread_id,
                run_id,
                event_types=SUMMARY_TYPES,
                limit=RUN_SUMMARY_LIMIT,
                user_id=user,
            )
            return render.run_summary(run_id, records, complete=len(records) < RUN_SUMMARY_LIMIT)

        return list(await asyncio.gather(*(one(run_id) for run_id in run_ids)))

    async def search(
        self,
        request: Request,
        links: render.Links,
        thread_id: str,
        query: str,
        before_seq: int | None,
    ) -> Response:
        """The messages of one page of :data:`SEARCH_PAGE` (newest first) whose text holds ``query``."""
        records = await self.store.list_messages(
            thread_id, limit=SEARCH_PAGE, before_seq=before_seq, user_id=links.user
        )
        found = [record for record in records if render.matches(record, query)]
        older = None
        if len(records) == SEARCH_PAGE:
            older = links.search(thread_id, query, before_seq=records[0]["seq"])
        return self.page(
            request,
            "conversation.html",
            links=links,
            page_title=f"Search in {thread_id}",
            thread_id=thread_id,
            messages=render.chat_messages(found),
            ends={},
            runs=[],
            runs_left_out=0,
            older=older,
            newer=None,
            latest=before_seq is None,
            query=query,
            searched=(records[0]["seq"], records[-1]["seq"]) if records else None,
            searched_count=len(records),
        )

    async def run(self, request: Request) -> Response:
        """A run's timeline: outcome first, then the span tree, tokens and every event of a page.

        Three bounded reads: the page of events (:data:`EVENTS_PAGE`), the
        run's lifecycle and error events (:data:`OUTCOME_LIMIT`, for its status
        wherever its end is) and its event count. Filters (``errors``,
        ``category``) narrow the rows of the page read; ``type`` is passed to
        the store, so it pages through that type alone.
        """
        links = self.links(request)
        thread_id = _required(request, "thread")
        run_id = _required(request, "id")
        after_seq = _seq(request, "after_seq")
        filters = render.RunFilters(
            _text(request, "type"),
            _text(request, "category"),
            request.query_params.get("errors") == "1",
        )
        records, lifecycle, total = await asyncio.gather(
            self.store.list_events(
                thread_id,
                run_id,
                event_types=[filters.event_type] if filters.event_type else None,
                limit=EVENTS_PAGE,
                after_seq=after_seq,
                user_id=links.user,
            ),
            self.store.list_events(
                thread_id,
                run_id,
                event_types=timeline.OUTCOME_TYPES,
                limit=OUTCOME_LIMIT,
                user_id=links.user,
            ),
            self.store.count_events(thread_id, run_id=run_id, user_id=links.user),
        )
        outcome = timeline.outcome([*lifecycle, *records])
        spans = pair_spans(records)
        window = timeline.span_window(records, spans)
        rows = render.timeline_rows(records, window[0] if window else None)
        shown = [
            row
            for row in rows
            if (not filters.errors or row.error)
            and (filters.category is None or row.record["category"] == filters.category)
        ]
        more = None
        if len(records) == EVENTS_PAGE:
            more = links.run(thread_id, run_id, after_seq=records[-1]["seq"], filters=filters)
        on_page = {row.record["seq"] for row in shown}
        first_error = end_link = None
        if outcome.first_error_seq is not None:
            first_error = links.run_at(
                thread_id,
                run_id,
                outcome.first_error_seq,
                on_page=outcome.first_error_seq in on_page,
            )
        if outcome.end_seq is not None:
            end_link = links.run_at(
                thread_id, run_id, outcome.end_seq, on_page=outcome.end_seq in on_page
            )
        types = {str(r["event_type"]) for r in records}
        if filters.event_type:
            types.add(filters.event_type)
        return self.page(
            request,
            "timeline.html",
            links=links,
            page_title=f"Run {run_id}",
            thread_id=thread_id,
            run_id=run_id,
            outcome=outcome,
            first_error=first_error,
            end_link=end_link,
            total=total,
            rows=shown,
            read=len(records),
            first_seq=records[0]["seq"] if records else None,
            last_seq=records[-1]["seq"] if records else None,
            bars=timeline.bars(spans, *window) if window else [],
            tokens=timeline.sum_tokens(records),
            errors=sum(1 for row in rows if row.error),
            categories=sorted(Counter(r["category"] for r in records).items()),
            types=sorted(types),
            filters=filters,
            window_ms=(window[1] - window[0]).total_seconds() * 1000 if window else None,
            after_seq=after_seq,
            more=more,
        )

    async def event(self, request: Request) -> Response:
        """One event in full; out-of-line fields are read only with ``full=1``.

        Even in full, strings are cut to :data:`FULL_STRING_LIMIT` characters:
        a browser takes seconds per megabyte of page, and the raw JSON link
        gives the whole record.
        """
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
        limit = FULL_STRING_LIMIT if full else EVENT_STRING_LIMIT
        text = None if "content" in large else render.main_text(record["content"])
        return self.page(
            request,
            "event.html",
            links=links,
            page_title=f"Event {seq} of {thread_id}",
            record=record,
            large=large,
            full=full,
            string_limit=limit,
            text=text if text is None else text[:limit],
            text_cut=text is not None and len(text) > limit,
            content=None if "content" in large else pretty(record["content"], string_limit=limit),
            metadata=None
            if "metadata" in large
            else pretty(record["metadata"], string_limit=limit),
            error=timeline.is_error(record),
            extra={k: v for k, v in record.items() if k not in render.SHOWN_FIELDS},
        )

    async def event_json(self, request: Request) -> Response:
        """One event as JSON, every field in full (``download=1``: as a file)."""
        links = self.links(request)
        thread_id = _required(request, "thread")
        seq = _seq(request, "seq", minimum=1)
        if seq is None:
            raise HTTPException(400, "the seq parameter is missing")
        record = await self.store.get_event(thread_id, seq, user_id=links.user)
        if record is None:
            raise HTTPException(404, f"thread {thread_id!r} has no event {seq} to show")
        body = json.dumps(record, ensure_ascii=False, indent=2, default=str).encode()
        headers = {}
        if request.query_params.get("download") == "1":
            headers["content-disposition"] = f'attachment; filename="event-{seq}.json"'
        return Response(body, media_type="application/json", headers=headers)

    async def live_page(self, request: Request) -> Response:
        """The live tail: the newest events, then events as they are written (server-sent).

        The backlog is the thread's last :data:`live.BACKLOG` events of every
        category (or of the category followed): ``get_thread`` names the last
        seq, and one ``read_after`` reads the few seqs before it.
        """
        links = self.links(request)
        thread_id = _required(request, "thread")
        category = _text(request, "category")
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
        thread_id = _required(request, "thread")
        if not callable(getattr(self.store, "watch", None)):
            raise HTTPException(404, "this store has no watch(): no live tail")
        after_seq = _seq(request, "after_seq") or 0
        cursor_generation = _seq(request, "gen")
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
            self.store, thread_id, after_seq, _text(request, "category"), links, current
        )

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
            Route("/event.json", viewer.event_json, methods=["GET"]),
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
