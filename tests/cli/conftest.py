"""Fixtures of the command-line tests that live in more than one module."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pymongo import MongoClient

from mongo_runevents.cli import main
from tests.cli.test_cli import Cli, Result
from tests.conftest import database_name


@pytest.fixture
def cli(server_uri: str, capsys: pytest.CaptureFixture[str]) -> Iterator[Cli]:
    """Runs ``main`` on the suite's server and a fresh database, dropped afterwards."""
    database = database_name()

    def run(*argv: str) -> Result:
        code = main(["--uri", server_uri, "--database", database, *argv])
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    yield run
    client: MongoClient[dict[str, Any]]
    with MongoClient(server_uri) as client:
        client.drop_database(database)
