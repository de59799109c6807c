"""What every command shares: global options, argument types and the parser.

The parser is built from a table of commands (:func:`make_parser`): each
:class:`Command` (run on a store, through a :class:`Context`) or
:class:`LocalCommand` (run without one) names its help text, a function adding
its own options and the function running it. The table itself,
``mongo_runevents.cli.COMMANDS``, lists the functions of the command modules.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .._version import __version__
from ..mongo import DEFAULT_DATABASE, MongoRunEventStore

PROG = "mongo-runevents"
DEFAULT_DATA_DIR = "./.mongo-runevents-data"
#: How long a command waits for a server before it gives up (``--timeout``).
DEFAULT_TIMEOUT_SECONDS = 5.0

#: The client options ``--timeout`` sets.
_TIMEOUT_OPTIONS = ("serverSelectionTimeoutMS", "connectTimeoutMS")


def client_options(uri: str, timeout: float | None) -> dict[str, Any]:
    """The ``client_kwargs`` of the command's store: its time-outs, in milliseconds.

    ``--timeout`` sets both; without it, the default applies to each the URI
    does not set itself.
    """
    given = uri.lower()
    milliseconds = int((DEFAULT_TIMEOUT_SECONDS if timeout is None else timeout) * 1000)
    return {
        name: milliseconds
        for name in _TIMEOUT_OPTIONS
        if timeout is not None or f"{name.lower()}=" not in given
    }


# --- the commands --------------------------------------------------------------


@dataclass(frozen=True)
class Context:
    """What a command runs with: the parsed arguments, the store and a description of the server."""

    args: argparse.Namespace
    store: MongoRunEventStore
    server: str


def _no_store_options(args: argparse.Namespace) -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class Command:
    """One subcommand working on a store: its name, help text, options and the function running it.

    ``store_options`` turns the arguments into keyword arguments of the
    store's constructor (``init --retention`` uses it). A command that
    ``reads_events`` fails when a ``--database`` other than the default holds
    no events collection (a mistyped name is then an error, not an empty store).
    """

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[Context], Awaitable[int]]
    store_options: Callable[[argparse.Namespace], dict[str, Any]] = _no_store_options
    reads_events: bool = False


@dataclass(frozen=True)
class LocalCommand:
    """A subcommand that needs no store: no server is started or contacted for it."""

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


# --- argument types ------------------------------------------------------------


def positive_int(text: str) -> int:
    """An argparse type: an integer of at least 1."""
    value = _integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    """An argparse type: an integer of at least 0 (a seq cursor)."""
    value = _integer(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {value}")
    return value


def _integer(text: str) -> int:
    """An integer that fits in 64 bits, as every seq and limit must."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if not -(2**63) <= value < 2**63:
        raise argparse.ArgumentTypeError(f"{text} does not fit in 64 bits")
    return value


def non_empty(text: str) -> str:
    """An argparse type: a non-empty string of valid Unicode (an id, a category, an event type)."""
    if not text:
        raise argparse.ArgumentTypeError("must not be empty")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # Bytes that are not UTF-8 in argv arrive as lone surrogates.
        raise argparse.ArgumentTypeError(f"{text!r} is not valid UTF-8") from None
    return text


#: The most days ``--retention`` accepts (100 years, the store's own limit).
MAX_RETENTION_DAYS = 36_525


def retention_item(text: str) -> tuple[str, int]:
    """An argparse type: ``CATEGORY=DAYS``, a category and a whole number of days from 1 to 36525."""
    category, equals, days = text.partition("=")
    if not equals or not category:
        raise argparse.ArgumentTypeError(f"expected CATEGORY=DAYS (e.g. trace=30), got {text!r}")
    count = positive_int(days)
    if count > MAX_RETENTION_DAYS:
        raise argparse.ArgumentTypeError(
            f"at most {MAX_RETENTION_DAYS} days (100 years), got {count}"
        )
    return non_empty(category), count


def positive_seconds(text: str) -> float:
    """An argparse type: a positive, finite number of seconds."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not (0 < value < 86_400):
        raise argparse.ArgumentTypeError(
            f"must be more than 0 and less than 86400 seconds, got {text}"
        )
    return value


#: Characters MongoDB refuses in a database name (and NUL).
_DATABASE_NAME_REFUSED = frozenset('/\\. "$*<>:|?\x00')
#: The longest database name MongoDB takes, in bytes.
_DATABASE_NAME_MAX_BYTES = 63


def database_name(text: str) -> str:
    """An argparse type: a name MongoDB accepts for a database."""
    if not text:
        raise argparse.ArgumentTypeError("must not be empty")
    refused = sorted({char for char in text if char in _DATABASE_NAME_REFUSED})
    if refused:
        shown = " ".join(repr(char) for char in refused)
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a MongoDB database name: it holds {shown}"
        )
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise argparse.ArgumentTypeError(f"{text!r} is not valid UTF-8") from None
    if size > _DATABASE_NAME_MAX_BYTES:
        raise argparse.ArgumentTypeError(
            f"is {size} bytes long; MongoDB takes at most {_DATABASE_NAME_MAX_BYTES}"
        )
    return text


def add_thread_argument(parser: argparse.ArgumentParser) -> None:
    """Add the positional ``THREAD`` argument: a thread id."""
    parser.add_argument("thread", type=non_empty, metavar="THREAD", help="thread id")


def add_user_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--user``: only that user's events (the stores' ``user_id``)."""
    parser.add_argument(
        "--user",
        type=non_empty,
        metavar="USER",
        help="only the events of this user (their user_id); others are not seen",
    )


def add_thread_and_user_arguments(parser: argparse.ArgumentParser) -> None:
    """``THREAD`` and ``--user``: what ``count`` takes."""
    add_thread_argument(parser)
    add_user_argument(parser)


# --- the parser ----------------------------------------------------------------


def _add_global_options(parser: argparse.ArgumentParser, *, in_subcommand: bool) -> None:
    """Add the options every command shares.

    They are accepted before and after the command name. In a subcommand's
    parser their default is ``SUPPRESS``, so that a value given before the
    command name is not overwritten by the subcommand's default.
    """

    def default(value: Any) -> Any:
        return argparse.SUPPRESS if in_subcommand else value

    group = parser.add_argument_group("server and output options")
    group.add_argument(
        "--uri",
        default=default(os.environ.get("MONGODB_URI") or None),
        help="MongoDB connection string (default: $MONGODB_URI; without either, "
        "an embedded SecantusDB server is started in --data-dir)",
    )
    group.add_argument(
        "--database",
        type=database_name,
        default=default(DEFAULT_DATABASE),
        help=f"database holding the events (default: {DEFAULT_DATABASE})",
    )
    group.add_argument(
        "--data-dir",
        default=default(DEFAULT_DATA_DIR),
        help=f"data folder of the embedded server, used when no URI is given "
        f"(default: {DEFAULT_DATA_DIR})",
    )
    group.add_argument(
        "--timeout",
        type=positive_seconds,
        default=default(None),
        metavar="SECONDS",
        help=f"give up on a server that does not answer within SECONDS "
        f"(default: {DEFAULT_TIMEOUT_SECONDS:g}, unless the URI sets serverSelectionTimeoutMS "
        "or connectTimeoutMS)",
    )
    group.add_argument(
        "--json",
        action="store_true",
        default=default(False),
        help="print machine-readable JSON instead of text "
        "(one object; one record per line for tail)",
    )


def make_parser(commands: Sequence[Command | LocalCommand]) -> argparse.ArgumentParser:
    """The argument parser: global options and one subparser per entry of ``commands``."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Store and inspect the event streams of AI-agent runs in MongoDB.",
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {__version__}", help="show the version"
    )
    _add_global_options(parser, in_subcommand=False)
    subparsers = parser.add_subparsers(
        title="commands", dest="command", metavar="COMMAND", required=True
    )
    for command in commands:
        subparser = subparsers.add_parser(command.name, help=command.help, description=command.help)
        command.add_arguments(subparser)
        _add_global_options(subparser, in_subcommand=True)
        subparser.set_defaults(command_spec=command)
    return parser
