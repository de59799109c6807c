"""``mongo-runevents serve`` from the command line: embedded by default, or on --uri."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from mongo_runevents import embedded

from .conftest import free_port


def start(argv: list[str], env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    """Run the command line; return it and the viewer's URL once printed."""
    process = subprocess.Popen(
        [sys.executable, "-m", "mongo_runevents.cli", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert process.stdout is not None
    deadline = time.monotonic() + 90
    seen = []
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        seen.append(line)
        found = re.search(r"viewer: (http://\S+)", line)
        if found:
            return process, found.group(1)
    process.kill()
    raise AssertionError(f"no URL printed: {seen} {process.communicate()}")


def stop(process: subprocess.Popen[str]) -> str:
    """Interrupt the command as Ctrl-C does; return its stderr."""
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    return err


@pytest.mark.slow
@pytest.mark.skipif(not embedded.available(), reason="SecantusDB is not installed")
def test_serve_without_a_uri_shows_the_demo_on_the_embedded_server(tmp_path: Path) -> None:
    """With no --uri, serve starts SecantusDB, writes the demo's thread and shows it."""
    env = {k: v for k, v in os.environ.items() if k != "MONGODB_URI"}
    port = free_port()
    process, url = start(["--data-dir", str(tmp_path / "data"), "serve", "--port", str(port)], env)
    try:
        assert url == f"http://127.0.0.1:{port}/"
        threads = httpx.get(url, timeout=30)
        assert threads.status_code == 200
        [thread_id] = re.findall(r"/thread\?id=(demo-[0-9a-f]{8})", threads.text)
        conversation = httpx.get(f"{url}thread?id={thread_id}", timeout=30)
        assert "GraphRecursionError" in conversation.text  # the demo's failed run
        assert "no end recorded" in conversation.text  # and the one cut off
    finally:
        err = stop(process)
    assert process.returncode in (0, 130), err


def test_serve_on_a_uri_it_cannot_read_says_so_and_never_prints_the_password(
    server_uri: str,
) -> None:
    """A store that refuses the login stops serve at once, with a reason and no password or URL."""
    host = server_uri.split("://", 1)[1].split("/", 1)[0].split("@")[-1]
    uri = f"mongodb://viewer:Pa55word@{host}/?directConnection=true&serverSelectionTimeoutMS=500"
    process = subprocess.run(
        [sys.executable, "-m", "mongo_runevents.cli", "--uri", uri, "serve", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ),
    )
    assert process.returncode == 1, process
    assert "viewer: http" not in process.stdout
    assert "the store could not be read, so the viewer did not start" in process.stderr
    assert "Pa55word" not in process.stdout + process.stderr
