"""Which commit of this repository a benchmark measured (kept light: DeerFlow's venv imports it too)."""

from __future__ import annotations

import subprocess
from pathlib import Path


def package_revision() -> str:
    """The commit, and the package's files that differ from it (others may be editing them)."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        changed = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "mongo_runevents"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        return "unknown commit"
    files = [Path(name).name for name in changed if name.endswith(".py")]
    return f"{commit}{' with local changes to ' + ', '.join(files) if files else ''}"
