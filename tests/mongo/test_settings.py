"""Store settings are checked when the store is built, never at the first write (ConfigurationError)."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

import pytest

from mongo_runevents import ConfigurationError, MemoryRunEventStore, MongoRunEventStore
from mongo_runevents.mongo.setup import RETENTION_SETTING
from tests.factories import trace


def _database() -> Any:
    from mongomock_motor import AsyncMongoMockClient

    return AsyncMongoMockClient()["db"]


@pytest.mark.parametrize("seconds", ["5", math.nan, math.inf, -1.0, True, 10**9])
def test_a_retry_budget_that_is_no_finite_number_of_seconds_is_refused(seconds: Any) -> None:
    """transaction_retry_seconds "5", NaN, infinity, negative, a bool or past a day: ConfigurationError."""
    with pytest.raises(ConfigurationError, match="transaction_retry_seconds"):
        MongoRunEventStore(_database(), transaction_retry_seconds=seconds)


@pytest.mark.parametrize(
    "options",
    [
        {"inline_limit_bytes": "1000"},
        {"max_event_bytes": "big"},
        {"max_event_bytes": 0},
        {"transactions": "yes"},
        {"max_trace_content": "10"},
        {"json_default": "str"},
    ],
)
def test_mistyped_store_settings_are_refused_when_the_store_is_built(
    options: dict[str, Any],
) -> None:
    """A setting of the wrong type is a ConfigurationError at construction, not a TypeError later."""
    with pytest.raises(ConfigurationError):
        MongoRunEventStore(_database(), **options)


@pytest.mark.parametrize("options", [{"max_trace_content": -1}, {"json_default": 5}])
def test_the_memory_store_checks_its_write_policy_alike(options: dict[str, Any]) -> None:
    """The Memory store refuses a bad write policy with the same ConfigurationError."""
    with pytest.raises(ConfigurationError):
        MemoryRunEventStore(**options)


async def test_a_recorded_retention_too_long_to_store_fails_set_up_clearly() -> None:
    """A retention of 3,000,000 days recorded by an older version: set-up says so; no OverflowError per write."""
    database = _database()
    await database["run_events_settings"].insert_one(
        {"_id": RETENTION_SETTING, "periods": {"trace": 3_000_000 * 86_400.0}}
    )
    store = MongoRunEventStore(database)
    with pytest.raises(ConfigurationError, match="init --retention"):
        await store.put(**trace())


async def test_the_longest_retention_accepted_still_writes() -> None:
    """A retention of 100 years is accepted and a trace write gets its expiry."""
    store = MongoRunEventStore(_database(), retention={"trace": timedelta(days=36_525)})
    assert (await store.put(**trace()))["seq"] == 1
