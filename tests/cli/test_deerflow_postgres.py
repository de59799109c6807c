"""``import`` and ``verify`` reading DeerFlow's PostgreSQL database directly.

Needs a PostgreSQL server binary (Debian: ``apt-get install postgresql``) and
psycopg (``pip install 'mongo-runevents[postgres]'``); skipped without them.
The test starts its own server on 127.0.0.1 in a temporary folder (as the
``postgres`` user when the suite runs as root: PostgreSQL refuses root).
"""

from __future__ import annotations

import glob
import json
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from mongo_runevents.embedded import free_port
from tests.cli.test_cli import Cli

psycopg = pytest.importorskip("psycopg")


def _postgres_bin() -> Path | None:
    found = shutil.which("initdb") or next(
        iter(sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)), None
    )
    return None if found is None else Path(found).parent


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL server of our own on 127.0.0.1, stopped afterwards; its URL."""
    bindir = _postgres_bin()
    if bindir is None:
        pytest.skip("no PostgreSQL server binaries (apt-get install postgresql)")
    prefix: list[str] = []
    as_root = os.geteuid() == 0
    if as_root:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root with no postgres user: PostgreSQL refuses root")
        if shutil.which("runuser") is None:
            pytest.skip("running as root without runuser: PostgreSQL refuses to run as root")
        prefix = ["runuser", "-u", "postgres", "--"]
    folder = Path(tempfile.mkdtemp(prefix="mongo-runevents-pg-"))
    if as_root:
        shutil.chown(folder, "postgres")
    port = free_port()
    data = folder / "data"

    def run(*argv: str) -> None:
        subprocess.run([*prefix, *argv], check=True, capture_output=True, timeout=120)

    run(str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres")
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1"
    run(
        str(bindir / "pg_ctl"),
        "-D",
        str(data),
        "-o",
        options,
        "-l",
        str(folder / "log"),
        "-w",
        "start",
    )
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
            capture_output=True,
            timeout=120,
        )
        shutil.rmtree(folder, ignore_errors=True)


def _deerflow_tables(url: str, rows: list[dict[str, Any]], owners: dict[str, str]) -> None:
    """run_events and threads_meta as DeerFlow's models create them on PostgreSQL, with rows."""
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("DROP TABLE IF EXISTS run_events, threads_meta")
        connection.execute(
            "CREATE TABLE run_events (id SERIAL PRIMARY KEY, thread_id VARCHAR(64) NOT NULL, "
            "run_id VARCHAR(64) NOT NULL, user_id VARCHAR(64), event_type VARCHAR(128) NOT NULL, "
            "category VARCHAR(64) NOT NULL, content TEXT, event_metadata JSON, "
            "seq INTEGER NOT NULL, created_at TIMESTAMP WITH TIME ZONE, "
            "CONSTRAINT uq_events_thread_seq UNIQUE (thread_id, seq))"
        )
        connection.execute(
            "CREATE TABLE threads_meta (thread_id VARCHAR(64) PRIMARY KEY, user_id VARCHAR(64), "
            "status VARCHAR(20) NOT NULL DEFAULT 'idle', metadata_json JSON NOT NULL DEFAULT '{}')"
        )
        for thread_id, user_id in owners.items():
            connection.execute(
                "INSERT INTO threads_meta (thread_id, user_id) VALUES (%s, %s)",
                (thread_id, user_id),
            )
        for row in rows:
            connection.execute(
                "INSERT INTO run_events (thread_id, run_id, user_id, event_type, category, "
                "content, event_metadata, seq, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, "
                "%s, %s)",
                (
                    row["thread_id"],
                    "run-1",
                    row.get("user_id"),
                    "llm.ai.response",
                    "message",
                    row["content"],
                    json.dumps(row["metadata"]),
                    row["seq"],
                    row["created_at"],
                ),
            )


def test_import_and_verify_read_deerflows_postgresql_database(
    cli: Cli,
    postgres_url: str,
) -> None:
    """postgresql:// URL: rows read back as DbRunEventStore returns them, owners from threads_meta."""
    paris = timezone(timedelta(hours=2))
    rows: list[dict[str, Any]] = [
        {"content": '{"answer": 42}', "metadata": {}},
        {"content": "5", "metadata": {"content_is_json": True}},
        {"content": "null", "metadata": {"content_is_json": True}},
        {"content": '{"a": 1}', "metadata": {"content_is_json": True, "content_is_dict": True}},
    ]
    for seq, row in enumerate(rows, start=1):
        row.update(
            thread_id="t-pg",
            seq=seq,
            created_at=datetime(2026, 5, 4, 11, 0, seq, 1234, tzinfo=paris),
        )
    _deerflow_tables(postgres_url, rows, {"t-pg": "dora"})

    result = cli("import", postgres_url.replace("postgresql://", "postgresql+asyncpg://"))
    assert result.code == 0, result.err
    assert "4 inserted" in result.out
    messages = json.loads(cli("--json", "messages", "t-pg", "--user", "dora").out)["messages"]
    assert [m["content"] for m in messages] == ['{"answer": 42}', 5, None, {"a": 1}]
    assert messages[0]["created_at"] == "2026-05-04T09:00:01.001234+00:00"
    assert messages[3]["metadata"] == {"content_is_json": True, "content_is_dict": True}
    verified = cli("verify", postgres_url)
    assert verified.code == 0, verified.err


def test_an_unreachable_postgresql_server_is_a_clear_error(cli: Cli) -> None:
    """A URL no server answers: exit 1 with the URL (password masked) and the reason."""
    result = cli(
        "import", f"postgresql://u:secret@127.0.0.1:{free_port()}/deerflow?connect_timeout=2"
    )
    assert result.code != 0
    assert "cannot connect" in result.err
    assert "secret" not in result.err
