"""Who may read the viewer, and the headers every answer carries.

The rules, applied by :class:`Guard` (plain ASGI middleware, so they hold for
streamed answers too):

- only ``GET`` and ``HEAD``: there is nothing to write or delete;
- bound to a loopback address, the viewer needs no token but answers only
  requests whose ``Host`` is a loopback name (``localhost``, ``127.0.0.1``,
  ``[::1]``): a web page elsewhere cannot reach it through a DNS name that it
  points at 127.0.0.1 (DNS rebinding);
- bound anywhere else it needs a token (:func:`token_for`), which a request
  carries as ``Authorization: Bearer ...``, as a cookie, or once as
  ``?token=...``: that answer sets the cookie (``HttpOnly; SameSite=Strict``)
  and redirects to the same URL without the token, so it leaves the address
  bar and the history. Tokens are compared with :func:`hmac.compare_digest`;
- every answer has a Content-Security-Policy that allows only this app's own
  style sheet and script (no inline script, no other origin), and is never
  cached, framed, sniffed, or sent on as a referrer.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from collections.abc import Iterable
from http.cookies import CookieError, SimpleCookie
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, unquote_plus

if TYPE_CHECKING:  # the rules need no extra; only the app does
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: The cookie that keeps the token once a request brought it in ``?token=``.
COOKIE = "mongo_runevents_token"
#: The shortest token the viewer accepts.
MIN_TOKEN_LENGTH = 16
#: Host names a loopback-bound viewer answers to.
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
)
_ALLOWED_METHODS = ("GET", "HEAD")


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address to bind) is this machine only."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def new_token() -> str:
    """A fresh random token (32 URL-safe characters)."""
    return secrets.token_urlsafe(24)


def check_token(token: str) -> str:
    """``token`` if it is long enough and plain enough to pass in a URL and a cookie."""
    if len(token) < MIN_TOKEN_LENGTH:
        raise ValueError(f"the token must have at least {MIN_TOKEN_LENGTH} characters")
    if not token.isascii() or not all(c.isalnum() or c in "-_.~" for c in token):
        raise ValueError("the token may hold only letters, digits and - _ . ~")
    return token


def token_for(host: str, given: str | None) -> tuple[str | None, bool]:
    """The token a viewer bound to ``host`` needs, and whether it was generated here.

    A given token is always used; on a loopback address none is needed; on
    any other address one is generated.
    """
    if given is not None:
        return check_token(given), False
    if is_loopback(host):
        return None, False
    return new_token(), True


def host_name(header: str) -> str:
    """The name part of a ``Host`` header: no port, IPv6 brackets removed, lower case."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def _headers(scope: Scope) -> dict[bytes, bytes]:
    return {name.lower(): value for name, value in scope.get("headers", [])}


def _offered_tokens(scope: Scope, headers: dict[bytes, bytes]) -> Iterable[str]:
    authorization = headers.get(b"authorization", b"").decode("latin-1")
    if authorization[:7].lower() == "bearer ":
        yield authorization[7:].strip()
    cookie_header = headers.get(b"cookie", b"").decode("latin-1")
    if cookie_header:
        cookies: SimpleCookie = SimpleCookie()
        try:
            cookies.load(cookie_header)
        except CookieError:
            pass
        else:
            if COOKIE in cookies:
                yield cookies[COOKIE].value


def _parameter_name(pair: bytes) -> str:
    return unquote_plus(pair.split(b"=", 1)[0].decode("latin-1"))


def _matches(offered: str, token: str) -> bool:
    return hmac.compare_digest(offered.encode("utf-8", "replace"), token.encode())


class Guard:
    """The ASGI middleware that applies the rules of this module around the app."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        token: str | None,
        allowed_hosts: Iterable[str] | None = None,
    ) -> None:
        self.app = app
        self.token = token
        hosts = allowed_hosts if allowed_hosts is not None else LOOPBACK_NAMES
        # With a token, any Host may ask (the token is the check); without one, loopback names.
        self.allowed_hosts = None if token is not None and allowed_hosts is None else set(hosts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":
            return  # no websockets here: closing without accepting refuses them
        headers = _headers(scope)
        if scope["method"] not in _ALLOWED_METHODS:
            await _plain(send, 405, "read-only: only GET and HEAD", [(b"allow", b"GET, HEAD")])
            return
        host = host_name(headers.get(b"host", b"").decode("latin-1"))
        if self.allowed_hosts is not None and host not in self.allowed_hosts:
            await _plain(send, 421, "this viewer answers only to its own host name")
            return
        needs_token = self.token is not None and not scope["path"].startswith("/static/")
        if needs_token and await self._refused(scope, headers, send):
            return
        await self.app(scope, receive, _with_security_headers(send))

    async def _refused(self, scope: Scope, headers: dict[bytes, bytes], send: Send) -> bool:
        """Answer for a request without the token (or with it in the URL); ``False`` lets it in."""
        assert self.token is not None
        raw_query: bytes = scope.get("query_string", b"")
        pairs = [pair for pair in raw_query.split(b"&") if pair]
        in_url = [pair for pair in pairs if _parameter_name(pair) == "token"]
        if in_url:
            offered = parse_qsl(in_url[0].decode("latin-1"), keep_blank_values=True)
            if not offered or not _matches(offered[0][1], self.token):
                await _plain(send, 401, "wrong token")
                return True
            # The same URL without the token, from the raw request (never "//...": another host).
            raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
            path = "/" + raw_path.decode("latin-1").split("?", 1)[0].lstrip("/")
            rest = b"&".join(pair for pair in pairs if _parameter_name(pair) != "token")
            location = scope.get("root_path", "") + path
            if rest:
                location += "?" + rest.decode("latin-1")
            cookie = f"{COOKIE}={self.token}; HttpOnly; SameSite=Strict; Path=/"
            await _plain(
                send,
                303,
                "signed in",
                [(b"location", location.encode()), (b"set-cookie", cookie.encode())],
            )
            return True
        if any(_matches(offered, self.token) for offered in _offered_tokens(scope, headers)):
            return False
        await _plain(
            send,
            401,
            "this viewer needs its token: open the URL that mongo-runevents serve printed "
            "(it ends in ?token=...), or send Authorization: Bearer <token>",
        )
        return True


def _with_security_headers(send: Send) -> Send:
    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            names = {name.lower() for name, _ in message.get("headers", [])}
            extra = [(n, v) for n, v in SECURITY_HEADERS if n not in names]
            message = {**message, "headers": [*message.get("headers", []), *extra]}
        await send(message)

    return sending


async def _plain(
    send: Send, status: int, text: str, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = (text + "\n").encode()
    await _with_security_headers(send)(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
