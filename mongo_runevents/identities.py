"""The identity of a stored message, by DeerFlow's rule (``get_message_seqs``).

DeerFlow's thread feed and its checkpoints hold the same message under the same
id, so a client can align the two by an *identity* both sides compute alike
(``deerflow.runtime.events.message_identity``):

- a tool result (a message with a non-empty ``tool_call_id``) is
  ``"tool:<tool_call_id>"``;
- any other message with a non-empty string ``id`` is ``"message:<id>"``, where
  a human message's ``<id>__user`` (the copy DeerFlow's dynamic-context
  middleware re-keys) collapses to ``<id>``;
- anything else (plain text content, no id) has none.

The stores compute it once, when a message is written, and keep it beside the
event, so a look-up goes through an index instead of decoding the thread.
"""

from __future__ import annotations

from typing import Any

#: The suffix DeerFlow gives the submitted copy of a user turn.
INJECTED_USER_SUFFIX = "__user"


def message_identity(content: Any) -> str | None:
    """The identity of a message with this ``content``, or ``None`` when it has none."""
    if not isinstance(content, dict):
        return None
    tool_call_id = content.get("tool_call_id")
    if isinstance(tool_call_id, str) and tool_call_id:
        return f"tool:{tool_call_id}"
    message_id = content.get("id")
    if not isinstance(message_id, str) or not message_id:
        return None
    # Only human copies collapse: a hidden system message may reuse the turn's id.
    if content.get("type") == "human" and message_id.endswith(INJECTED_USER_SUFFIX):
        message_id = message_id[: -len(INJECTED_USER_SUFFIX)] or message_id
    return f"message:{message_id}"
