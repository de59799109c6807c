"""Every piece of content is untrusted model output: escaped everywhere, never a link, bounded."""

from __future__ import annotations

from typing import Any

import pytest

from mongo_runevents import MongoRunEventStore

from .conftest import ClientFactory, assert_safe

SCRIPT = "<script>alert('x')</script>"
IMG = '"><img src=x onerror=alert(1)>'
JS_LINK = "javascript:alert(document.cookie)"
HOSTILE_THREAD = f"t{SCRIPT}&amp;\"'"
HOSTILE_RUN = f"{JS_LINK}{IMG}"
HOSTILE_USER = f"u{SCRIPT}"


def pages(thread_id: str, run_id: str, seq: int, user: str | None = None) -> list[dict[str, Any]]:
    """The requests of every page about one event (as path and query parameters)."""
    extra = {} if user is None else {"user": user}
    return [
        {"url": "/", "params": extra},
        {"url": "/thread", "params": {"id": thread_id, **extra}},
        {"url": "/thread", "params": {"id": thread_id, "before_seq": str(seq + 1), **extra}},
        {"url": "/run", "params": {"thread": thread_id, "id": run_id, **extra}},
        {"url": "/event", "params": {"thread": thread_id, "seq": str(seq), **extra}},
        {"url": "/event", "params": {"thread": thread_id, "seq": str(seq), "full": "1", **extra}},
        {"url": "/live", "params": {"thread": thread_id, **extra}},
    ]


@pytest.fixture
async def hostile(web_store: MongoRunEventStore) -> MongoRunEventStore:
    """A thread whose ids, types, categories, content and metadata are all attacks."""
    common = {"thread_id": HOSTILE_THREAD, "run_id": HOSTILE_RUN, "user_id": HOSTILE_USER}
    await web_store.put_batch(
        [
            {
                **common,
                "event_type": "llm.ai.response",
                "category": "message",
                "content": {
                    "type": "ai",
                    "content": f"{SCRIPT} click [here]({JS_LINK}) or <a href='{JS_LINK}'>me</a>",
                    "tool_calls": [{"name": SCRIPT, "args": {IMG: JS_LINK}, "id": JS_LINK}],
                },
                "metadata": {SCRIPT: IMG, "caller": f"middleware:{SCRIPT}", "usage": {IMG: 1}},
            },
            {
                **common,
                "event_type": f"tool.{SCRIPT}",
                "category": f"cat{IMG}",
                "content": [JS_LINK, {"href": JS_LINK, "html": SCRIPT}],
                "metadata": {"caller": IMG, "tool_call_id": SCRIPT},
            },
            {**common, "event_type": IMG, "category": "error", "content": SCRIPT},
        ]
    )
    return web_store


async def test_hostile_ids_and_content_are_escaped_on_every_page(
    hostile: MongoRunEventStore, make_client: ClientFactory
) -> None:
    """No page carries a raw tag, handler attribute or javascript: link from stored data."""
    client = make_client(hostile)
    for user in (None, HOSTILE_USER):
        for seq in (1, 2, 3):
            for request in pages(HOSTILE_THREAD, HOSTILE_RUN, seq, user):
                response = await client.get(request["url"], params=request["params"])
                assert response.status_code == 200, request
                assert "<script>" not in response.text, request
                assert "<img" not in response.text, request
                page = assert_safe(response.text)
                assert not [link for link in page.links() if "javascript:" in link.split("?")[0]]


async def test_hostile_text_is_shown_as_text(
    hostile: MongoRunEventStore, make_client: ClientFactory
) -> None:
    """What the model wrote reaches the reader verbatim, as text: the attack is visible, inert."""
    client = make_client(hostile)
    conversation = assert_safe((await client.get("/thread", params={"id": HOSTILE_THREAD})).text)
    assert SCRIPT in conversation.text
    assert JS_LINK in conversation.text
    event = assert_safe(
        (await client.get("/event", params={"thread": HOSTILE_THREAD, "seq": "2"})).text
    )
    assert JS_LINK in event.text
    assert HOSTILE_THREAD in event.text


async def test_a_megabyte_string_is_cut_everywhere_but_the_full_event(
    web_store: MongoRunEventStore, make_client: ClientFactory
) -> None:
    """A 1 MB tool output costs a few KB in lists and 64 KB on its page, unless opened in full."""
    huge = "A" * 1_000_000 + "THE-END"
    await web_store.put(
        thread_id="t",
        run_id="r",
        event_type="llm.tool.result",
        category="message",
        content={"type": "tool", "content": huge, "name": "cat", "tool_call_id": "c1"},
        metadata={"note": huge},
    )
    client = make_client(web_store)
    for url, params in [
        ("/thread", {"id": "t"}),
        ("/run", {"thread": "t", "id": "r"}),
        ("/live", {"thread": "t"}),
    ]:
        response = await client.get(url, params=params)
        assert len(response.content) < 40_000, url
        assert "show all" in response.text or url == "/live"
    event = await client.get("/event", params={"thread": "t", "seq": "1"})
    assert 3 * 64 * 1024 < len(event.content) < 300_000  # text, content and metadata, cut
    assert "THE-END" not in event.text
    page = assert_safe(event.text)
    full = await client.get(page.first_link("load"))
    assert "THE-END" in full.text
    assert len(full.content) > 3_000_000


async def test_deep_nesting_renders_on_every_page(
    web_store: MongoRunEventStore, make_client: ClientFactory
) -> None:
    """Content and metadata nested 80 levels deep render without error, innermost value shown."""
    nested: Any = "innermost-value"
    for level in range(80):
        nested = {f"k{level}": nested} if level % 2 else [nested]
    await web_store.put(
        thread_id="t",
        run_id="r",
        event_type="llm.ai.response",
        category="message",
        content={"type": "ai", "content": nested, "tool_calls": [{"name": "x", "args": nested}]},
        metadata={"deep": nested},
    )
    client = make_client(web_store)
    for request in pages("t", "r", 1):
        response = await client.get(request["url"], params=request["params"])
        assert response.status_code == 200, request
        assert_safe(response.text)
    event = await client.get("/event", params={"thread": "t", "seq": "1"})
    assert "innermost-value" in event.text


async def test_the_uri_and_its_password_never_reach_a_page(
    server_uri: str, make_client: ClientFactory
) -> None:
    """Over a URI whose password the server refuses, every page is a 503 naming no URI or password."""
    password = "S3cretPassw0rd"
    host = server_uri.split("://", 1)[1].split("/", 1)[0].split("@")[-1]
    uri = f"mongodb://viewer:{password}@{host}/?directConnection=true&serverSelectionTimeoutMS=500"
    async with MongoRunEventStore.from_uri(uri, database="viewer_password") as store:
        client = make_client(store)
        for request in pages("t", "r", 1):
            response = await client.get(request["url"], params=request["params"])
            assert response.status_code == 503, request
            assert password not in response.text
            assert "viewer:" not in response.text
            assert host not in response.text
            assert "the store could not be read" in response.text


async def test_values_json_cannot_hold_render_everywhere(
    web_store: MongoRunEventStore, make_client: ClientFactory
) -> None:
    """NaN, the infinities and integers past 64 bits (which stores keep) break no page."""
    content = {"type": "ai", "content": "odd numbers", "nan": float("nan"), "big": 2**70}
    metadata = {
        "inf": float("-inf"),
        "usage": {"total_tokens": 2**70, "input_tokens": float("nan")},
    }
    await web_store.put(
        thread_id="t",
        run_id="r",
        event_type="llm.ai.response",
        category="message",
        content=content,
        metadata=metadata,
    )
    client = make_client(web_store)
    for request in pages("t", "r", 1):
        response = await client.get(request["url"], params=request["params"])
        assert response.status_code == 200, request
    event = (await client.get("/event", params={"thread": "t", "seq": "1"})).text
    assert "NaN" in event
    assert str(2**70) in event
