"""Templates, links and the shapes pages show records in.

Every page is a Jinja2 template with autoescaping on: record fields reach the
HTML only as escaped text, and no template marks content ``|safe``. Links are
built here, never in templates from raw text: a path of this app plus query
parameters encoded with :func:`urllib.parse.urlencode`, so an id holding
``"``, ``&``, ``/`` or ``javascript:`` stays a parameter value. Nothing in a
record ever becomes an ``href`` by itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode

import jinja2

from ..models import AI_REPLY_TYPES, HIDDEN_CALLER_PREFIX
from . import timeline
from .spans import tool_calls
from .values import human_size, preview

#: Characters of a message's text shown in the conversation before "show all".
MESSAGE_TEXT_LIMIT = 2000
#: Characters of an event's content shown in a timeline row.
ROW_PREVIEW_LIMIT = 160

#: Record fields the event page shows in its header; any others are listed after them.
SHOWN_FIELDS = frozenset(
    {"thread_id", "run_id", "seq", "event_type", "category", "created_at", "content", "metadata"}
)

_ROLES = {
    "llm.human.input": "human",
    "human_message": "human",
    "llm.tool.result": "tool",
    **dict.fromkeys(AI_REPLY_TYPES, "ai"),
}


def environment() -> jinja2.Environment:
    """The template environment: the package's templates, autoescaping on everywhere."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("mongo_runevents.web", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["size"] = human_size
    env.filters["ms"] = format_ms
    env.filters["thousands"] = lambda n: f"{n:,}"
    return env


def format_ms(value: float | None) -> str:
    """Milliseconds as ``412 ms`` or ``3.2 s``; ``…`` for none."""
    if value is None:
        return "…"
    if value < 1:
        return f"{value:.2f} ms"
    if value < 1000:
        return f"{value:.0f} ms"
    return f"{value / 1000:.1f} s"


@dataclass(frozen=True)
class Links:
    """URLs of this app's pages, carrying the user filter; every value URL-encoded."""

    root: str = ""
    user: str | None = None

    def _url(self, path: str, **params: Any) -> str:
        if self.user is not None:
            params["user"] = self.user
        query = urlencode({k: v for k, v in params.items() if v is not None}, quote_via=quote)
        return f"{self.root}{path}?{query}" if query else f"{self.root}{path}"

    def all_users(self) -> Links:
        """The same links without the user filter."""
        return Links(self.root)

    def path(self, path: str) -> str:
        """A path of this app with no query (a form's action: the form sends the fields)."""
        return f"{self.root}{path}"

    def static(self, name: str) -> str:
        """A file of the app's own (CSS, the live tail's script)."""
        return f"{self.root}/static/{quote(name)}"

    def threads(self, before: str | None = None) -> str:
        """The threads page (newest activity first), from ``before``."""
        return self._url("/", before=before)

    def thread(
        self, thread_id: str, *, before_seq: int | None = None, after_seq: int | None = None
    ) -> str:
        """A thread's conversation, a page before or after a seq."""
        return self._url("/thread", id=thread_id, before_seq=before_seq, after_seq=after_seq)

    def search(self, thread_id: str, query: str, *, before_seq: int | None = None) -> str:
        """A search of a thread's messages (one page of them, before a seq)."""
        return self._url("/thread", id=thread_id, q=query, before_seq=before_seq)

    def run(
        self,
        thread_id: str,
        run_id: str,
        *,
        after_seq: int | None = None,
        filters: RunFilters | None = None,
    ) -> str:
        """A run's timeline, from after a seq, narrowed by ``filters``."""
        narrowed = filters or RunFilters()
        return self._url(
            "/run",
            thread=thread_id,
            id=run_id,
            after_seq=after_seq,
            type=narrowed.event_type,
            category=narrowed.category,
            errors=1 if narrowed.errors else None,
        )

    def run_at(self, thread_id: str, run_id: str, seq: int, *, on_page: bool) -> str:
        """The row of event ``seq`` on a run's timeline (``on_page``: the page shown)."""
        if on_page:
            return f"#seq-{seq}"
        return self.run(thread_id, run_id, after_seq=seq - 1) + f"#seq-{seq}"

    def event(self, thread_id: str, seq: int, *, full: bool = False) -> str:
        """One event; ``full`` loads its out-of-line fields and cuts less."""
        return self._url("/event", thread=thread_id, seq=seq, full=1 if full else None)

    def event_json(self, thread_id: str, seq: int, *, download: bool = False) -> str:
        """One event as raw JSON, every field in full (``download``: as a file)."""
        return self._url("/event.json", thread=thread_id, seq=seq, download=1 if download else None)

    def live(self, thread_id: str, *, category: str | None = None) -> str:
        """The live tail of a thread (of one category, if given)."""
        return self._url("/live", thread=thread_id, category=category)

    def stream(
        self,
        thread_id: str,
        after_seq: int,
        *,
        category: str | None = None,
        generation: int | None = None,
    ) -> str:
        """The server-sent events behind the live tail, after a seq of a generation of the thread."""
        return self._url(
            "/live/events",
            thread=thread_id,
            after_seq=after_seq,
            gen=generation,
            category=category,
        )


@dataclass(frozen=True)
class RunFilters:
    """What a run page is narrowed to: one event type, one category, errors only."""

    event_type: str | None = None
    category: str | None = None
    errors: bool = False

    @property
    def active(self) -> bool:
        """Whether anything is filtered out."""
        return bool(self.event_type or self.category or self.errors)


@dataclass
class ToolCall:
    """A tool call an AI message asks for, and the seq of its result where the page has it."""

    name: str
    call_id: str
    arguments: str
    result_seq: int | None = None


@dataclass
class ChatMessage:
    """A message event as a chat bubble."""

    record: Mapping[str, Any]
    role: str
    text: str
    text_cut: bool
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_name: str = ""
    status: str = ""
    hidden: bool = False
    error: bool = False
    usage: timeline.Usage | None = None
    #: For a tool result: the seq of the AI message (on the page) whose tool call it answers.
    answers_seq: int | None = None


def _text_of(content: Any) -> Any:
    """The displayable part of a message's content (LangChain message dicts or plain values)."""
    if isinstance(content, dict) and "content" in content:
        inner = content["content"]
        if isinstance(inner, list):
            texts = []
            for part in inner:
                if isinstance(part, str):
                    texts.append(part)
                elif isinstance(part, dict) and isinstance(part.get("text"), str):
                    texts.append(part["text"])
                else:
                    texts.append(preview(part, MESSAGE_TEXT_LIMIT)[0])
            return "\n".join(texts)
        return inner
    return content


def main_text(content: Any) -> str | None:
    """The text a person reads in an event's content (a string, or a message's ``content``)."""
    text = _text_of(content)
    return text if isinstance(text, str) and text else None


def summary(content: Any, limit: int = ROW_PREVIEW_LIMIT) -> tuple[str, bool]:
    """A one-line summary of an event's content: a message's text or its tool calls, else JSON."""
    text = main_text(content)
    if text is not None:
        return preview(text, limit)
    calls = content.get("tool_calls") if isinstance(content, dict) else None
    if isinstance(calls, list) and calls:
        described = [
            f"{call.get('name', '?')}({preview(call.get('args'), limit)[0]})"
            for call in calls[:10]
            if isinstance(call, dict)
        ]
        if described:
            return preview("calls " + ", ".join(described), limit)
    return preview(content, limit)


def chat_message(record: Mapping[str, Any]) -> ChatMessage:
    """A message record as a bubble: who speaks, what they say (cut), tool calls asked for."""
    content = record.get("content")
    kind = content.get("type") if isinstance(content, dict) else None
    role = kind if kind in ("human", "ai", "tool", "system") else None
    role = role or _ROLES.get(record.get("event_type", ""), "other")
    text, cut = preview(_text_of(content), MESSAGE_TEXT_LIMIT)
    message = ChatMessage(record, role, text, cut)
    caller = timeline.caller_of(record)
    message.hidden = caller.startswith(HIDDEN_CALLER_PREFIX)
    message.error = timeline.is_error(record)
    message.usage = timeline.usage_of(record)
    if isinstance(content, dict):
        for call in content.get("tool_calls") or ():
            if isinstance(call, dict):
                message.tool_calls.append(
                    ToolCall(
                        name=str(call.get("name", "")),
                        call_id=str(call.get("id", "")),
                        arguments=preview(call.get("args"), 300)[0],
                    )
                )
        name, status = content.get("name"), content.get("status")
        message.tool_name = name if isinstance(name, str) and role == "tool" else ""
        message.status = status if isinstance(status, str) else ""
    return message


def chat_messages(records: Iterable[Mapping[str, Any]]) -> list[ChatMessage]:
    """A page of messages as bubbles, each tool result linked to the AI message that asked for it."""
    messages = [chat_message(record) for record in records]
    asked: dict[str, tuple[int, ToolCall]] = {}
    for message in messages:
        for call in message.tool_calls:
            if call.call_id:
                asked[call.call_id] = (message.record["seq"], call)
        answered = asked.get(_tool_call_id(message.record))
        if message.role == "tool" and answered is not None:
            message.answers_seq = answered[0]
            answered[1].result_seq = message.record["seq"]
    return messages


def _tool_call_id(record: Mapping[str, Any]) -> str:
    content = record.get("content")
    call_id = content.get("tool_call_id") if isinstance(content, dict) else None
    return call_id if isinstance(call_id, str) else ""


@dataclass
class RunSummary:
    """A run in a thread's run list: how it went, how long it took, what it cost."""

    run_id: str
    outcome: timeline.Outcome
    tokens: timeline.Usage
    model_calls: int
    #: Whether every summary event of the run was read (else the counts are lower bounds).
    complete: bool


def run_summary(run_id: str, records: Sequence[Mapping[str, Any]], *, complete: bool) -> RunSummary:
    """The summary of a run from its lifecycle, error and model-call events."""
    calls = sum(1 for r in records if r.get("event_type") in AI_REPLY_TYPES)
    return RunSummary(
        run_id, timeline.outcome(records), timeline.sum_tokens(records).total, calls, complete
    )


def run_ends(
    messages: list[ChatMessage], outcomes: dict[str, timeline.Outcome]
) -> dict[int, timeline.Outcome]:
    """Where a run that did not succeed says so: the seq of its last message on the page."""
    last: dict[str, int] = {}
    for message in messages:
        last[message.record["run_id"]] = message.record["seq"]
    ends = {}
    for run_id, seq in last.items():
        outcome = outcomes.get(run_id)
        if outcome is None or outcome.status == "succeeded":
            continue
        if outcome.end_seq is None or outcome.end_seq > seq:
            ends[seq] = outcome
    return ends


def matches(record: Mapping[str, Any], query: str) -> bool:
    """Whether a message's text (or its tool calls' names and arguments) holds ``query``, any case."""
    wanted = query.casefold()
    content = record.get("content")
    text = _text_of(content)
    if isinstance(text, str) and wanted in text.casefold():
        return True
    calls = content.get("tool_calls") if isinstance(content, dict) else None
    for call in calls if isinstance(calls, list) else ():
        if isinstance(call, dict):
            described = f"{call.get('name', '')} {preview(call.get('args'), 4000)[0]}"
            if wanted in described.casefold():
                return True
    return False


@dataclass
class TimelineRow:
    """An event as a row of a run's timeline."""

    record: Mapping[str, Any]
    offset_ms: float | None
    preview: str
    preview_cut: bool
    caller: str
    error: bool
    usage: timeline.Usage | None
    #: For a tool result: the seq of the AI message on the page that asked for it.
    answers_seq: int | None = None


def timeline_rows(
    records: Iterable[Mapping[str, Any]], window_start: datetime | None
) -> list[TimelineRow]:
    """The rows of a timeline: each event's time since the page's first, and a preview."""
    rows = []
    asked: dict[str, int] = {}
    for record in records:
        if record.get("event_type") in AI_REPLY_TYPES:
            for call_id, _ in tool_calls(record):
                asked[call_id] = record["seq"]
        when = timeline.parse_time(record.get("created_at"))
        offset = (
            (when - window_start).total_seconds() * 1000
            if when is not None and window_start is not None
            else None
        )
        text, cut = summary(record.get("content"))
        rows.append(
            TimelineRow(
                record,
                offset,
                text,
                cut,
                timeline.caller_of(record),
                timeline.is_error(record),
                timeline.usage_of(record),
                asked.get(_tool_call_id(record)),
            )
        )
    return rows


def stream_item(record: Mapping[str, Any], links: Links) -> dict[str, Any]:
    """What the live tail sends for one event: a summary, and the link to the event page."""
    text, cut = summary(record.get("content"))
    when = timeline.parse_time(record.get("created_at"))
    return {
        "seq": record["seq"],
        "run_id": record["run_id"],
        "run_href": links.run(record["thread_id"], record["run_id"]),
        "time": when.strftime("%H:%M:%S") if when is not None else str(record.get("created_at")),
        "category": record["category"],
        "event_type": record["event_type"],
        "created_at": record["created_at"],
        "preview": text + ("…" if cut else ""),
        "error": timeline.is_error(record),
        "href": links.event(record["thread_id"], record["seq"]),
    }
