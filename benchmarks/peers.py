"""The store beside other MongoDB-backed conversation stores, on the same server.

- OpenAI Agents SDK, ``agents.extensions.memory.MongoDBSession`` (extra
  ``openai-agents[mongodb]``): pymongo's ``AsyncMongoClient``. ``add_items``
  reserves a block of sequence numbers with one ``findOneAndUpdate`` and stores
  the whole batch as *one* document of JSON strings (no transaction);
  ``get_items(limit)`` reads the session document, then the newest documents.
- LangChain, ``langchain_mongodb.MongoDBChatMessageHistory``: the *synchronous*
  ``MongoClient``. Its async methods (``aadd_messages``, ``aget_messages``), used
  here as an async agent server would, run the sync calls in a thread pool;
  ``add_messages`` sends one ``insert`` per message, and a history of the last
  ``history_size`` messages is a ``count`` plus a ``find`` with ``skip``.

The workload is the chat: realistic message events (user questions, AI replies
with tool calls, tool results of 1 to 100 KiB) in groups of 20. Each peer is
given the same messages in its own format. The store keeps more per message
(run id, event type, metadata with usage and latency, a per-message ``seq``),
the OpenAI session less (JSON strings, one document per batch). A peer that is
not installed is skipped.
"""

from __future__ import annotations

import importlib.metadata
import json
from typing import Any

from pymongo import AsyncMongoClient, MongoClient

from .common import Bench
from .payloads import BATCH_SIZE, batches, messages_only, retarget
from .timing import interleave, paired_ratio

PAGE = 50


def _openai_item(content: dict[str, Any]) -> dict[str, Any]:
    """A chat message as an OpenAI Responses input item."""
    kind = content.get("type")
    if kind == "human":
        return {"role": "user", "content": content["content"]}
    if kind == "ai" and content["tool_calls"]:
        call = content["tool_calls"][0]
        return {
            "type": "function_call",
            "call_id": call["id"],
            "name": call["name"],
            "arguments": json.dumps(call["args"]),
        }
    if kind == "tool":
        return {
            "type": "function_call_output",
            "call_id": content["tool_call_id"],
            "output": content["content"],
        }
    return {"role": "assistant", "content": content.get("content", "")}


def _langchain_message(content: dict[str, Any]) -> Any:
    """A chat message as a LangChain message object."""
    from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

    kind = content.get("type")
    if kind == "human":
        return HumanMessage(content=content["content"], id=content["id"])
    if kind == "tool":
        return ToolMessage(
            content=content["content"],
            tool_call_id=content["tool_call_id"],
            name=content["name"],
            id=content["id"],
        )
    return AIMessage(
        content=content["content"],
        tool_calls=content["tool_calls"],
        usage_metadata=content["usage_metadata"],
        response_metadata=content["response_metadata"],
        id=content["id"],
    )


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


async def peers(bench: Bench) -> dict[str, Any]:
    """Writing 20 chat messages and reading the newest 50: the store against each installed peer."""
    rounds, per_round = (3, 3) if bench.quick else (7, 6)
    groups = batches(messages_only(bench.events))[:30]
    thread = "chat"
    result: dict[str, Any] = {"peers": {}, "skipped": {}}
    writes: dict[str, Any] = {}
    reads: dict[str, Any] = {}
    closers: list[Any] = []

    store = await bench.store(bench.database("peers_store"))
    store_groups = [retarget(group, thread) for group in groups]

    async def store_write(i: int) -> None:
        await store.put_batch(store_groups[i % len(groups)])

    async def store_read(_: int) -> None:
        assert len(await store.list_messages(thread, limit=PAGE)) == PAGE

    writes["store"], reads["store"] = store_write, store_read

    try:
        from agents.extensions.memory.mongodb_session import MongoDBSession
    except ImportError as exc:
        result["skipped"]["openai_agents"] = f"not installed ({exc})"
    else:
        client: AsyncMongoClient[Any] = AsyncMongoClient(bench.uri)
        closers.append(client.close)
        session = MongoDBSession(thread, client=client, database=bench.database("peers_openai"))
        item_groups = [[_openai_item(e["content"]) for e in group] for group in groups]

        async def openai_write(i: int) -> None:
            await session.add_items(item_groups[i % len(groups)])  # type: ignore[arg-type]

        async def openai_read(_: int) -> None:
            assert len(await session.get_items(limit=PAGE)) == PAGE

        writes["openai_agents"], reads["openai_agents"] = openai_write, openai_read
        result["peers"]["openai_agents"] = {
            "package": f"openai-agents {_version('openai-agents')}",
            "class": "agents.extensions.memory.MongoDBSession",
            "driver": "pymongo AsyncMongoClient",
        }

    try:
        from langchain_mongodb.chat_message_histories import MongoDBChatMessageHistory
    except ImportError as exc:
        result["skipped"]["langchain"] = f"not installed ({exc})"
    else:
        sync_client: MongoClient[Any] = MongoClient(bench.uri)
        closers.append(sync_client.close)
        history = MongoDBChatMessageHistory(
            None,
            thread,
            database_name=bench.database("peers_langchain"),
            client=sync_client,
            history_size=PAGE,
        )
        message_groups = [[_langchain_message(e["content"]) for e in group] for group in groups]

        async def langchain_write(i: int) -> None:
            await history.aadd_messages(message_groups[i % len(groups)])

        async def langchain_read(_: int) -> None:
            assert len(await history.aget_messages()) == PAGE

        writes["langchain"], reads["langchain"] = langchain_write, langchain_read
        result["peers"]["langchain"] = {
            "package": f"langchain-mongodb {_version('langchain-mongodb')}",
            "class": "langchain_mongodb.MongoDBChatMessageHistory",
            "driver": "pymongo MongoClient (sync), async methods run it in a thread pool",
        }

    try:
        if len(writes) == 1:
            bench.log("peers: none installed, skipped")
            return result
        bench.log(f"peers: {', '.join(writes)}: {rounds} rounds x {per_round} writes of 20")
        write_stats = await interleave(writes, rounds=rounds, ops_per_round=per_round)
        bench.log("peers: newest 50 messages")
        read_stats = await interleave(reads, rounds=rounds, ops_per_round=per_round * 2)
        for label, stats, units in (
            (f"write {BATCH_SIZE} chat messages", write_stats, BATCH_SIZE),
            (f"read the newest {PAGE} messages", read_stats, 1),
        ):
            result.setdefault("rows", []).append(
                {
                    "operation": label,
                    "unit": "message" if units > 1 else "op",
                    "units_per_op": units,
                    "sides": {name: s.summary(units) for name, s in stats.items()},
                    "store_over": {
                        name: paired_ratio(stats["store"], s)
                        for name, s in stats.items()
                        if name != "store"
                    },
                }
            )
        return result
    finally:
        for close in closers:
            closed = close()
            if closed is not None:
                await closed
