"""Run one job to its next stop: completion, failure, pause or cancel.

This is the synchronous core the manager runs in a worker thread. A job that
was interrupted (paused, killed) starts again from its last checkpoint.
"""

from __future__ import annotations

import logging
import traceback
from typing import Any

from ._codec import CorruptStateError
from ._context import JobCancelled, JobContext, JobControl, JobPaused
from ._definition import JobRegistry, UnknownJobError, default_registry
from ._store import JobStatus, JobStore

log = logging.getLogger("phasekit.jobs")


def execute(
    store: JobStore,
    job_id: str,
    *,
    registry: JobRegistry | None = None,
    control: JobControl | None = None,
    claimed: bool = False,
    library: Any = None,
) -> JobStatus:
    """Run (or resume) job ``job_id``; returns the status it stopped in.

    An unknown job name or an undecodable input or checkpoint fails this job
    with a clear message; nothing else is affected. ``claimed`` says the
    caller (the manager) has already marked the job running; ``library`` is
    handed to the job as ``ctx.library``.
    """
    status, end = run_job(
        store, job_id, registry=registry, control=control, claimed=claimed, library=library
    )
    store.finish(job_id, status, **end)
    return status


def run_job(
    store: JobStore,
    job_id: str,
    *,
    registry: JobRegistry | None = None,
    control: JobControl | None = None,
    claimed: bool = False,
    library: Any = None,
    loaded: tuple[Any, ...] | None = None,
) -> tuple[JobStatus, dict[str, Any]]:
    """:func:`execute` without recording the end: returns the status and the
    keyword arguments of ``store.finish`` (the manager writes them together
    with its claim of the next job, in one transaction). ``loaded``: the
    job's row for ``store.load_for_run``, if the claim returned it."""
    registry = registry or default_registry
    control = control or JobControl()
    try:
        record, checkpoint = store.load_for_run(job_id, loaded)
        cls = registry.get(record.name)
        job = cls.from_state(record.input())
    except (UnknownJobError, CorruptStateError) as exc:
        return JobStatus.FAILED, {"error": f"cannot start: {exc}"}
    ctx = JobContext(job_id, record.name, store, control, checkpoint, registry, library)
    if not claimed:
        store.set_status(job_id, JobStatus.RUNNING)
    status, output, error = _run(job.run, ctx)
    if status is JobStatus.COMPLETED and ctx.errors:
        status = JobStatus.COMPLETED_WITH_ERRORS
    completed = status in (JobStatus.COMPLETED, JobStatus.COMPLETED_WITH_ERRORS)
    return status, {
        "progress": ctx.final_progress(completed),
        "output": output,
        "error": error,
        "warnings": ctx.warnings,
        "errors": ctx.errors,
        "metrics": ctx.metrics.as_dict(phases=ctx.phase_history),
    }


def _run(run: Any, ctx: JobContext) -> tuple[JobStatus, Any, str | None]:
    try:
        output = run(ctx)
    except JobPaused:
        return JobStatus.PAUSED, None, None
    except JobCancelled:
        return JobStatus.CANCELLED, None, None
    except Exception as exc:  # the job failed; the store and the caller go on
        log.error("job %s (%s) failed:\n%s", ctx.id, ctx.name, traceback.format_exc())
        return JobStatus.FAILED, None, f"{type(exc).__name__}: {exc}"
    return JobStatus.COMPLETED, output, None
