r"""A pytest plugin for DeerFlow's own test suite: the MongoDB store in place of its memory store.

Run from a DeerFlow checkout's ``backend`` folder, with this package installed
in DeerFlow's environment and a MongoDB server (SecantusDB will do)::

    MONGO_RUNEVENTS_TEST_URI=mongodb://127.0.0.1:27017/ PYTHONPATH=/path/to/mongo_runevents \\
        .venv/bin/python -m pytest -p tests.deerflow.deerflow_swap tests/test_run_event_store.py ...

Every ``MemoryRunEventStore()`` DeerFlow's tests build (directly, or through
``make_run_event_store``) is then a :class:`DeerFlowRunEventStore` on a fresh
database of that server; the databases are dropped at the end.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

import deerflow.runtime.events.store as deerflow_stores
import deerflow.runtime.events.store.memory as deerflow_memory
from pymongo import MongoClient

from mongo_runevents.deerflow.config import mongo_settings
from mongo_runevents.deerflow.store import DeerFlowRunEventStore

URI = os.environ.get("MONGO_RUNEVENTS_TEST_URI", "mongodb://127.0.0.1:27017/")
PREFIX = "deerflow_swap_"
#: How many stores DeerFlow's tests built.
built = 0


class MemoryRunEventStore(DeerFlowRunEventStore):  # type: ignore[misc]
    """DeerFlow's memory store's name and constructor (no arguments), the MongoDB store behind it.

    The name is DeerFlow's, as its factory tests check which class the
    factory picked by name.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        global built
        built += 1
        database = PREFIX + uuid.uuid4().hex[:16]
        super().__init__(mongo_settings({"uri": URI, "database": database}, where="swap"))


deerflow_memory.MemoryRunEventStore = MemoryRunEventStore  # type: ignore[misc]
deerflow_stores.MemoryRunEventStore = MemoryRunEventStore  # type: ignore[misc]


def pytest_report_header() -> str:
    """Say which store the run uses."""
    return f"run event store: mongo_runevents DeerFlowRunEventStore on {URI}"


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Say how many MongoDB stores the tests used, and drop their databases."""
    with MongoClient(URI) as client:
        written = [name for name in client.list_database_names() if name.startswith(PREFIX)]
        for name in written:
            client.drop_database(name)
    terminalreporter.write_line(
        f"mongo_runevents stores built in place of MemoryRunEventStore: {built}; "
        f"databases written to: {len(written)}"
    )
