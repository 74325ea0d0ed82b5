"""The dashboard's read-only JSON API (``GET /api/...``). Every shape is
the command line's ``--json`` one, built by the same functions
(``phasekit._shapes``, the records' ``to_dict``, ``phasekit._json``); a
listing the command line prints one object per line is a JSON array here."""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .._json import json_ready
from .._shapes import job_detail, job_rows, task_dict, worker_rows
from ._context import dashboard, own_job, own_task
from ._http import JSON, MAX_ID, ApiError, blocking, query_flag, query_int, query_text

if TYPE_CHECKING:
    from ..jobs import JobBackend, JobStatus
    from ._auth import Principal

#: The job type whose output the duplicates report shows (phasekit.dupes.DupesJob).
DUPES_JOB = "phasekit.dupes"
#: The most rows a listing returns at once.
MAX_LIMIT = 10_000


async def session(request: Request) -> Response:
    """Who the caller is (its tenant; whether it may only read), the CSRF
    token its actions carry, and the newest event id: a page reads its data
    after it, then follows the events from that id, so nothing happening in
    between is missed."""
    board = dashboard(request)
    principal = board.access.require(request)
    last = await blocking(board.store.last_event_id)
    return JSON(
        {
            "tenant": principal.tenant,
            "csrf_token": board.access.csrf_token(principal),
            "last_event_id": last,
            "open": board.access.open,
            "read_only": principal.read_only,
        }
    )


def _tenant_filter(request: Request, principal: Principal) -> tuple[str | None, bool]:
    """The tenant a listing is of, and False when the caller asked for a
    tenant it may not see (the listing is then empty, as for a tenant with
    no jobs)."""
    asked = query_text(request, "tenant")
    if principal.tenant is None:
        return asked, True
    return principal.tenant, asked is None or asked == principal.tenant


def _status(request: Request) -> JobStatus | None:
    from ..jobs import JobStatus

    text = request.query_params.get("status") or None
    if text is None:
        return None
    try:
        return JobStatus(text)
    except ValueError:
        known = ", ".join(s.value for s in JobStatus)
        raise ApiError(400, f"status must be one of {known}, not {text!r}") from None


def _matches(row: dict[str, Any], needle: str) -> bool:
    """Whether a job row contains ``needle`` (case-insensitive) in its id,
    type, status, phase, tenant, scope, task or error."""
    fields = ("id", "name", "status", "phase", "tenant", "scope", "task_id", "error")
    return any(needle in str(row.get(f) or "").lower() for f in fields)


#: Jobs read at once while a search (``q``) looks for its matches.
SEARCH_PAGE = 500


def _cursor_text(keys: list[Any]) -> str:
    """A page's cursor as the API hands it out: opaque, URL-safe text."""
    raw = json.dumps(keys, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _cursor_keys(request: Request, name: str, kinds: tuple[type, ...]) -> list[Any] | None:
    """The keys of the cursor in query parameter ``name`` (None: none
    given); 400 for text that is not a cursor of this listing (``kinds``:
    the type of each key)."""
    text = (request.query_params.get(name) or "").strip()
    if not text:
        return None
    try:
        keys = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except ValueError:
        keys = None

    def fits(key: object, kind: type) -> bool:
        # JSON writes a float with no fraction as an int.
        wanted = (int, float) if kind is float else kind
        if isinstance(key, int) and not -MAX_ID - 1 <= key <= MAX_ID:
            return False  # no store holds it: its query would fail, not page
        if isinstance(key, str) and "\x00" in key:
            return False  # no id holds one (see query_text)
        return isinstance(key, wanted) and not isinstance(key, bool)

    if not (
        isinstance(keys, list)
        and len(keys) == len(kinds)
        and all(fits(key, kind) for key, kind in zip(keys, kinds, strict=True))
    ):
        raise ApiError(400, f"{name} is not a cursor this listing handed out: {text!r}")
    return keys


def _paged(request: Request, rows: list[Any], name: str, cursor: str | None) -> Response:
    """``rows`` (the listing's JSON array, as the command line prints it)
    and, when more may follow, where the next page starts: the ``Link``
    header (``rel="next"``) and ``X-Next-Cursor`` (the value of query
    parameter ``name`` that asks for it)."""
    if cursor is None:
        return JSON(rows)
    url = request.url.include_query_params(**{name: cursor})
    headers = {"Link": f'<{url.path}?{url.query}>; rel="next"', "X-Next-Cursor": cursor}
    return JSON(rows, headers=headers)


async def jobs(request: Request) -> Response:
    """The jobs (``phasekit jobs list --json``): unfinished ones unless
    ``all=true`` or a finished ``status`` is asked for; filtered by
    ``status``, ``type``, ``tenant``, ``scope``, ``task`` and ``q`` (text
    searched in id, type, status, phase, tenant, scope, task and error); at
    most ``limit`` (default 500), in dispatch order. A full page says where
    the next one starts (see :func:`_paged`): ``after=CURSOR``. Only the
    jobs listed are read (and, with ``q``, those searched)."""
    from ..errors import InvalidInputError
    from ..jobs._scope import check_scope

    board = dashboard(request)
    principal = board.access.require(request)
    status = _status(request)
    tenant, visible = _tenant_filter(request, principal)
    scope = query_text(request, "scope")
    if scope is not None:
        try:
            check_scope(scope)
        except InvalidInputError as exc:
            raise ApiError(400, str(exc)) from None
    limit = query_int(request, "limit", 500, low=1, high=MAX_LIMIT)
    finished = query_flag(request, "all") or (status is not None and status.finished)
    needle = (request.query_params.get("q") or "").strip().lower()
    name = query_text(request, "type")
    task_id = query_text(request, "task")
    keys = _cursor_keys(request, "after", (int, float, str))
    if not visible:
        return JSON([])

    def read() -> tuple[list[dict[str, Any]], str | None]:
        store = board.store
        out: list[dict[str, Any]] = []
        after = None if keys is None else (int(keys[0]), float(keys[1]), str(keys[2]))
        while True:
            want = SEARCH_PAGE if needle else limit - len(out)
            listed = store.list_jobs(
                status,
                name=name,
                tenant=tenant,
                scope=scope,
                task_id=task_id,
                unfinished=not finished,
                after=after,
                limit=want,
            )
            by_id = {r.id: r for r in listed}
            rows = job_rows(store, listed, finished=finished)
            if needle:
                rows = [r for r in rows if _matches(r, needle)]
            for row in rows:
                out.append(row)
                if len(out) == limit:
                    last = by_id[row["id"]]
                    return out, _cursor_text([last.priority, last.created_at, last.id])
            if len(listed) < want:
                return out, None  # the listing's end
            after = (listed[-1].priority, listed[-1].created_at, listed[-1].id)

    rows, cursor = await blocking(read)
    return _paged(request, rows, "after", cursor)


async def job(request: Request) -> Response:
    """One job whole (``phasekit jobs show --json``): row, input, output,
    warnings, per-file errors, metrics, phases with their history; with
    ``debug=true`` the traceback of its last failure."""
    board = dashboard(request)
    principal = board.access.require(request)
    debug = query_flag(request, "debug")
    job_id = request.path_params["job_id"]

    def read() -> dict[str, Any]:
        record = own_job(board.store, principal, job_id)
        return job_detail(board.store, record, debug=debug)

    return JSON(await blocking(read))


async def history(request: Request) -> Response:
    """Finished jobs, newest first (``phasekit jobs history --json``); ``type``
    and ``tenant`` filter, at most ``limit`` (default 100). A full page says
    where the next one starts (see :func:`_paged`): ``before=CURSOR``."""
    board = dashboard(request)
    principal = board.access.require(request)
    tenant, visible = _tenant_filter(request, principal)
    limit = query_int(request, "limit", 100, low=1, high=MAX_LIMIT)
    keys = _cursor_keys(request, "before", (float, str))
    if not visible:
        return JSON([])
    name = query_text(request, "type")
    before = None if keys is None else (float(keys[0]), str(keys[1]))
    entries = await blocking(
        board.store.history, limit=limit, name=name, tenant=tenant, before=before
    )
    cursor = None
    if len(entries) == limit:
        cursor = _cursor_text([entries[-1].finished_at, entries[-1].id])
    return _paged(request, [h.to_dict() for h in entries], "before", cursor)


async def tasks(request: Request) -> Response:
    """Tasks, newest first (``phasekit tasks list --json``), at most ``limit``."""
    board = dashboard(request)
    principal = board.access.require(request)
    tenant, visible = _tenant_filter(request, principal)
    limit = query_int(request, "limit", 100, low=1, high=MAX_LIMIT)
    if not visible:
        return JSON([])
    records = await blocking(board.store.tasks, tenant=tenant, limit=limit)
    return JSON([task_dict(r, jobs=False) for r in records])


async def task(request: Request) -> Response:
    """One task with its jobs (``phasekit tasks show --json``)."""
    board = dashboard(request)
    principal = board.access.require(request)
    task_id = request.path_params["task_id"]
    record = await blocking(own_task, board.store, principal, task_id)
    return JSON(task_dict(record, jobs=True))


async def workers(request: Request) -> Response:
    """The library's workers with their heartbeats and whether they are
    alive (``phasekit jobs workers --json``); of their jobs, only the
    caller's tenant's are named."""
    board = dashboard(request)
    principal = board.access.require(request)
    return JSON(await blocking(worker_rows, board.store, principal.tenant))


async def locations(request: Request) -> Response:
    """The library's locations with their totals (bytes, files) and when
    each was last indexed. Locations are the library's, not a tenant's: an
    index of one is any tenant's job."""
    board = dashboard(request)
    board.access.require(request)
    found = await blocking(board.library.locations)
    return JSON([json_ready(location) for location in found])


#: History entries of duplicate searches read at a time (see _latest_dupes).
DUPES_PAGE = 20


def _latest_dupes(
    store: JobBackend, tenant: str | None, location: int | None
) -> tuple[str, Any] | None:
    """``(job id, output)`` of the newest duplicate search that completed
    (of ``location`` if given), or None."""
    from ..jobs import JobStatus

    done = (JobStatus.COMPLETED, JobStatus.COMPLETED_WITH_ERRORS)
    scope = None if location is None else f"location:{location}"
    before = None
    while True:
        # In pages, newest first: each entry carries its output (a whole
        # report), and the newest usually matches.
        page = store.history(limit=DUPES_PAGE, name=DUPES_JOB, tenant=tenant, before=before)
        for entry in page:
            if entry.status in done and (scope is None or entry.scope == scope):
                return entry.id, entry.output()
        if len(page) < DUPES_PAGE:
            return None
        before = (page[-1].finished_at, page[-1].id)


async def duplicates(request: Request) -> Response:
    """The newest completed duplicate search (of ``location`` if given): its
    summary as ``phasekit dupes --json`` shapes its groups, with the extra
    copies counted and the job's id; 404 if none completed."""
    from ..dupes import DupesSummary

    board = dashboard(request)
    principal = board.access.require(request)
    location = request.query_params.get("location")
    location_id = None
    if location:
        location_id = query_int(request, "location", 0, low=1, high=MAX_ID)
    found = await blocking(_latest_dupes, board.store, principal.tenant, location_id)
    if found is None:
        raise ApiError(404, "no duplicate search has completed (phasekit dupes runs one)")
    job_id, output = found
    summary = output if isinstance(output, DupesSummary) else DupesSummary.from_mapping(output)
    return JSON({"job_id": job_id, **summary.to_dict(), "duplicates": summary.duplicates})


def routes() -> list[Route]:
    """The read-only API's routes."""
    return [
        Route("/api/session", session, methods=["GET"]),
        Route("/api/jobs", jobs, methods=["GET"]),
        Route("/api/jobs/{job_id}", job, methods=["GET"]),
        Route("/api/history", history, methods=["GET"]),
        Route("/api/tasks", tasks, methods=["GET"]),
        Route("/api/tasks/{task_id}", task, methods=["GET"]),
        Route("/api/workers", workers, methods=["GET"]),
        Route("/api/locations", locations, methods=["GET"]),
        Route("/api/duplicates", duplicates, methods=["GET"]),
    ]


__all__ = ["routes"]
