"""A guard in front of the Gradio app: only our own host names and same-origin requests, and a strict CSP.

`Guard` is a plain ASGI middleware. For every HTTP request and WebSocket it checks
- the Host header: it must name the address the server is bound to (for 127.0.0.1 also `localhost` and `[::1]`),
  so a page on another site that rebinds its DNS name to 127.0.0.1 (DNS rebinding) is refused; when the user binds
  to 0.0.0.0 or :: (`serve --host 0.0.0.0`: "open it up"), any host name is accepted;
- the Origin header, when a browser sends one: its host and port must be the Host header's, so another site's page
  cannot call /ask, read answers or push uploads from the user's browser (Gradio would answer such an Origin with
  Access-Control-Allow-Origin). Clients that send no Origin (gradio_client, curl) are not browsers and pass.
Refused requests get 403 with a one-line reason. Every HTTP response gets a Content-Security-Policy that lets the page
load scripts, styles, images, fonts and connections from its own origin only (plus data:/blob: for Gradio's own
images and workers), and `X-Content-Type-Options: nosniff`. Deliberately left out: authentication, rate limits and
TLS (a reverse proxy's job when the user opens the server to a network).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import urlsplit

CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data: blob:; font-src 'self' data:; media-src 'self' data: blob:; worker-src 'self' blob:; "
       "connect-src 'self'; frame-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
       "frame-ancestors 'self'")
OPEN_HOSTS = {"0.0.0.0", "::", ""}  # binding to every address: the user opened the server up
LOOPBACK_NAMES = {"127.0.0.1", "localhost", "::1"}

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


def _host_port(value: str, default_port: int | None) -> tuple[str, int | None]:
    """('example.org', 8080) from 'example.org:8080' or 'http://example.org:8080'; IPv6 brackets removed."""
    parts = urlsplit(value if "//" in value else f"//{value}")
    try:
        port = parts.port
    except ValueError:
        return "", None
    return (parts.hostname or "").lower(), port if port is not None else default_port


class Guard:
    def __init__(self, app: Callable[..., Awaitable[None]], bound_host: str = "127.0.0.1") -> None:
        self.app = app
        self.open = bound_host in OPEN_HOSTS
        self.names = {bound_host.lower().strip("[]")} | (LOOPBACK_NAMES if bound_host in LOOPBACK_NAMES else set())

    def refusal(self, scope: Scope) -> str | None:
        """Why this request is refused, or None."""
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        host, port = _host_port(headers.get("host", ""), None)
        if not host:
            return "no Host header"
        if not self.open and host not in self.names:
            return f"host {host!r} is not this server's name"
        origin = headers.get("origin")
        if origin and origin != "null":
            scheme = urlsplit(origin).scheme
            o_host, o_port = _host_port(origin, 443 if scheme in ("https", "wss") else 80)
            h_port = port if port is not None else (443 if scope.get("scheme") in ("https", "wss") else 80)
            if (o_host, o_port) != (host, h_port):
                return f"cross-origin request from {origin!r}"
        elif origin == "null":
            return "cross-origin request from an opaque origin"
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        reason = self.refusal(scope)
        if reason is not None:
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
                return
            body = f"forbidden: {reason}\n".encode()
            await send({"type": "http.response.start", "status": 403,
                        "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                                    (b"content-length", str(len(body)).encode()),
                                    (b"content-security-policy", CSP.encode())]})
            await send({"type": "http.response.body", "body": body})
            return

        async def send_with_policy(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", [])
                           if k.lower() not in (b"content-security-policy", b"x-content-type-options")]
                headers += [(b"content-security-policy", CSP.encode()), (b"x-content-type-options", b"nosniff")]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_policy)
