"""How a store turns what a caller writes into what it keeps.

The conversion of values that are not JSON (``json_default``), and the cutting
of long trace content (DeerFlow's ``max_trace_content``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from ._json import JsonDefault, StorableValue
from .errors import ConfigurationError


@dataclass(frozen=True)
class WritePolicy:
    """How a store turns what a caller writes into what it keeps.

    ``json_default`` converts values in content and metadata that are not JSON
    (``str`` by default, as DeerFlow's stores do with ``json.dumps(...,
    default=str)``; ``None`` refuses them). ``max_trace_content``, when set,
    cuts the content of ``trace`` events whose JSON text passes that many bytes
    (UTF-8) to that many bytes, and records ``content_truncated`` and
    ``original_byte_length`` in the metadata, as DeerFlow's database store does.
    """

    json_default: JsonDefault = str
    max_trace_content: int | None = None

    def __post_init__(self) -> None:
        # Checked when the store is built, so that no write fails later for it.
        if self.json_default is not None and not callable(self.json_default):
            raise ConfigurationError(
                f"json_default must be a callable or None, got {type(self.json_default).__name__}"
            )
        limit = self.max_trace_content
        if limit is not None and (
            not isinstance(limit, int) or isinstance(limit, bool) or limit < 0
        ):
            raise ConfigurationError(
                f"max_trace_content must be a non-negative int or None, got {limit!r}"
            )


#: What a store does when it is given no policy.
DEFAULT_POLICY = WritePolicy()

#: The category whose content ``max_trace_content`` cuts.
TRACE_CATEGORY = "trace"


def truncated(
    content: StorableValue, metadata: StorableValue, limit: int
) -> tuple[StorableValue, StorableValue]:
    """Trace content cut to ``limit`` bytes of its JSON text, as DeerFlow's database store cuts it."""
    value = content.value
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    encoded = text.encode("utf-8")
    if len(encoded) <= limit:
        return content, metadata
    cut = encoded[:limit].decode("utf-8", errors="ignore")
    marked = {**metadata.value, "content_truncated": True, "original_byte_length": len(encoded)}
    return (
        StorableValue(cut, len(cut) * 6 + 16, False),
        StorableValue(marked, metadata.size_bound + 64, metadata.needs_encoding),
    )
