"""Who may talk to the studio: the session's token, a local `Host` (DNS rebinding) and, for writes, its own
`Origin`; every answer carries a Content-Security-Policy that forbids inline scripts."""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, MutableMapping
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs, urlsplit

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; media-src 'self'; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
HEADERS = [(b"content-security-policy", CSP.encode()), (b"x-content-type-options", b"nosniff"),
           (b"referrer-policy", b"no-referrer"), (b"x-frame-options", b"DENY"),
           (b"cross-origin-resource-policy", b"same-origin")]
READS = ("GET", "HEAD")


def hostname(host: str) -> str:
    """The name in a Host header or an origin's authority, without its port: `[::1]:8765` -> `::1`."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else ""
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class Guard:
    """ASGI middleware in front of the whole studio: nothing reaches a route without passing it.

    The token comes as `?token=`, `Authorization: Bearer …` or the session cookie; a write (any method but
    GET/HEAD) needs it in the query or the header (a cookie alone is what a foreign page's request carries),
    a JSON body, and no foreign `Origin` (or, without one, `Referer`). The page's first visit, `/?token=…`,
    trades the token for the cookie and drops it from the address bar.
    """

    def __init__(self, app: ASGIApp, *, token: str, hosts: frozenset[str], cookie: str):
        self.app, self.token, self.hosts, self.cookie = app, token, hosts, cookie

    def valid(self, presented: str | None) -> bool:
        return presented is not None and hmac.compare_digest(presented.encode(), self.token.encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]}
        host = headers.get("host", "")
        if hostname(host) not in self.hosts:
            await _answer(send, 403, "this studio answers only to its own address (the Host header "
                                     f"{host[:100]!r} is not one of {', '.join(sorted(self.hosts))})")
            return
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        given = query.get("token", [None])[-1]
        authorization = headers.get("authorization", "")
        scheme, _, value = authorization.partition(" ")
        bearer = value.strip() if scheme.lower() in ("bearer", "token") else None
        jar = SimpleCookie()
        try:
            jar.load(headers.get("cookie", ""))
        except Exception:  # noqa: BLE001 - a malformed cookie header carries no token
            jar = SimpleCookie()
        from_cookie = jar[self.cookie].value if self.cookie in jar else None
        if scope["method"] not in READS:
            origin = headers.get("origin") or None
            referer = headers.get("referer") or None
            own = f"http://{host}"
            if (origin is not None and origin != own) or (
                    origin is None and referer is not None and not _same_origin(referer, own)):
                await _answer(send, 403, f"a write from another site ({(origin or referer or '')[:100]!r}) is "
                                         "refused; use the studio's own page")
                return
            if not (self.valid(given) or self.valid(bearer)):
                await _answer(send, 401, "a write needs the session's token (Authorization: Bearer …)")
                return
            if headers.get("content-type", "").split(";")[0].strip() != "application/json":
                await _answer(send, 415, "send a JSON body (Content-Type: application/json)")
                return
        elif not (self.valid(given) or self.valid(bearer) or self.valid(from_cookie)):
            await _answer(send, 401, "open the studio with the address it printed (it holds the session's token)")
            return
        elif scope["path"] == "/" and self.valid(given):
            await _answer(send, 303, "", [(b"location", b"/"), (b"set-cookie", (
                f"{self.cookie}={self.token}; Path=/; HttpOnly; SameSite=Strict").encode())])
            return

        async def secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *HEADERS]
            await send(message)

        await self.app(scope, receive, secured)


def _same_origin(url: str, own: str) -> bool:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" == own


async def _answer(send: Send, status: int, message: str, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    body = json.dumps({"error": message}).encode() if message else b""
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"), *HEADERS, *(extra or [])]})
    await send({"type": "http.response.body", "body": body})
