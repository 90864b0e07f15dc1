"""Who may use the viewer: the user who started it, holding its token.

``memoir ui`` prints a URL with a fresh random token. The first request with
``?token=`` sets an HttpOnly, SameSite=Strict cookie and redirects to the same
page without the token (so it does not linger in the address bar or history);
every later request must carry that cookie, or gets 401. A state-changing
request (anything but GET/HEAD) must also carry the token in the
``X-Memoir-Token`` header, which a link or a form on another site cannot set
(no CSRF), and come from our own origin. The Host header must name the
loopback address we listen on, so a rebinding DNS name cannot reach us.
"""

from __future__ import annotations

import hmac
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

from starlette.types import ASGIApp, Receive, Scope, Send

TOKEN_HEADER = "x-memoir-token"

# Sent with every response: no inline script or style (defence in depth
# behind escaping: injected markup cannot run code), nothing from elsewhere,
# no framing, no referrer carrying a URL out.
SECURITY_HEADERS = [
    (b"content-security-policy",
     b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
     b" connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self';"
     b" frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cache-control", b"no-store"),
]


def cookie_name(port: int) -> str:
    """The session cookie's name; per port, since cookies are shared across ports."""
    return f"memoir_token_{port}"


class TokenAuth:
    """ASGI middleware enforcing the token, the loopback Host and same-origin writes."""

    def __init__(self, app: ASGIApp, *, token: str, port: int) -> None:
        self.app = app
        self.token = token
        self.port = port
        self.cookie = cookie_name(port)
        self.hosts = {f"127.0.0.1:{port}", f"localhost:{port}"}

    def _matches(self, candidate: str | None) -> bool:
        return candidate is not None and hmac.compare_digest(
            candidate.encode("utf-8", "replace"), self.token.encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        if headers.get("host") not in self.hosts:
            await _plain(send, 403, "wrong Host: the viewer answers only on 127.0.0.1")
            return
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"),
                          keep_blank_values=True)
        given = dict(query).get("token")
        if given is not None:
            if not self._matches(given):
                await _plain(send, 401, "wrong token: open the URL `memoir ui` printed")
                return
            rest = urlencode([(k, v) for k, v in query if k != "token"])
            # One leading slash: "//host/..." would redirect to another site.
            location = "/" + quote(scope["path"].lstrip("/")) + (f"?{rest}" if rest else "")
            await _redirect(send, location, self._set_cookie())
            return
        cookies = SimpleCookie()
        try:
            cookies.load(headers.get("cookie", ""))
        except Exception:  # a malformed Cookie header is just "no cookie"
            cookies = SimpleCookie()
        morsel = cookies.get(self.cookie)
        if not self._matches(morsel.value if morsel else None):
            await _plain(send, 401, "not signed in: open the URL `memoir ui` printed "
                                    "(it carries the access token)")
            return
        if scope["method"] not in ("GET", "HEAD"):
            origin = headers.get("origin")
            if not self._matches(headers.get(TOKEN_HEADER)) or (
                    origin is not None and origin.removeprefix("http://") not in self.hosts):
                await _plain(send, 403, "a change needs the X-Memoir-Token header "
                                        "from the viewer's own page")
                return
        await self.app(scope, receive, _with_headers(send))

    def _set_cookie(self) -> bytes:
        return (f"{self.cookie}={self.token}; HttpOnly; SameSite=Strict; Path=/").encode()


def _with_headers(send: Send) -> Send:
    async def wrapped(message: Any) -> None:
        if message["type"] == "http.response.start":
            message = dict(message)
            message["headers"] = list(message.get("headers", [])) + SECURITY_HEADERS
        await send(message)
    return wrapped


async def _plain(send: Send, status: int, text: str) -> None:
    body = (text + "\n").encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(body)).encode()),
                            *SECURITY_HEADERS]})
    await send({"type": "http.response.body", "body": body})


async def _redirect(send: Send, location: str, cookie: bytes) -> None:
    await send({"type": "http.response.start", "status": 303,
                "headers": [(b"location", location.encode("latin-1", "replace")),
                            (b"set-cookie", cookie), (b"content-length", b"0"),
                            *SECURITY_HEADERS]})
    await send({"type": "http.response.body", "body": b""})
