"""What keeps the workbench safe by default: loopback only unless a token guards it, a CSRF token on
every POST, no foreign Host or Origin, and headers that forbid any script or asset from elsewhere."""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from devquarry.errors import InputError

TOKEN_COOKIE = "devquarry_token"
TOKEN_HEADER = "x-devquarry-token"
LOCAL_NAMES = {"localhost", "127.0.0.1", "::1", "[::1]"}
# Only this server's own scripts and styles: a thread's text can never bring a script of its own.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cache-control": "no-store",
}


def is_loopback(host: str) -> bool:
    if host.strip("[]") in LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> str | None:
    """The token to require: none on a loopback bind without one; a non-loopback bind without one is refused."""
    if is_loopback(host):
        return token or None
    if not token:
        raise InputError(
            None,
            f"--host {host} serves the store to the network: give --token T (or --token auto to generate one)",
            field="host",
        )
    if token == "auto":
        return new_token()
    if len(token) < 16:
        raise InputError(None, "a token must be at least 16 characters long", field="token")
    return token


def host_name(header: str) -> str:
    """The name in a Host header, without its port (``[::1]:8765`` -> ``[::1]``)."""
    if header.startswith("["):
        return header.split("]", 1)[0] + "]"
    return header.rsplit(":", 1)[0]


def new_token() -> str:
    return secrets.token_urlsafe(24)


def safe_url(url) -> str | None:
    """Only http(s) links reach an href: a post's url could be ``javascript:``."""
    if isinstance(url, str) and url.strip().lower().startswith(("http://", "https://")) and url == url.strip():
        return url
    return None


def _same(a: str | None, b: str) -> bool:
    return bool(a) and hmac.compare_digest(a.encode(), b.encode())


class Guard:
    """ASGI middleware in front of every route.

    - With a token, a request needs it: the ``X-Devquarry-Token`` header, the cookie, or ``?token=``
      once (answered with the cookie and a redirect to the same page without it, so the token does
      not stay in the address bar or the history).
    - On a loopback bind without a token, the Host must be a loopback name: a page elsewhere that
      rebinds its own name to 127.0.0.1 (DNS rebinding) is refused.
    - A POST must carry the CSRF token (form field ``csrf``) and, when the browser sends one, an
      Origin of this server.
    """

    def __init__(self, app: ASGIApp, *, token: str | None, csrf: str, read_only: bool) -> None:
        self.app, self.token, self.csrf, self.read_only = app, token, csrf, read_only

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        refused = self._refuse(request)
        if refused is not None:
            await refused(scope, receive, send)
            return

        static = scope["path"].startswith("/static/")

        async def with_headers(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                extra = {**HEADERS, "cache-control": "max-age=600"} if static else HEADERS  # pages change; the assets do not
                headers += [(k.encode(), v.encode()) for k, v in extra.items() if k.encode() not in names]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)

    def _refuse(self, request: Request) -> Response | None:
        host = host_name(request.headers.get("host") or "")
        if self.token:
            given = request.headers.get(TOKEN_HEADER) or request.cookies.get(TOKEN_COOKIE)
            if not _same(given, self.token):
                query = request.query_params.get("token")
                if _same(query, self.token) and request.method == "GET":
                    rest = urlencode([(k, v) for k, v in request.query_params.multi_items() if k != "token"])
                    to = request.url.path + (f"?{rest}" if rest else "")
                    resp = RedirectResponse(to, status_code=303)
                    resp.set_cookie(TOKEN_COOKIE, self.token, httponly=True, samesite="strict")
                    return resp
                return PlainTextResponse(
                    "403: this workbench needs its token (?token=... once, or the X-Devquarry-Token header)", 403
                )
        elif not is_loopback(host):
            return PlainTextResponse(f"403: host {host!r} is not this machine", 403)
        if request.method not in ("GET", "HEAD"):
            if self.read_only:
                return PlainTextResponse("403: the workbench was started with --read-only", 403)
            origin = request.headers.get("origin")
            if origin and origin != "null" and origin.split("://", 1)[-1] != request.headers.get("host"):
                return PlainTextResponse("403: a POST from another site", 403)
        return None


async def check_csrf(request: Request, form: dict[str, str]) -> None:
    """Raise 403 unless the form carries this server's CSRF token."""
    from starlette.exceptions import HTTPException

    if not _same(form.get("csrf"), request.app.state.csrf):
        raise HTTPException(403, "missing or wrong CSRF token; reload the page")
