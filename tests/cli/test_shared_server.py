"""The embedded server a data folder's commands share: joined by any path, never another's, always stopped.

Each test runs the console script as real processes on a folder of its own,
and makes sure no daemon outlives it (:func:`_no_daemon_left`).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mongo_runevents import MongoRunEventStore
from mongo_runevents.embedded import EmbeddedServer, free_port
from mongo_runevents.shared_server import STATE_FILE, SharedServer
from tests.factories import event

SCRIPT = Path(sys.executable).with_name("mongo-runevents")


def _daemon_pids(folder: Path) -> list[int]:
    """The pids of SecantusDB daemons whose command line names ``folder`` (read from /proc)."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            words = Path(f"/proc/{name}/cmdline").read_bytes().split(b"\0")
            cwd = os.readlink(f"/proc/{name}/cwd")
        except OSError:
            continue
        if not any(b"secantusd-py" in word for word in words[:2]):
            continue
        if b"--storage-path" not in words:
            continue
        storage = words[words.index(b"--storage-path") + 1].decode()
        if (Path(cwd) / storage).resolve() == folder.resolve():
            found.append(int(name))
    return found


@pytest.fixture
def folder(tmp_path: Path) -> Iterator[Path]:
    """A data folder; any daemon still running on it afterwards is killed and fails the test."""
    data = tmp_path / "data"
    yield data
    _no_daemon_left(data)


def _no_daemon_left(data: Path) -> None:
    deadline = time.monotonic() + 20
    while _daemon_pids(data) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = _daemon_pids(data)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, f"a daemon was left running on {data}"


def _command(*argv: str, cwd: Path | None = None) -> subprocess.Popen[str]:
    env = {name: value for name, value in os.environ.items() if name != "MONGODB_URI"}
    return subprocess.Popen(
        [str(SCRIPT), *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=cwd,
    )


def _run(*argv: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {name: value for name, value in os.environ.items() if name != "MONGODB_URI"}
    return subprocess.run(
        [str(SCRIPT), *argv],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
        check=False,
    )


def _port_of(process: subprocess.Popen[str]) -> int:
    """The port in the "using embedded SecantusDB ..." line a command prints first."""
    assert process.stderr is not None
    line = process.stderr.readline()
    assert "using embedded SecantusDB" in line, line
    return int(line.split("(port ")[1].split(",")[0])


def _put(port: int, thread_id: str) -> None:
    async def write() -> None:
        uri = f"mongodb://127.0.0.1:{port}/?directConnection=true"
        async with MongoRunEventStore.from_uri(uri) as store:
            await store.put(**event(thread_id, content="hello"))

    asyncio.run(write())


def test_a_command_naming_the_folder_by_another_path_joins_the_server(
    tmp_path: Path, folder: Path
) -> None:
    """`--data-dir data` from one directory and `../data` from another share one daemon; the tail goes on."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    tail = _command("--data-dir", "data", "tail", "t-1", "--follow", cwd=tmp_path)
    try:
        port = _port_of(tail)
        second = _run("--data-dir", "../data", "count", "t-1", cwd=elsewhere)
        assert second.returncode == 0, second.stderr
        assert f"(port {port}, shared with another command (pid {tail.pid}))" in second.stderr
        assert tail.poll() is None
        _put(port, "t-1")
        assert tail.stdout is not None
        assert "hello" in tail.stdout.readline()
    finally:
        tail.send_signal(signal.SIGINT)
        tail.communicate(timeout=60)
    assert tail.returncode == 130


def test_a_stale_record_naming_another_folders_daemon_leaves_it_alone(
    tmp_path: Path, folder: Path
) -> None:
    """A record whose pid now runs another folder's secantusd-py: that daemon is not killed."""
    other = EmbeddedServer(tmp_path / "other", log_file=tmp_path / "other.log")
    other.start()
    try:
        folder.mkdir()
        assert other.pid is not None
        record = {"pid": other.pid, "port": free_port(), "standalone": False, "users": [1]}
        (folder / STATE_FILE).write_text(json.dumps(record))
        result = _run("--data-dir", str(folder), "count", "t-1")
        assert result.returncode == 0, result.stderr
        assert "replaced a stale record" in result.stderr
        assert other.running
    finally:
        other.stop()


def test_an_interrupted_start_stops_the_daemon_and_leaves_no_record(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C while the shared server starts stops the detached daemon; the next start works."""

    def interrupted(self: EmbeddedServer, timeout: float) -> None:
        while not _daemon_pids(folder):
            time.sleep(0.01)
        raise KeyboardInterrupt

    with monkeypatch.context() as patched:
        patched.setattr(EmbeddedServer, "_wait_until_listening", interrupted)
        with pytest.raises(KeyboardInterrupt):
            SharedServer(folder).start()
    assert not (folder / STATE_FILE).exists()
    _no_daemon_left(folder)
    server = SharedServer(folder)
    assert server.start() == "started"
    server.stop()


def test_a_daemon_on_the_folder_without_a_record_is_reused(folder: Path) -> None:
    """A daemon an older version left with no record is found on the folder and reused, then stopped."""
    orphan = EmbeddedServer(folder, detached=True)
    orphan.start()
    try:
        result = _run("--data-dir", str(folder), "count", "t-1")
        assert result.returncode == 0, result.stderr
        assert f"(port {orphan.port}, found running on this folder" in result.stderr
    finally:
        orphan.stop()


@pytest.mark.parametrize("argv", [["tail", "t-1", "--follow"], ["serve", "--port", "0"]])
def test_sigterm_stops_the_server_the_command_started(folder: Path, argv: list[str]) -> None:
    """SIGTERM (systemd, docker stop) on `tail --follow` or `serve` stops the daemon, exit 143."""
    process = _command("--data-dir", str(folder), *argv)
    try:
        _port_of(process)
        time.sleep(1.0)  # well into the command
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 143, err
    assert "mongo-runevents: terminated" in err
    assert not (folder / STATE_FILE).exists()
