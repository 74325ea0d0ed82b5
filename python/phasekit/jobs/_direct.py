"""Run one job to its stop in the calling thread, without a manager or an
event loop: what a command line or a script that starts one job needs (its
start-up then costs the interpreter and the databases, not an event loop).

The rules are the manager's (see _manager.py), so both can share a jobs.db:

- the job is claimed under an owner lease, so a process killed mid-run
  leaves it to the next manager or direct run, which resumes it from its
  last checkpoint; jobs left running by dead processes are queued again
  first, so an identical job interrupted earlier is joined and resumed;
- a job with a conflict key joins an identical unfinished one, and does
  not start while another job with that key runs: the run waits (polling
  jobs.db) and follows such a job to its stop when it runs elsewhere;
- pause and cancel, asked here (``control``) or by another process
  (``phasekit jobs pause``), take effect at the job's safe points.

What it does not do: run other queued jobs, dependencies, schedules or
children: a job that waits for its children fails, saying so (it needs a
:class:`JobManager`). A job without a conflict key is never joined: a run
killed mid-way leaves its job to the next manager or ``phasekit resume``,
and a new run of the same job starts a new one.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic

from ..errors import InvalidInputError, JobStoreError, LeaseLostError, UnknownJobError
from ._context import JobControl
from ._definition import Job, JobRegistry, OutputT, default_registry
from ._model import DEFAULT_TENANT, ErrorRecord, JobRecord, JobStatus, RunStart
from ._progress import JobProgress
from ._recovery import RECOVER_EVERY_S, recover_dead
from ._scope import check_tenant

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from ..library import Library
    from ._backend import JobBackend, OwnerLease

#: How often a run waiting for another process looks at jobs.db (seconds).
WAIT_POLL_S = 0.05
#: How often, at most, it tries to claim a job blocked by a conflicting one.
MAX_WAIT_POLL_S = 0.5

#: Hears the job's progress, each time it is written (in the job's thread).
ProgressCallback = Callable[[JobProgress], None]

COMPLETED = (JobStatus.COMPLETED, JobStatus.COMPLETED_WITH_ERRORS)


class DirectRun(Generic[OutputT]):
    """How a job run by :func:`run_direct` stopped: its id, status, and
    what a :class:`JobHandle` tells of a stopped job (record, error, errors,
    output), read from the backend, which must still be open."""

    def __init__(
        self,
        backend: JobBackend,
        job_id: str,
        status: JobStatus,
        job_class: type[Job[OutputT]] | None,
        *,
        ran_here: bool,
        output: Any = None,
    ) -> None:
        self.id = job_id
        self.status = status
        #: False when another process ran the job (this one followed it).
        self.ran_here = ran_here
        self._backend = backend
        self._cls = job_class
        self._kept = ran_here and status in COMPLETED
        self._output = output

    def __repr__(self) -> str:
        return f"DirectRun(id={self.id!r}, status={self.status.value!r})"

    @property
    def record(self) -> JobRecord:
        return self._backend.get_job(self.id)

    @property
    def error(self) -> str | None:
        return self.record.error

    def errors(self) -> list[ErrorRecord]:
        stored = self._backend.outcome(self.id)["errors"] or []
        return [ErrorRecord.from_dict(e) for e in stored if isinstance(e, dict)]

    def warnings(self) -> list[str]:
        """The warnings of the job's last run (``ctx.warn``)."""
        return list(self._backend.outcome(self.id)["warnings"] or [])

    def output(self) -> OutputT | None:
        """The job's output (None unless it completed), as its
        ``output_type``; the object the job returned when it ran here and
        declares one (see JobHandle.output), else decoded from the backend."""
        output_type = self._cls.output_type if self._cls is not None else None
        if self._kept and output_type is not None and isinstance(self._output, output_type):
            kept: OutputT = self._output
            return kept
        value = self._backend.outcome(self.id)["output"]
        if output_type is not None and isinstance(value, dict):
            rebuild = getattr(output_type, "from_mapping", None)
            built: OutputT = rebuild(value) if rebuild is not None else output_type(**value)
            return built
        result: OutputT | None = value
        return result


def run_direct(
    backend: JobBackend,
    job: Job[OutputT],
    *,
    registry: JobRegistry | None = None,
    library: Library | None = None,
    control: JobControl | None = None,
    on_progress: ProgressCallback | None = None,
    priority: int = 0,
    history_retention_s: float | None = None,
    tenant: str = DEFAULT_TENANT,
) -> DirectRun[OutputT]:
    """Queue ``job`` (or join an identical unfinished one) and run it in
    this thread to its stop: completed, failed, paused or cancelled. See the
    module's docstring for the rules. ``control`` pauses or cancels it from
    a signal handler or another thread. ``on_progress`` hears the progress
    as it is stored (a few times a second), then the end's (100 % for a
    completed job); if it raises, the job is paused at its next safe point
    (resumable) and the error raised here. ``history_retention_s`` prunes
    older history (as a manager does when it opens), once the job stopped.
    The job is ``tenant``'s.
    A :class:`~phasekit.errors.JobStoreUnavailable` (the job store away for
    now) is raised here with the job queued again where the store allows,
    to resume from its last checkpoint (by the next run or any worker);
    any other store error fails the job."""

    registry = registry or default_registry
    check_runnable(job, "run_direct()", registry)
    if history_retention_s is not None and not history_retention_s >= 0:
        raise InvalidInputError(
            f"history_retention_s must be >= 0 or None, got {history_retention_s!r}"
        )
    started = time.time()
    cls = registry.get(job.job_name)
    control = control or JobControl()
    lease = backend.register_owner()
    try:
        recover_dead(backend, lease)
        job_id = create_or_join(backend, job, priority, tenant)
        data_type = cls.progress_type
        listener = None
        #: An error of ``on_progress``: the job is paused (resumable), and the
        #: error raised to the caller once it stopped.
        heard_error: list[Exception] = []
        if on_progress is not None:
            callback = on_progress

            def listener(_job_id: str, stored: dict[str, Any]) -> None:
                if heard_error:
                    return
                try:
                    callback(JobProgress.from_dict(stored, data_type))
                except Exception as exc:  # the caller's bug, not the job's
                    heard_error.append(exc)
                    control.pause()

        claims = backend.claim_runs([job_id], owner=lease.id)
        start = claims[0] if claims else None
        while True:
            if start is None:
                stopped = _wait_turn(backend, lease, job_id, control, on_progress, data_type)
                if not isinstance(stopped, RunStart):
                    # Run (and stopped) elsewhere, or stopped before its turn.
                    final_seen = backend.progress(job_id, data_type)
                    if on_progress is not None and final_seen is not None:
                        on_progress(final_seen)
                    _prune_history(backend, history_retention_s, started)
                    return DirectRun(backend, job_id, stopped, cls, ran_here=False)
                start = stopped
            try:
                status, end = _run_here(
                    backend, job_id, registry, control, library, start, listener
                )
                break
            except LeaseLostError:
                # This process stood still (stopped, suspended) for longer
                # than its heartbeat allows, and a manager or worker took the
                # job over: follow it there (and take it back if it is
                # queued again), as when it ran elsewhere from the start.
                start = None
            except BaseException:
                # Interrupted here (KeyboardInterrupt, a storage error): back to
                # the queue for the next run; if even that fails, the job stays
                # running under this lease, which dies with the process.
                with contextlib.suppress(Exception):  # the original error matters more
                    backend.move(
                        job_id, JobStatus.QUEUED, only_from=(JobStatus.RUNNING,), owner=lease.id
                    )
                raise
        if heard_error:
            raise heard_error[0]
        final = end.get("progress")
        if on_progress is not None and isinstance(final, dict) and status is not JobStatus.FAILED:
            # The end's progress (100 % for a completed job) is stored with
            # the end, not as a progress write: told here.
            on_progress(JobProgress.from_dict(final, data_type))
        _prune_history(backend, history_retention_s, started)
        return DirectRun(backend, job_id, status, cls, ran_here=True, output=end.get("output"))
    finally:
        lease.close()


def _prune_history(backend: JobBackend, retention_s: float | None, started: float) -> None:
    """Prune the history older than ``retention_s`` (None: keep it), once
    the job stopped: done before, it delayed every run's start (5 ms of a
    `phasekit index` into PostgreSQL). Never what finished since ``started``
    (the run's start: its own job, or the one it followed), whatever the
    retention. A store that fails here (away for now) leaves it to the next
    run: the job's own end is stored already."""
    if retention_s is None:
        return
    try:
        backend.prune_history(max(retention_s, time.time() - started))
    except JobStoreError as exc:
        log.info("old job history not pruned this time: %s", exc)


def _run_here(
    backend: JobBackend,
    job_id: str,
    registry: JobRegistry,
    control: JobControl,
    library: Library | None,
    start: RunStart,
    listener: Callable[[str, dict[str, Any]], None] | None,
) -> tuple[JobStatus, dict[str, Any]]:
    """Run the claimed job to its stop here and record its end (fenced by
    its lease): its status and the end's fields."""
    from ._runner import run_job

    status, end = run_job(
        backend,
        job_id,
        registry=registry,
        control=control,
        claimed=True,
        library=library,
        loaded=start,
        on_progress=listener,
        children_run=False,
    )
    try:
        backend.finish(job_id, status, **end)
    except TypeError as exc:
        # The end cannot be stored (an output msgpack refuses): the job
        # fails, as in a manager.
        status = JobStatus.FAILED
        backend.finish(
            job_id, status, error=f"cannot store the job's end: {exc}", lease=end.get("lease")
        )
        end = {}
    return status, end


def check_runnable(job: object, what: str, registry: JobRegistry | None = None) -> None:
    """InvalidInputError unless ``job`` is a Job, UnknownJobError unless its
    type is registered (a job no process could run is never queued);
    ``what`` names the caller in the message."""
    registry = registry or default_registry
    if not isinstance(job, Job):
        raise InvalidInputError(f"{what} takes a job (a Job instance), not {job!r}")
    if not job.job_name or job.job_name not in registry:
        raise UnknownJobError(f"{type(job).__qualname__} is not registered in this registry")


def create_or_join(
    backend: JobBackend, job: Job[Any], priority: int, tenant: str = DEFAULT_TENANT
) -> str:
    """The job's id: a new one of ``tenant``, or the identical unfinished
    job of that tenant it joins (resumed if paused: asking again for it
    means wanting it done)."""
    check_tenant(tenant)
    scope = job.scope()
    key = job.conflict_key()
    if key is None:
        return backend.create_job(
            job.job_name, job.to_state(), priority=priority, tenant=tenant, scope=scope
        )
    while True:
        job_id, created = backend.create_or_join(
            job.job_name, job.to_state(), key, priority=priority, tenant=tenant, scope=scope
        )
        if created:
            return job_id
        backend.move(job_id, JobStatus.QUEUED, only_from=(JobStatus.PAUSED,))
        if not backend.status(job_id).finished:
            return job_id
        # It finished between the join and now: not joinable; a new job.


def _wait_turn(
    backend: JobBackend,
    lease: OwnerLease,
    job_id: str,
    control: JobControl,
    on_progress: ProgressCallback | None,
    data_type: type[Any] | None,
) -> JobStatus | RunStart:
    """Wait while the job cannot be claimed: it runs in another process
    (followed until it stops), or a job with its conflict key runs. Returns
    what the run starts from once this run claimed it, else the status it
    stopped in. A
    pause or cancel asked through ``control`` meanwhile is passed on; jobs of
    processes that die meanwhile are queued again (as a manager does)."""
    asked: str | None = None
    last_progress: JobProgress | None = None
    pause_s = WAIT_POLL_S
    last_recover = time.monotonic()
    while True:
        how = "cancel" if control.cancel_requested else "pause" if control.pause_requested else None
        if how is not None and how != asked:
            asked = how
            idle = (JobStatus.QUEUED,) if how == "pause" else (JobStatus.QUEUED, JobStatus.PAUSED)
            target = JobStatus.PAUSED if how == "pause" else JobStatus.CANCELLED
            if not backend.move(job_id, target, only_from=idle):
                backend.request_stop(job_id, how)  # running in another process
        time.sleep(pause_s)
        if time.monotonic() - last_recover >= RECOVER_EVERY_S:
            last_recover = time.monotonic()
            recover_dead(backend, lease)
        status = backend.status(job_id)
        if status is JobStatus.QUEUED:
            if asked is not None:
                # Stopping was asked while another process ran it, and it is
                # queued again (that process died): stop it here, unrun.
                asked = None
                continue
            claims = backend.claim_runs([job_id], owner=lease.id)
            if claims:
                return claims[0]
            # Blocked by a job with its conflict key: claiming is a write,
            # so the tries thin out while that job runs on.
            pause_s = min(pause_s * 2, MAX_WAIT_POLL_S)
            continue
        if status is not JobStatus.RUNNING:
            return status
        if on_progress is not None:
            progress = backend.progress(job_id, data_type)
            if progress is not None and progress != last_progress:
                last_progress = progress
                on_progress(progress)
