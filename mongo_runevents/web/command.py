"""``mongo-runevents serve``: run the viewer with uvicorn.

The command line opens the store (``--uri``, or the embedded SecantusDB) and
calls :func:`serve`. The URL printed is the viewer's own; the MongoDB URI is
never printed or handed to the app. Bound to a loopback address the viewer
needs no token; bound anywhere else it needs one, given with ``--token`` or
generated and printed once, in the URL.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import socket
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TextIO

from ..errors import RunEventStoreError
from .security import is_loopback, token_for

if TYPE_CHECKING:
    import uvicorn

    from .pages import ViewerStore

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
TITLE = "mongo_runevents"
#: How long ``serve`` waits for the store's first answer before it gives up.
STARTUP_CHECK_SECONDS = 15.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``serve``."""
    parser.add_argument(
        "--host",
        default=DEFAULT_HOST,
        help=f"address to listen on (default: {DEFAULT_HOST}); any address that is not "
        "loopback needs a token",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help=f"port to listen on (default: {DEFAULT_PORT}; 0 picks a free one)",
    )
    parser.add_argument(
        "--token",
        default=None,
        help="token every request must carry (default: none on a loopback address, "
        "else a random one, printed once)",
    )


def url_of(host: str, port: int) -> str:
    """The viewer's address, for people."""
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


def _listen(host: str, port: int) -> socket.socket:
    """A listening socket on ``host``:``port`` (IPv6 if the address is one)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host.strip("[]"), port))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


async def serve(
    store: ViewerStore,
    args: argparse.Namespace,
    *,
    prepare: Callable[[Any, TextIO], Awaitable[Any]] | None = None,
    stop: asyncio.Event | None = None,
    out: TextIO | None = None,
) -> int:
    """Serve the viewer over ``store`` until interrupted (or ``stop`` is set); the exit code.

    ``prepare(store, out)`` runs first: the command line uses it on the
    embedded server to write the demo's thread into an empty database, never
    on a database given with ``--uri``.
    """
    out = out or sys.stdout
    try:
        import uvicorn

        from .app import create_app
    except ImportError as exc:
        print(
            f"mongo-runevents serve: error: the viewer needs the web extra "
            f"(pip install 'mongo_runevents[web]'): {exc}",
            file=sys.stderr,
        )
        return 1
    try:
        token, generated = token_for(args.host, args.token)
    except ValueError as exc:
        print(f"mongo-runevents serve: error: --token: {exc}", file=sys.stderr)
        return 2
    _log_to_stderr()
    try:
        await asyncio.wait_for(store.list_threads(limit=1), STARTUP_CHECK_SECONDS)
    except (RunEventStoreError, asyncio.TimeoutError) as exc:
        reason = str(exc) or f"no answer within {STARTUP_CHECK_SECONDS:.0f} s"
        print(
            f"mongo-runevents serve: error: the store could not be read, so the viewer "
            f"did not start: {type(exc).__name__}: {reason}",
            file=sys.stderr,
        )
        return 1
    if prepare is not None:
        await prepare(store, out)
    title = TITLE
    database = getattr(args, "database", None)
    if database and database != TITLE:
        title += f" · {database}"
    app = create_app(store, token=token, title=title)
    try:
        sock = _listen(args.host, args.port)
    except OSError as exc:
        print(
            f"mongo-runevents serve: error: cannot listen on {args.host}:{args.port}: {exc}",
            file=sys.stderr,
        )
        return 1
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,  # an access log would record ?token=... in clear
        lifespan="off",
        server_header=False,
        proxy_headers=False,
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    url = url_of(args.host, port)
    if generated:
        print(f"viewer: {url}?token={token}  (the token is printed only this once)", file=out)
    elif token is not None:
        print(f"viewer: {url}  (open it with ?token=<your --token>)", file=out)
    else:
        print(f"viewer: {url}", file=out)
    if not is_loopback(args.host):
        print("viewer: listening beyond this machine; every request needs the token", file=out)
    out.flush()
    watcher = asyncio.create_task(_stop_on(stop, server)) if stop is not None else None
    try:
        await server.serve(sockets=[sock])
    finally:
        if watcher is not None:
            watcher.cancel()
        sock.close()
    return 0


def _log_to_stderr() -> None:
    """Send the package's warnings (a page whose store read failed) to stderr, as the pages say.

    Only when nothing configured logging for the package or the root: an
    application embedding the viewer keeps its own handlers.
    """
    package = logging.getLogger("mongo_runevents")
    if package.handlers or logging.getLogger().handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    package.addHandler(handler)
    if package.level == logging.NOTSET:
        package.setLevel(logging.WARNING)


async def _stop_on(stop: asyncio.Event, server: uvicorn.Server) -> None:
    await stop.wait()
    server.should_exit = True
