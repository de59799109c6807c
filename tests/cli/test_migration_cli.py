"""``import`` and ``verify`` on DeerFlow's sources: owners, its database, misplaced folders, checks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mongo_runevents.deerflow_db import postgres_conninfo, sqlite_path
from mongo_runevents.formats import SourceError
from mongo_runevents.transfer import is_database_url
from tests.cli.test_cli import Cli
from tests.deerflow_sources import deerflow_db_reads_back, write_jsonl_store, write_sqlite_store


def _event(thread_id: str, n: int, **fields: Any) -> dict[str, Any]:
    return {
        "thread_id": thread_id,
        "run_id": "run-1",
        "event_type": "llm.ai.response",
        "category": "message",
        "content": {"type": "ai", "content": f"answer {n}"},
        "metadata": {"caller": "lead_agent"},
        "created_at": f"2026-05-04T09:00:{n:02d}.000001+00:00",
        **fields,
    }


def _jsonl_store(base: Path) -> Path:
    write_jsonl_store(base, [[_event("t1", n) for n in range(1, 6)], [_event("t2", 9)]])
    return base


def _messages(cli: Cli, thread_id: str, *user: str) -> list[dict[str, Any]]:
    result = cli("--json", "messages", thread_id, *user)
    messages: list[dict[str, Any]] = json.loads(result.out)["messages"]
    return messages


def test_jsonl_import_without_owners_says_the_events_have_none(cli: Cli, tmp_path: Path) -> None:
    """DeerFlow's JSONL lines carry no user_id: the import says so, and a user's read sees nothing."""
    result = cli("import", str(_jsonl_store(tmp_path / "df")))
    assert result.code == 0, result.err
    assert "6 events have no owner" in result.err
    assert _messages(cli, "t1", "--user", "alice") == []


def test_owners_from_deerflows_database_file_or_default(cli: Cli, tmp_path: Path) -> None:
    """--owners takes threads_meta of DeerFlow's database or a mapping file; --owner the rest."""
    source = _jsonl_store(tmp_path / "df")
    db_file = tmp_path / "deerflow.db"
    write_sqlite_store(db_file, [], {"t1": "alice"})
    result = cli("import", str(source), "--owners", f"sqlite:///{db_file}", "--owner", "default")
    assert result.code == 0, result.err
    assert "owner set on 6 events" in result.out
    assert len(_messages(cli, "t1", "--user", "alice")) == 5
    assert len(_messages(cli, "t2", "--user", "default")) == 1

    mapping = tmp_path / "owners.csv"
    mapping.write_text("thread_id,user_id\nt1,bob\n", encoding="utf-8")
    other = tmp_path / "df2"
    write_jsonl_store(other, [[_event("t3", 1)]])
    (tmp_path / "owners.json").write_text(json.dumps({"t3": "bob"}), encoding="utf-8")
    assert cli("import", str(other), "--owners", str(tmp_path / "owners.json")).code == 0
    assert len(_messages(cli, "t3", "--user", "bob")) == 1


def test_a_bad_owner_is_refused_before_anything_is_read(cli: Cli, tmp_path: Path) -> None:
    """An empty owner id, or a mapping that is not thread,user, stops the import with a clear error."""
    source = _jsonl_store(tmp_path / "df")
    assert "owner must be a non-empty string" in cli("import", str(source), "--owner", "").err
    bad = tmp_path / "owners.csv"
    bad.write_text("t1,alice,extra\n", encoding="utf-8")
    result = cli("import", str(source), "--owners", str(bad))
    assert result.code == 2 or result.code == 1
    assert "expected thread_id,user_id" in result.err
    assert cli("--json", "threads").out.count("thread_id") == 0


def test_import_reads_deerflows_sqlite_database_as_deerflow_serves_it(
    cli: Cli, tmp_path: Path
) -> None:
    """sqlite:/// URL: run_events rows as DbRunEventStore returns them, owners from threads_meta."""
    contents: list[Any] = ['{"answer": 42}', 5, None, True, "5", "null", [1], {"a": 1}]
    events = [_event("t-db", n, content=value) for n, value in enumerate(contents, start=1)]
    db_file = tmp_path / "deerflow.db"
    written = write_sqlite_store(db_file, events, {"t-db": "carol"})
    result = cli("import", f"sqlite:///{db_file}")
    assert result.code == 0, result.err
    assert "8 inserted" in result.out
    stored = _messages(cli, "t-db", "--user", "carol")
    expected = [deerflow_db_reads_back(event) for event in written]
    assert [{k: r[k] for k in expected[0]} for r in stored] == expected
    assert [r["content"] for r in stored] == contents
    assert stored[0]["created_at"] == "2026-05-04T09:00:01.000001+00:00"
    again = cli("import", f"sqlite:///{db_file}")
    assert "0 inserted, 8 already there" in again.out


def test_database_urls_are_told_from_paths_and_checked() -> None:
    """sqlite:/// and postgresql:// URLs (SQLAlchemy's driver spellings too) are sources, not paths."""
    assert is_database_url("sqlite:///deerflow.db")
    assert is_database_url("sqlite+aiosqlite:////var/deerflow.db")
    assert is_database_url("postgresql+asyncpg://u:p@host/db")
    assert not is_database_url("threads")
    assert not is_database_url("C:/exports")
    assert sqlite_path("sqlite:////var/lib/deerflow.db") == Path("/var/lib/deerflow.db")
    assert sqlite_path("sqlite+aiosqlite:///data/deerflow.db") == Path("data/deerflow.db")
    with pytest.raises(SourceError, match="names no database file"):
        sqlite_path("sqlite:///:memory:")
    assert postgres_conninfo("postgresql+asyncpg://u:p@h:5432/d") == "postgresql://u:p@h:5432/d"
    assert postgres_conninfo("postgres://h/d") == "postgresql://h/d"


def test_a_missing_database_file_is_a_clear_error(cli: Cli, tmp_path: Path) -> None:
    """A sqlite URL naming no file fails with exit 1 and says so; nothing is created."""
    result = cli("import", f"sqlite:///{tmp_path / 'nope.db'}")
    assert result.code != 0
    assert "no such database file" in result.err
    assert not (tmp_path / "nope.db").exists()


def test_an_empty_folder_is_an_error_not_an_empty_import(cli: Cli, tmp_path: Path) -> None:
    """import of a folder with nothing to read fails instead of reporting 0 files."""
    (tmp_path / "empty").mkdir()
    result = cli("import", str(tmp_path / "empty"))
    assert result.code != 0
    assert "nothing to import" in result.err


@pytest.mark.parametrize("below", ["threads", "threads/t1"])
def test_a_folder_one_level_too_deep_is_refused_with_the_right_folder_named(
    cli: Cli, tmp_path: Path, below: str
) -> None:
    """DeerFlow's threads/ folder (or one thread's) given as the source: an error, not plain JSONL."""
    source = _jsonl_store(tmp_path / "df")
    result = cli("import", str(source / below))
    assert result.code != 0
    assert "give the folder that holds threads/" in result.err
    assert cli("--json", "threads").out.count("thread_id") == 0


def test_import_json_lists_each_bad_line_and_no_at_at(cli: Cli, tmp_path: Path) -> None:
    """--json names every bad line with its reason; JSON errors read 'starting at column'."""
    path = tmp_path / "export.jsonl"
    good = json.dumps({**_event("t1", 1), "seq": 1})
    path.write_text(good + "\n" + '{"thread_id": "unterminated', encoding="utf-8")
    result = cli("--json", "import", str(path))
    report = json.loads(result.out)
    assert report["bad_list"] == [
        {
            "source": str(path),
            "line": 2,
            "reason": "not valid JSON (Unterminated string starting at column 15)",
        }
    ]
    assert "at at" not in result.err


def test_threads_last_activity_after_an_import_is_the_events_time(cli: Cli, tmp_path: Path) -> None:
    """The threads listing shows the imported events' latest time, not the time of the import."""
    cli("import", str(_jsonl_store(tmp_path / "df")))
    threads = {t["thread_id"]: t for t in json.loads(cli("--json", "threads").out)["threads"]}
    assert threads["t1"]["updated_at"] == "2026-05-04T09:00:05.000001+00:00"


def test_verify_agrees_after_an_import_and_lists_each_difference(cli: Cli, tmp_path: Path) -> None:
    """verify exits 0 on a faithful import; a changed, a missing and an unowned event are each listed."""
    source = _jsonl_store(tmp_path / "df")
    assert cli("import", str(source), "--owner", "alice").code == 0
    agreed = cli("verify", str(source), "--owner", "alice")
    assert agreed.code == 0, agreed.err
    assert "0 differences" in agreed.out

    run_file = source / "threads" / "t1" / "runs" / "run-1.jsonl"
    lines = run_file.read_text(encoding="utf-8").splitlines()
    changed = json.loads(lines[1])
    changed["content"] = {"type": "ai", "content": "edited"}
    lines[1] = json.dumps(changed)
    lines.append(json.dumps({**json.loads(lines[0]), "seq": 6}))
    run_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = cli("--json", "verify", str(source), "--owner", "alice")
    assert result.code == 1
    report = json.loads(result.out)
    kinds = {(d["kind"], d["seq"]) for d in report["differences"]}
    assert ("changed", 2) in kinds
    assert ("missing", 6) in kinds
    assert any("differs in content" in d["detail"] for d in report["differences"])

    wrong_owner = cli("verify", str(_jsonl_store(tmp_path / "df2")), "--owner", "bob")
    assert wrong_owner.code == 1
    assert "user_id" in wrong_owner.err


def test_postgresql_without_its_driver_says_which_extra_to_install(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without psycopg a postgresql:// source fails with the pip command, not a traceback."""
    import mongo_runevents.deerflow_db as deerflow_db

    def no_driver() -> Any:
        raise ImportError("psycopg")

    monkeypatch.setattr(deerflow_db, "_psycopg", no_driver)
    result = cli("import", "postgresql://deerflow:secret@127.0.0.1:1/deerflow")
    assert result.code != 0
    assert "pip install 'mongo-runevents[postgres]'" in result.err
    assert "secret" not in result.err


def _record(seq: int, n: int, **fields: Any) -> str:
    return json.dumps({**_event("t1", n), "seq": seq, **fields})


@pytest.mark.parametrize("on_conflict", ["skip", "renumber", "stop"])
def test_every_kind_of_conflict_and_bad_line_is_named_by_file_and_line(
    cli: Cli, tmp_path: Path, on_conflict: str
) -> None:
    """A user sees file:line for each conflicting record and the other record it collides with."""
    stored = tmp_path / "stored.jsonl"
    stored.write_text(_record(1, 1, event_id="held") + "\n", encoding="utf-8")
    assert cli("import", str(stored)).code == 0
    path = tmp_path / "export.jsonl"
    lines = [
        _record(1, 2),  # 1: seq 1 holds another (stored) event
        _record(5, 5, event_id="key"),  # 2
        _record(6, 6, event_id="key"),  # 3: its event_id is held by line 2
        _record(7, 7),  # 4
        _record(7, 8),  # 5: line 4 has seq 7 too
        _record(9, 9, event_id="held"),  # 6: its event_id is held by the stored seq 1
        '{"thread_id": 5}',  # 7: a bad line
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    at = f"{path}:"
    dry = ("--json", "import", str(path), "--on-conflict", on_conflict, "--dry-run")
    report = json.loads(cli(*dry).out)
    assert [(c["line"], c["reason"]) for c in report["conflict_list"]] == [
        (1, "seq 1 holds another event"),
        (3, f"its event_id 'key' is held by another event ({at}2)"),
        (5, f"{at}4 has seq 7 too"),
        (6, "its event_id 'held' is held by another event (seq 1)"),
    ]
    assert {c["source"] for c in report["conflict_list"]} == {str(path)}
    assert [(b["source"], b["line"]) for b in report["bad_list"]] == [(str(path), 7)]
    result = cli("import", str(path), "--on-conflict", on_conflict)
    expected = [
        f"{at}1 (thread 't1', seq 1): seq 1 holds another event",
        f"{at}3 (thread 't1', seq 6): its event_id 'key' is held by another event ({at}2)",
        f"{at}5 (thread 't1', seq 7): {at}4 has seq 7 too",
        f"{at}6 (thread 't1', seq 9): its event_id 'held' is held by another event (seq 1)",
    ]
    # Under renumber only the records skipped (event_id conflicts) are listed one by one,
    # the renumbered ones per thread.
    listed = expected if on_conflict != "renumber" else [expected[1], expected[3]]
    for line in listed:
        assert line in result.err, (line, result.err)
    if on_conflict == "renumber":
        assert f"{at}1 seq 1 -> " in result.err
        assert f"{at}5 seq 7 -> " in result.err
    assert "(record " not in result.err
    assert "of the input" not in result.err
    assert "1 bad" in result.out
