"""The viewer in a real headless browser (Debian's chromium): the demo thread, paged, opened.

Drives ``/usr/bin/chromium`` through the PyPI ``playwright`` package, which is
pointed at that executable and never downloads a browser. Skips when chromium
or playwright is missing, except under CI (``CI`` set), where it fails. The
screenshots go to a temporary folder; with ``UPDATE_SCREENSHOTS=1`` they
replace the ones in docs/screenshots/ that the README shows.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from mongo_runevents import MongoRunEventStore
from mongo_runevents.cli.demo import write_demo_if_empty
from mongo_runevents.web import command

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DOCS_SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def _missing() -> str | None:
    if not Path(CHROMIUM).exists():
        return "chromium is not installed (apt-get install chromium)"
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (the test extra)"
    return None


@pytest.fixture
def browser_ready() -> None:
    """Skip without chromium or playwright, but fail under CI, where .ci/run installs them."""
    missing = _missing()
    if missing is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"CI must run the browser test: {missing}")
    pytest.skip(missing)


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    """Where the screenshots go: docs/screenshots/ with UPDATE_SCREENSHOTS=1, else a temp folder."""
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        return DOCS_SCREENSHOTS
    return tmp_path


@pytest.mark.slow
@pytest.mark.usefixtures("browser_ready")
async def test_the_demo_thread_in_a_real_browser(
    web_store: MongoRunEventStore, screenshots: Path, tmp_path: Path
) -> None:
    """Open the demo thread, page back, open a run's timeline, an event and the live tail."""
    from playwright.async_api import async_playwright

    out = io.StringIO()
    stop = asyncio.Event()
    args = argparse.Namespace(host="127.0.0.1", port=0, token=None, database="demo")
    server = asyncio.create_task(
        command.serve(web_store, args, prepare=write_demo_if_empty, stop=stop, out=out)
    )
    try:
        url = await _printed_url(out, server)
        async with async_playwright() as playwright:
            context = await playwright.chromium.launch_persistent_context(
                str(tmp_path / "profile"),
                executable_path=CHROMIUM,
                args=CHROMIUM_ARGS,
                headless=True,
                viewport={"width": 1280, "height": 900},
            )
            try:
                page = await context.new_page()
                problems: list[str] = []
                page.on("pageerror", lambda error: problems.append(str(error)))
                page.on(
                    "console",
                    lambda message: (
                        problems.append(message.text) if message.type == "error" else None
                    ),
                )
                await _walk(page, url, web_store, screenshots)
                assert problems == []  # no script error, no Content-Security-Policy violation
            finally:
                await context.close()
    finally:
        stop.set()
        assert await asyncio.wait_for(server, 15) == 0
    for name in ("threads", "conversation", "timeline", "event", "live"):
        assert (screenshots / f"{name}.png").stat().st_size > 10_000


async def _printed_url(out: io.StringIO, server: asyncio.Task[int]) -> str:
    for _ in range(1000):
        found = re.search(r"viewer: (http://\S+)", out.getvalue())
        if found:
            return found.group(1)
        assert not server.done(), out.getvalue()
        await asyncio.sleep(0.02)
    raise AssertionError(f"serve printed no URL: {out.getvalue()!r}")


async def _walk(page: Any, url: str, store: MongoRunEventStore, screenshots: Path) -> None:
    """The visit: what a person clicks, and what each page must show."""
    await page.goto(url)
    assert await page.title() == "Threads · mongo_runevents · demo"
    thread_link = page.locator("td.id a").first
    thread_id = await thread_link.inner_text()
    assert thread_id.startswith("demo-")
    await page.screenshot(
        path=screenshots / "threads.png", clip={"x": 0, "y": 0, "width": 1280, "height": 300}
    )

    await thread_link.click()
    await page.wait_for_url(re.compile(r"/thread\?id=demo-"))
    body = await page.inner_text("main")
    assert "Here is what I found after 4 steps" in body
    assert "Why did last night's ingestion job fail" not in body
    assert await page.locator("li.bubble.tool").count() > 0
    await page.screenshot(path=screenshots / "conversation.png")

    await page.locator("a.older").first.click()
    await page.wait_for_url(re.compile(r"before_seq=\d+"))
    assert "Why did last night's ingestion job fail" in await page.inner_text("main")

    await page.locator("p.meta a.run").first.click()
    await page.wait_for_url(re.compile(r"/run\?thread="))
    body = await page.inner_text("main")
    assert "Run timeline" in body
    assert "Spans" in body
    assert "llm · gpt-4o-2024-08-06 · lead_agent" in body
    assert await page.locator("svg.bar rect.fill").count() >= 5
    total = await page.locator(".tokens-total").inner_text()
    assert int(total.replace(",", "")) > 0
    await page.screenshot(path=screenshots / "timeline.png")

    result_row = page.locator("table.events tr", has_text="llm.tool.result").first
    await result_row.locator("td.num a").first.click()
    await page.wait_for_url(re.compile(r"/event\?thread="))
    body = await page.inner_text("main")
    assert "llm.tool.result" in body
    assert '"tool_call_id": "call_' in body
    await page.screenshot(path=screenshots / "event.png")

    await page.goto(f"{url}live?thread={thread_id}")
    await page.wait_for_function(
        "document.getElementById('live-status').textContent.startsWith('Following')"
    )
    await store.put(
        thread_id=thread_id,
        run_id="run-live",
        event_type="llm.ai.response",
        category="message",
        content={"type": "ai", "content": "<img src=x onerror=alert(1)> fresh from the test"},
    )
    fresh = page.locator("#live-events li.new", has_text="fresh from the test")
    await fresh.wait_for(timeout=20_000)
    assert "<img src=x onerror=alert(1)> fresh from the test" in await fresh.inner_text()
    assert await page.locator("#live-events img").count() == 0
    await fresh.scroll_into_view_if_needed()
    await page.screenshot(path=screenshots / "live.png")
