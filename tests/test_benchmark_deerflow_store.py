"""The benchmark against DeerFlow's own store: how it skips, and what its measures take."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from benchmarks import deerflow_store


def test_without_a_deerflow_checkout_the_benchmark_is_skipped(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """No --deerflow: the benchmark says it is skipped and exits 0."""
    assert deerflow_store.main([]) == 0
    assert "skipped: no DeerFlow checkout given" in capsys.readouterr().out


def test_a_folder_without_deerflow_is_skipped_with_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A --deerflow folder DeerFlow's store cannot be imported from: skipped, saying why."""
    monkeypatch.setattr(sys, "path", list(sys.path))  # the folder is added to it
    assert deerflow_store.main(["--deerflow", str(tmp_path)]) == 0
    assert "cannot be imported" in capsys.readouterr().out


def test_the_revision_given_wins_and_a_folder_outside_git_says_so(tmp_path: Path) -> None:
    """--revision is recorded as given; without it, a folder that is no git checkout is 'unknown'."""
    assert deerflow_store.deerflow_revision(tmp_path, "f1f4af99b") == "f1f4af99b"
    assert deerflow_store.deerflow_revision(tmp_path, None).startswith("unknown")


async def test_a_call_that_holds_the_loop_is_measured_as_a_stall() -> None:
    """A call that blocks the loop for 50 ms shows a stall of at least 40 ms."""

    async def blocking() -> None:
        time.sleep(0.05)  # noqa: ASYNC251 - holding the loop is the point

    assert await deerflow_store._stall(blocking) >= 0.04


async def test_cpu_ratios_are_ours_over_theirs_round_by_round() -> None:
    """_cpu runs every side each round and gives ours/theirs per round, median and range."""
    calls: list[str] = []

    def side(name: str) -> Any:
        async def call(_: int) -> None:
            calls.append(name)
            await asyncio.sleep(0)

        return call

    names = ["ours", "sqlite"]
    sides = [deerflow_store.Side(name, side(name), side(name), side(name)) for name in names]  # type: ignore[arg-type]
    result = await deerflow_store._cpu(
        sides, {name: side(name) for name in names}, rounds=3, per_round=2
    )
    assert calls == ["ours", "ours", "sqlite", "sqlite"] * 4
    assert set(result["ratio"]) == {"sqlite"}
    assert set(result["ratio"]["sqlite"]) == {"median", "min", "max"}
