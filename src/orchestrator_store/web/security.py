"""What every request passes before a page: the Host check, the token, the headers.

- **Host.** Bound to a loopback address without a token, the dashboard answers
  only requests whose ``Host`` is a loopback name. A web page elsewhere cannot
  then read it by pointing its own host name at 127.0.0.1 (DNS rebinding).
- **Token.** With one (required for any other bind), every request must carry
  it: ``Authorization: Bearer TOKEN``, the cookie the dashboard sets, or
  ``?token=TOKEN`` once, which sets that cookie and redirects to the same URL
  without it, so the token does not stay in the address bar or in history.
  It is compared in constant time (``hmac.compare_digest``).
- **Headers.** A strict Content-Security-Policy (only this origin's scripts,
  styles and connections; no inline script, no frames, no plugins), no MIME
  sniffing, no referrer, no framing.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Iterable
from http.cookies import SimpleCookie
from urllib.parse import parse_qsl, urlencode

from starlette.datastructures import Headers
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "CONTENT_SECURITY_POLICY",
    "TOKEN_COOKIE",
    "DashboardGuard",
    "is_loopback",
]

TOKEN_COOKIE = "orchestrator_store_token"

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "font-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
_HEADERS: list[tuple[bytes, bytes]] = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
]
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.", "ip6-localhost"})


def is_loopback(host: str) -> bool:
    """``host`` (a name or an address, without a port) is this machine's loopback."""
    name = host.strip("[]").lower()
    if name in _LOOPBACK_NAMES or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _host_name(header: str) -> str:
    """The host part of a ``Host`` header: ``[::1]:8765`` -> ``::1``."""
    if header.startswith("["):
        return header[1:].split("]", 1)[0]
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def _same(given: str | None, token: bytes) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), token)


class DashboardGuard:
    """ASGI middleware: refuses what may not reach the dashboard, and adds the
    security headers to every response it lets through or makes."""

    def __init__(self, app: ASGIApp, *, token: str | None) -> None:
        self.app = app
        self._token = token.encode() if token else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self._refusal(scope)
        send_with_headers = _with_headers(send)
        if refusal is not None:
            await refusal(scope, receive, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)

    def _refusal(self, scope: Scope) -> Response | None:
        headers = Headers(scope=scope)
        if self._token is None:
            if not is_loopback(_host_name(headers.get("host", ""))):
                return PlainTextResponse(
                    "this dashboard answers only to a loopback host name (127.0.0.1, localhost)",
                    status_code=421,
                )
            return None
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        if _same(query.get("token"), self._token):
            return _without_token_in_url(scope, query, self._token.decode())
        authorization = headers.get("authorization", "")
        bearer = authorization[7:] if authorization[:7].lower() == "bearer " else None
        cookie = SimpleCookie(headers.get("cookie", "")).get(TOKEN_COOKIE)
        if _same(bearer, self._token) or _same(cookie.value if cookie else None, self._token):
            return None
        return PlainTextResponse(
            "this dashboard needs its token: open the URL `orchestrator-store serve` printed",
            status_code=401,
            headers={"www-authenticate": "Bearer"},
        )


def _without_token_in_url(scope: Scope, query: dict[str, str], token: str) -> Response:
    rest = urlencode([(key, value) for key, value in query.items() if key != "token"])
    target = scope["path"] + (f"?{rest}" if rest else "")
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict", path="/")
    return response


def _with_headers(send: Send) -> Send:
    async def send_with_headers(message: Message) -> None:
        if message["type"] == "http.response.start":
            present = {name.lower() for name, _ in message.get("headers", [])}
            extra: Iterable[tuple[bytes, bytes]] = (
                header for header in _HEADERS if header[0] not in present
            )
            message = {**message, "headers": [*message.get("headers", []), *extra]}
        await send(message)

    return send_with_headers
