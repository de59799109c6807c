"""DeerFlow's start-up gate for several gateway workers: process-local run-event stores are refused."""

from __future__ import annotations

import os
from typing import Any


def _enforce_postgres_for_multi_worker(config: Any) -> None:
    workers = int(os.environ.get("GATEWAY_WORKERS", "1"))
    if workers <= 1:
        return
    if config.run_events.backend != "db":
        raise SystemExit(f"GATEWAY_WORKERS={workers} requires run_events.backend='db'")


def start(config: Any) -> None:
    """What the gateway's lifespan does first (it calls the gate through the module)."""
    _enforce_postgres_for_multi_worker(config)
