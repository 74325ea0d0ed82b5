"""The dashboard's ASGI app: the routes of the API, the event stream and
the page over one library, with its access rules."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Collection, Iterable, Mapping
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import Response

from . import _actions, _api, _bulk, _detail, _openapi, _pages, _sse, _thumbs
from ._auth import Access, Tokens, is_loopback
from ._context import Dashboard
from ._http import ApiError, api_error, error_response

if TYPE_CHECKING:
    from .._types import StrPath

#: The names a browser may use for a server on loopback without a token. A
#: page of another site whose name resolves to 127.0.0.1 (DNS rebinding)
#: would be same-origin with an open server; its requests carry its own
#: name in Host, and are refused.
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1", "[::1]")


async def _invalid(request: Request, exc: Exception) -> Response:
    return error_response(400, str(exc))


async def _not_found(request: Request, exc: Exception) -> Response:
    return error_response(404, str(exc.args[0]) if exc.args else str(exc))


async def _conflict(request: Request, exc: Exception) -> Response:
    return error_response(409, str(exc))


async def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own refusals (no such route, method not allowed) as the
    API's JSON errors."""
    from starlette.exceptions import HTTPException

    assert isinstance(exc, HTTPException)
    return error_response(exc.status_code, exc.detail)


def create_app(
    library: StrPath | None = None,
    *,
    tokens: Mapping[str, str | None] | None = None,
    host: str = "127.0.0.1",
    jobs: str | None = None,
    secret: bytes | None = None,
    read_only: Collection[str] | None = None,
) -> Starlette:
    """The dashboard of the library at ``library`` (a folder or a
    ``postgresql://`` URL; None: ``$PHASEKIT_LIBRARY`` or the per-user one;
    ``jobs``: as :meth:`phasekit.library.Library.open`). ``tokens`` maps
    each token to its tenant (None: every tenant's; see
    ``phasekit.serve._auth``); ``read_only``: the tokens that may only read
    (default: those :func:`parse_tokens` read with ``ro:``, when ``tokens``
    is what it returned); without tokens the app is open, and only
    answers requests addressed to a loopback name or ``host``. The library
    is opened now (an error says so at once) and closed with the app's
    lifespan. ``secret`` keys the CSRF tokens (default: random)."""
    from ..jobs import open_backend
    from ..library import Library

    if read_only is None:
        read_only = tokens.read_only if isinstance(tokens, Tokens) else ()
    access = Access(tokens or {}, secret, read_only)
    opened = Library.open(library, jobs=jobs)
    try:
        store = open_backend(opened.jobs_location)
    except BaseException:
        opened.close()
        raise
    board = Dashboard(opened, store, access)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            board.close()

    middleware = [Middleware(_pages.SecurityHeaders)]
    if access.open:
        names: Iterable[str] = LOOPBACK_NAMES
        if is_loopback(host) and host not in LOOPBACK_NAMES:
            names = (*LOOPBACK_NAMES, host)
        middleware.append(Middleware(TrustedHostMiddleware, allowed_hosts=list(names)))
    from starlette.exceptions import HTTPException

    from ..errors import InvalidInputError, JobStateError, NotFoundError

    app = Starlette(
        routes=[
            *_openapi.routes(),
            *_api.routes(),
            *_detail.routes(),
            *_thumbs.routes(),
            *_bulk.routes(),
            *_actions.routes(),
            *_sse.routes(),
            *_pages.routes(),
        ],
        middleware=middleware,
        exception_handlers={
            ApiError: api_error,
            HTTPException: _http_error,
            InvalidInputError: _invalid,
            NotFoundError: _not_found,
            JobStateError: _conflict,
        },
        lifespan=lifespan,
    )
    app.state.dashboard = board
    return app
