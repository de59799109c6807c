"""Every page makes a few store reads, each of at most one page, so a huge thread stays fast."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from mongo_runevents import MongoRunEventStore
from mongo_runevents.web import app as web_app
from mongo_runevents.web import live

from .conftest import ClientFactory, Demo, assert_safe


@dataclass
class Call:
    """One store call: its name, keyword arguments and how many records it returned."""

    name: str
    options: dict[str, Any]
    rows: int = 0


@dataclass
class CountingStore:
    """A store wrapper that records every call the viewer makes."""

    store: Any
    calls: list[Call] = field(default_factory=list)

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.store, name)
        if not callable(method):
            return method

        async def counted(*args: Any, **options: Any) -> Any:
            call = Call(name, options)
            self.calls.append(call)
            result = await method(*args, **options)
            call.rows = len(result) if isinstance(result, list) else int(result is not None)
            return result

        return counted


LIMITS = {
    "list_threads": web_app.THREADS_PAGE,
    "list_messages": web_app.SEARCH_PAGE,
    "list_events": web_app.EVENTS_PAGE,
    "read_after": live.BACKLOG_SCAN,
    "get_event": 1,
    "get_thread": 1,
    "count_events": 1,
}
#: The most store calls each page may make (docs/viewer.md lists them).
CALLS = {
    "/": 1,
    "/thread": 1 + web_app.RUNS_LISTED,
    "/run": 3,
    "/event": 1,
    "/event.json": 1,
    "/live": 2,
}


def check_bounded(url: str, calls: list[Call]) -> None:
    """The page made at most its number of calls, each asking for at most a page."""
    assert 1 <= len(calls) <= CALLS[url], (url, calls)
    for call in calls:
        assert call.rows <= LIMITS[call.name], (url, call)
        if "limit" in call.options:
            assert 1 <= call.options["limit"] <= LIMITS[call.name], (url, call)
        else:
            assert call.name in {"get_event", "get_thread", "count_events"}, (url, call)


def page_requests(demo: Demo) -> list[tuple[str, dict[str, str]]]:
    """A request of each page about the demo thread."""
    thread, run = demo.thread_id, demo.run_ids[1]
    return [
        ("/", {}),
        ("/", {"user": "nobody"}),
        ("/thread", {"id": thread}),
        ("/thread", {"id": thread, "before_seq": "40"}),
        ("/thread", {"id": thread, "after_seq": "10"}),
        ("/run", {"thread": thread, "id": run}),
        ("/run", {"thread": thread, "id": run, "after_seq": "50"}),
        ("/event", {"thread": thread, "seq": "3"}),
        ("/event", {"thread": thread, "seq": "3", "full": "1"}),
        ("/event.json", {"thread": thread, "seq": "3"}),
        ("/live", {"thread": thread}),
        ("/live", {"thread": thread, "category": "message"}),
        ("/thread", {"id": thread, "q": "ingestion"}),
        ("/run", {"thread": thread, "id": run, "errors": "1", "category": "message"}),
        ("/run", {"thread": thread, "id": run, "type": "llm.end"}),
    ]


async def test_every_page_makes_a_few_bounded_store_calls(
    web_store: MongoRunEventStore, demo: Demo, make_client: ClientFactory
) -> None:
    """Each page makes at most its budget of store calls, each with a limit no larger than a page."""
    counting = CountingStore(web_store)
    client = make_client(counting)
    for url, params in page_requests(demo):
        counting.calls.clear()
        response = await client.get(url, params=params)
        assert response.status_code == 200, (url, params)
        check_bounded(url, counting.calls)


async def test_event_page_reads_large_fields_only_in_full(
    web_store: MongoRunEventStore, demo: Demo, make_client: ClientFactory
) -> None:
    """The event page asks the store not to load out-of-line fields unless opened in full."""
    counting = CountingStore(web_store)
    client = make_client(counting)
    await client.get("/event", params={"thread": demo.thread_id, "seq": "3"})
    await client.get("/event", params={"thread": demo.thread_id, "seq": "3", "full": "1"})
    await client.get("/event.json", params={"thread": demo.thread_id, "seq": "3"})
    assert [call.options.get("load_large_fields", True) for call in counting.calls] == [
        False,
        True,
        True,
    ]


@pytest.fixture
async def huge_thread(web_store: MongoRunEventStore) -> str:
    """A thread of 6,000 events in one run, a third of them messages."""
    thread_id = "huge"
    batch: list[dict[str, Any]] = []
    for number in range(6000):
        message = number % 3 == 0
        batch.append(
            {
                "thread_id": thread_id,
                "run_id": "r",
                "event_type": "llm.ai.response" if message else "llm.end",
                "category": "message" if message else "trace",
                "content": {"type": "ai", "content": f"reply {number}"},
                "metadata": {"usage": {"input_tokens": 1, "output_tokens": 1}},
            }
        )
        if len(batch) == 500:
            await web_store.put_batch(batch)
            batch = []
    return thread_id


@pytest.mark.slow
async def test_a_huge_threads_pages_make_bounded_reads(
    web_store: MongoRunEventStore, huge_thread: str, make_client: ClientFactory
) -> None:
    """Pages of a 6,000-event thread answer with bounded store reads (speed is the benchmarks' business)."""
    counting = CountingStore(web_store)
    client = make_client(counting)
    requests: list[tuple[str, dict[str, str], Callable[[str], bool]]] = [
        ("/thread", {"id": huge_thread}, lambda text: "reply 5997" in text),
        ("/thread", {"id": huge_thread, "before_seq": "31"}, lambda text: "reply 0" in text),
        ("/run", {"thread": huge_thread, "id": "r"}, lambda text: "later events" in text),
        ("/run", {"thread": huge_thread, "id": "r", "after_seq": "5900"}, lambda t: "6000" in t),
        ("/event", {"thread": huge_thread, "seq": "5999"}, lambda text: "reply 5998" in text),
        ("/live", {"thread": huge_thread}, lambda text: "reply 5997" in text),
    ]
    for url, params, check in requests:
        counting.calls.clear()
        response = await client.get(url, params=params)
        assert check(assert_safe(response.text).text), (url, params)
        check_bounded(url, counting.calls)
