"""The log of the commands a client sends (pymongo's command monitoring), written once."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pymongo.monitoring import CommandListener, CommandStartedEvent

#: Commands the driver sends by itself, whatever the store does.
DRIVER_COMMANDS = frozenset({"hello", "isMaster", "ismaster", "endSessions", "ping"})


class CommandLog(CommandListener):
    """Records every command a client starts."""

    def __init__(self) -> None:
        self.sent: list[CommandStartedEvent] = []

    def started(self, event: CommandStartedEvent) -> None:
        """Keep the command."""
        self.sent.append(event)

    def succeeded(self, event: Any) -> None:
        """Ignore replies."""

    def failed(self, event: Any) -> None:
        """Ignore failures."""

    @property
    def names(self) -> list[str]:
        """The names of the commands sent, leaving out the driver's own."""
        return [e.command_name for e in self.sent if e.command_name not in DRIVER_COMMANDS]

    def named(self, *names: str) -> list[dict[str, Any]]:
        """The commands sent with one of ``names``."""
        return [dict(e.command) for e in self.sent if e.command_name in names]

    def clear(self) -> None:
        """Forget what was sent so far."""
        self.sent.clear()


#: Commands that name no thread by their nature: set-up, sessions, transactions,
#: cursors and the tests' own clean-up.
NO_THREAD_COMMANDS = frozenset(
    {
        *DRIVER_COMMANDS,
        "createIndexes",
        "listIndexes",
        "dropIndexes",
        "collMod",
        "getParameter",
        "killSessions",
        "commitTransaction",
        "abortTransaction",
        "getMore",
        "killCursors",
        "listCollections",
        "drop",
        "dropDatabase",
        "configureFailPoint",
    }
)


def _named(value: Any) -> set[str] | None:
    """The thread ids a filter value names: a str, or ``{"$in": [str, ...]}``; else ``None``."""
    if isinstance(value, str):
        return {value}
    if isinstance(value, dict) and set(value) == {"$in"} and value["$in"]:
        items = value["$in"]
        if all(isinstance(item, str) for item in items):
            return set(items)
    return None


def _thread_field(collection: str) -> str | None:
    """Where a collection's documents name their thread (``None``: the settings)."""
    if collection.endswith("_settings"):
        return None
    if collection.endswith("_counters"):
        return "_id"
    if collection.endswith("_blobs.files"):
        return "metadata.thread_id"
    return "thread_id"


def _filters(name: str, command: dict[str, Any]) -> list[dict[str, Any]]:
    """The filters (or inserted documents) of a command, each of which must name its threads."""
    if name == "find":
        return [command.get("filter", {})]
    if name in ("findAndModify", "count"):
        return [command.get("query", {})]
    if name == "insert":
        return [
            {"metadata.thread_id": document.get("metadata", {}).get("thread_id"), **document}
            for document in command.get("documents", [])
        ]
    if name == "update":
        return [statement["q"] for statement in command.get("updates", [])]
    if name == "delete":
        return [statement["q"] for statement in command.get("deletes", [])]
    if name == "aggregate":
        pipeline = command.get("pipeline", [])
        if any("$changeStream" in stage for stage in pipeline):
            # A change stream is opened on every shard whatever it filters on;
            # a store opens one for all its live tails (mongo/changes.py), not
            # one per call.
            return []
        match = pipeline[0].get("$match", {}) if pipeline else {}
        return [match]
    return [{}]


def untargeted(log: CommandLog) -> list[str]:
    """The commands of ``log`` that name no specific thread (see :func:`untargeted_commands`)."""
    return untargeted_commands((event.command_name, dict(event.command)) for event in log.sent)


def untargeted_commands(commands: Iterable[tuple[str, dict[str, Any]]]) -> list[str]:
    """The ``(name, command)`` pairs that name no specific thread, described.

    On a cluster sharded by thread such a command goes to every shard. A
    command naming several threads (a batch that mixes them) is fine.
    """
    found = []
    for name, command in commands:
        if name in NO_THREAD_COMMANDS:
            continue
        field = _thread_field(str(command.get(name, "")))
        if field is None:
            continue
        for condition in _filters(name, command):
            if _named(condition.get(field)) is None:
                found.append(f"{name} on {command.get(name)}: {condition!r:.200}")
    return found
