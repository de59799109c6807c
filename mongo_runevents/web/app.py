"""The viewer's routes: threads, a conversation, a run's timeline, one event, a live tail.

Every store read a page makes is bounded by a page size, so a page of a huge
thread costs what a page of a small one does. The pages, by kind, and what
each reads:

- threads, a conversation, a search: :mod:`.thread_pages`;
- a run's timeline, an event, its raw JSON: :mod:`.run_pages`;
- the live tail and its event stream: :mod:`.live_pages`.

Pages link to the next with the store's own cursors: ``before`` for threads,
``before_seq`` / ``after_seq`` for the conversation, ``after_seq`` for a
timeline. Ids arrive as query parameters (any string, URL-encoded, checked by
:mod:`.params`), never as path segments, so no id can change which route answers.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from importlib import resources

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..errors import InvalidEventError, RunEventStoreError
from . import render
from .live_pages import LivePages
from .pages import Pages, ViewerStore
from .run_pages import RunPages
from .security import Guard
from .thread_pages import ThreadPages

logger = logging.getLogger(__name__)

_STATIC = {
    "viewer.css": "text/css; charset=utf-8",
    "live.js": "text/javascript; charset=utf-8",
    "event.js": "text/javascript; charset=utf-8",
}


class Viewer(Pages):
    """Every page over one store, with one template environment; and the static files, the error page."""

    def __init__(self, store: ViewerStore, title: str) -> None:
        super().__init__(store, title, render.environment())
        self.thread_pages = ThreadPages(store, title, self.env)
        self.run_pages = RunPages(store, title, self.env)
        self.live_pages = LivePages(store, title, self.env)
        folder = resources.files("mongo_runevents.web") / "static"
        self.static = {name: (folder / name).read_bytes() for name in _STATIC}

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
            Route("/", viewer.thread_pages.threads, methods=["GET"]),
            Route("/thread", viewer.thread_pages.conversation, methods=["GET"]),
            Route("/run", viewer.run_pages.run, methods=["GET"]),
            Route("/event", viewer.run_pages.event, methods=["GET"]),
            Route("/event.json", viewer.run_pages.event_json, methods=["GET"]),
            Route("/live", viewer.live_pages.live_page, methods=["GET"]),
            Route("/live/events", viewer.live_pages.live_events, methods=["GET"]),
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
