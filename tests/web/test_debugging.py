"""Debugging a failed agent run in the viewer: DeerFlow-shaped runs, their outcomes, filters, raw JSON."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from mongo_runevents import InvalidEventError, MongoRunEventStore
from mongo_runevents.cli import journal_runs
from mongo_runevents.web import run_pages, thread_pages

from .conftest import Page, assert_safe

THREAD = "deerflow-thread"


@dataclass(frozen=True)
class Runs:
    """The ids of the journal thread's three runs."""

    succeeded: str
    failed: str
    cut_off: str


@pytest.fixture
async def runs(web_store: MongoRunEventStore) -> Runs:
    """The DeerFlow-shaped thread (a run that succeeds, one that fails, one cut off) in the store."""
    return Runs(*await journal_runs.write_journal_thread(web_store, THREAD))


async def get(client: httpx.AsyncClient, url: str, **params: Any) -> Page:
    """A page that answered 200, checked for safety."""
    response = await client.get(url, params=params)
    assert response.status_code == 200, response.text
    return assert_safe(response.text)


async def test_the_thread_page_lists_its_runs_with_their_outcomes(
    client: httpx.AsyncClient, runs: Runs
) -> None:
    """Each run on the page: its status, duration, model calls, tokens and the failure reason."""
    response = await client.get("/thread", params={"id": THREAD, "before_seq": "22"})
    page = assert_safe(response.text)
    table = response.text.split('<table class="list runs">')[1].split("</table>")[0]
    rows = [Page("<tr" + row).text.split() for row in table.split("<tr")[2:]]
    assert [row[0] for row in rows] == [runs.failed, runs.succeeded]  # newest first
    failed = rows[0]
    assert failed[1:6] == ["failed", "230.6", "s", "11", "43,012"]
    assert "GraphRecursionError:" in failed
    assert "Recursion" in failed
    assert rows[1] == [runs.succeeded, "succeeded", "22.9", "s", "5", "12,748"]
    assert f"/run?thread={THREAD}&id={runs.failed}" in page.links()


async def test_a_failed_runs_conversation_ends_saying_it_failed(
    client: httpx.AsyncClient, runs: Runs
) -> None:
    """After the failed run's last message the chat says the run failed, and why."""
    response = await client.get("/thread", params={"id": THREAD, "before_seq": "44"})
    chat = response.text.split('<ol class="chat">')[1]
    last_bubble, after = chat.rsplit('<li class="bubble', 1)[1].split("</li>", 1)
    assert "#41" in Page(last_bubble).text  # the failed run's last message on the page
    marker = Page(after).text
    assert f"Run {runs.failed} failed" in marker
    assert "GraphRecursionError: Recursion limit of 25" in marker


async def test_the_cut_off_run_is_marked_as_having_no_end(
    client: httpx.AsyncClient, runs: Runs
) -> None:
    """The newest run wrote no end: the chat and the run list say so."""
    page = await get(client, "/thread", id=THREAD)
    assert f"Run {runs.cut_off} no end recorded" in " ".join(page.text.split())


async def test_the_run_page_says_failed_why_and_where_first(
    client: httpx.AsyncClient, runs: Runs
) -> None:
    """The header: status, error type and reason, a jump to the first error, the event count."""
    response = await client.get("/run", params={"thread": THREAD, "id": runs.failed})
    page = assert_safe(response.text)
    header = Page(response.text.split('<section class="outcome')[1].split("</section>")[0])
    text = " ".join(header.text.split())
    assert "Failed with GraphRecursionError at #42" in text
    assert "Recursion limit of 25 reached" in text
    assert "first error: #21" in text
    assert "events 25" in text
    assert "duration 230.6 s" in text
    assert "#seq-21" in page.links()
    assert 'id="seq-21"' in response.text
    assert response.text.index("Recursion limit") < response.text.index("<h2>Spans")


async def test_the_run_page_counts_every_event_and_finds_the_end_on_a_later_page(
    web_store: MongoRunEventStore,
    client: httpx.AsyncClient,
    runs: Runs,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With a page of 10 events, the header still knows the run failed, and its total of 25."""
    monkeypatch.setattr(run_pages, "EVENTS_PAGE", 10)
    response = await client.get("/run", params={"thread": THREAD, "id": runs.failed})
    text = " ".join(assert_safe(response.text).text.split())
    assert "Failed with GraphRecursionError at #42" in text
    assert "events 25 (this page: 10, seq 18\u201327)" in text
    page = Page(response.text)
    assert f"/run?thread={THREAD}&id={runs.failed}&after_seq=41#seq-42" in page.links()


async def test_filters_narrow_the_run_page(client: httpx.AsyncClient, runs: Runs) -> None:
    """errors=1 keeps the three errors; type goes to the store; category narrows the page."""
    errors = await client.get("/run", params={"thread": THREAD, "id": runs.failed, "errors": "1"})
    rows = errors.text.split('<table class="list events">')[1].split("</table>")[0]
    assert [part.split('"')[0] for part in rows.split('id="seq-')[1:]] == ["21", "22", "42"]
    by_type = await client.get(
        "/run", params={"thread": THREAD, "id": runs.failed, "type": "llm.error"}
    )
    rows = by_type.text.split('<table class="list events">')[1].split("</table>")[0]
    assert rows.count('id="seq-') == 1
    assert "Rate limit reached" in rows
    by_category = await client.get(
        "/run", params={"thread": THREAD, "id": runs.succeeded, "category": "subagent"}
    )
    rows = by_category.text.split('<table class="list events">')[1].split("</table>")[0]
    assert rows.count('id="seq-') == 5  # start, three steps, end
    assert "llm.ai.response" not in rows


async def test_spans_nest_subagents_under_their_task_and_show_tokens(
    client: httpx.AsyncClient, runs: Runs
) -> None:
    """The subagent sits under the task call, its model calls under it, each with its tokens."""
    response = await client.get("/run", params={"thread": THREAD, "id": runs.succeeded})
    spans = response.text.split('<ol class="spans">')[1].split("</ol>")[0]
    items = spans.split("<li ")[1:]
    depths = [int(item.split("depth-")[1][0]) for item in items]
    assert depths == [0, 0, 0, 0, 0, 1, 2, 2, 2, 0]
    assert "find where" in items[5]
    assert "1,274 tok" in items[6]


async def test_an_unfinished_call_is_flagged_not_drawn_as_finished(
    client: httpx.AsyncClient, runs: Runs
) -> None:
    """The tool call the run ended without says "never finished"; the cut-off one "open"."""
    failed = await client.get("/run", params={"thread": THREAD, "id": runs.failed})
    assert failed.text.count("never finished") == 1
    cut_off = await client.get("/run", params={"thread": THREAD, "id": runs.cut_off})
    assert "no end on this page" in cut_off.text
    assert "No end recorded" in cut_off.text


async def test_tool_results_link_to_the_message_that_asked(
    client: httpx.AsyncClient, runs: Runs
) -> None:
    """Parallel results each name the AI message whose call they answer, and it names them."""
    page = await get(client, "/thread", id=THREAD, before_seq="18")
    assert "#seq-3" in page.links()  # both results answer #3
    assert {"#seq-4", "#seq-5"} <= set(page.links())
    run = await get(client, "/run", thread=THREAD, id=runs.succeeded)
    assert "answers #3" in run.text


async def test_search_finds_text_in_one_bounded_page_of_messages(
    client: httpx.AsyncClient, runs: Runs
) -> None:
    """A search reads one page of messages, says which, and lists the matching ones."""
    page = await get(client, "/thread", id=THREAD, q="DECIMAL(12,2)")
    text = " ".join(page.text.split())
    assert "hold “DECIMAL(12,2)”" in text
    assert "#5" in text
    assert "#4" not in text
    tool_args = await get(client, "/thread", id=THREAD, q="--timeout 33")
    assert "#25" in tool_args.text
    nothing = await get(client, "/thread", id=THREAD, q="<script>nowhere")
    assert "0 of the" in nothing.text


async def test_search_pages_back_past_its_bound(
    client: httpx.AsyncClient, runs: Runs, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a search page of 10 messages the first search offers the older ones."""
    monkeypatch.setattr(thread_pages, "SEARCH_PAGE", 10)
    response = await client.get("/thread", params={"id": THREAD, "q": "ingestion"})
    page = assert_safe(response.text)
    pages = 1
    while "#15" not in page.text:  # the succeeded run's answer is older than the first 10 searched
        older = page.first_link("older")
        assert "q=ingestion" in older
        assert "before_seq=" in older
        page = assert_safe((await client.get(older)).text)
        pages += 1
        assert pages < 10
    assert pages > 1


async def test_raw_json_of_an_event_is_served_as_json_and_as_a_download(
    client: httpx.AsyncClient, runs: Runs
) -> None:
    """/event.json gives the whole record as application/json; download=1 as a file."""
    page = await get(client, "/event", thread=THREAD, seq="42")
    assert f"/event.json?thread={THREAD}&seq=42" in page.links()
    raw = await client.get("/event.json", params={"thread": THREAD, "seq": "42"})
    assert raw.headers["content-type"] == "application/json"
    assert "content-disposition" not in raw.headers
    record = json.loads(raw.text)
    assert record["metadata"] == {"error_type": "GraphRecursionError"}
    assert record["content"] == journal_runs.RECURSION_ERROR
    download = await client.get(
        "/event.json", params={"thread": THREAD, "seq": "42", "download": "1"}
    )
    assert download.headers["content-disposition"] == 'attachment; filename="event-42.json"'
    assert (
        await client.get("/event.json", params={"thread": THREAD, "seq": "999"})
    ).status_code == 404


async def test_an_event_opened_in_full_still_cuts_huge_strings_and_links_the_raw_json(
    web_store: MongoRunEventStore, client: httpx.AsyncClient
) -> None:
    """A 3 MiB tool output renders at most 1 MiB of it in HTML; the raw JSON holds all of it."""
    output = "x" * (3 * 1024 * 1024)
    [stored] = await web_store.put_batch(
        [
            {
                "thread_id": "big",
                "run_id": "r",
                "event_type": "llm.tool.result",
                "category": "message",
                "content": {"type": "tool", "content": output, "tool_call_id": "c"},
            }
        ]
    )
    response = await client.get(
        "/event", params={"thread": "big", "seq": stored["seq"], "full": "1"}
    )
    assert response.status_code == 200
    assert len(response.text) < 2.5 * run_pages.FULL_STRING_LIMIT
    assert "raw JSON" in response.text
    raw = await client.get("/event.json", params={"thread": "big", "seq": stored["seq"]})
    assert json.loads(raw.text)["content"]["content"] == output


@pytest.mark.parametrize(
    ("created_at", "metadata"),
    [
        ("0001-01-01T00:00+01:00", {"latency_ms": 5}),
        ("2025-06-01T02:00:00Z", {"latency_ms": 1e20}),
        ("0001-01-01T00:00:00Z", {"latency_ms": 1e20}),
        ("9999-12-31T23:59:59-01:00", {"latency_ms": 2.5}),
    ],
)
async def test_a_page_renders_whatever_a_stored_record_holds(
    web_store: MongoRunEventStore,
    client: httpx.AsyncClient,
    created_at: str,
    metadata: dict[str, Any],
) -> None:
    """Dates at the ends of the calendar and a latency of 1e20 render on every page, never a 500."""
    event = {
        "thread_id": "odd",
        "run_id": "r",
        "event_type": "llm.ai.response",
        "category": "message",
        "content": {"type": "ai", "content": "odd"},
        "metadata": metadata,
        "created_at": created_at,
    }
    try:
        await web_store.put(**event)
    except InvalidEventError:
        # put refuses a time outside the years 1-9999 in UTC; an older version
        # stored such times, and the viewer still shows them.
        collections = web_store._collections
        await collections.events.insert_one({**event, "seq": 1})
        await collections.counters.insert_one({"_id": "odd", "last_seq": 1})
    await web_store.put(
        thread_id="odd", run_id="r", event_type="run.end", category="outputs", content={}
    )
    for url, params in (
        ("/run", {"thread": "odd", "id": "r"}),
        ("/thread", {"id": "odd"}),
        ("/event", {"thread": "odd", "seq": "1"}),
        ("/live", {"thread": "odd"}),
        ("/", {}),
    ):
        response = await client.get(url, params=params)
        assert response.status_code == 200, (url, created_at, metadata, response.text[-500:])


async def test_a_failed_tool_card_says_error_once_and_keeps_its_columns(
    client: httpx.AsyncClient, runs: Runs
) -> None:
    """The timed-out tool's card shows one error flag, not the status "error" beside it too."""
    response = await client.get("/thread", params={"id": THREAD, "before_seq": "22"})
    card = response.text.split('id="seq-21"')[1].split("</li>")[0]
    assert card.count(">error<") == 1
    assert 'class="flag">error<' in card
    assert 'class="status"' not in card
