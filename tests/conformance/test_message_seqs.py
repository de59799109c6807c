"""get_message_seqs: DeerFlow's message identities to seqs, on every backend (conformance suite)."""

from __future__ import annotations

from typing import Any

import pytest

from mongo_runevents import InvalidEventError, RunEventStore
from mongo_runevents.identities import message_identity
from tests.factories import event, trace


def dumped(kind: str, message_id: str | None, **fields: Any) -> dict[str, Any]:
    """A message as DeerFlow's journal stores it: LangChain's ``model_dump()``."""
    return {
        "content": f"{kind} text",
        "additional_kwargs": {},
        "response_metadata": {},
        "type": kind,
        "name": None,
        "id": message_id,
        **fields,
    }


def human(message_id: str) -> dict[str, Any]:
    """A user turn."""
    return event(event_type="llm.human.input", content=dumped("human", message_id))


def ai(message_id: str, **fields: Any) -> dict[str, Any]:
    """An AI reply."""
    return event(content=dumped("ai", message_id), **fields)


def tool(call_id: str, message_id: str = "tool-row") -> dict[str, Any]:
    """A tool result: identified by its call, not its own id."""
    return event(
        event_type="llm.tool.result",
        content=dumped("tool", message_id, tool_call_id=call_id, status="success"),
    )


def test_the_identity_rule_is_deerflows() -> None:
    """Tool results by tool_call_id, a human copy's __user collapsed, other messages by id."""
    assert message_identity(dumped("tool", "x", tool_call_id="c1")) == "tool:c1"
    assert message_identity(dumped("tool", "x", tool_call_id="")) == "message:x"
    assert message_identity(dumped("human", "m1__user")) == "message:m1"
    assert message_identity(dumped("human", "__user")) == "message:__user"
    assert message_identity(dumped("system", "m1__user")) == "message:m1__user"
    assert message_identity(dumped("ai", "m2")) == "message:m2"
    assert message_identity(dumped("ai", None)) is None
    assert message_identity(dumped("ai", "")) is None
    assert message_identity({"id": 7}) is None
    assert message_identity("plain text") is None


async def test_message_seqs_by_identity(store: RunEventStore) -> None:
    """Each stored identity maps to its seq; unknown identities are left out."""
    await store.put_batch(
        [human("h1__user"), trace(), ai("a1"), tool("call-1"), ai("a2"), event(content="text")]
    )
    found = await store.get_message_seqs(
        "thread-1", ["message:h1", "message:a1", "tool:call-1", "message:a2", "message:nope"]
    )
    assert found == {"message:h1": 1, "message:a1": 3, "tool:call-1": 4, "message:a2": 5}
    assert await store.get_message_seqs("thread-1", ("message:h1__user", "tool:tool-row")) == {}
    assert await store.get_message_seqs("other-thread", ["message:a1"]) == {}
    assert await store.get_message_seqs("thread-1", []) == {}


async def test_the_earliest_seq_wins(store: RunEventStore) -> None:
    """A message stored again later (and a human's __user copy) keeps its first seq."""
    await store.put_batch(
        [human("h1"), ai("a1"), human("h1__user"), ai("a1"), tool("c"), tool("c")]
    )
    found = await store.get_message_seqs("thread-1", {"message:h1", "message:a1", "tool:c"})
    assert found == {"message:h1": 1, "message:a1": 2, "tool:c": 5}


async def test_only_messages_have_identities(store: RunEventStore) -> None:
    """A trace whose content looks like a message is not found."""
    await store.put(
        thread_id="thread-1",
        run_id="run-1",
        event_type="llm.end",
        category="trace",
        content=dumped("ai", "a1"),
    )
    assert await store.get_message_seqs("thread-1", ["message:a1"]) == {}


async def test_message_seqs_follow_deletes_and_users(store: RunEventStore) -> None:
    """A deleted run's messages are gone from the look-up; user_id scopes it."""
    await store.put_batch(
        [ai("a1", run_id="r1", user_id="alice"), ai("a2", run_id="r2", user_id="bob")]
    )
    wanted = ["message:a1", "message:a2"]
    assert await store.get_message_seqs("thread-1", wanted, user_id="bob") == {"message:a2": 2}
    assert await store.delete_by_run("thread-1", "r2") == 1
    assert await store.get_message_seqs("thread-1", wanted) == {"message:a1": 1}
    await store.delete_by_thread("thread-1")
    await store.put_batch([ai("a2")])
    assert await store.get_message_seqs("thread-1", wanted) == {"message:a2": 1}


async def test_many_identities_in_one_call(store: RunEventStore) -> None:
    """A look-up of more identities than one query names finds them all."""
    await store.put_batch([ai(f"a{n}") for n in range(1500)])
    wanted = [f"message:a{n}" for n in range(1500)] + ["message:missing"]
    found = await store.get_message_seqs("thread-1", wanted)
    assert found == {f"message:a{n}": n + 1 for n in range(1500)}


@pytest.mark.parametrize("identities", ["message:a1", b"x", {"message:a1": 1}, [1], None])
async def test_identities_must_be_a_collection_of_str(
    store: RunEventStore, identities: Any
) -> None:
    """A bare str, a mapping or a non-str item is a typed error, not a silent miss."""
    with pytest.raises(InvalidEventError, match="identities"):
        await store.get_message_seqs("thread-1", identities)
