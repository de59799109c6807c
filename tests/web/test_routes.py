"""The viewer's pages over the demo's thread on the suite's server."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from mongo_runevents import MongoRunEventStore
from mongo_runevents.web import run_pages, thread_pages

from .conftest import ClientFactory, Demo, assert_safe


def query_of(url: str) -> dict[str, str]:
    """The query parameters of a link, one value each."""
    return {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}


async def test_threads_page_lists_the_demo_thread(client: httpx.AsyncClient, demo: Demo) -> None:
    """The threads page names the demo thread, its last seq, and links to its conversation."""
    response = await client.get("/")
    assert response.status_code == 200
    page = assert_safe(response.text)
    assert demo.thread_id in page.text
    assert f"/thread?id={demo.thread_id}" in page.links()
    assert f"/live?thread={demo.thread_id}" in page.links()


async def test_threads_page_pages_with_the_before_cursor(
    client: httpx.AsyncClient, web_store: MongoRunEventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Threads come newest activity first, a page at a time, linked by the last row's cursor."""
    monkeypatch.setattr(thread_pages, "THREADS_PAGE", 2)
    for name in ("t-a", "t-b", "t-c"):
        await web_store.put(thread_id=name, run_id="r", event_type="e", category="trace")
    first = assert_safe((await client.get("/")).text)
    assert "t-c" in first.text
    assert "t-b" in first.text
    assert "t-a" not in first.text
    second = assert_safe((await client.get(_older(first))).text)
    assert "t-a" in second.text
    assert "t-c" not in second.text
    assert not [link for link in second.links() if "before=" in link]


def _older(page: Any) -> str:
    [link] = [link for link in page.links() if "before=" in link]
    return str(link)


async def test_a_cursor_the_store_refuses_is_a_bad_request(client: httpx.AsyncClient) -> None:
    """A before cursor the store cannot read answers 400 with the store's reason, escaped."""
    response = await client.get("/", params={"before": "<not-a-cursor>"})
    assert response.status_code == 400
    assert "<not-a-cursor>" not in response.text
    assert_safe(response.text)


async def test_threads_page_filters_by_user(
    client: httpx.AsyncClient, web_store: MongoRunEventStore
) -> None:
    """With ?user=, only that user's threads are listed, and links keep the filter."""
    await web_store.put(
        thread_id="mine", run_id="r", event_type="e", category="trace", user_id="ann"
    )
    await web_store.put(
        thread_id="theirs", run_id="r", event_type="e", category="trace", user_id="bob"
    )
    page = assert_safe((await client.get("/", params={"user": "ann"})).text)
    assert "mine" in page.text
    assert "theirs" not in page.text
    assert "/thread?id=mine&user=ann" in page.links()
    assert "user: ann" in page.text


async def test_conversation_shows_the_newest_messages_as_a_chat(
    client: httpx.AsyncClient, demo: Demo
) -> None:
    """The conversation's first page is its newest messages, with roles, tool calls and runs."""
    response = await client.get("/thread", params={"id": demo.thread_id})
    page = assert_safe(response.text)
    assert response.status_code == 200
    assert page.text.count("#") >= thread_pages.MESSAGES_PAGE
    assert "Here is what I found after 4 steps" in page.text
    assert "Is the retry logic in the payment worker safe" not in page.text  # on an older page
    assert f"/run?thread={demo.thread_id}&id={demo.run_ids[-1]}" in page.links()
    assert "read_file" in page.text or "bash" in page.text


async def test_conversation_pages_back_with_before_seq_and_forward_with_after_seq(
    client: httpx.AsyncClient, demo: Demo
) -> None:
    """The older link asks for the page before the first seq shown; newer goes after the last."""
    newest = assert_safe((await client.get("/thread", params={"id": demo.thread_id})).text)
    older_link = newest.first_link("older")
    first_seq_shown = int(query_of(older_link)["before_seq"])
    older = assert_safe((await client.get(older_link)).text)
    assert "Why did last night's ingestion job fail" in older.text
    newer_link = older.first_link("newer")
    assert int(query_of(newer_link)["after_seq"]) < first_seq_shown
    newer = assert_safe((await client.get(newer_link)).text)
    assert "Here is what I found" in newer.text


async def test_timeline_shows_every_category_with_bars_tokens_and_no_errors(
    client: httpx.AsyncClient, web_store: MongoRunEventStore, demo: Demo
) -> None:
    """A run's timeline lists all its events in seq order, draws spans and sums tokens once."""
    run_id = demo.run_ids[0]
    events = await web_store.list_events(demo.thread_id, run_id)
    response = await client.get("/run", params={"thread": demo.thread_id, "id": run_id})
    assert response.status_code == 200
    page = assert_safe(response.text)
    for category in {event["category"] for event in events}:
        assert category in page.text
    seqs = [
        int(query_of(link)["seq"])
        for link in page.links()
        if link.startswith("/event?") and "full" not in link
    ]
    assert sorted(set(seqs)) == [event["seq"] for event in events]
    rects = [attrs for tag, attrs in page.tags if tag == "rect" and attrs.get("class") == "fill"]
    llm_ends = sum(1 for event in events if event["event_type"] == "llm.end")
    tool_results = sum(1 for event in events if event["event_type"] == "llm.tool.result")
    assert len(rects) == llm_ends + tool_results
    expected = sum(
        event["metadata"]["usage"]["total_tokens"]
        for event in events
        if "usage" in event["metadata"] and event["event_type"] != "llm.ai.response"
    )
    assert f"{expected:,}" in page.text
    assert "errors 0" in " ".join(page.text.split())


async def test_timeline_marks_errors(
    client: httpx.AsyncClient, web_store: MongoRunEventStore
) -> None:
    """Events of category error, of a type ending in .error, and failed tool results are flagged."""
    common = {"thread_id": "t", "run_id": "r"}
    await web_store.put_batch(
        [
            {**common, "event_type": "llm.start", "category": "trace"},
            {**common, "event_type": "llm.error", "category": "trace", "content": "rate limited"},
            {**common, "event_type": "run.error", "category": "error", "content": "boom"},
            {**common, "event_type": "run.end", "category": "lifecycle"},
        ]
    )
    page = assert_safe((await client.get("/run", params={"thread": "t", "id": "r"})).text)
    rows = [attrs for tag, attrs in page.tags if tag == "tr" and attrs.get("class") == "error"]
    assert len(rows) == 2
    assert "errors 2" in " ".join(page.text.split())
    assert [
        attrs for tag, attrs in page.tags if tag == "li" and "error" in (attrs.get("class") or "")
    ]


async def test_timeline_pages_with_after_seq(
    client: httpx.AsyncClient, demo: Demo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run longer than a page links to its later events with after_seq."""
    monkeypatch.setattr(run_pages, "EVENTS_PAGE", 10)
    params = {"thread": demo.thread_id, "id": demo.run_ids[1]}
    first = assert_safe((await client.get("/run", params=params)).text)
    [later] = [link for link in first.links() if link.startswith("/run?") and "after_seq" in link]
    after = int(query_of(later)["after_seq"])
    second = assert_safe((await client.get(later)).text)
    shown = [int(query_of(link)["seq"]) for link in second.links() if link.startswith("/event?")]
    assert min(shown) == after + 1
    assert "from the start" in second.text


async def test_event_page_shows_content_and_metadata_pretty_printed(
    client: httpx.AsyncClient, web_store: MongoRunEventStore, demo: Demo
) -> None:
    """One event's fields, its message text, and its content and metadata as indented JSON."""
    events = await web_store.list_events(demo.thread_id, demo.run_ids[0])
    answer = next(
        e for e in events if e["event_type"] == "llm.ai.response" and e["content"]["content"]
    )
    response = await client.get("/event", params={"thread": demo.thread_id, "seq": answer["seq"]})
    assert response.status_code == 200
    page = assert_safe(response.text)
    assert answer["content"]["content"] in page.text
    assert '"finish_reason": "stop"' in page.text
    assert '"total_tokens": ' in page.text
    assert answer["run_id"] in page.text
    assert "llm.ai.response" in page.text


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"thread": "demo-thread", "seq": "9999"}, 404),
        ({"thread": "demo-thread", "seq": "abc"}, 400),
        ({"thread": "demo-thread", "seq": "0"}, 400),
        ({"thread": "demo-thread", "seq": "-3"}, 400),
        ({"thread": "demo-thread", "seq": str(2**63)}, 400),
        ({"thread": "demo-thread"}, 400),
        ({"seq": "1"}, 400),
        ({"thread": "x" * 5000, "seq": "1"}, 400),
    ],
)
async def test_event_page_refuses_bad_or_unknown_seqs(
    client: httpx.AsyncClient, demo: Demo, params: dict[str, str], status: int
) -> None:
    """An unknown event is a 404 page; a missing, malformed or out-of-range parameter a 400."""
    response = await client.get("/event", params=params)
    assert response.status_code == status
    assert_safe(response.text)
    assert "Error" in response.text


async def test_large_fields_are_read_only_when_the_event_is_opened_in_full(
    mongo_database: Any, make_client: ClientFactory
) -> None:
    """An out-of-line content is named with its size; ?full=1 reads and shows it."""
    store = MongoRunEventStore(mongo_database, inline_limit_bytes=2048)
    big = {"type": "tool", "content": "state " * 2000, "name": "dump"}
    await store.put(
        thread_id="t", run_id="r", event_type="run.end", category="outputs", content=big
    )
    client = make_client(store)
    opened = assert_safe((await client.get("/event", params={"thread": "t", "seq": "1"})).text)
    assert "Stored out of line" in opened.text
    assert "KiB" in opened.text
    assert "state state" not in opened.text
    full = assert_safe((await client.get(opened.first_link("load"))).text)
    assert "state " * 2000 in full.text
    assert "Stored out of line" not in full.text


async def test_only_get_and_head_are_answered(client: httpx.AsyncClient, demo: Demo) -> None:
    """HEAD works like GET; POST, PUT, DELETE and PATCH are refused with 405 on every path."""
    assert (await client.head("/")).status_code == 200
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        for path in ("/", "/thread?id=demo-thread", "/event?thread=demo-thread&seq=1"):
            response = await client.request(method, path)
            assert response.status_code == 405, (method, path)
            assert response.headers["allow"] == "GET, HEAD"
    assert await demo_still_there(client, demo)


async def demo_still_there(client: httpx.AsyncClient, demo: Demo) -> bool:
    """Whether the demo's first event can still be read."""
    response = await client.get("/event", params={"thread": demo.thread_id, "seq": "1"})
    return response.status_code == 200


@pytest.mark.parametrize(
    "path", ["/", "/thread?id=t", "/run?thread=t&id=r", "/event?thread=t&seq=1", "/nowhere"]
)
async def test_every_answer_carries_the_security_headers(
    client: httpx.AsyncClient, path: str
) -> None:
    """Pages, error pages and 404s all carry the CSP, nosniff, no-referrer and no-store headers."""
    headers = (await client.get(path)).headers
    assert "default-src 'self'" in headers["content-security-policy"]
    assert "script-src 'self'" in headers["content-security-policy"]
    assert "unsafe-inline" not in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["cache-control"] == "no-store"
    assert headers["x-frame-options"] == "DENY"


async def test_static_files_are_served_with_their_types(client: httpx.AsyncClient) -> None:
    """The style sheet and the live tail's script are served; nothing else under /static/."""
    css = await client.get("/static/viewer.css")
    assert css.status_code == 200
    assert css.headers["content-type"].startswith("text/css")
    script = await client.get("/static/live.js")
    assert script.headers["content-type"].startswith("text/javascript")
    assert "innerHTML" not in script.text
    assert (await client.get("/static/../app.py")).status_code == 404
    assert (await client.get("/static/app.py")).status_code == 404


async def test_live_page_shows_the_newest_messages_and_the_stream_to_follow(
    client: httpx.AsyncClient, web_store: MongoRunEventStore, demo: Demo
) -> None:
    """The live page lists the newest events of every category and follows from the last seq."""
    last = (await web_store.get_thread(demo.thread_id) or {})["last_seq"]
    page = assert_safe((await client.get("/live", params={"thread": demo.thread_id})).text)
    [stream] = [attrs["data-stream"] for tag, attrs in page.tags if "data-stream" in attrs]
    assert stream == f"/live/events?thread={demo.thread_id}&after_seq={last}&gen=0"
    rows = page.text.split("#")
    assert "Here is what I found" in page.text
    assert "run.end" in page.text
    assert "context.window" in page.text
    assert f"{last} " in rows[-1]  # the newest event last, with its time and run
    assert demo.run_ids[-1] in rows[-1]
    messages = assert_safe(
        (await client.get("/live", params={"thread": demo.thread_id, "category": "message"})).text
    )
    assert "run.end" not in messages.text
    assert "Here is what I found" in messages.text


async def test_live_page_says_so_when_the_store_cannot_watch(make_client: ClientFactory) -> None:
    """Over a store-like object without watch() the live page explains, and loads no script."""
    from mongo_runevents import MemoryRunEventStore

    class WithoutWatch:
        """Every store call but watch (an adapter of another interface, say)."""

        def __init__(self, store: MemoryRunEventStore) -> None:
            self._store = store

        def __getattr__(self, name: str) -> Any:
            if name == "watch":
                raise AttributeError(name)
            return getattr(self._store, name)

    store = MemoryRunEventStore()
    await store.put(thread_id="t", run_id="r", event_type="llm.human.input", category="message")
    client = make_client(WithoutWatch(store))  # type: ignore[arg-type]
    page = assert_safe((await client.get("/live", params={"thread": "t"})).text)
    assert "no watch()" in page.text
    assert not [attrs for tag, attrs in page.tags if tag == "script"]
