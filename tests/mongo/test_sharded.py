"""On a sharded cluster: every call of the interface targets exactly one shard.

These run only when ``MONGODB_URI`` points at a ``mongos`` (for example the
cluster in ``docker/sharded/``); everywhere else they are skipped. They shard a
fresh database with :func:`mongo_runevents.admin.shard_collections`, write a
few threads, then ``explain`` each command the store sent, through mongos.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from mongo_runevents import MongoRunEventStore
from mongo_runevents.admin import shard_collections
from tests.commands import CommandLog
from tests.conftest import database_name
from tests.factories import event, trace

#: Runs only when MONGODB_URI points at a sharded cluster's mongos.
pytestmark = pytest.mark.requires("sharded")


@pytest.fixture
async def sharded_store(
    server_uri: str,
) -> AsyncIterator[tuple[MongoRunEventStore, Any, CommandLog]]:
    """A store on a freshly sharded database behind mongos, with a log of what it sends."""
    sent = CommandLog()
    client: AsyncMongoClient[Any] = AsyncMongoClient(server_uri, event_listeners=[sent])
    name = database_name()
    store = MongoRunEventStore(client[name])
    report = await shard_collections(store)
    assert report.steps
    yield store, client[name], sent
    await client.drop_database(name)
    await client.close()


def _shards_targeted(explained: dict[str, Any]) -> int:
    """How many shards an explain through mongos says the command went to."""
    winning = explained.get("queryPlanner", {}).get("winningPlan", {})
    # find / delete: winningPlan.shards is a list; aggregate: "shards" maps names to plans.
    return len(winning.get("shards") or explained.get("shards") or [])


async def test_every_call_targets_one_shard(sharded_store: Any) -> None:
    """Writes, reads, counts and deletes of a thread each go to exactly one shard."""
    store, database, sent = sharded_store
    threads = [str(uuid.uuid4()) for _ in range(8)]
    for thread_id in threads:
        await store.put_batch([event(thread_id, content=i) for i in range(5)] + [trace(thread_id)])
    thread_id = threads[0]
    sent.clear()
    await store.put(**event(thread_id))
    await store.list_messages(thread_id, limit=3)
    await store.list_messages(thread_id, before_seq=4, limit=2)
    await store.list_events(thread_id, "run-1", event_types=["llm.start"])
    await store.list_messages_by_run(thread_id, "run-1")
    await store.count_messages(thread_id)
    await store.get_last_visible_ai_seq_by_run(thread_id, ["run-1"])
    await store.delete_by_run(thread_id, "run-2")
    replayable = sent.named("find", "aggregate", "delete", "findAndModify")
    assert replayable
    for command in replayable:
        body = {
            k: v
            for k, v in command.items()
            if k
            not in ("lsid", "$db", "$clusterTime", "txnNumber", "autocommit", "startTransaction")
        }
        explained = await database.command("explain", body, verbosity="queryPlanner")
        assert _shards_targeted(explained) == 1, (command, explained)
