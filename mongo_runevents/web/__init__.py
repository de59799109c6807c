"""A read-only web viewer of a store: threads, conversations, run timelines, events, live tails.

Needs the ``web`` extra (``pip install 'mongo_runevents[web]'``: Starlette,
Jinja2, uvicorn). :func:`create_app` makes the ASGI app over any store;
``mongo-runevents serve`` runs it (:mod:`.command`, importable without the
extra so that the command line can list its options). See docs/viewer.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import create_app
    from .pages import ViewerStore

__all__ = ["ViewerStore", "create_app"]


def __getattr__(name: str) -> Any:
    # The app is imported on first use, so that importing .command needs no extra.
    if name == "create_app":
        from .app import create_app

        return create_app
    if name == "ViewerStore":
        from .pages import ViewerStore

        return ViewerStore
    raise AttributeError(name)
