"""A read-only web viewer of a store: threads, conversations, run timelines, events, live tails.

Needs the ``web`` extra (``pip install 'mongo_runevents[web]'``: Starlette,
Jinja2, uvicorn). :func:`create_app` makes the ASGI app over any store;
``mongo-runevents serve`` runs it (:mod:`.command`). See docs/viewer.md.
"""

from .app import ViewerStore, create_app

__all__ = ["ViewerStore", "create_app"]
