"""The run pages: a run's timeline, one event, one event's raw JSON.

Reads per page: a run is one ``list_events`` page (:data:`EVENTS_PAGE`), one
of its lifecycle and error events (:data:`OUTCOME_LIMIT`) and
``count_events``; its pages link on with ``after_seq``. An event is one
``get_event``, and so is its JSON.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from . import params, render, timeline
from .pages import Pages
from .spans import pair_spans
from .values import EVENT_STRING_LIMIT, pretty

EVENTS_PAGE = 500
#: Lifecycle and error events the run page reads for the run's status.
OUTCOME_LIMIT = 100
#: Strings longer than this are cut even on an event opened in full (the raw JSON has them all).
FULL_STRING_LIMIT = 1024 * 1024


class RunPages(Pages):
    """``/run`` (a timeline), ``/event`` and ``/event.json``."""

    async def run(self, request: Request) -> Response:
        """A run's timeline: outcome first, then the span tree, tokens and every event of a page.

        Three bounded reads: the page of events (:data:`EVENTS_PAGE`), the
        run's lifecycle and error events (:data:`OUTCOME_LIMIT`, for its status
        wherever its end is) and its event count. Filters (``errors``,
        ``category``) narrow the rows of the page read; ``type`` is passed to
        the store, so it pages through that type alone.
        """
        links = self.links(request)
        thread_id = params.required(request, "thread")
        run_id = params.required(request, "id")
        after_seq = params.seq(request, "after_seq")
        filters = render.RunFilters(
            params.text(request, "type"),
            params.text(request, "category"),
            request.query_params.get("errors") == "1",
        )
        records, lifecycle, total = await asyncio.gather(
            self.store.list_events(
                thread_id,
                run_id,
                event_types=[filters.event_type] if filters.event_type else None,
                limit=EVENTS_PAGE,
                after_seq=after_seq,
                user_id=links.user,
            ),
            self.store.list_events(
                thread_id,
                run_id,
                event_types=timeline.OUTCOME_TYPES,
                limit=OUTCOME_LIMIT,
                user_id=links.user,
            ),
            self.store.count_events(thread_id, run_id=run_id, user_id=links.user),
        )
        outcome = timeline.outcome([*lifecycle, *records])
        spans = pair_spans(records)
        window = timeline.span_window(records, spans)
        rows = render.timeline_rows(records, window[0] if window else None)
        shown = [
            row
            for row in rows
            if (not filters.errors or row.error)
            and (filters.category is None or row.record["category"] == filters.category)
        ]
        more = None
        if len(records) == EVENTS_PAGE:
            more = links.run(thread_id, run_id, after_seq=records[-1]["seq"], filters=filters)
        on_page = {row.record["seq"] for row in shown}
        first_error = end_link = None
        if outcome.first_error_seq is not None:
            first_error = links.run_at(
                thread_id,
                run_id,
                outcome.first_error_seq,
                on_page=outcome.first_error_seq in on_page,
            )
        if outcome.end_seq is not None:
            end_link = links.run_at(
                thread_id, run_id, outcome.end_seq, on_page=outcome.end_seq in on_page
            )
        types = {str(r["event_type"]) for r in records}
        if filters.event_type:
            types.add(filters.event_type)
        return self.page(
            request,
            "timeline.html",
            links=links,
            page_title=f"Run {run_id}",
            thread_id=thread_id,
            run_id=run_id,
            outcome=outcome,
            first_error=first_error,
            end_link=end_link,
            total=total,
            rows=shown,
            read=len(records),
            first_seq=records[0]["seq"] if records else None,
            last_seq=records[-1]["seq"] if records else None,
            bars=timeline.bars(spans, *window) if window else [],
            tokens=timeline.sum_tokens(records),
            errors=sum(1 for row in rows if row.error),
            categories=sorted(Counter(r["category"] for r in records).items()),
            types=sorted(types),
            filters=filters,
            window_ms=(window[1] - window[0]).total_seconds() * 1000 if window else None,
            after_seq=after_seq,
            more=more,
        )

    async def event(self, request: Request) -> Response:
        """One event in full; out-of-line fields are read only with ``full=1``.

        Even in full, strings are cut to :data:`FULL_STRING_LIMIT` characters:
        a browser takes seconds per megabyte of page, and the raw JSON link
        gives the whole record.
        """
        links = self.links(request)
        thread_id = params.required(request, "thread")
        seq = params.seq(request, "seq", minimum=1)
        if seq is None:
            raise HTTPException(400, "the seq parameter is missing")
        full = request.query_params.get("full") == "1"
        record = await self.store.get_event(
            thread_id, seq, user_id=links.user, load_large_fields=full
        )
        if record is None:
            raise HTTPException(404, f"thread {thread_id!r} has no event {seq} to show")
        large: dict[str, int] = record.pop("large_fields", {})
        limit = FULL_STRING_LIMIT if full else EVENT_STRING_LIMIT
        text = None if "content" in large else render.main_text(record["content"])
        return self.page(
            request,
            "event.html",
            links=links,
            page_title=f"Event {seq} of {thread_id}",
            record=record,
            large=large,
            full=full,
            string_limit=limit,
            text=text if text is None else text[:limit],
            text_cut=text is not None and len(text) > limit,
            content=None if "content" in large else pretty(record["content"], string_limit=limit),
            metadata=None
            if "metadata" in large
            else pretty(record["metadata"], string_limit=limit),
            error=timeline.is_error(record),
            extra={k: v for k, v in record.items() if k not in render.SHOWN_FIELDS},
        )

    async def event_json(self, request: Request) -> Response:
        """One event as JSON, every field in full (``download=1``: as a file)."""
        links = self.links(request)
        thread_id = params.required(request, "thread")
        seq = params.seq(request, "seq", minimum=1)
        if seq is None:
            raise HTTPException(400, "the seq parameter is missing")
        record = await self.store.get_event(thread_id, seq, user_id=links.user)
        if record is None:
            raise HTTPException(404, f"thread {thread_id!r} has no event {seq} to show")
        body = json.dumps(record, ensure_ascii=False, indent=2, default=str).encode()
        headers = {}
        if request.query_params.get("download") == "1":
            headers["content-disposition"] = f'attachment; filename="event-{seq}.json"'
        return Response(body, media_type="application/json", headers=headers)
