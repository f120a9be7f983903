"""Who may see the monitor and who may act through it.

- **Loopback rule**: :func:`check_exposure` refuses to listen off loopback without
  ``--basic-auth`` or ``--auth-token``.
- **Authentication**: HTTP basic (several ``user:pass`` pairs) or a bearer token; every
  request but ``/healthcheck`` needs one when any is configured.
- **Read-only**: ``--read-only`` refuses every control (and the pages hide them).
- **CSRF**: a POST sent by a browser (it carries ``Origin`` or ``Sec-Fetch-Site``, which
  browsers add to every such request and scripts do not) must carry the page's token (the
  ``X-CSRF-Token`` header or a ``csrf_token`` form field) equal to the ``celeriac_csrf``
  cookie; a cross-site page can neither read that cookie nor set the header. Scripts (curl,
  Flower API clients) post without it.

Every refusal says which option or header would allow the request.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import parse_qs

from starlette.datastructures import Headers
from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSRF_COOKIE = "celeriac_csrf"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
#: Paths open without authentication (a load balancer's probe).
OPEN_PATHS = frozenset({"/healthcheck"})


@dataclass(frozen=True, slots=True)
class Access:
    """The monitor's security options (from the command line)."""

    basic_auth: tuple[tuple[str, str], ...] = ()
    auth_token: str | None = None
    read_only: bool = False

    @property
    def authenticated(self) -> bool:
        return bool(self.basic_auth) or bool(self.auth_token)


def parse_basic_auth(values: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """``["user:pass", ...]`` -> pairs. As in Flower, one value may also list several users
    (``ann:pw1,bob:pw2``), so a password cannot hold a comma; a pair without ``:`` is
    refused, naming the option."""
    pairs = []
    for value in values:
        for pair in value.split(","):
            user, colon, password = pair.strip().partition(":")
            if not colon or not user or not password:
                raise ValueError(
                    f"--basic-auth {pair!r}: expected user:password (give the option once per "
                    "user, or user:password,user:password as for Flower; no comma in a password)"
                )
            pairs.append((user, password))
    return tuple(pairs)


def is_loopback(address: str) -> bool:
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def check_exposure(address: str, access: Access) -> None:
    """Refuse to listen on a non-loopback ``address`` without authentication."""
    if not is_loopback(address) and not access.authenticated:
        raise ValueError(
            f"refusing to serve the monitor on {address} without authentication: anyone who "
            "can reach it could revoke tasks and shut workers down. Pass --basic-auth "
            "user:password (once per user) or --auth-token TOKEN, or listen on 127.0.0.1"
        )


def new_csrf_token() -> str:
    return secrets.token_urlsafe(24)


def csrf_token(connection: HTTPConnection) -> str:
    """The token the page embeds: the request's cookie, else the one the response sets."""
    token = connection.cookies.get(CSRF_COOKIE) or connection.scope.get("celeriac.csrf")
    if not token:
        token = new_csrf_token()
    connection.scope["celeriac.csrf"] = token
    return str(token)


class Guard:
    """ASGI middleware: authentication, read-only, CSRF, in that order."""

    def __init__(self, app: ASGIApp, access: Access) -> None:
        self.app = app
        self.access = access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        path = str(scope.get("path", ""))
        if path not in OPEN_PATHS and self.access.authenticated and not self._allowed(headers):
            await _refuse(
                401,
                "authentication required: sign in with a --basic-auth user or send "
                "'Authorization: Bearer <--auth-token>'",
                headers,
                {"WWW-Authenticate": 'Basic realm="celeriac monitor"'}
                if self.access.basic_auth
                else {"WWW-Authenticate": "Bearer"},
            )(scope, receive, send)
            return
        if scope.get("method") == "POST":
            if self.access.read_only:
                await _refuse(
                    403,
                    "refused: the monitor runs with --read-only (restart it without "
                    "--read-only to allow controls)",
                    headers,
                )(scope, receive, send)
                return
            if _from_browser(headers):
                body, receive = await _buffer(receive)
                if not _csrf_ok(headers, body):
                    await _refuse(
                        403,
                        "refused: a browser POST without the page's CSRF token; use the "
                        "monitor's own pages (their forms carry it) or send the "
                        f"{CSRF_COOKIE} cookie's value in an X-CSRF-Token header",
                        headers,
                    )(scope, receive, send)
                    return
        token = _cookie(headers, CSRF_COOKIE)
        if token:
            await self.app(scope, receive, send)
            return
        scope["celeriac.csrf"] = new_csrf_token()
        await self.app(scope, receive, _setting_cookie(send, str(scope["celeriac.csrf"])))

    def _allowed(self, headers: Headers) -> bool:
        scheme, _, credentials = headers.get("authorization", "").partition(" ")
        scheme = scheme.lower()
        if scheme == "bearer" and self.access.auth_token:
            return hmac.compare_digest(credentials.strip(), self.access.auth_token)
        if scheme == "basic" and self.access.basic_auth:
            try:
                decoded = base64.b64decode(credentials.strip(), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                return False
            user, _, password = decoded.partition(":")
            ok = False
            for known_user, known_password in self.access.basic_auth:
                same = hmac.compare_digest(user, known_user) & hmac.compare_digest(
                    password, known_password
                )
                ok = ok or same
            return ok
        return False


def _from_browser(headers: Headers) -> bool:
    return "origin" in headers or "sec-fetch-site" in headers


def _cookie(headers: Headers, name: str) -> str | None:
    for part in headers.get("cookie", "").split(";"):
        key, _, value = part.strip().partition("=")
        if key == name and value:
            return value
    return None


def _csrf_ok(headers: Headers, body: bytes) -> bool:
    expected = _cookie(headers, CSRF_COOKIE)
    if not expected:
        return False
    given = headers.get(CSRF_HEADER)
    if not given and "application/x-www-form-urlencoded" in headers.get("content-type", ""):
        values = parse_qs(body.decode("latin-1")).get(CSRF_FIELD)
        given = values[0] if values else None
    return bool(given) and hmac.compare_digest(str(given), expected)


async def _buffer(receive: Receive) -> tuple[bytes, Receive]:
    """Read the whole body, and a ``receive`` that replays it to the app."""
    chunks: list[bytes] = []
    more = True
    while more:
        message = await receive()
        chunks.append(message.get("body", b""))
        more = bool(message.get("more_body"))
    body = b"".join(chunks)
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return body, replay


def _setting_cookie(send: Send, token: str) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", []))
            cookie = f"{CSRF_COOKIE}={token}; Path=/; SameSite=Strict"
            headers.append((b"set-cookie", cookie.encode("latin-1")))
            message = dict(message, headers=headers)
        await send(message)

    return wrapped


def _refuse(
    status: int, message: str, headers: Headers, extra: dict[str, str] | None = None
) -> Response:
    if "text/html" in headers.get("accept", "") and status != 401:
        return PlainTextResponse(message, status_code=status, headers=extra)
    return JSONResponse({"error": message}, status_code=status, headers=extra)


__all__ = [
    "CSRF_COOKIE",
    "CSRF_FIELD",
    "CSRF_HEADER",
    "Access",
    "Guard",
    "check_exposure",
    "csrf_token",
    "is_loopback",
    "parse_basic_auth",
]
