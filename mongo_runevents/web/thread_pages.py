"""The thread pages: the list of threads, a conversation with its runs, a search in a thread.

Reads per page: the threads list is one ``list_threads`` (:data:`THREADS_PAGE`);
a conversation is one ``list_messages`` (:data:`MESSAGES_PAGE`) and, for each
of the newest :data:`RUNS_LISTED` runs on that page, one ``list_events`` of its
lifecycle, error and model-call types (:data:`RUN_SUMMARY_LIMIT`) for the run
list; a search reads one page of :data:`SEARCH_PAGE` messages and nothing else.
Pages link on with the store's cursors: ``before`` for threads,
``before_seq`` / ``after_seq`` for a conversation.
"""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import Response

from ..models import AI_REPLY_TYPES
from . import params, render, timeline
from .pages import Pages

THREADS_PAGE = 50
MESSAGES_PAGE = 20
#: Runs whose outcome a thread page reads (the newest of the runs on the page).
RUNS_LISTED = 10
#: Events read per run for a thread page's run list: lifecycle, errors and model calls.
RUN_SUMMARY_LIMIT = 200
#: Messages one search looks through.
SEARCH_PAGE = 500
#: Event types a run summary reads.
SUMMARY_TYPES = (*timeline.OUTCOME_TYPES, *AI_REPLY_TYPES, "llm.end")


class ThreadPages(Pages):
    """``/`` (the threads) and ``/thread`` (a conversation, or a search with ``q``)."""

    async def threads(self, request: Request) -> Response:
        """Threads, newest activity first, a page at a time."""
        links = self.links(request)
        before = params.text(request, "before")
        rows = await self.store.list_threads(limit=THREADS_PAGE, before=before, user_id=links.user)
        older = links.threads(rows[-1]["cursor"]) if len(rows) == THREADS_PAGE else None
        return self.page(
            request,
            "threads.html",
            links=links,
            page_title="Threads",
            rows=rows,
            older=older,
            paged=before is not None,
        )

    async def conversation(self, request: Request) -> Response:
        """A thread's messages as a chat, with the outcome of each run on the page; or a search."""
        links = self.links(request)
        thread_id = params.required(request, "id")
        before_seq = params.seq(request, "before_seq")
        after_seq = params.seq(request, "after_seq")
        query = params.text(request, "q")
        if query is not None:
            return await self.search(request, links, thread_id, query, before_seq)
        records = await self.store.list_messages(
            thread_id,
            limit=MESSAGES_PAGE,
            before_seq=before_seq,
            after_seq=after_seq,
            user_id=links.user,
        )
        full = len(records) == MESSAGES_PAGE
        older = newer = None
        if records and (full or after_seq is not None):
            older = links.thread(thread_id, before_seq=records[0]["seq"])
        if records and (before_seq is not None or (after_seq is not None and full)):
            newer = links.thread(thread_id, after_seq=records[-1]["seq"])
        run_ids = list(dict.fromkeys(record["run_id"] for record in reversed(records)))
        runs = await self.run_summaries(thread_id, run_ids[:RUNS_LISTED], links.user)
        messages = render.chat_messages(records)
        return self.page(
            request,
            "conversation.html",
            links=links,
            page_title=f"Thread {thread_id}",
            thread_id=thread_id,
            messages=messages,
            ends=render.run_ends(messages, {run.run_id: run.outcome for run in runs}),
            runs=runs,
            runs_left_out=max(0, len(run_ids) - RUNS_LISTED),
            older=older,
            newer=newer,
            latest=before_seq is None and after_seq is None,
            query=None,
            searched=None,
            searched_count=0,
        )

    async def run_summaries(
        self, thread_id: str, run_ids: list[str], user: str | None
    ) -> list[render.RunSummary]:
        """Each run's outcome, duration and tokens: one bounded read of its lifecycle and model events."""

        async def one(run_id: str) -> render.RunSummary:
            records = await self.store.list_events(
                thread_id,
                run_id,
                event_types=SUMMARY_TYPES,
                limit=RUN_SUMMARY_LIMIT,
                user_id=user,
            )
            return render.run_summary(run_id, records, complete=len(records) < RUN_SUMMARY_LIMIT)

        return list(await asyncio.gather(*(one(run_id) for run_id in run_ids)))

    async def search(
        self,
        request: Request,
        links: render.Links,
        thread_id: str,
        query: str,
        before_seq: int | None,
    ) -> Response:
        """The messages of one page of :data:`SEARCH_PAGE` (newest first) whose text holds ``query``."""
        records = await self.store.list_messages(
            thread_id, limit=SEARCH_PAGE, before_seq=before_seq, user_id=links.user
        )
        found = [record for record in records if render.matches(record, query)]
        older = None
        if len(records) == SEARCH_PAGE:
            older = links.search(thread_id, query, before_seq=records[0]["seq"])
        return self.page(
            request,
            "conversation.html",
            links=links,
            page_title=f"Search in {thread_id}",
            thread_id=thread_id,
            messages=render.chat_messages(found),
            ends={},
            runs=[],
            runs_left_out=0,
            older=older,
            newer=None,
            latest=before_seq is None,
            query=query,
            searched=(records[0]["seq"], records[-1]["seq"]) if records else None,
            searched_count=len(records),
        )
