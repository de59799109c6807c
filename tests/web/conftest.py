"""Fixtures of the viewer's tests: a store on the suite's server, the demo's thread, an HTTP client.

Route tests call the ASGI app through httpx's ``ASGITransport`` on the test's
event loop, over a :class:`MongoRunEventStore` on the real server the suite
starts; the live tail and the command run a real uvicorn server on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import random
import re
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from html.parser import HTMLParser
from typing import Any

import httpx
import pytest
import uvicorn

from mongo_runevents import MongoRunEventStore
from mongo_runevents.cli.workload import AgentThread, Journal, write_run
from mongo_runevents.web import create_app

pytest.importorskip("starlette")


#: When the demo thread of the tests begins, on its simulated clock.
DEMO_START = datetime(2025, 6, 1, 2, 0, tzinfo=timezone.utc)


@dataclass(frozen=True)
class Demo:
    """The demo's thread as written: its id and its runs' ids."""

    thread_id: str
    run_ids: list[str]


@pytest.fixture
def web_store(mongo_database: Any) -> MongoRunEventStore:
    """An empty MongoDB store on the suite's server."""
    return MongoRunEventStore(mongo_database)


async def write_demo(store: Any, thread_id: str = "demo-thread", runs: int = 3) -> Demo:
    """Write the demo's agent thread (``runs`` runs of 4 tool steps, seed 7), timed as a real one."""
    journal = Journal(store, clock=DEMO_START)
    thread = AgentThread(thread_id=thread_id, rng=random.Random(7), journal=journal)
    run_ids = [await write_run(thread, number, 4) for number in range(runs)]
    return Demo(thread_id, run_ids)


@pytest.fixture
async def demo(web_store: MongoRunEventStore) -> Demo:
    """The demo's thread in ``web_store``."""
    return await write_demo(web_store)


ClientFactory = Callable[..., httpx.AsyncClient]


@pytest.fixture
async def make_client() -> AsyncIterator[ClientFactory]:
    """Make clients of the app over a store (``create_app``'s options as keywords)."""
    clients: list[httpx.AsyncClient] = []

    def make(store: Any, base_url: str = "http://127.0.0.1", **options: Any) -> httpx.AsyncClient:
        app = create_app(store, **options)
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


@pytest.fixture
async def client(web_store: MongoRunEventStore, make_client: ClientFactory) -> httpx.AsyncClient:
    """A client of the app over ``web_store``, with no token."""
    return make_client(web_store)


class Page(HTMLParser):
    """A parsed page: its tags with their attributes, and its text."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.texts: list[str] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.texts.append(data)

    @property
    def text(self) -> str:
        """The page's text, as a person reads it."""
        return "".join(self.texts)

    def links(self) -> list[str]:
        """Every ``href`` on the page."""
        return [attrs["href"] or "" for tag, attrs in self.tags if "href" in attrs]

    def first_link(self, css_class: str) -> str:
        """The ``href`` of the first ``<a>`` with that class."""
        for tag, attrs in self.tags:
            if tag == "a" and css_class in (attrs.get("class") or "").split():
                return attrs["href"] or ""
        raise AssertionError(f"no link of class {css_class!r}")


def assert_safe(html: str) -> Page:
    """The page holds no script but the viewer's own, no handler or style attribute, no outside link."""
    page = Page(html)
    for tag, attrs in page.tags:
        assert tag not in {"iframe", "object", "embed", "base"}, tag
        if tag == "script":
            assert attrs.get("src") in {"/static/live.js", "/static/event.js"}, attrs
        for name, value in attrs.items():
            assert not name.startswith("on"), (tag, name)
            assert name != "style", (tag, attrs)  # the Content-Security-Policy forbids it
            if name in {"href", "src", "action", "data-stream"}:
                assert value is not None, (tag, name)
                if name == "href" and re.fullmatch(r"#seq-[0-9]+", value):
                    continue  # a row of the same page
                assert value.startswith("/"), (tag, name, value)
                assert not value.startswith("//"), (tag, name, value)
    return page


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
async def live_server(web_store: MongoRunEventStore) -> AsyncIterator[str]:
    """The app over ``web_store`` served by uvicorn on 127.0.0.1; its base URL."""
    port = free_port()
    config = uvicorn.Config(
        create_app(web_store), host="127.0.0.1", port=port, log_level="warning", lifespan="off"
    )
    server = uvicorn.Server(config)
    server.config.timeout_graceful_shutdown = 1
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), "uvicorn did not start"
        await asyncio.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    await task
