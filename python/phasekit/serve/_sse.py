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

One reader of the log serves every stream of a server (:class:`Follower`):
it reads what is new every :data:`FOLLOW_POLL_S` while a stream waits,
turns each event into its message once, and keeps the newest
:data:`KEPT` for the streams to send; a stream further behind (a
reconnect after a while) reads its own way up from the store first. Ten
open pages cost the store one read per poll, not ten.

Written on Starlette's ``StreamingResponse``: the format is a few lines of
text, and the response already ends the stream when the client goes away.
"""

from __future__ import annotations

import bisect
import json
import math
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import anyio
from anyio.lowlevel import RunVar
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
#: Events read at once, and how often the log is read when all were sent
#: (s): once per server whatever the number of streams, so often enough that
#: an event reaches a page in ~25 ms (median; benches/bench_serve.py).
PAGE = 1000
FOLLOW_POLL_S = 0.05
#: Events the shared follower keeps for the streams (the newest), and the
#: most pages it reads in one poll (a stream further behind reads its own).
KEPT = 5000
POLL_PAGES = 5
#: A follower no stream polled for this long starts again from the newest event (s).
IDLE_S = 5.0


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


class Follower:
    """The reader of the event log that every stream of one server (on one
    event loop) shares. While a stream waits for what is new, one of the
    waiting streams reads the log (at most once per :data:`FOLLOW_POLL_S`)
    for all of them; each event read becomes its message once. It holds
    every event in ``(floor, head]`` (the newest :data:`KEPT` read), in
    commit order, so a stream resumes from its own last id: from here if
    the id is within, else from the store."""

    def __init__(self, board: Dashboard) -> None:
        self.board = board
        #: The id of the newest event read (None: not started).
        self.head: int | None = None
        #: Every event after this id, up to ``head``, is held.
        self.floor = 0
        self._seqs: list[int] = []
        self._held: list[tuple[JobEvent, str]] = []
        self._new = anyio.Event()
        self._polling = False
        self._polled_at = -math.inf

    async def start(self) -> int:
        """The id of the newest event read: read now when no stream has
        waited for events for :data:`IDLE_S` (nothing held is then kept: a
        follower idle for hours does not read them all on its next poll)."""
        idle = anyio.current_time() - self._polled_at > IDLE_S
        if idle and not self._polling:
            self.head = None
            self._seqs, self._held = [], []
        if self.head is None:
            head = await blocking(self.board.store.last_event_id)
            if self.head is None:  # no other stream started it meanwhile
                self.head = self.floor = head
        return self.head

    def after(self, seq: int, tenant: str | None) -> list[tuple[JobEvent, str]] | None:
        """The events held after ``seq`` (only ``tenant``'s if given) with
        their messages; None if some after ``seq`` are no longer held."""
        if seq < self.floor:
            return None
        found = self._held[bisect.bisect_right(self._seqs, seq) :]
        if tenant is None:
            return found
        return [pair for pair in found if pair[0].tenant == tenant]

    async def wait(self, seq: int) -> None:
        """Until the events after ``seq`` were looked for (a poll ended, by
        this stream or another), or at once if some are held."""
        if self.head is not None and self.head > seq:
            return
        if self._polling:
            with anyio.move_on_after(1.0):  # then looks at the server stopping
                await self._new.wait()
            return
        self._polling = True
        try:
            delay = self._polled_at + FOLLOW_POLL_S - anyio.current_time()
            if delay > 0:
                await anyio.sleep(delay)
            await self._poll()
        finally:
            # Also when this stream's client left mid-poll: another waiting
            # stream takes the next poll.
            self._polling = False
            self._polled_at = anyio.current_time()
            woken, self._new = self._new, anyio.Event()
            woken.set()

    async def _poll(self) -> None:
        store = self.board.store
        head = await self.start()
        for _ in range(POLL_PAGES):
            events = await blocking(store.events, after=head, limit=PAGE)
            if events and events[0].seq > head + 1:
                # Pruned past what was read (a log pruned to very few):
                # what is held is no longer contiguous with what follows.
                self._seqs, self._held = [], []
                self.floor = events[0].seq - 1
            for event in events:
                self._seqs.append(event.seq)
                self._held.append((event, frame(event.seq, "job", event.to_dict())))
            if events:
                head = self.head = events[-1].seq
            if len(self._held) > 2 * KEPT:
                drop = len(self._held) - KEPT
                self.floor = self._seqs[drop - 1]
                del self._seqs[:drop], self._held[:drop]
            if len(events) < PAGE:
                return


_FOLLOWERS: RunVar[dict[int, Follower]] = RunVar("phasekit_serve_followers")


def follower(board: Dashboard) -> Follower:
    """The follower of ``board``'s streams on the running event loop."""
    try:
        found = _FOLLOWERS.get()
    except LookupError:
        found = {}
        _FOLLOWERS.set(found)
    shared = found.get(id(board))
    if shared is None or shared.board is not board:
        shared = found[id(board)] = Follower(board)
    return shared


async def _catch_up(
    board: Dashboard, after: int, tenant: str | None, checked: bool
) -> tuple[list[tuple[JobEvent, str]], int]:
    """A stream behind what the follower holds: the next page of events
    after ``after`` (only ``tenant``'s if given) from the store, with their
    messages, and the id the stream is at once they are sent (past other
    tenants' events up to the log's end when the page is not full).
    JobStateError if events after ``after`` were pruned (checked, unless
    ``checked``, as :func:`phasekit.jobs.follow_events` does, whatever the
    tenant)."""
    from ..errors import JobStateError

    store = board.store
    if not checked:
        first = await blocking(store.events, after=after, limit=1)
        if first and first[0].seq > after + 1:
            raise JobStateError(
                f"events {after + 1} to {first[0].seq - 1} were pruned from the log: "
                "start again from a job listing and follow from the newest event"
            )
    head = follower(board).head or 0
    events = await blocking(store.events, after=after, limit=PAGE, tenant=tenant)
    pairs = [(e, frame(e.seq, "job", e.to_dict())) for e in events]
    at = events[-1].seq if events else after
    if len(events) < PAGE:
        at = max(at, head)  # nothing of ``tenant``'s up to the log's end then
    return pairs, at


async def _follow(board: Dashboard, after: int | None, tenant: str | None) -> AsyncIterator[str]:
    """The messages of the log's events after ``after`` (None: from now;
    only ``tenant``'s if given), as the server's :class:`Follower` reads
    them, until the server stops: then it ends, so the response ends
    cleanly and the browser reconnects to the next server from its last id.
    JobStateError if events after ``after`` were pruned, or if ``after`` is
    past the log's newest event (the log is not the one the caller saw)."""
    from ..errors import JobStateError

    shared = follower(board)
    await shared.start()
    if after is None:
        at = await blocking(board.store.last_event_id)  # from now: nothing pruned
        checked = True
    else:
        newest = await blocking(board.store.last_event_id)
        if after > newest:
            # An id this log never gave: the page saw another log (jobs.db
            # moved aside by ``phasekit jobs repair``, or another library
            # served on this port). Waiting for the log to pass it would
            # drop every event up to it, and the page would show stale jobs.
            raise JobStateError(
                f"event {after} is past the newest of this event log ({newest}): "
                "start again from a job listing and follow from the newest event"
            )
        at = after
        checked = after >= shared.floor  # what the follower holds is whole
    while not board.stopping.is_set():
        head = shared.head  # what ``held`` holds up to (it grows while we send)
        held = shared.after(at, tenant)
        if held is None:
            pairs, at = await _catch_up(board, at, tenant, checked)
            checked = True
            for _event, message in pairs:
                yield message
            continue
        for event, message in held:
            at = event.seq
            yield message
        if head is not None:
            at = max(at, head)  # past other tenants' events
        await shared.wait(at)


async def _stream(request: Request, after: int | None) -> AsyncIterator[str]:
    from ..errors import JobStateError

    board = dashboard(request)
    principal = board.access.require(request)
    yield f"retry: {RETRY_MS}\n: phasekit events\n\n"
    try:
        async for message in _follow(board, after, principal.tenant):
            yield message
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
