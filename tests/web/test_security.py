"""Who may read the viewer: loopback Host names without a token, the token everywhere else."""

from __future__ import annotations

from typing import Any

import pytest

from mongo_runevents import MongoRunEventStore
from mongo_runevents.web import security

from .conftest import ClientFactory

TOKEN = "t0ken-for-the-tests-only"


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("localhost", True),
        ("LOCALHOST", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.5", False),
        ("example.com", False),
        ("localhost.example.com", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    """Only 127.0.0.0/8, ::1 and the name localhost count as this machine."""
    assert security.is_loopback(host) is loopback


def test_token_is_generated_only_beyond_loopback() -> None:
    """No token on loopback; a fresh one elsewhere; a given one always, if long enough."""
    assert security.token_for("127.0.0.1", None) == (None, False)
    token, generated = security.token_for("0.0.0.0", None)
    assert generated
    assert token is not None
    assert len(token) >= security.MIN_TOKEN_LENGTH
    assert security.token_for("0.0.0.0", TOKEN) == (TOKEN, False)
    assert security.token_for("127.0.0.1", TOKEN) == (TOKEN, False)
    with pytest.raises(ValueError, match="at least"):
        security.token_for("0.0.0.0", "short")
    with pytest.raises(ValueError, match="only letters"):
        security.token_for("0.0.0.0", "a token; with spaces=")


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ("127.0.0.1:8765", "127.0.0.1"),
        ("LocalHost", "localhost"),
        ("[::1]:8765", "::1"),
        ("[::1]", "::1"),
        ("evil.example:80", "evil.example"),
    ],
)
def test_host_name(header: str, name: str) -> None:
    """The Host header's name, without port or brackets, in lower case."""
    assert security.host_name(header) == name


@pytest.mark.parametrize(
    "base_url", ["http://127.0.0.1:8765", "http://localhost", "http://[::1]:9"]
)
async def test_without_a_token_loopback_host_names_are_answered(
    web_store: MongoRunEventStore, make_client: ClientFactory, base_url: str
) -> None:
    """A viewer without a token answers requests addressed to a loopback name."""
    response = await make_client(web_store, base_url=base_url).get("/")
    assert response.status_code == 200


async def test_without_a_token_other_host_names_are_refused(
    web_store: MongoRunEventStore, make_client: ClientFactory
) -> None:
    """A DNS name pointed at 127.0.0.1 (rebinding) gets no page from a viewer without a token."""
    client = make_client(web_store, base_url="http://evil.example")
    response = await client.get("/")
    assert response.status_code == 421
    assert "Threads" not in response.text


async def test_with_a_token_requests_without_it_are_refused(
    web_store: MongoRunEventStore, make_client: ClientFactory
) -> None:
    """Every page but the static files needs the token; a wrong one is refused too."""
    client = make_client(web_store, base_url="http://viewer.example", token=TOKEN)
    for path in ("/", "/thread?id=t", "/event?thread=t&seq=1", "/live/events?thread=t"):
        assert (await client.get(path)).status_code == 401, path
    assert (await client.get("/", headers={"authorization": "Bearer wrong"})).status_code == 401
    assert (await client.get("/", params={"token": "wrong"})).status_code == 401
    client.cookies.set(security.COOKIE, "wrong")
    assert (await client.get("/")).status_code == 401
    assert (await client.get("/static/viewer.css")).status_code == 200


async def test_the_token_is_accepted_from_a_header_or_the_cookie(
    web_store: MongoRunEventStore, make_client: ClientFactory
) -> None:
    """Authorization: Bearer and the viewer's cookie both carry the token."""
    client = make_client(web_store, base_url="http://viewer.example", token=TOKEN)
    assert (await client.get("/", headers={"authorization": f"Bearer {TOKEN}"})).status_code == 200
    client.cookies.set(security.COOKIE, TOKEN)
    assert (await client.get("/")).status_code == 200


async def test_a_token_in_the_url_becomes_a_strict_cookie_and_leaves_the_url(
    web_store: MongoRunEventStore, make_client: ClientFactory
) -> None:
    """?token= answers with a redirect to the same URL without it, setting an HttpOnly cookie."""
    client = make_client(web_store, base_url="http://viewer.example", token=TOKEN)
    response = await client.get("/thread?id=a%20b&token=" + TOKEN + "&before_seq=7")
    assert response.status_code == 303
    assert response.headers["location"] == "/thread?id=a%20b&before_seq=7"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{security.COOKIE}={TOKEN};")
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    assert (await client.get(response.headers["location"])).status_code == 200


async def test_the_redirect_never_leaves_the_viewer(web_store: MongoRunEventStore) -> None:
    """A path like //evil.example/ with the token redirects within the viewer, not to that host."""
    from mongo_runevents.web import create_app

    messages: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    scope = {
        "type": "http",
        "method": "GET",
        "path": "//evil.example/",
        "raw_path": b"//evil.example/",
        "query_string": f"token={TOKEN}".encode(),
        "headers": [(b"host", b"viewer.example")],
    }
    await create_app(web_store, token=TOKEN)(scope, receive, send)  # type: ignore[arg-type]
    start = messages[0]
    assert start["status"] == 303
    assert dict(start["headers"])[b"location"] == b"/evil.example/"


async def test_tokens_are_compared_in_constant_time(
    web_store: MongoRunEventStore, make_client: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The token check goes through hmac.compare_digest."""
    seen: list[tuple[bytes, bytes]] = []
    real = security.hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        seen.append((a, b))
        return real(a, b)

    monkeypatch.setattr(security.hmac, "compare_digest", spy)
    client = make_client(web_store, base_url="http://viewer.example", token=TOKEN)
    await client.get("/", headers={"authorization": "Bearer guess"})
    assert (b"guess", TOKEN.encode()) in seen


async def test_websockets_are_refused(web_store: MongoRunEventStore) -> None:
    """A websocket connection is closed without being accepted."""
    from mongo_runevents.web import create_app

    messages: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        return {"type": "websocket.connect"}

    async def send(message: dict[str, object]) -> None:
        messages.append(message)

    scope = {"type": "websocket", "path": "/", "headers": [], "query_string": b""}
    await create_app(web_store)(scope, receive, send)  # type: ignore[arg-type]
    assert not [m for m in messages if m["type"] == "websocket.accept"]
