"""What every page of the viewer shares: the store it reads, its title, its templates, its links."""

from __future__ import annotations

from typing import Any

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from ..base import RunEventStore
from . import params, render

#: The viewer reads through the store interface (``RunEventStore``), nothing else.
ViewerStore = RunEventStore


class Pages:
    """The base of the viewer's page handlers: one store, one title, one template environment."""

    def __init__(self, store: ViewerStore, title: str, env: jinja2.Environment) -> None:
        self.store = store
        self.title = title
        self.env = env

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
        return render.Links(request.scope.get("root_path", ""), params.text(request, "user"))
