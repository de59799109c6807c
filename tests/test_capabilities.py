"""The capabilities tests require are detected from the deployment the suite runs on."""

from __future__ import annotations

import pytest

from tests.backends import Backend
from tests.capabilities import MEMORY, MONGOMOCK, Capabilities, detect
from tests.conftest import MONGODB_URI


@pytest.mark.skipif(bool(MONGODB_URI), reason="checks the servers the suite starts itself")
def test_the_suites_servers_are_told_apart_by_what_they_answer(
    server_uri: str, standalone_uri: str
) -> None:
    """The replica-set server has transactions and change streams; the standalone one has neither."""
    assert detect(server_uri) == Capabilities(
        "replica_set", transactions=True, change_streams=True, fail_points=True
    )
    assert detect(standalone_uri) == Capabilities(
        "standalone", transactions=False, change_streams=False, fail_points=True
    )


def test_a_requirement_is_a_capability_or_its_negation() -> None:
    """'not sharded' holds where 'sharded' does not; an unknown name is an error, not a skip."""
    assert MEMORY.has("transactions")
    assert not MONGOMOCK.has("transactions")
    assert MONGOMOCK.missing(["transactions", "not sharded", "not server"]) == ["transactions"]
    with pytest.raises(ValueError, match="unknown capability"):
        MEMORY.has("transaction")


@pytest.mark.requires("transactions")
def test_a_test_requiring_transactions_runs_only_where_the_server_has_them(server_uri: str) -> None:
    """The marker let this test run: the server under test has transactions."""
    assert detect(server_uri).transactions


@pytest.mark.requires("transactions")
def test_a_backend_test_requiring_transactions_skips_mongomock_and_standalone(
    backend: Backend,
) -> None:
    """On each backend the marker checks that backend's deployment, not the server under test."""
    assert backend.name in ("memory", "pymongo", "motor")
