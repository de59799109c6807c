"""Fault injection with mongod's ``configureFailPoint`` (SecantusDB has it with --enable-test-commands)."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from pymongo.errors import PyMongoError


async def fail_point(client: Any, app_name: str, mode: Any, **data: Any) -> None:
    """Arm a failCommand fail point for one application's connections, or skip the test."""
    try:
        await client.admin.command(
            "configureFailPoint", "failCommand", mode=mode, data={"appName": app_name, **data}
        )
    except PyMongoError as exc:
        pytest.skip(f"the server has no fail points: {exc}")


async def fail_point_off(client: Any) -> None:
    """Disarm the failCommand fail point (quietly, where the server has none)."""
    with contextlib.suppress(PyMongoError):
        await client.admin.command("configureFailPoint", "failCommand", mode="off")
