"""The dashboard's read-only JSON API (``GET /api/...``). Every shape is
the command line's ``--json`` one, built by the same functions
(``phasekit._shapes``, the records' ``to_dict``, ``phasekit._json``); a
listing the command line prints one object per line is a JSON array here."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .._json import json_ready
from .._shapes import job_detail, job_rows, task_dict, worker_rows
from ._context import dashboard, own_job, own_task
from ._http import JSON, ApiError, blocking, query_flag, query_int

if TYPE_CHECKING:
    from ..jobs import JobBackend, JobStatus
    from ._auth import Principal

#: The job type whose output the duplicates report shows (phasekit.dupes.DupesJob).
DUPES_JOB = "phasekit.dupes"
#: The most rows a listing returns at once.
MAX_LIMIT = 10_000


async def session(request: Request) -> Response:
    """Who the caller is, the CSRF token its actions carry, and the newest
    event id: a page reads its data after it, then follows the events from
    that id, so nothing happening in between is missed."""
    board = dashboard(request)
    principal = board.access.require(request)
    last = await blocking(board.store.last_event_id)
    return JSON(
        {
            "tenant": principal.tenant,
            "csrf_token": board.access.csrf_token(principal),
            "last_event_id": last,
            "open": board.access.open,
        }
    )


def _tenant_filter(request: Request, principal: Principal) -> tuple[str | None, bool]:
    """The tenant a listing is of, and False when the caller asked for a
    tenant it may not see (the listing is then empty, as for a tenant with
    no jobs)."""
    asked = request.query_params.get("tenant") or None
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


async def jobs(request: Request) -> Response:
    """The jobs (``phasekit jobs list --json``): unfinished ones unless
    ``all=true`` or a finished ``status`` is asked for; filtered by
    ``status``, ``type``, ``tenant``, ``scope``, ``task`` and ``q`` (text
    searched in id, type, status, phase, tenant, scope, task and error); at
    most ``limit`` (default 500)."""
    from ..errors import InvalidInputError
    from ..jobs._scope import check_scope

    board = dashboard(request)
    principal = board.access.require(request)
    status = _status(request)
    tenant, visible = _tenant_filter(request, principal)
    scope = request.query_params.get("scope") or None
    if scope is not None:
        try:
            check_scope(scope)
        except InvalidInputError as exc:
            raise ApiError(400, str(exc)) from None
    limit = query_int(request, "limit", 500, low=1, high=MAX_LIMIT)
    finished = query_flag(request, "all") or (status is not None and status.finished)
    needle = (request.query_params.get("q") or "").strip().lower()
    if not visible:
        return JSON([])

    def read() -> list[dict[str, Any]]:
        store = board.store
        listed = store.list_jobs(
            status,
            name=request.query_params.get("type") or None,
            tenant=tenant,
            scope=scope,
            task_id=request.query_params.get("task") or None,
        )
        if not finished:
            # The rows read each job's status afresh; this only spares
            # reading the progress of jobs long finished.
            listed = [r for r in listed if not r.status.finished]
        if not needle:
            listed = listed[:limit]
        rows = job_rows(store, listed, finished=finished)
        if needle:
            rows = [r for r in rows if _matches(r, needle)][:limit]
        return rows

    return JSON(await blocking(read))


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
    and ``tenant`` filter, at most ``limit`` (default 100)."""
    board = dashboard(request)
    principal = board.access.require(request)
    tenant, visible = _tenant_filter(request, principal)
    limit = query_int(request, "limit", 100, low=1, high=MAX_LIMIT)
    if not visible:
        return JSON([])
    name = request.query_params.get("type") or None
    entries = await blocking(board.store.history, limit=limit, name=name, tenant=tenant)
    return JSON([h.to_dict() for h in entries])


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


def _latest_dupes(
    store: JobBackend, tenant: str | None, location: int | None
) -> tuple[str, Any] | None:
    """``(job id, output)`` of the newest duplicate search that completed
    (of ``location`` if given), or None."""
    from ..jobs import JobStatus

    done = (JobStatus.COMPLETED, JobStatus.COMPLETED_WITH_ERRORS)
    scope = None if location is None else f"location:{location}"
    for entry in store.history(limit=None, name=DUPES_JOB, tenant=tenant):
        if entry.status in done and (scope is None or entry.scope == scope):
            return entry.id, entry.output()
    return None


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
        location_id = query_int(request, "location", 0, low=1, high=2**63 - 1)
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
