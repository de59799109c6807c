"""The log of the commands a client sends (pymongo's command monitoring), written once."""

from __future__ import annotations

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
