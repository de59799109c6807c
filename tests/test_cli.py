"""Tests of the ``mongo-runevents`` command line, run in-process through ``main``."""

from __future__ import annotations

import json
import math
import socket
from pathlib import Path

import pytest

from mongo_runevents.cli import main, mask_uri
from mongo_runevents.embedded import free_port
from mongo_runevents.workload import JOURNAL_BATCH_SIZE


def _closed_port_uri(userinfo: str = "") -> str:
    return f"mongodb://{userinfo}127.0.0.1:{free_port()}/?serverSelectionTimeoutMS=500"


def test_demo_on_embedded_server_reports_consistent_counts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`demo --json` on the embedded server exits 0 and its counts agree with each other."""
    monkeypatch.delenv("MONGODB_URI", raising=False)
    data_dir = tmp_path / "data"

    code = main(["demo", "--data-dir", str(data_dir), "--runs", "1", "--steps", "2", "--json"])

    captured = capsys.readouterr()
    assert code == 0, captured.err
    result = json.loads(captured.out)
    assert result["thread_id"].startswith("demo-")
    assert len(result["run_ids"]) == 1
    assert result["events_written"] == sum(result["events_by_category"].values())
    assert result["count_messages"] == result["message_events_written"]
    assert result["message_events_written"] == result["events_by_category"]["message"]
    # One human input, then an AI message and a tool result per step, then the answer.
    assert result["message_events_written"] == 1 + 2 * 2 + 1
    assert result["batches"] == math.ceil(result["events_written"] / JOURNAL_BATCH_SIZE)
    assert result["uses_transactions"] is True
    assert 1 <= len(result["newest_messages"]) <= 5
    assert result["before_seq"] == result["newest_messages"][0]["seq"]
    assert all(row["seq"] < result["before_seq"] for row in result["older_messages"])
    assert all(len(row["preview"]) <= 70 for row in result["newest_messages"])
    assert [e["event_type"] for e in result["last_run_events"]][:2] == [
        "run.start",
        "llm.human.input",
    ]
    assert result["deleted_events"] is None
    assert f"embedded SecantusDB at {data_dir}" in captured.err


def test_demo_text_output_and_cleanup_stop_the_embedded_server(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`demo --cleanup` prints the summary, deletes the thread and stops the server it started."""
    monkeypatch.delenv("MONGODB_URI", raising=False)

    code = main(["--data-dir", str(tmp_path / "data"), "demo", "--runs", "1", "--cleanup"])

    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "count_messages: " in captured.out
    assert "transactions: yes" in captured.out
    assert "deleted thread demo-" in captured.out
    port = int(captured.err.split("(port ")[1].split(")")[0])
    with (
        pytest.raises(ConnectionRefusedError),
        socket.create_connection(("127.0.0.1", port), timeout=1),
    ):
        pass


def test_unreachable_server_exits_1_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    """An unreachable `--uri` exits 1 with a one-line error and no traceback."""
    code = main(["--uri", _closed_port_uri(), "demo", "--runs", "1"])

    captured = capsys.readouterr()
    assert code == 1
    assert "Traceback" not in captured.err
    server_line, error_line = captured.err.splitlines()
    assert server_line.startswith("mongo-runevents: using mongodb://127.0.0.1:")
    assert error_line.startswith("mongo-runevents: error: ")
    assert captured.out == ""


def test_password_never_printed(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A password in `MONGODB_URI` appears neither in the server line nor in the error."""
    monkeypatch.setenv("MONGODB_URI", _closed_port_uri("u:secret@"))

    code = main(["demo"])

    captured = capsys.readouterr()
    assert code == 1
    assert "secret" not in captured.err + captured.out
    assert "u:***@127.0.0.1" in captured.err


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("mongodb://u:secret@h/", "mongodb://u:***@h/"),
        (
            "mongodb+srv://admin:s%40cret@cluster.example.net",
            "mongodb+srv://admin:***@cluster.example.net",
        ),
        ("mongodb://u:p@ss@h1,h2/db?tls=true", "mongodb://u:***@h1,h2/db?tls=true"),
        ("mongodb://user@h/", "mongodb://user@h/"),
        ("mongodb://h:27017/db", "mongodb://h:27017/db"),
        (
            "mongodb://h/?tls=true&tlsCertificateKeyFilePassword=secret",
            "mongodb://h/?tls=true&tlsCertificateKeyFilePassword=***",
        ),
    ],
)
def test_mask_uri_hides_passwords(uri: str, expected: str) -> None:
    """`mask_uri` replaces the password (and password options) by `***` and keeps the rest."""
    masked = mask_uri(uri)
    assert masked == expected
    assert "secret" not in masked


@pytest.mark.parametrize("argv", [[], ["demo", "--runs", "0"], ["demo", "--steps", "x"], ["nope"]])
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """Bad command lines are usage errors: argparse exits with code 2."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert "usage:" in capsys.readouterr().err
