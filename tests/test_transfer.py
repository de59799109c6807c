"""Tests of the import file formats (``mongo_runevents.transfer``), without a server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mongo_runevents.formats import (
    BadLine,
    Item,
    SourceError,
    SourceRecord,
    decode_content,
    deerflow_db_record,
    read_deerflow_rows,
    read_file,
    read_jsonl,
)
from mongo_runevents.importing import time_key
from mongo_runevents.transfer import detect_format, source_files


def _record(seq: int = 1, **fields: Any) -> dict[str, Any]:
    record = {
        "thread_id": "t1",
        "run_id": "r1",
        "event_type": "llm.ai.response",
        "category": "message",
        "content": {"type": "ai", "content": "hi"},
        "metadata": {"caller": "lead"},
        "seq": seq,
        "created_at": "2025-07-01T12:00:00.000001+00:00",
    }
    record.update(fields)
    return record


def _write_lines(path: Path, lines: list[Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)
    path.write_text(text, encoding="utf-8")
    return path


def _bad(items: list[Item]) -> list[tuple[int, str]]:
    return [(item.line_number, item.reason) for item in items if isinstance(item, BadLine)]


def _good(items: list[Item]) -> list[SourceRecord]:
    return [item for item in items if isinstance(item, SourceRecord)]


def test_detect_format_by_path(tmp_path: Path) -> None:
    """auto: a folder with threads/ is DeerFlow JSONL, a .json file DeerFlow rows, else jsonl."""
    (tmp_path / "store" / "threads").mkdir(parents=True)
    (tmp_path / "plain").mkdir()
    assert detect_format(tmp_path / "store") == "deerflow-jsonl"
    assert detect_format(tmp_path / "plain") == "jsonl"
    assert detect_format(tmp_path / "rows.json") == "deerflow-db"
    assert detect_format(tmp_path / "rows.JSON") == "deerflow-db"
    assert detect_format(tmp_path / "export.jsonl") == "jsonl"


def test_jsonl_yields_records_and_attributes_bad_lines(tmp_path: Path) -> None:
    """jsonl: valid lines come back with their line numbers, each bad one says why."""
    path = _write_lines(
        tmp_path / "export.jsonl",
        [
            _record(1),
            "",
            "{not json",
            "[1, 2]",
            _record(0),
            _record(3, created_at="2025-13-01T00:00:00"),
            _record(4, extra=1),
            _record(5),
        ],
    )
    items = list(read_jsonl(path))
    assert [(item.line_number, item.record["seq"]) for item in _good(items)] == [(1, 1), (8, 5)]
    assert all(item.source == str(path) for item in _good(items))
    bad = _bad(items)
    assert [number for number, _ in bad] == [3, 4, 5, 6, 7]
    assert bad[0][1].startswith("not valid JSON")
    assert bad[1][1] == "a record must be a JSON object, got an array"
    assert bad[2][1].startswith("seq: ")
    assert bad[3][1].startswith("created_at: ")
    assert "unknown field" in bad[4][1]
    first_bad = next(item for item in items if isinstance(item, BadLine))
    assert str(first_bad) == f"{path}:3: {bad[0][1]}"


def test_jsonl_refuses_invalid_utf8_per_line_and_skips_a_bom(tmp_path: Path) -> None:
    """A line that is not UTF-8 is one bad line; a byte-order mark on line 1 is ignored."""
    path = tmp_path / "export.jsonl"
    good = json.dumps(_record(1)).encode()
    path.write_bytes(b"\xef\xbb\xbf" + good + b"\n" + b'{"a": "\xff"}\n' + good + b"\n")
    items = list(read_jsonl(path))
    assert [item.line_number for item in _good(items)] == [1, 3]
    assert _bad(items)[0][0] == 2
    assert "not valid UTF-8" in _bad(items)[0][1]


def test_deerflow_jsonl_takes_ids_from_the_path(tmp_path: Path) -> None:
    """deerflow-jsonl: missing ids come from the path; a seed line keeps its own run_id, a wrong thread is bad."""
    runs = tmp_path / "threads" / "thread-a" / "runs"
    line = {key: value for key, value in _record(1).items() if key not in ("thread_id", "run_id")}
    _write_lines(runs / "run-2.jsonl", [{**line, "seq": 3, "id": 99}])
    _write_lines(
        runs / "run-1.jsonl",
        [
            line,
            {**line, "seq": 2, "thread_id": "thread-a"},
            {**line, "seq": 4, "run_id": "other"},
            {**line, "seq": 5, "thread_id": "thread-b"},
        ],
    )
    (runs / "notes.txt").write_text("not a run file")

    files = source_files(tmp_path, "deerflow-jsonl")
    assert [path.name for path in files] == ["run-1.jsonl", "run-2.jsonl"]
    items = [item for path in files for item in read_file(path, "deerflow-jsonl")]
    good = _good(items)
    assert [(r.record["run_id"], r.record["seq"]) for r in good] == [
        ("run-1", 1),
        ("run-1", 2),
        ("other", 4),  # DeerFlow writes a batch of seeds of several runs into one run's file
        ("run-2", 3),
    ]
    assert {r.record["thread_id"] for r in good} == {"thread-a"}
    assert "id" not in good[3].record  # other keys are left out
    assert _bad(items) == [
        (4, "thread_id: 'thread-b' does not match the file's folder ('thread-a')")
    ]


def test_deerflow_jsonl_needs_the_layout(tmp_path: Path) -> None:
    """A folder without threads/, or a file outside the layout, is a SourceError."""
    with pytest.raises(SourceError, match="no threads/ folder"):
        source_files(tmp_path, "deerflow-jsonl")
    stray = _write_lines(tmp_path / "run.jsonl", [_record(1)])
    with pytest.raises(SourceError, match="not a DeerFlow run file"):
        source_files(stray, "deerflow-jsonl")
    with pytest.raises(SourceError, match="no such file"):
        source_files(tmp_path / "missing", "jsonl")


def test_jsonl_folder_reads_every_jsonl_file_below_it(tmp_path: Path) -> None:
    """jsonl on a folder: every *.jsonl file below it, sorted."""
    _write_lines(tmp_path / "b.jsonl", [_record(2)])
    _write_lines(tmp_path / "sub" / "a.jsonl", [_record(1)])
    (tmp_path / "readme.txt").write_text("x")
    assert source_files(tmp_path, "jsonl") == [tmp_path / "b.jsonl", tmp_path / "sub" / "a.jsonl"]


@pytest.mark.parametrize(
    ("content", "metadata", "expected"),
    [
        ('{"type": "ai"}', {"content_is_json": True, "content_is_dict": True}, {"type": "ai"}),
        ("[1, 2]", {"content_is_json": True}, [1, 2]),
        ("5", {"content_is_json": True}, 5),
        ("null", {"content_is_json": True}, None),
        ("true", {"content_is_json": True}, True),
        ('{"answer": 42}', {}, '{"answer": 42}'),  # a string that looks like JSON stays one
        ("5", {}, "5"),
        ("{not json", {"content_is_json": True}, "{not json"),  # DeerFlow keeps it too
        ({"already": "a dict"}, {}, {"already": "a dict"}),
    ],
)
def test_decode_content_follows_deerflows_content_is_json_marker(
    content: Any, metadata: dict[str, Any], expected: Any
) -> None:
    """content is decoded exactly when DeerFlow's row says content_is_json, as its store does."""
    assert decode_content(content, metadata) == expected


def test_deerflow_db_row_decodes_json_strings() -> None:
    """deerflow-db: marked content and JSON-string metadata are decoded; created_at served as DeerFlow does."""
    row = {
        "id": 7,
        "thread_id": "t1",
        "run_id": "r1",
        "event_type": "llm.ai.response",
        "category": "message",
        "content": '{"type": "ai", "content": "hi"}',
        "event_metadata": '{"caller": "lead", "content_is_json": true, "content_is_dict": true}',
        "seq": 3,
        "created_at": "2025-07-01 12:00:00.123456",
        "user_id": None,
    }
    assert deerflow_db_record(row) == {
        "thread_id": "t1",
        "run_id": "r1",
        "event_type": "llm.ai.response",
        "category": "message",
        "content": {"type": "ai", "content": "hi"},
        "metadata": {"caller": "lead", "content_is_json": True, "content_is_dict": True},
        "seq": 3,
        "created_at": "2025-07-01T12:00:00.123456+00:00",
    }
    assert deerflow_db_record({**row, "metadata": {"a": 1}})["metadata"] == {"a": 1}
    assert deerflow_db_record({**row, "metadata": {"a": 1}})["content"] == row["content"]
    assert deerflow_db_record({**row, "event_metadata": None})["metadata"] is None


@pytest.mark.parametrize(
    ("metadata", "message"),
    [("[1]", "holds an array, not an object"), ("{bad", "not valid JSON")],
)
def test_deerflow_db_row_refuses_metadata_that_is_not_an_object(
    metadata: str, message: str
) -> None:
    """A metadata string must hold a JSON object."""
    with pytest.raises(ValueError, match=message):
        deerflow_db_record({"metadata": metadata})


def test_deerflow_db_array_reports_the_line_each_row_starts_on(tmp_path: Path) -> None:
    """deerflow-db as a JSON array: rows carry the line they start on, bad ones too."""
    good = {**_record(1), "metadata": json.dumps({"k": "v"})}
    rows = [good, {**good, "seq": 2, "created_at": "yesterday"}, {**good, "seq": 3}]
    path = tmp_path / "rows.json"
    path.write_text(json.dumps(rows, indent=2), encoding="utf-8")
    row_length = len(json.dumps(good, indent=2).splitlines())

    items = list(read_deerflow_rows(path))

    starts = [2, 2 + row_length, 2 + 2 * row_length]
    assert [item.line_number for item in _good(items)] == [starts[0], starts[2]]
    assert _good(items)[0].record["metadata"] == {"k": "v"}
    (line, reason), *_ = _bad(items)
    assert line == starts[1]
    assert reason.startswith("created_at: ")


def test_deerflow_db_broken_array_ends_with_one_bad_line(tmp_path: Path) -> None:
    """A syntax error in a JSON array is reported once, at its line, and reading stops."""
    path = tmp_path / "rows.json"
    path.write_text("[\n" + json.dumps(_record(1)) + ",\n{oops\n]\n", encoding="utf-8")
    items = list(read_deerflow_rows(path))
    assert len(_good(items)) == 1
    assert [line for line, _ in _bad(items)] == [3]
    assert "the rest is not read" in _bad(items)[0][1]


def test_deerflow_db_reads_json_lines_too(tmp_path: Path) -> None:
    """deerflow-db rows may also come one per line."""
    path = _write_lines(tmp_path / "rows.jsonl", [_record(1), {**_record(2), "content": "[x"}])
    items = list(read_file(path, "deerflow-db"))
    assert [item.record["content"] for item in _good(items)] == [
        {"type": "ai", "content": "hi"},
        "[x",
    ]


@pytest.mark.parametrize(
    "created_at",
    # SQLite's form of a time, with Arabic-Indic digits (which \d and int() take).
    ["\u0662\u0660\u0662\u0665-07-01 12:00:00", "2025-07-01 \u0661\u0662:00:00.5"],
)
def test_deerflow_db_time_with_non_ascii_digits_is_a_bad_line(
    tmp_path: Path, created_at: str
) -> None:
    """deerflow-db: a created_at in other digits is not rewritten into ASCII; its line is bad."""
    path = _write_lines(tmp_path / "rows.jsonl", [{**_record(1), "created_at": created_at}])
    (item,) = read_file(path, "deerflow-db")
    assert isinstance(item, BadLine)
    assert item.reason.startswith("created_at:")
    assert time_key(created_at)[0] > time_key("9999-12-31T23:59:59")[0]
