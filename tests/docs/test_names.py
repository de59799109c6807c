"""Every dotted name and test path the package and the docs mention still exists."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: Modules that import only where DeerFlow is installed.
NOT_OBJECTS = {
    "mongo_runevents.deerflow.gateway",
}

_DOTTED = re.compile(r"\bmongo_runevents(?:\.[A-Za-z_][A-Za-z0-9_]*)+")
_TEST_PATH = re.compile(r"`(tests/[A-Za-z0-9_/]+\.py)")


def _texts() -> list[Path]:
    package = sorted((ROOT / "mongo_runevents").rglob("*.py"))
    return [*package, *sorted((ROOT / "docs").rglob("*.md")), ROOT / "README.md"]


def _resolves(name: str) -> bool:
    """Whether ``name`` is a module, or an attribute path inside the longest importable module."""
    parts = name.split(".")
    for split in range(len(parts), 0, -1):
        try:
            found: object = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for attribute in parts[split:]:
            if not hasattr(found, attribute):
                return False
            found = getattr(found, attribute)
        return True
    return False


def _mentions(pattern: re.Pattern[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for path in _texts():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            for match in pattern.finditer(line):
                name = match.group(match.lastindex or 0).rstrip(".")
                found.setdefault(name, f"{path.relative_to(ROOT)}:{number}")
    return found


@pytest.mark.parametrize(("name", "where"), sorted(_mentions(_DOTTED).items()))
def test_a_dotted_name_the_text_mentions_exists(name: str, where: str) -> None:
    """A ``mongo_runevents.x.y`` name in a docstring or a doc names a module or object that exists."""
    if name in NOT_OBJECTS:
        return
    assert _resolves(name), f"{where} names {name}, which does not exist"


def test_every_test_file_the_docs_name_exists() -> None:
    """A ``tests/...py`` path in the docs names a test file of this repository."""
    missing = {
        path: where for path, where in _mentions(_TEST_PATH).items() if not (ROOT / path).exists()
    }
    assert not missing, missing
