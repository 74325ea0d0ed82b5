"""The page and its assets: ``/`` (the dashboard), ``/login`` (a token, for
a server that needs one), ``/static/...`` (HTML, CSS and plain JavaScript
shipped in the package: no build step, nothing fetched from elsewhere).

Every response carries a Content-Security-Policy that allows scripts,
styles and connections from this server only: even a path the page failed
to escape could not run as a script."""

from __future__ import annotations

import html
from pathlib import Path
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ._auth import COOKIE, refuse_cross_site
from ._context import dashboard
from ._http import read_body

#: The page's files, inside the package (they ship in the wheel).
STATIC = Path(__file__).parent / "static"
#: Where the page's CSRF token goes in index.html.
CSRF_MARK = "{{csrf_token}}"

HEADERS = {
    "content-security-policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    # Not no-referrer: under it a browser sends "Origin: null" with the
    # page's own form posts (the login), which the same-origin check must
    # refuse. same-origin still tells other sites nothing.
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
}


class SecurityHeaders:
    """Adds :data:`HEADERS` to every response (a plain ASGI middleware: it
    leaves the event stream's body alone)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                for name, value in HEADERS.items():
                    if name.encode() not in present:
                        headers.append((name.encode(), value.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


def _page(name: str, status: int = 200, csrf: str = "") -> Response:
    text = (STATIC / name).read_text("utf-8")
    text = text.replace(CSRF_MARK, html.escape(csrf, quote=True))
    return Response(text, status_code=status, media_type="text/html; charset=utf-8",
                    headers={"cache-control": "no-store"})  # fmt: skip


async def index(request: Request) -> Response:
    """The dashboard, its CSRF token in a meta tag; a server that needs a
    token sends a browser without one to the login page."""
    board = dashboard(request)
    principal = board.access.authenticate(request)
    if principal is None:
        return RedirectResponse("/login", status_code=303)
    return _page("index.html", csrf=board.access.csrf_token(principal))


async def login_page(request: Request) -> Response:
    """The login form."""
    return _page("login.html")


async def login(request: Request) -> Response:
    """Check the token a login form sent; set the cookie the page and its
    event stream authenticate with (HttpOnly: no script reads it;
    SameSite=Strict: no other site's page sends it)."""
    board = dashboard(request)
    refuse_cross_site(request)
    body = await read_body(request)
    try:
        fields = parse_qs(body.decode("utf-8", "replace"), max_num_fields=4)
    except ValueError:  # more fields than the form has: not the login form
        return _page("login.html", status=400)
    token = (fields.get("token") or [""])[0].strip()
    if board.access.open or not board.access.check_token(token)[0]:
        return _page("login.html", status=401)
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(COOKIE, token, httponly=True, samesite="strict", path="/")
    return response


async def logout(request: Request) -> Response:
    """Forget the browser's token (a same-origin form posts here)."""
    refuse_cross_site(request)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return response


def routes() -> list[BaseRoute]:
    """The page's routes."""
    return [
        Route("/", index, methods=["GET"]),
        Route("/login", login_page, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
    ]
