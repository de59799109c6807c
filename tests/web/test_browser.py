"""The viewer in a real headless browser (Debian's chromium): debugging the demo's failed run.

The demo thread is shaped as DeerFlow's journal writes one (a run that
succeeds with parallel tool calls and a subagent, one that fails with a
rate-limited model call, its retry and GraphRecursionError, one cut off with
no end): the visit is what an engineer does to find out why a run failed.

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
    """Find the failed run, its reason and first error, narrow to errors, open the raw JSON, follow live."""
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
            await _without_javascript(playwright, url, tmp_path)
    finally:
        stop.set()
        assert await asyncio.wait_for(server, 15) == 0
    for name in ("threads", "conversation", "timeline", "spans", "event", "live"):
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
    """The visit: what a person debugging a failed run clicks, and what each page must show."""
    await page.goto(url)
    assert await page.title() == "Threads · mongo_runevents · demo"
    thread_link = page.locator("td.id a").first
    thread_id = await thread_link.inner_text()
    assert thread_id.startswith("demo-")
    await page.screenshot(
        path=screenshots / "threads.png", clip={"x": 0, "y": 0, "width": 1280, "height": 300}
    )

    # The thread: its runs with their outcomes, first thing on the page.
    await thread_link.click()
    await page.wait_for_url(re.compile(r"/thread\?id=demo-"))
    runs = page.locator("table.runs tbody tr")
    assert await runs.count() == 2
    assert "no end recorded" in await runs.nth(0).inner_text()
    failed_row = runs.nth(1)
    assert "failed" in await failed_row.inner_text()
    assert "GraphRecursionError" in await failed_row.inner_text()
    assert await page.locator("li.bubble.tool .text").first.evaluate(
        "element => getComputedStyle(element).fontFamily.includes('monospace')"
    )
    ending = page.locator("li.run-end", has_text="failed")
    assert "Recursion limit of 25" in await ending.inner_text()
    await page.screenshot(path=screenshots / "conversation.png")

    # Search the thread's text (a plain form: no script needed).
    await page.fill("input[name=q]", "DECIMAL(12,2)")
    await page.click("form.search button")
    await page.wait_for_url(re.compile(r"q=DECIMAL"))
    assert "expected DECIMAL(12,2)" in await page.inner_text("ol.chat")
    await page.go_back()

    # The failed run: why, where, and the first error one click away.
    await failed_row.locator("a.run").click()
    await page.wait_for_url(re.compile(r"/run\?thread="))
    outcome = await page.inner_text("section.outcome")
    assert "Failed with GraphRecursionError at #42" in outcome
    assert "Recursion limit of 25 reached" in outcome
    assert "events 25" in outcome
    assert await page.locator("li.span.error").count() == 2  # the timed-out tool, the 429
    assert "never finished" in await page.inner_text("ol.spans")
    await page.screenshot(path=screenshots / "timeline.png")
    await page.click("a.first-error")
    await page.wait_for_url(re.compile(r"#seq-21$"))
    assert await page.locator("tr#seq-21").is_visible()
    await page.check("input[name=errors]")
    await page.click("form.run-filter button")
    await page.wait_for_url(re.compile(r"errors=1"))
    assert await page.locator("table.events tbody tr").count() == 3

    # The run that worked: the subagent nested under the task call that spawned it.
    await page.goto(f"{url}thread?id={thread_id}&before_seq=20")
    await page.locator("table.runs a.run", has_text="run-7f3a9c2e1b04").click()
    await page.wait_for_url(re.compile(r"/run\?thread="))
    subagent = page.locator("li.span.subagent")
    assert "depth-1" in (await subagent.get_attribute("class") or "")
    assert await page.locator("li.span.depth-2").count() == 3
    spans = page.locator("ol.spans")
    await spans.scroll_into_view_if_needed()
    box = await spans.bounding_box()
    assert box is not None
    await page.screenshot(
        path=screenshots / "spans.png",
        clip={"x": 0, "y": 0, "width": 1280, "height": box["y"] + box["height"] + 8},
        full_page=True,
    )

    # One event, and its raw JSON.
    await page.goto(f"{url}event?thread={thread_id}&seq=42")
    assert "GraphRecursionError" in await page.inner_text("main")
    raw_href = await page.locator("a.raw-view").get_attribute("href")
    raw = await page.request.get(f"{url.rstrip('/')}{raw_href}")
    assert raw.headers["content-type"] == "application/json"
    assert (await raw.json())["metadata"] == {"error_type": "GraphRecursionError"}
    assert await page.locator("button.copy").first.is_visible()  # the script showed it
    await page.screenshot(path=screenshots / "event.png")

    # The live tail: every category, with time and run.
    await page.goto(f"{url}live?thread={thread_id}")
    # A locator wait, not wait_for_function: the page's CSP (script-src 'self') refuses
    # the eval a polled predicate needs, which shows only when the first check is early.
    await page.locator("#live-status", has_text=re.compile(r"^Following")).wait_for(timeout=20_000)
    assert "run.start" in await page.inner_text("#live-events")
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
    assert "run-live" in await fresh.inner_text()
    assert re.search(r"\b\d\d:\d\d:\d\d\b", await fresh.inner_text())
    assert await page.locator("#live-events img").count() == 0
    await fresh.scroll_into_view_if_needed()
    await page.screenshot(path=screenshots / "live.png")


async def _without_javascript(playwright: Any, url: str, tmp_path: Path) -> None:
    """With scripts off, the run page, its filters and the event page still work."""
    context = await playwright.chromium.launch_persistent_context(
        str(tmp_path / "profile-no-js"),
        executable_path=CHROMIUM,
        args=CHROMIUM_ARGS,
        headless=True,
        java_script_enabled=False,
    )
    try:
        page = await context.new_page()
        await page.goto(url)
        await page.locator("td.id a").first.click()
        await page.locator("table.runs tr", has_text="GraphRecursionError").locator("a.run").click()
        assert "Failed with GraphRecursionError" in await page.inner_text("section.outcome")
        await page.check("input[name=errors]")
        await page.click("form.run-filter button")
        await page.wait_for_url(re.compile(r"errors=1"))
        assert await page.locator("table.events tbody tr").count() == 3
        await page.locator("table.events tbody tr a").first.click()
        await page.wait_for_url(re.compile(r"/event\?thread="))
        assert await page.locator("button.copy").first.is_hidden()  # nothing that cannot work
        assert await page.locator("a.raw-download").count() == 1
    finally:
        await context.close()
