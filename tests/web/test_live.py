"""The live tail over a real uvicorn server: server-sent events fed by store.watch."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from mongo_runevents import MongoRunEventStore
from mongo_runevents.web import live

from .conftest import Demo


class Events:
    """The server-sent events of a streamed answer, read as they arrive."""

    def __init__(self, response: httpx.Response) -> None:
        self.lines = response.aiter_lines()

    async def _next(self) -> dict[str, str]:
        fields: dict[str, str] = {}
        async for line in self.lines:
            if not line:
                if fields:
                    return fields
            elif not line.startswith(":"):
                name, _, value = line.partition(": ")
                fields[name] = value
        raise AssertionError("the stream ended")

    async def take(self, count: int) -> list[dict[str, Any]]:
        """The next ``count`` events named ``event``, within 20 seconds."""
        found: list[dict[str, Any]] = []
        while len(found) < count:
            fields = await asyncio.wait_for(self._next(), 20)
            if fields.get("event") == "event":
                found.append({**json.loads(fields["data"]), "id": fields["id"]})
        return found


async def test_the_stream_sends_events_after_the_cursor_then_new_ones(
    live_server: str, web_store: MongoRunEventStore, demo: Demo
) -> None:
    """Events after after_seq come first, then each as it is written; ids are generation-seq."""
    last = (await web_store.list_messages(demo.thread_id, limit=1))[-1]["seq"]
    stored = (await web_store.read_after(demo.thread_id, last - 2))[-1]["seq"]
    async with (
        httpx.AsyncClient(base_url=live_server) as client,
        client.stream(
            "GET", "/live/events", params={"thread": demo.thread_id, "after_seq": last - 2}
        ) as response,
    ):
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-store"
        events = Events(response)
        backlog = await events.take(stored - last + 2)
        assert [item["id"] for item in backlog] == [f"0-{n}" for n in range(last - 1, stored + 1)]
        await web_store.put(
            thread_id=demo.thread_id,
            run_id="run-live",
            event_type="llm.ai.response",
            category="message",
            content={"type": "ai", "content": "<b>fresh</b>"},
        )
        [fresh] = await events.take(1)
    assert fresh["preview"] == "<b>fresh</b>"
    assert fresh["href"] == f"/event?thread={demo.thread_id}&seq={stored + 1}"
    assert fresh["run_id"] == "run-live"


async def test_a_reconnecting_browser_resumes_after_its_last_event_id(
    live_server: str, demo: Demo
) -> None:
    """Last-Event-ID takes over from after_seq, as EventSource sends it when it reconnects."""
    async with (
        httpx.AsyncClient(base_url=live_server) as client,
        client.stream(
            "GET",
            "/live/events",
            params={"thread": demo.thread_id, "after_seq": 0, "category": "message"},
            headers={"last-event-id": "0-40"},
        ) as response,
    ):
        [first] = await Events(response).take(1)
    assert first["id"].startswith("0-")
    assert int(first["id"].split("-")[1]) > 40
    assert first["category"] == "message"


async def test_one_connection_sends_a_bounded_batch_then_ends(
    live_server: str, demo: Demo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After BATCH events the answer ends (the browser reconnects); it starts with retry:."""
    monkeypatch.setattr(live, "BATCH", 3)
    monkeypatch.setattr(live.events, "__defaults__", (3, None))
    async with (
        httpx.AsyncClient(base_url=live_server) as client,
        client.stream("GET", "/live/events", params={"thread": demo.thread_id}) as response,
    ):
        text = await asyncio.wait_for(response.aread(), 20)
    lines = text.decode().splitlines()
    assert lines[0] == f"retry: {live.RETRY_MS}"
    assert [line for line in lines if line.startswith("id: ")] == ["id: 0-1", "id: 0-2", "id: 0-3"]


async def test_a_browser_reconnecting_after_a_reset_gets_the_new_threads_events(
    live_server: str, web_store: MongoRunEventStore
) -> None:
    """The Last-Event-ID from before delete_by_thread names the old generation: resume at seq 1."""
    thread_id = "reset-while-reconnecting"

    def batch(label: str, count: int) -> list[dict[str, Any]]:
        return [
            {
                "thread_id": thread_id,
                "run_id": "r",
                "event_type": "llm.ai.response",
                "category": "message",
                "content": {"type": "ai", "content": f"{label} {n}"},
            }
            for n in range(count)
        ]

    await web_store.put_batch(batch("old", 5))
    async with httpx.AsyncClient(base_url=live_server) as client:
        async with client.stream(
            "GET", "/live/events", params={"thread": thread_id, "after_seq": 0}
        ) as response:
            seen = await Events(response).take(5)
        last_id = seen[-1]["id"]
        await web_store.delete_by_thread(thread_id)
        await web_store.put_batch(batch("new", 3))
        async with client.stream(
            "GET",
            "/live/events",
            params={"thread": thread_id, "after_seq": 0},
            headers={"last-event-id": last_id},
        ) as response:
            resumed = await Events(response).take(3)
    assert [item["preview"] for item in resumed] == ["new 0", "new 1", "new 2"]
    assert [item["seq"] for item in resumed] == [1, 2, 3]


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("3-41", (3, 41)),
        ("41", (None, 41)),
        ("0-0", (0, 0)),
        ("", None),
        ("-4", None),
        ("4-", None),
        ("a-1", None),
        ("1-2-3", None),
        ("9" * 20, None),
        ("٣-1", None),
    ],
)
def test_event_ids_are_read_strictly(text: str, parsed: tuple[int | None, int] | None) -> None:
    """Last-Event-ID is generation-seq (or a bare seq); anything else is ignored."""
    assert live.parse_event_id(text) == parsed
