"""DeerFlow's run-events configuration model: three backends, extra keys ignored."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class RunEventsConfig(BaseModel):
    backend: Literal["memory", "db", "jsonl"] = Field(default="memory")
    max_trace_content: int = Field(default=10240)
    track_token_usage: bool = Field(default=True)
