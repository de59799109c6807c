"""DeerFlow's application configuration: the run_events section among others."""

from __future__ import annotations

from pydantic import BaseModel, Field

from deerflow.config.run_events_config import RunEventsConfig


class AppConfig(BaseModel):
    log_level: str = "info"
    run_events: RunEventsConfig = Field(default_factory=RunEventsConfig)
