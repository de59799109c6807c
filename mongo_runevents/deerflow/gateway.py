"""DeerFlow's gateway with the ``mongodb`` run-events backend installed.

Serve it in place of DeerFlow's own app, from DeerFlow's ``backend`` folder::

    uvicorn mongo_runevents.deerflow.gateway:app --host 0.0.0.0 --port 8001

It calls :func:`~mongo_runevents.deerflow.install` and then imports DeerFlow's
``app.gateway.app:app`` unchanged.
"""

from __future__ import annotations

from .install import install

install()

from app.gateway.app import app  # noqa: E402  (DeerFlow's own app, after the install)

__all__ = ["app"]
