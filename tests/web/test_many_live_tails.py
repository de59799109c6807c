"""The viewer keeps answering with more live tails open than the driver has connections."""

from __future__ import annotations

import asyncio
import contextlib

import httpx

from .conftest import Demo

#: More than the driver's default pool (100 connections), which the tails once filled.
TAILS = 120


async def test_pages_answer_while_more_live_tails_are_open_than_the_pool_holds(
    live_server: str, demo: Demo
) -> None:
    """With 120 open live tails, the thread list and a thread page still answer within seconds."""
    limits = httpx.Limits(max_connections=TAILS + 10)
    async with (
        httpx.AsyncClient(base_url=live_server, limits=limits, timeout=30) as client,
        contextlib.AsyncExitStack() as streams,
    ):
        params = {"thread": demo.thread_id, "after_seq": "999999"}
        opened = await asyncio.gather(
            *(
                streams.enter_async_context(client.stream("GET", "/live/events", params=params))
                for _ in range(TAILS)
            )
        )
        assert all(response.status_code == 200 for response in opened)
        await asyncio.sleep(2.0)  # every tail reads its thread and waits
        threads = await asyncio.wait_for(client.get("/"), timeout=10)
        thread = await asyncio.wait_for(
            client.get("/thread", params={"id": demo.thread_id}), timeout=10
        )
    assert threads.status_code == 200
    assert thread.status_code == 200
