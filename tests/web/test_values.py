"""Previews, pretty-printing, chat bubbles and links: pure functions, no server."""

from __future__ import annotations

import time
from typing import Any

from mongo_runevents.web import render, values


def nested(depth: int) -> Any:
    """A value nested ``depth`` containers deep, dicts and lists in turn."""
    value: Any = "leaf"
    for level in range(depth):
        value = {"k": value} if level % 2 else [value]
    return value


def test_preview_is_compact_json_cut_at_the_limit() -> None:
    """Non-strings become compact JSON; text past the limit is cut and says so."""
    assert values.preview({"a": [1, None, True], "b": "x"}) == (
        '{"a": [1, null, true], "b": "x"}',
        False,
    )
    assert values.preview("short") == ("short", False)
    assert values.preview("y" * 300, 10) == ("y" * 10, True)
    text, cut = values.preview({"k": "z" * 500}, 20)
    assert cut
    assert text == '{"k": "' + "z" * 13


def test_preview_costs_the_limit_not_the_value() -> None:
    """A preview of a 10 MB string, a million-item list or 5,000 levels of nesting is instant."""
    started = time.perf_counter()
    assert values.preview({"out": "q" * 10_000_000}, 50)[1]
    assert values.preview(list(range(1_000_000)), 50)[1]
    text, cut = values.preview(nested(5000), 50)
    assert cut
    assert len(text) == 50
    assert time.perf_counter() - started < 1.0


def test_pretty_cuts_long_strings_and_deep_nesting_only_when_asked() -> None:
    """Strings past the limit are cut with a note; nesting past 100 levels is left out."""
    shown = values.pretty({"s": "w" * 70_000, "n": 1.5})
    assert shown.cut_strings == 1
    assert "4,464 more characters" in shown.text
    assert '"n": 1.5' in shown.text
    assert values.pretty({"s": "w" * 70_000}, string_limit=None).text.count("w") == 70_000
    deep = values.pretty(nested(150))
    assert deep.cut_containers == 1
    assert "nested deeper than 100 levels" in deep.text
    assert "leaf" in values.pretty(nested(80)).text


def test_pretty_shows_values_json_cannot_name() -> None:
    """NaN and the infinities print as Python's json does; nothing raises."""
    assert "NaN" in values.pretty({"x": float("nan")}).text


def test_chat_message_reads_langchain_messages() -> None:
    """Role, text (from parts too), tool calls, tool status and hidden callers are picked out."""
    ai = render.chat_message(
        {
            "event_type": "llm.ai.response",
            "content": {
                "type": "ai",
                "content": [{"type": "text", "text": "Hello"}, "there", {"type": "image"}],
                "tool_calls": [{"name": "ls", "id": "c1", "args": {"path": "/"}}],
            },
            "metadata": {"caller": "middleware:title", "usage": {"total_tokens": 5}},
        }
    )
    assert (ai.role, ai.text, ai.hidden) == ("ai", 'Hello\nthere\n{"type": "image"}', True)
    assert ai.tool_calls == [render.ToolCall("ls", "c1", '{"path": "/"}')]
    assert ai.usage is not None
    assert ai.usage.total == 5
    tool = render.chat_message(
        {
            "event_type": "llm.tool.result",
            "content": {"type": "tool", "content": "x" * 5000, "name": "ls", "status": "error"},
            "metadata": {},
        }
    )
    assert (tool.role, tool.tool_name, tool.status, tool.error) == ("tool", "ls", "error", True)
    assert tool.text_cut
    assert len(tool.text) == render.MESSAGE_TEXT_LIMIT
    plain = render.chat_message({"event_type": "llm.human.input", "content": 42, "metadata": {}})
    assert (plain.role, plain.text) == ("human", "42")


def test_links_encode_every_value_and_keep_the_user_filter() -> None:
    """Ids with &, /, ?, # and spaces stay one parameter; the user filter rides along."""
    links = render.Links(user="a&b")
    assert links.thread("t/1?x=#y z") == "/thread?id=t%2F1%3Fx%3D%23y%20z&user=a%26b"
    assert links.event("javascript:alert(1)", 3, full=True) == (
        "/event?thread=javascript%3Aalert%281%29&seq=3&full=1&user=a%26b"
    )
    assert links.all_users().threads() == "/"
    assert (
        render.Links(root="/viewer").run("t", "r", after_seq=9)
        == "/viewer/run?thread=t&id=r&after_seq=9"
    )


def test_sizes_and_durations_read_as_people_write_them() -> None:
    """Byte counts and milliseconds have units."""
    assert values.human_size(512) == "512 bytes"
    assert values.human_size(20 * 1024 * 1024) == "20.0 MiB"
    assert render.format_ms(0.004) == "0.00 ms"
    assert render.format_ms(412.4) == "412 ms"
    assert render.format_ms(3210) == "3.2 s"
    assert render.format_ms(None) == "…"


def test_summary_prefers_a_messages_text_then_its_tool_calls() -> None:
    """A row shows what was said, or which tools were called, before falling back to JSON."""
    assert render.summary({"type": "ai", "content": "Done."}) == ("Done.", False)
    calls = {"type": "ai", "content": "", "tool_calls": [{"name": "ls", "args": {"path": "/"}}]}
    assert render.summary(calls) == ('calls ls({"path": "/"})', False)
    assert render.summary({"tokens": 5}) == ('{"tokens": 5}', False)
    assert render.summary("x" * 500) == ("x" * render.ROW_PREVIEW_LIMIT, True)
