"""``GET /api/events``: the library's event log as server-sent events.

Every status and progress change of every job, by whichever process made
it, read from the job store's event log (``events(after=...)``, as
:func:`phasekit.jobs.follow_events` and ``phasekit events --follow`` read
it; here the stream also ends when the server stops, instead of holding its
shutdown): one stream serves a whole page, whatever the number of jobs.
Each message is ``event: job``, its ``id`` the
event's ``seq`` and its ``data`` the event as ``phasekit events --json``
prints it. A browser's ``EventSource`` reconnects on its own and sends the
last id it saw as ``Last-Event-ID``: the stream goes on right after it,
missing nothing (ids grow in commit order with none skipped). A stream
asked to start after events the log no longer keeps says so with ``event:
gap`` and ends: the page reloads what it shows and follows from now.

Written on Starlette's ``StreamingResponse``: the format is a few lines of
text, and the response already ends the stream when the client goes away.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import anyio
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from ._context import dashboard
from ._http import ApiError, blocking, whole_number

if TYPE_CHECKING:
    from ..jobs import JobEvent
    from ._context import Dashboard

#: How long a browser waits before reconnecting a dropped stream (ms).
RETRY_MS = 2000
#: Events read at once, and how often the log is read when all were sent (s).
PAGE = 1000
FOLLOW_POLL_S = 0.1


def frame(event_id: int | None, kind: str, data: object) -> str:
    """One server-sent event. ``json.dumps`` writes one line of ASCII, so
    the data needs one ``data:`` field whatever the paths in it hold (a
    newline in a name is ``\\n`` in the JSON)."""
    head = "" if event_id is None else f"id: {event_id}\n"
    # default=str: a value JSON has no type for must not end the stream.
    return f"{head}event: {kind}\ndata: {json.dumps(data, default=str)}\n\n"


def _start(request: Request) -> int | None:
    """Where the stream starts: after ``Last-Event-ID`` (a reconnect), else
    after ``?after=N`` (a page that read its data as of event N), else from
    now. 400 for an id that is not a whole number >= 0."""
    text = request.headers.get("last-event-id") or request.query_params.get("after")
    if text is None or text.strip() == "":
        return None
    event_id = whole_number(text)
    if event_id is None:
        raise ApiError(400, f"an event id is a whole number >= 0, not {text.strip()!r}")
    return event_id


async def _follow(board: Dashboard, after: int, tenant: str | None) -> AsyncIterator[JobEvent]:
    """The log's events after ``after`` (only ``tenant``'s if given), read
    as :func:`phasekit.jobs.follow_events` reads them (pages in commit
    order, a poll when none is new), until the server stops: then it ends,
    so the response ends cleanly and the browser reconnects to the next
    server from its last id. JobStateError if events after ``after`` were
    pruned (checked as follow_events does, whatever the tenant)."""
    from ..errors import JobStateError

    store = board.store
    checked = False
    while not board.stopping.is_set():
        if not checked:
            first = await blocking(store.events, after=after, limit=1)
            if first:
                checked = True
                if first[0].seq > after + 1:
                    raise JobStateError(
                        f"events {after + 1} to {first[0].seq - 1} were pruned from the log: "
                        "start again from a job listing and follow from the newest event"
                    )
        events = await blocking(store.events, after=after, limit=PAGE, tenant=tenant)
        for event in events:
            after = event.seq
            yield event
        if len(events) < PAGE:
            await anyio.sleep(FOLLOW_POLL_S)


async def _stream(request: Request, after: int | None) -> AsyncIterator[str]:
    from ..errors import JobStateError

    board = dashboard(request)
    principal = board.access.require(request)
    yield f"retry: {RETRY_MS}\n: phasekit events\n\n"
    if after is None:
        # From now: nothing before it can have been pruned.
        after = await blocking(board.store.last_event_id)
    try:
        async for event in _follow(board, after, principal.tenant):
            yield frame(event.seq, "job", event.to_dict())
    except JobStateError as exc:
        # The events after ``after`` were pruned: no resume can be exact.
        yield frame(None, "gap", {"message": str(exc)})


async def events(request: Request) -> Response:
    """The event stream (see the module's docstring); only the caller's
    tenant's jobs' events for a tenant's token."""
    board = dashboard(request)
    board.access.require(request)  # refused before the stream starts
    after = _start(request)
    return StreamingResponse(
        _stream(request, after),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


def routes() -> list[Route]:
    """The event stream's route."""
    return [Route("/api/events", events, methods=["GET"])]
