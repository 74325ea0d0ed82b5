"""What every route of the dashboard shares: its JSON responses, its errors
as JSON, reading a request's body and query, and running the job store's
blocking calls off the event loop."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

T = TypeVar("T")

#: The largest request body an action reads (its JSON is a few fields).
MAX_BODY = 64 * 1024
#: The largest id the stores hold (a signed 64-bit integer: SQLite's INTEGER,
#: PostgreSQL's BIGINT); a larger number is no id, not a store error.
MAX_ID = 2**63 - 1


class ApiError(Exception):
    """A request the API refuses: answered with ``status`` and
    ``{"error": {"status": ..., "message": ...}}``, having changed nothing."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class JSON(Response):
    """JSON written as the command line writes it (``json.dumps`` with its
    defaults): non-ASCII escaped, so a path that is not UTF-8 (a ``str``
    with surrogate escapes) comes out as ``\\udcXX`` instead of failing to
    encode; values JSON has no type for as their ``str`` (as ``phasekit
    jobs show --json``)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return json.dumps(content, default=str).encode("ascii")


def error_response(status: int, message: str) -> JSON:
    """The body of every refusal."""
    return JSON({"error": {"status": status, "message": message}}, status_code=status)


async def api_error(request: Request, exc: Exception) -> Response:
    """The app's handler for :class:`ApiError`."""
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.message)


async def blocking(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` on a worker thread: the job store and the
    library answer from SQLite or PostgreSQL, which blocks; the event loop
    keeps serving the other requests and the event streams meanwhile."""
    return await run_in_threadpool(fn, *args, **kwargs)


async def read_body(request: Request) -> bytes:
    """The request's body; 413 (read no further) past :data:`MAX_BODY` bytes."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise ApiError(413, f"the request body is over {MAX_BODY} bytes")
    return body


async def json_body(request: Request) -> dict[str, Any]:
    """The request's body as a JSON object (an empty body is ``{}``); 400
    for anything else, 413 for a body over :data:`MAX_BODY` bytes, 415 for a
    body that does not say it is JSON."""
    body = await read_body(request)
    if not body.strip():
        return {}
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/json":
        raise ApiError(415, f"the body must be application/json, not {kind or 'untyped'!r}")
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"the body is not valid JSON: {exc}") from None
    except RecursionError:
        # Arrays nested thousands deep fit in MAX_BODY; the parser recurses.
        raise ApiError(400, "the body is not valid JSON: nested too deep") from None
    if not isinstance(value, dict):
        raise ApiError(400, f"the body must be a JSON object, not {type(value).__name__}")
    return value


def whole_number(text: str) -> int | None:
    """``text`` as an int >= 0 if it is one written in ASCII digits and at
    most :data:`MAX_ID` (a 64-bit id: a larger one would fail in the
    store, not be looked for), else None."""
    text = text.strip()
    if not (0 < len(text) <= 19 and text.isascii() and text.isdigit()):
        return None
    number = int(text)
    return number if number <= MAX_ID else None


def query_int(request: Request, name: str, default: int, *, low: int = 0, high: int) -> int:
    """An integer query parameter within ``[low, high]``; 400 otherwise."""
    text = request.query_params.get(name)
    if text is None or text == "":
        return default
    stripped = text[1:] if text.startswith("-") else text
    number = whole_number(stripped)
    if number is None:
        raise ApiError(400, f"{name} must be a whole number, not {text!r}")
    value = -number if text.startswith("-") else number
    if not low <= value <= high:
        raise ApiError(400, f"{name} must be between {low} and {high}, not {value}")
    return value


def query_text(request: Request, name: str) -> str | None:
    """A text query parameter (None: absent or empty); 400 for one holding a
    NUL character: no id, type, tenant or scope holds one, and PostgreSQL
    cannot even be asked for one (its text columns refuse it: the query
    would fail, not find nothing)."""
    text = request.query_params.get(name) or None
    if text is not None and "\x00" in text:
        raise ApiError(400, f"{name} must not hold a NUL character: {text!r}")
    return text


def query_flag(request: Request, name: str) -> bool:
    """A yes/no query parameter (``1``/``true``/``yes`` or ``0``/``false``/``no``)."""
    text = request.query_params.get(name, "").lower()
    if text in ("", "0", "false", "no"):
        return False
    if text in ("1", "true", "yes"):
        return True
    raise ApiError(400, f"{name} must be true or false, not {text!r}")
