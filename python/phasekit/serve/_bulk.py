"""``POST /api/jobs/bulk``: one action (pause, resume, cancel, retry) on
many jobs, ``{"action": "cancel", "ids": ["...", ...]}``.

All or report: a request that is malformed (no such action, ``ids`` not a
list of job ids, too many, an unknown field) or not allowed (CSRF, another
site, a read-only token) is refused whole, with its 4xx, and changes
nothing. Otherwise every id is tried as ``POST /api/jobs/{id}/{action}``
tries it, with the same checks (the caller's tenant, the job's state), and
the answer (200) reports each: ``{"job_id", "ok": true, ...}`` with what the
single action answers, or ``{"job_id", "ok": false, "status": 404|409,
"message"}`` with its refusal. The jobs are not changed in one transaction:
each moves on its own, as a job run elsewhere may have moved meanwhile.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ._actions import ACTIONS, _authorized, _no_fields, control, retry
from ._context import Dashboard, own_job
from ._http import JSON, ApiError, blocking

if TYPE_CHECKING:
    from ._auth import Principal

#: The most ids one request acts on.
MAX_IDS = 1000


def _ids(body: dict[str, Any]) -> list[str]:
    """The body's ``ids``, each once, in order; 400 unless a list of 1 to
    :data:`MAX_IDS` non-empty strings."""
    ids = body.get("ids")
    if not isinstance(ids, list) or not ids:
        raise ApiError(400, "ids must be a non-empty list of job ids")
    if len(ids) > MAX_IDS:
        raise ApiError(400, f"at most {MAX_IDS} ids at once, not {len(ids)}")
    for job_id in ids:
        if not isinstance(job_id, str) or not job_id or len(job_id) > 200:
            raise ApiError(400, f"ids must be job ids (strings), not {job_id!r}")
    return list(dict.fromkeys(ids))


def act_on_all(
    board: Dashboard, principal: Principal, action: str, ids: list[str]
) -> list[dict[str, Any]]:
    """``action`` on each of ``ids``: what happened to each."""
    results: list[dict[str, Any]] = []
    for job_id in ids:
        try:
            record = own_job(board.store, principal, job_id)
            if action == "retry":
                done = retry(board, record)
            else:
                done = control(board.store, record, action)
        except ApiError as exc:
            results.append({"job_id": job_id, "ok": False, "status": exc.status,
                            "message": exc.message})  # fmt: skip
            continue
        # A retry answers with the new job's id: the one asked about stays first.
        results.append({**done, "job_id": job_id, "ok": True, **_new_job(done, job_id)})
    return results


def _new_job(done: dict[str, Any], job_id: str) -> dict[str, Any]:
    """For a retry, the id of the job it queued."""
    return {"new_job_id": done["job_id"]} if done.get("retry_of") == job_id else {}


async def bulk(request: Request) -> Response:
    """``POST /api/jobs/bulk``."""
    board, principal, body = await _authorized(request)
    _no_fields(body, ("action", "ids"))
    action = body.get("action")
    if action not in ACTIONS:
        raise ApiError(400, f"action must be one of {', '.join(ACTIONS)}, not {action!r}")
    ids = _ids(body)
    results = await blocking(act_on_all, board, principal, action, ids)
    done = sum(1 for r in results if r["ok"])
    return JSON({"action": action, "done": done, "refused": len(results) - done,
                 "results": results})  # fmt: skip


def routes() -> list[Route]:
    """The bulk action's route."""
    return [Route("/api/jobs/bulk", bulk, methods=["POST"])]
