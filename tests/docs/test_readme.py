"""The README's code runs as written, so the documentation cannot rot."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from pymongo import MongoClient

from tests.conftest import database_name

README = Path(__file__).resolve().parents[2] / "README.md"


def python_blocks() -> list[str]:
    """The README's Python code blocks."""
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def test_readme_has_a_python_example() -> None:
    """The README shows at least one Python example."""
    assert python_blocks()


@pytest.mark.parametrize("index", range(len(python_blocks())))
def test_readme_python_block_runs(index: int, server_uri: str) -> None:
    """Each Python block of the README runs against the test server and exits 0."""
    database = database_name()
    code = python_blocks()[index].replace('database="agents"', f'database="{database}"')
    env = {**os.environ, "MONGODB_URI": server_uri}
    try:
        done = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
        )
    finally:
        with MongoClient(server_uri) as client:
            client.drop_database(database)
    assert done.returncode == 0, done.stderr
    assert "[2, 3] [] [] 3" in done.stdout
