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


REPOSITORY = "https://github.com/mongo-runevents/mongo_runevents/blob/main/"
RAW = "https://raw.githubusercontent.com/mongo-runevents/mongo_runevents/main/"


def test_readme_links_work_on_the_package_index() -> None:
    """Every link and image is absolute (PyPI shows the README alone) and names a file of the repository."""
    text = README.read_text(encoding="utf-8")
    root = README.parent
    targets = re.findall(r"!?\[[^\]]*\]\(([^)\s]+)\)", text)
    assert len(targets) >= 20
    for target in targets:
        assert target.startswith(("https://", "http://", "#")), target
        for prefix in (REPOSITORY, RAW):
            if target.startswith(prefix):
                path = target[len(prefix) :].split("#")[0]
                assert (root / path).exists(), target
    images = re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", text)
    assert images
    assert all(image.startswith(RAW) for image in images)


def test_the_embedded_servers_files_are_ignored_by_git() -> None:
    """The embedded server's data folder and its log file are in .gitignore."""
    from mongo_runevents.cli import DEFAULT_DATA_DIR

    ignored = (README.parent / ".gitignore").read_text(encoding="utf-8").splitlines()
    name = Path(DEFAULT_DATA_DIR).name
    assert f"{name}/" in ignored
    assert f"{name}.log" in ignored
