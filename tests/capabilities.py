"""What the deployment a test runs on offers, detected from the deployment itself.

The one source of ``@pytest.mark.requires(...)``: a test names what it needs
(``"transactions"``, ``"change_streams"``, ``"fail_points"``, ``"sharded"``,
``"not sharded"``, ...) and runs only where the deployment has it. A server's
capabilities are read from it once per session (:func:`detect`: its ``hello``
says replica set, ``mongos`` or standalone; a harmless ``configureFailPoint
... off`` says whether fail points are enabled), so the suite skips the right
tests on any ``MONGODB_URI``. The stores that run in process (the Memory
store, mongomock) have the fixed capabilities below.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from pymongo import MongoClient
from pymongo.errors import OperationFailure

Topology = Literal["replica_set", "sharded", "standalone", "in_process"]


@dataclass(frozen=True)
class Capabilities:
    """What a deployment offers a store."""

    topology: Topology
    #: Multi-document transactions: batches atomic, no seq gap, commits in seq order.
    transactions: bool
    #: Change streams (what the MongoDB store's live tails listen to).
    change_streams: bool
    #: ``configureFailPoint`` (mongod's test commands) for fault injection.
    fail_points: bool

    @property
    def server(self) -> bool:
        """A MongoDB wire-protocol server (not a store in process)."""
        return self.topology != "in_process"

    @property
    def sharded(self) -> bool:
        """A sharded cluster, reached through ``mongos``."""
        return self.topology == "sharded"

    @property
    def replica_set(self) -> bool:
        """A replica set member."""
        return self.topology == "replica_set"

    @property
    def standalone(self) -> bool:
        """A standalone server."""
        return self.topology == "standalone"

    def has(self, requirement: str) -> bool:
        """Whether the deployment meets ``requirement``: a capability, or ``"not <capability>"``."""
        negated = requirement.startswith("not ")
        name = requirement.removeprefix("not ")
        if name not in _NAMES:
            raise ValueError(f"unknown capability {name!r} (one of {', '.join(sorted(_NAMES))})")
        return bool(getattr(self, name)) != negated

    def missing(self, requirements: Iterable[str]) -> list[str]:
        """The requirements the deployment does not meet."""
        return [requirement for requirement in requirements if not self.has(requirement)]


_NAMES = frozenset(
    (
        "transactions",
        "change_streams",
        "fail_points",
        "server",
        "sharded",
        "replica_set",
        "standalone",
    )
)

#: The Memory store: writes are atomic in process, as transactions make them on a server.
MEMORY = Capabilities("in_process", transactions=True, change_streams=False, fail_points=False)
#: mongomock-motor: no transactions, no change streams.
MONGOMOCK = Capabilities("in_process", transactions=False, change_streams=False, fail_points=False)


@functools.cache
def detect(uri: str) -> Capabilities:
    """The capabilities of the server at ``uri``, read from it (once per URI)."""
    client: MongoClient[dict[str, Any]] = MongoClient(uri, serverSelectionTimeoutMS=20_000)
    with client:
        hello = client.admin.command("hello")
        topology: Topology = "standalone"
        if hello.get("msg") == "isdbgrid":
            topology = "sharded"
        elif "setName" in hello:
            topology = "replica_set"
        sessions = "logicalSessionTimeoutMinutes" in hello
        try:
            client.admin.command("configureFailPoint", "failCommand", mode="off")
            fail_points = True
        except OperationFailure:
            fail_points = False
    distributed = topology != "standalone"
    return Capabilities(
        topology,
        transactions=distributed and sessions,
        change_streams=distributed,
        fail_points=fail_points,
    )
