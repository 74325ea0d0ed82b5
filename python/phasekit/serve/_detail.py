"""What a job's detail view adds to ``GET /api/jobs/{id}`` (the command
line's ``jobs show`` shape, kept as it is): the checkpoints it took
(``/checkpoints``) and the time each phase took (``/timing``).

Checkpoints: the job store keeps a job's newest checkpoint only (the one a
resumed run starts from; older ones are dropped as each new one is whole:
invariant 2, checkpoints stay small), numbered from 1 for the job's first.
So the answer is how many were taken (the newest's number) and the newest:
when it was saved (a phased job's checkpoint says; another job's may not),
its stored size, the phase it was in, and its contents when they are small
and plain JSON (a state holding bytes, say a path, is not shown).
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ._context import dashboard, own_job
from ._http import JSON, blocking

if TYPE_CHECKING:
    from ..jobs import JobBackend, PhaseRecord

#: The largest checkpoint (stored bytes) whose contents are shown.
SMALL_STATE = 4096


def _plain_json(value: Any) -> bool:
    """Whether ``value`` is JSON as it stands (no bytes, no NaN, string keys)."""
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return True


def checkpoints(store: JobBackend, job_id: str) -> dict[str, Any]:
    """The checkpoints ``job_id`` took: ``taken`` (how many) and ``newest``
    (None if it took none)."""
    from ..errors import CorruptStateError
    from ..jobs._codec import encode

    try:
        saved = store.load_checkpoint(job_id)
    except CorruptStateError as exc:
        return {"job_id": job_id, "taken": None, "newest": None, "error": str(exc)}
    if saved is None:
        return {"job_id": job_id, "taken": 0, "newest": None}
    seq, data = saved
    size = len(encode(data))
    phased = isinstance(data, dict) and "saved_at" in data and "at" in data
    saved_at = data.get("saved_at") if phased else None
    newest = {
        "seq": seq,
        "saved_at": saved_at if isinstance(saved_at, int | float) else None,
        "bytes": size,
        "phase": data.get("at") if phased else None,
        "state": data if size <= SMALL_STATE and _plain_json(data) else None,
    }
    return {"job_id": job_id, "taken": seq, "newest": newest}


def timing(records: list[PhaseRecord], now: float) -> list[dict[str, Any]]:
    """Per phase, in the order the phases first appear: how many times it
    started, the seconds it ran in all (a phase running now: until ``now``),
    its share of the job's phase time (None while no phase took any), its
    latest status, when it first started and when it last ended."""
    phases: dict[str, dict[str, Any]] = {}
    for record in records:
        row = phases.setdefault(
            record.phase,
            {"phase": record.phase, "attempts": 0, "seconds": 0.0, "status": None,
             "first_started_at": None, "last_ended_at": None},
        )  # fmt: skip
        row["status"] = record.status.value
        if record.started_at is None:
            continue  # not run yet
        row["attempts"] += 1
        end = record.ended_at if record.ended_at is not None else now
        row["seconds"] += max(0.0, end - record.started_at)
        if row["first_started_at"] is None:
            row["first_started_at"] = record.started_at
        if record.ended_at is not None:
            row["last_ended_at"] = record.ended_at
    total = sum(row["seconds"] for row in phases.values())
    for row in phases.values():
        row["share"] = row["seconds"] / total if total > 0 else None
    return list(phases.values())


async def job_checkpoints(request: Request) -> Response:
    """``GET /api/jobs/{job_id}/checkpoints``."""
    board = dashboard(request)
    principal = board.access.require(request)
    job_id = request.path_params["job_id"]

    def read() -> dict[str, Any]:
        own_job(board.store, principal, job_id)
        return checkpoints(board.store, job_id)

    return JSON(await blocking(read))


async def job_timing(request: Request) -> Response:
    """``GET /api/jobs/{job_id}/timing``: when the job was created, when its
    first phase started (``waited_s`` between), and per phase the time it
    took (see :func:`timing`); ``phases`` is empty for a job without phases."""
    from ..jobs import phase_history

    board = dashboard(request)
    principal = board.access.require(request)
    job_id = request.path_params["job_id"]

    def read() -> dict[str, Any]:
        record = own_job(board.store, principal, job_id)
        phases = timing(phase_history(board.store, job_id), time.time())
        starts = [p["first_started_at"] for p in phases if p["first_started_at"] is not None]
        started = min(starts) if starts else None
        return {
            "job_id": job_id,
            "created_at": record.created_at,
            "started_at": started,
            "waited_s": None if started is None else max(0.0, started - record.created_at),
            "phase_seconds": sum(p["seconds"] for p in phases),
            "phases": phases,
        }

    return JSON(await blocking(read))


def routes() -> list[Route]:
    """The detail view's routes."""
    return [
        Route("/api/jobs/{job_id}/checkpoints", job_checkpoints, methods=["GET"]),
        Route("/api/jobs/{job_id}/timing", job_timing, methods=["GET"]),
    ]
