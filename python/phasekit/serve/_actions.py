"""The dashboard's actions (``POST /api/...``): pause, resume, cancel and
retry a job, queue an index of a location.

Each writes the library's job store with the calls ``phasekit jobs
pause|resume|cancel`` make (compare-and-set moves, stop requests a running
job sees at its next safe point), so they work whichever process or worker
runs the job. A refused action changes nothing and says why: 404 for a job
the caller cannot see, 409 for one in a state the action does not apply to.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ._context import Dashboard, dashboard, own_job
from ._http import JSON, ApiError, blocking, json_body, whole_number

if TYPE_CHECKING:
    from ..jobs import JobBackend, JobRecord
    from ._auth import Principal

ACTIONS = ("pause", "resume", "cancel", "retry")
#: The priorities a queued index may have: a 32-bit signed integer, what
#: PostgreSQL's job store holds (``priority INTEGER``); SQLite's holds more,
#: but a request must mean the same on either.
MIN_PRIORITY = -(2**31)
MAX_PRIORITY = 2**31 - 1


async def _authorized(request: Request) -> tuple[Dashboard, Principal, dict[str, Any]]:
    """The dashboard, the caller (checked for an action: CSRF, same
    origin) and the request's JSON body."""
    board = dashboard(request)
    principal = board.access.require(request)
    board.access.check_action(request, principal)
    body = await json_body(request)
    return board, principal, body


def _no_fields(body: dict[str, Any], allowed: tuple[str, ...] = ()) -> None:
    """400 for a body field the action does not take (a typo must not pass
    for a request that did what was meant)."""
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise ApiError(400, f"unknown field(s) {', '.join(map(repr, unknown))}")


def control(store: JobBackend, record: JobRecord, action: str) -> dict[str, Any]:
    """Pause, resume or cancel ``record`` as ``phasekit jobs`` does; what
    happened (``result``) and the job's status after; 409 if the action does
    not apply."""
    from ..jobs import JobStatus

    if record.status.finished:
        raise ApiError(409, f"job {record.id} is {record.status.value}: nothing to {action}")
    result: str
    if action == "pause":
        if store.move(record.id, JobStatus.PAUSED, only_from=(JobStatus.QUEUED,)):
            result = "paused"
        elif store.request_stop(record.id, "pause"):
            result = "pause requested"  # it pauses at its next safe point
        else:
            status = store.get_job(record.id).status
            raise ApiError(409, f"job {record.id} is {status.value}: nothing to pause")
    elif action == "resume":
        if not store.move(record.id, JobStatus.QUEUED, only_from=(JobStatus.PAUSED,)):
            status = store.get_job(record.id).status
            raise ApiError(409, f"job {record.id} is {status.value}, not paused")
        result = "queued"
    else:
        idle = (JobStatus.QUEUED, JobStatus.PAUSED)
        for job_id in [record.id, *store.descendants(record.id)]:
            if not store.move(job_id, JobStatus.CANCELLED, only_from=idle):
                store.request_stop(job_id, "cancel")  # running (no-op if finished)
        # A running job stops at its next safe point: until then it is not
        # cancelled, and the answer must not say it is (as for a pause).
        cancelled = store.status(record.id) is JobStatus.CANCELLED
        result = "cancelled" if cancelled else "cancel requested"
    return {"job_id": record.id, "result": result, "status": store.status(record.id).value}


def retry(board: Dashboard, record: JobRecord) -> dict[str, Any]:
    """Queue a new job with the input, priority and tenant of ``record``, a
    job that failed or was cancelled (its own record and history stay as
    they are); 409 for any other, and for a step of a task or a child job
    (they run as parts of a whole: retry the task or the parent)."""
    from ..errors import CorruptStateError, UnknownJobError
    from ..jobs import JobStatus, default_registry

    if record.status not in (JobStatus.FAILED, JobStatus.CANCELLED):
        raise ApiError(409, f"job {record.id} is {record.status.value}: only a failed or "
                            "cancelled job is retried")  # fmt: skip
    if record.task_id is not None or record.parent_id is not None:
        part = "a step of task " + record.task_id if record.task_id else "a child job"
        raise ApiError(409, f"job {record.id} is {part}: retry the whole instead")
    try:
        job = default_registry.get(record.name).from_state(record.input())
    except (UnknownJobError, KeyError):
        raise ApiError(409, f"job type {record.name!r} is not known to this server") from None
    except CorruptStateError as exc:
        raise ApiError(409, f"job {record.id}'s input cannot be read: {exc}") from None
    new_id = board.library.enqueue(job, priority=record.priority, tenant=record.tenant)
    return {
        "job_id": new_id,
        "retry_of": record.id,
        "result": "queued",
        "status": board.store.status(new_id).value,
    }


async def job_action(request: Request) -> Response:
    """``POST /api/jobs/{job_id}/{action}``: pause, resume, cancel or retry."""
    board, principal, body = await _authorized(request)
    action = request.path_params["action"]
    if action not in ACTIONS:
        raise ApiError(404, f"no action {action!r} (one of {', '.join(ACTIONS)})")
    _no_fields(body)
    job_id = request.path_params["job_id"]

    def act() -> dict[str, Any]:
        record = own_job(board.store, principal, job_id)
        if action == "retry":
            return retry(board, record)
        return control(board.store, record, action)

    return JSON(await blocking(act))


async def index_location(request: Request) -> Response:
    """``POST /api/locations/{location_id}/index``: queue an index of the
    location for the library's workers (``phasekit worker``); joins an
    index of it already waiting. Body (optional): ``priority`` (an int),
    and for the operator ``tenant`` (default ``"default"``)."""
    from ..errors import InvalidInputError, LocationNotFound
    from ..indexing import IndexJob
    from ..jobs._scope import check_tenant

    board, principal, body = await _authorized(request)
    _no_fields(body, ("priority", "tenant"))
    text = request.path_params["location_id"]
    location_id = whole_number(text)
    if location_id is None or location_id < 1:
        raise ApiError(404, f"no location with id {text!r}")
    priority = body.get("priority", 0)
    if not isinstance(priority, int) or isinstance(priority, bool):
        raise ApiError(400, f"priority must be an integer, not {priority!r}")
    if not MIN_PRIORITY <= priority <= MAX_PRIORITY:
        raise ApiError(400, f"priority must be between {MIN_PRIORITY} and {MAX_PRIORITY}, "
                            f"not {priority}")  # fmt: skip
    tenant = body.get("tenant")
    if principal.tenant is not None:
        if tenant is not None and tenant != principal.tenant:
            raise ApiError(403, "a tenant's token queues jobs for its own tenant only")
        tenant = principal.tenant
    elif tenant is None:
        tenant = "default"
    else:
        try:
            check_tenant(tenant)
        except InvalidInputError as exc:
            raise ApiError(400, str(exc)) from None

    def act() -> dict[str, Any]:
        try:
            location = board.library.location(location_id)
        except LocationNotFound:
            raise ApiError(404, f"no location with id {location_id}") from None
        job_id = board.library.enqueue(IndexJob(location.id), priority=priority, tenant=tenant)
        return {
            "job_id": job_id,
            "location_id": location.id,
            "tenant": tenant,
            "status": board.store.status(job_id).value,
        }

    return JSON(await blocking(act), status_code=202)


def routes() -> list[Route]:
    """The action routes."""
    return [
        Route("/api/jobs/{job_id}/{action}", job_action, methods=["POST"]),
        Route("/api/locations/{location_id}/index", index_location, methods=["POST"]),
    ]
