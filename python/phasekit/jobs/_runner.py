"""Run one job to its next stop: completion, failure, pause or cancel.

This is the synchronous core the manager runs in a worker thread. A job that
was interrupted (paused, killed) starts again from its last checkpoint.

A failure is stored as a message (``JobRecord.error``); its traceback is kept
apart (``JobStore.traceback``, ``phasekit jobs show --debug``) and logged
at error level with the traceback attached, for applications that configure
logging (phasekit's loggers print nothing by themselves). A full disk under
the library is not a failure: the job stops where it is, paused with the
reason as its error, and resumes once space is freed.
"""

from __future__ import annotations

import logging
import traceback
from typing import TYPE_CHECKING, Any

from ..errors import (
    ClosedError,
    CorruptStateError,
    JobStoreUnavailable,
    LeaseLostError,
    LibraryUnavailable,
    StorageFullError,
)
from ._context import (
    JobCancelled,
    JobContext,
    JobControl,
    JobPaused,
    ProgressListener,
    SpawnListener,
)
from ._definition import JobRegistry, default_registry
from ._model import JobStatus, RunStart

if TYPE_CHECKING:
    from ..library import Library
    from ._backend import JobBackend

log = logging.getLogger("phasekit.jobs")


def execute(
    store: JobBackend,
    job_id: str,
    *,
    registry: JobRegistry | None = None,
    control: JobControl | None = None,
    claimed: bool = False,
    library: Library | None = None,
) -> JobStatus:
    """Run (or resume) job ``job_id``; returns the status it stopped in.

    An undecodable input or checkpoint fails this job with a clear message;
    nothing else is affected. A job whose type this process does not know
    raises :class:`~phasekit.errors.UnknownJobError` and is left as it was,
    for a process that knows it. ``claimed`` says the caller (the manager)
    has already marked the job running; ``library`` is handed to the job as
    ``ctx.library``.

    A bare run has no owner lease: a manager or worker open on the same
    jobs.db takes the job for one left by a dead process and resumes it, and
    this run then stops with :class:`~phasekit.errors.LeaseLostError` at its
    next write (the job is not run twice). Use ``Library.run`` or a manager
    where others may be running jobs.
    """
    status, end = run_job(
        store, job_id, registry=registry, control=control, claimed=claimed, library=library
    )
    store.finish(job_id, status, **end)
    return status


def run_job(
    store: JobBackend,
    job_id: str,
    *,
    registry: JobRegistry | None = None,
    control: JobControl | None = None,
    claimed: bool = False,
    library: Library | None = None,
    loaded: RunStart | None = None,
    on_progress: ProgressListener | None = None,
    on_spawn: SpawnListener | None = None,
    children_run: bool = True,
) -> tuple[JobStatus, dict[str, Any]]:
    """:func:`execute` without recording the end: returns the status and the
    keyword arguments of ``store.finish`` (the manager writes them together
    with its claim of the next job, in one transaction). ``loaded``: the
    job's start if the claim read it (else it is read here);
    ``on_progress`` hears every progress value written, ``on_spawn`` every
    child queued; ``children_run`` False says nothing runs its children
    (a direct run: waiting for them fails the job with a clear message)."""
    registry = registry or default_registry
    control = control or JobControl()
    try:
        start = loaded if loaded is not None else store.load_for_run(job_id)
        checkpoint = start.checkpoint
    except CorruptStateError as exc:
        return JobStatus.FAILED, {"error": f"cannot start: {exc}"}
    record = start.record
    cls = registry.get(record.name)  # UnknownJobError: left for a process that knows it
    try:
        job = cls.from_state(record.input())
    except CorruptStateError as exc:
        return JobStatus.FAILED, {"error": f"cannot start: {exc}"}
    if not claimed:
        # This run's claim: read again for the lease epoch it gave.
        store.set_status(job_id, JobStatus.RUNNING)
        start = store.load_for_run(job_id)
    ctx = JobContext(
        job_id,
        record.name,
        store,
        control,
        checkpoint,
        registry,
        library,
        percent=start.percent,
        on_progress=on_progress,
        on_spawn=on_spawn,
        children_run=children_run,
        lease=start.lease,
    )
    status, output, error, trace = _run(job.run, ctx)
    if status is JobStatus.COMPLETED and ctx.errors:
        status = JobStatus.COMPLETED_WITH_ERRORS
    completed = status in (JobStatus.COMPLETED, JobStatus.COMPLETED_WITH_ERRORS)
    return status, {
        "progress": ctx.final_progress(completed),
        "output": output,
        "error": error,
        "traceback": trace,
        "warnings": ctx.warnings,
        "errors": ctx.errors,
        "metrics": ctx.metrics.as_dict(phases=ctx.phase_history),
        "lease": start.lease,
    }


def _run(run: Any, ctx: JobContext) -> tuple[JobStatus, Any, str | None, str | None]:
    """Status, output, error message and traceback of one run."""
    try:
        output = run(ctx)
    except LeaseLostError:
        raise  # not this run's job any more: nothing of it is recorded
    except JobPaused:
        return JobStatus.PAUSED, None, None, None
    except JobCancelled:
        return JobStatus.CANCELLED, None, None, None
    except StorageFullError as exc:
        # Interrupted, not failed: everything up to the last checkpoint is
        # kept, and retrying before space is freed would fail again.
        log.warning("job %s (%s) stopped: %s", ctx.id, ctx.name, exc)
        return JobStatus.PAUSED, None, str(exc), None
    except LibraryUnavailable as exc:
        # The library's database is away for now (its server restarting):
        # interrupted, not failed. Back to the queue, to resume from its
        # last checkpoint; the library connects again at its next call.
        log.warning("job %s (%s) interrupted: %s", ctx.id, ctx.name, exc)
        return JobStatus.QUEUED, None, None, None
    except ClosedError as exc:
        # The library was closed under the job: interrupted, not failed. It
        # goes back to the queue, for the next manager (the one it ran in
        # starts nothing more once its library is closed).
        log.warning("job %s (%s) interrupted: %s", ctx.id, ctx.name, exc)
        return JobStatus.QUEUED, None, None, None
    except JobStoreUnavailable:
        # The job store cannot be used for now (a server away longer than
        # its reconnect wait, a write whose COMMIT broke): the run was
        # interrupted, not failed. Its end cannot be given to the store
        # either, so it leaves as the manager's own store failure: the job
        # stays recorded as running and is queued again, to resume from its
        # last checkpoint, once the store answers (see JobManager._requeue).
        # Any other JobStoreError (a write refused, a damaged jobs.db)
        # fails the run below: running it again would meet it again.
        raise
    except Exception as exc:  # the job failed; the store and the caller go on
        message = describe(exc)
        log.error("job %s (%s) failed: %s", ctx.id, ctx.name, message, exc_info=True)
        return JobStatus.FAILED, None, message, traceback.format_exc()
    return JobStatus.COMPLETED, output, None, None


def describe(exc: BaseException) -> str:
    """A failure as a one-line message, named by its type."""
    return f"{type(exc).__name__}: {exc}"
