"""mongo-runevents serve: options, token rules, the demo on an empty database, a real server."""

from __future__ import annotations

import argparse
import asyncio
import io
import logging
import re
import socket
from typing import Any

import httpx
import pytest

from mongo_runevents import MongoRunEventStore
from mongo_runevents.cli.demo import write_demo_if_empty
from mongo_runevents.errors import StorageError
from mongo_runevents.web import command

from .conftest import free_port, write_demo


def parse(*argv: str) -> argparse.Namespace:
    """The serve options parsed from ``argv``."""
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    return parser.parse_args(argv)


def test_defaults_bind_loopback_on_8765_without_a_token() -> None:
    """Without options the viewer listens on 127.0.0.1:8765 and needs no token."""
    args = parse()
    assert (args.host, args.port, args.token) == ("127.0.0.1", 8765, None)


def test_urls_name_ipv6_hosts_in_brackets() -> None:
    """The printed URL is one a browser opens."""
    assert command.url_of("127.0.0.1", 80) == "http://127.0.0.1:80/"
    assert command.url_of("::1", 8765) == "http://[::1]:8765/"


async def run_serve(store: Any, args: argparse.Namespace, **options: Any) -> tuple[str, Any, Any]:
    """Start ``serve`` in a task; wait for the URL it prints; return it, the task and the stop event."""
    out = io.StringIO()
    stop = asyncio.Event()
    task = asyncio.create_task(command.serve(store, args, stop=stop, out=out, **options))
    for _ in range(500):
        found = re.search(r"viewer: (http://\S+)", out.getvalue())
        if found:
            await asyncio.sleep(0.2)  # the socket listens already; give uvicorn its start-up
            return found.group(1), task, (stop, out)
        assert not task.done(), out.getvalue()
        await asyncio.sleep(0.02)
    raise AssertionError(f"serve printed no URL: {out.getvalue()!r}")


async def test_serve_writes_the_demo_into_an_empty_database_and_serves_it(
    web_store: MongoRunEventStore,
) -> None:
    """With the demo writer as prepare, on an empty store, serve writes the demo's thread and shows it."""
    url, task, (stop, out) = await run_serve(
        web_store, parse("--port", "0"), prepare=write_demo_if_empty
    )
    try:
        async with httpx.AsyncClient() as client:
            response = await client.get(url)
        assert response.status_code == 200
        [row] = await web_store.list_threads()
        assert row["thread_id"] in response.text
        assert "wrote the demo thread" in out.getvalue()
    finally:
        stop.set()
        assert await asyncio.wait_for(task, 10) == 0


async def test_serve_never_writes_into_a_database_with_threads(
    web_store: MongoRunEventStore,
) -> None:
    """A store that holds threads is left as it is."""
    await write_demo(web_store, "existing", runs=1)
    _, task, (stop, out) = await run_serve(
        web_store, parse("--port", "0"), prepare=write_demo_if_empty
    )
    stop.set()
    assert await asyncio.wait_for(task, 10) == 0
    assert [row["thread_id"] for row in await web_store.list_threads()] == ["existing"]
    assert "demo" not in out.getvalue()


async def test_serve_with_a_token_prints_no_token_and_demands_it(
    web_store: MongoRunEventStore,
) -> None:
    """A given token is never printed, and requests without it are refused."""
    token = "a-long-enough-token-1234"
    url, task, (stop, out) = await run_serve(web_store, parse("--port", "0", "--token", token))
    try:
        assert token not in out.getvalue()
        async with httpx.AsyncClient() as client:
            assert (await client.get(url)).status_code == 401
            authorised = await client.get(url, headers={"authorization": f"Bearer {token}"})
            assert authorised.status_code == 200
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def test_serve_refuses_a_short_token(
    web_store: MongoRunEventStore, capsys: pytest.CaptureFixture[str]
) -> None:
    """A token shorter than 16 characters is a usage error (exit code 2)."""
    assert await command.serve(web_store, parse("--token", "short")) == 2
    assert "at least 16" in capsys.readouterr().err


async def test_serve_reports_a_port_in_use(
    web_store: MongoRunEventStore, capsys: pytest.CaptureFixture[str]
) -> None:
    """A port someone else listens on is a one-line error (exit code 1)."""
    port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        assert await command.serve(web_store, parse("--port", str(port))) == 1
    assert "cannot listen" in capsys.readouterr().err


def test_the_options_need_no_extra_and_serve_says_which_is_missing() -> None:
    """Without Starlette, uvicorn and Jinja2 the options still parse; serve names the extra."""
    import subprocess
    import sys

    script = """
import argparse, asyncio, sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("starlette", "uvicorn", "jinja2"):
            raise ImportError("no " + name)
sys.meta_path.insert(0, Block())
from mongo_runevents.web import command
parser = argparse.ArgumentParser()
command.add_arguments(parser)
sys.exit(asyncio.run(command.serve(None, parser.parse_args([]))))
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 1
    assert "pip install 'mongo_runevents[web]'" in result.stderr


async def test_serve_names_the_database_only_when_it_is_not_the_default(
    web_store: MongoRunEventStore,
) -> None:
    """The header reads "mongo_runevents", not "mongo_runevents · mongo_runevents"."""
    for database, title in (
        ("mongo_runevents", "mongo_runevents"),
        ("prod", "mongo_runevents · prod"),
    ):
        args = parse("--port", "0")
        args.database = database
        url, task, (stop, _) = await run_serve(web_store, args)
        try:
            async with httpx.AsyncClient() as client:
                page = (await client.get(url)).text
            assert f"<title>Threads · {title}</title>" in page
        finally:
            stop.set()
            assert await asyncio.wait_for(task, 10) == 0


class Unreadable:
    """A store whose server does not answer."""

    async def list_threads(self, **options: Any) -> list[dict[str, Any]]:
        raise StorageError("no server answered within 5 s (127.0.0.1:9)", retryable=True)


async def test_serve_checks_the_store_before_it_prints_an_address(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A store that cannot be read stops serve with exit code 1 and the reason, before any URL."""
    out = io.StringIO()
    serving = command.serve(Unreadable(), parse("--port", "0"), out=out)  # type: ignore[arg-type]
    assert await asyncio.wait_for(serving, 30) == 1
    assert "viewer:" not in out.getvalue()
    err = capsys.readouterr().err
    assert "the store could not be read, so the viewer did not start" in err
    assert "no server answered within 5 s" in err


def test_serve_sends_the_viewer_warnings_to_stderr(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Pages say "see the server's log": with no logging set up, serve's warnings go to stderr."""
    package = logging.getLogger("mongo_runevents")
    monkeypatch.setattr(logging.getLogger(), "handlers", [])
    monkeypatch.setattr(package, "handlers", [])
    monkeypatch.setattr(package, "level", logging.NOTSET)
    command._log_to_stderr()
    logging.getLogger("mongo_runevents.web.app").warning("a page could not be read: StorageError")
    assert "a page could not be read: StorageError" in capsys.readouterr().err
