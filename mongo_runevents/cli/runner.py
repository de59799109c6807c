"""Running a command: the embedded server, the store, error messages and exit codes.

The exit codes are those listed in the package's docstring; usage errors (2)
are argparse's, before anything here runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType

from pymongo.errors import PyMongoError

from ..errors import RunEventStoreError, StoreUnavailableError
from ..mongo import DEFAULT_DATABASE, MongoRunEventStore
from ..mongo.driver_errors import translated
from ..shared_server import SharedServer
from ..uri import mask_uri, redact
from .options import PROG, Command, Context, LocalCommand, client_options


class Terminated(KeyboardInterrupt):
    """SIGTERM (systemd, ``docker stop``), raised where the command is, as Ctrl-C is.

    Python's default for SIGTERM ends the process at once, without running any
    clean-up: the embedded server the command started would be left running.
    Raised as an exception, it unwinds like Ctrl-C (the store is closed, the
    server left or stopped), and the command exits with 143 (128 + SIGTERM).
    """


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated()


@contextlib.contextmanager
def _sigterm_raises() -> Iterator[None]:
    """While the block runs, SIGTERM raises :class:`Terminated` (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _sigterm_ignored() -> Iterator[None]:
    """While the block runs, SIGTERM is ignored (main thread only): clean-up is not cut short."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_command(command: Command | LocalCommand, args: argparse.Namespace) -> int:
    """Run ``command`` with the parsed ``args``; return the exit code."""
    try:
        with _sigterm_raises():
            if isinstance(command, LocalCommand):
                return command.run(args)
            return _run_on_store(command, args)
    except Terminated:
        print(f"{PROG}: terminated", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # Whoever read the output stopped (`... | head`): stop quietly.
        _discard_stdout()
        return 1


def _run_on_store(command: Command, args: argparse.Namespace) -> int:
    """Start the embedded server if no URI is given, then run ``command`` on a store."""
    uri: str | None = args.uri
    server: SharedServer | None = None
    try:
        if uri is None:
            server = SharedServer(args.data_dir)
            try:
                what = server.start()
            except OSError as exc:
                server = None
                return fail(f"could not start the embedded server: {exc}", None)
            description = f"embedded SecantusDB at {args.data_dir} (port {server.port}, {what})"
            uri = server.uri
        else:
            description = mask_uri(uri)
        print(f"{PROG}: using {description}", file=sys.stderr)
        return asyncio.run(_run(command, args, uri, description))
    except RunEventStoreError as exc:
        if server is None:
            return fail(_error_message(exc, hint=True), uri)
        return fail(_error_message(exc, hint=False), None)
    finally:
        if server is not None:
            with _sigterm_ignored():
                server.stop()


async def _run(command: Command, args: argparse.Namespace, uri: str, server: str) -> int:
    options = command.store_options(args)
    async with MongoRunEventStore.from_uri(
        uri,
        database=args.database,
        client_kwargs=client_options(uri, args.timeout),
        **options,
    ) as store:
        # A database named on the command line may be mistyped; the default one may
        # simply be empty yet.
        named = args.database != DEFAULT_DATABASE
        if command.reads_events and named and not await _holds_events(store):
            return fail(await _no_events_message(store), None)
        return await command.run(Context(args=args, store=store, server=server))


async def _holds_events(store: MongoRunEventStore) -> bool:
    """Whether the store's database has its events collection (a read, allowed by ``read``)."""
    events = store.events_collection
    with translated("connecting"):
        names = await events.database.list_collection_names(filter={"name": events.name})
    return bool(names)


async def _no_events_message(store: MongoRunEventStore) -> str:
    """Why a read command stops on a database without events, and the databases there are."""
    events = store.events_collection
    message = (
        f"database {events.database.name!r} has no {events.name!r} collection: "
        "nothing was ever written there; check --database"
    )
    try:
        reply = await events.database.client.admin.command(
            "listDatabases", nameOnly=True, authorizedDatabases=True
        )
        names = [str(entry["name"]) for entry in reply.get("databases", [])]
    except PyMongoError:  # the user may not list databases
        return message
    others = [name for name in names if name not in ("admin", "config", "local")]
    if others:
        message += f" (this server has: {', '.join(sorted(others))})"
    return message


def _error_message(exc: RunEventStoreError, *, hint: bool) -> str:
    """The text of ``exc``, with what to check when the server could not be reached."""
    message = str(exc) or type(exc).__name__
    if hint and isinstance(exc, StoreUnavailableError):
        message += (
            "; check that the server is running and that --uri (or MONGODB_URI) names it: "
            "host, port, replicaSet, TLS; --timeout waits longer"
        )
    return message


def fail(message: str, uri: str | None) -> int:
    """Print ``message`` as one line on stderr, without any password; return exit code 1."""
    one_line = " ".join(redact(message, uri).split())
    print(f"{PROG}: error: {one_line}", file=sys.stderr)
    return 1


def _discard_stdout() -> None:
    """Point stdout at the null device, so that flushing it at exit raises nothing more."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
