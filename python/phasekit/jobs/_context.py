"""What a running job sees: progress, warnings, errors, metrics, checkpoints,
and the safe points where pause and cancel take effect."""

from __future__ import annotations

import functools
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import InvalidInputError, JobStateError, PhasekitError, UnknownJobError
from ._codec import encode
from ._definition import Job, JobRegistry, default_registry
from ._model import JobStatus
from ._progress import Floor, JobProgress, PhaseProgress, RateMeter, overall_percent

if TYPE_CHECKING:
    from ..library import Library
    from ._backend import JobBackend

#: Called (from the job's thread) with the job's id and each progress value
#: written to jobs.db, in its stored form: the manager's event stream.
ProgressListener = Callable[[str, dict[str, Any]], None]
#: Called (from the job's thread) with the id and name of each child queued.
SpawnListener = Callable[[str, str], None]

#: How often ``wait_for_children`` looks at jobs.db (seconds).
CHILD_POLL_S = 0.025

#: A running job looks for stop requests from other processes this often (s).
REQUEST_POLL_S = 0.25

#: Progress is written to jobs.db at most this often (seconds): five updates
#: a second for a UI while work moves, and frequent reports never dominate a
#: job's time (a write is ~50 us); the latest value is always kept.
PROGRESS_INTERVAL_S = 0.2


class JobInterrupted(PhasekitError):
    """Raised at a safe point when the job was asked to stop."""


class JobPaused(JobInterrupted):
    """The job was paused; it resumes from its last checkpoint."""


class JobCancelled(JobInterrupted):
    """The job was cancelled; its record is kept."""


class JobControl:
    """Pause/cancel requests for one running job, set from any thread.

    Plain flags, not ``threading.Event``s: nobody blocks on them (the job
    looks at its safe points), a bool assignment is atomic, and one control
    is made per job run.
    """

    __slots__ = ("_cancel", "_pause", "waiting")

    def __init__(self) -> None:
        self._pause = False
        self._cancel = False
        #: True while the job blocks in ``wait_for_children``: the manager does
        #: not count it against its concurrency limits meanwhile.
        self.waiting = False

    def pause(self) -> None:
        self._pause = True

    def cancel(self) -> None:
        self._cancel = True

    @property
    def pause_requested(self) -> bool:
        return self._pause

    @property
    def cancel_requested(self) -> bool:
        return self._cancel


@dataclass
class Metrics:
    items: int = 0
    bytes: int = 0
    started: float = field(default_factory=time.monotonic)

    def as_dict(self, *, phases: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        out: dict[str, Any] = {
            "items": self.items,
            "bytes": self.bytes,
            "items_per_s": self.items / elapsed,
            "bytes_per_s": self.bytes / elapsed,
        }
        if phases is not None:
            out["phases"] = phases
        return out


class JobContext:
    """Handed to ``Job.run``. Call :meth:`check_interrupt` or :meth:`checkpoint`
    often: pause and cancel take effect there."""

    def __init__(
        self,
        job_id: str,
        name: str,
        store: JobBackend,
        control: JobControl,
        checkpoint: tuple[int, Any] | None = None,
        registry: JobRegistry | None = None,
        library: Library | None = None,
        *,
        percent: float | None = None,
        on_progress: ProgressListener | None = None,
        on_spawn: SpawnListener | None = None,
        children_run: bool = True,
        lease: int | None = None,
    ) -> None:
        self.id = job_id
        #: The lease epoch of this run's claim: passed with every write, so
        #: the store refuses them once the job was resumed elsewhere (they
        #: raise :class:`~phasekit.errors.LeaseLostError`, which ends the run).
        self.lease = lease
        self.name = name
        #: The library the job works on (what its manager was opened with;
        #: None for a bare job store).
        self.library: Library | None = library
        self._store = store
        self._control = control
        self._checkpoint = checkpoint
        self._registry = registry or default_registry
        self._last_progress_write = 0.0
        self._last_request_poll = time.monotonic()
        self._pending_progress: JobProgress | None = None
        self._last_report = JobProgress()
        self._rate = RateMeter()
        #: The percent never goes below what this job had reached (before a
        #: pause or crash, too: ``percent`` is the stored one).
        self._floor = Floor(percent)
        self._on_progress = on_progress
        self._on_spawn = on_spawn
        #: False in a direct run (jobs/_direct.py): nothing runs the children
        #: it queues, so waiting for them would wait for ever.
        self._children_run = children_run
        #: Set by the phase processor; included in every report.
        self.phase_progress: PhaseProgress | None = None
        #: Set by the phase processor; stored with the run's metrics.
        self.phase_history: list[dict[str, Any]] | None = None
        self.warnings: list[str] = []
        self.errors: list[dict[str, Any]] = []
        self.metrics = Metrics()

    @property
    def backend(self) -> JobBackend:
        """Where this job is kept (its manager's or direct run's job
        storage): what a job that looks after that storage works on
        (``phasekit.maintenance`` prunes its history and optimizes it)."""
        return self._store

    @functools.cached_property
    def log(self) -> logging.Logger:
        """The job's logger (``phasekit.job.<name>``); looked up on first use,
        as most runs log nothing and the lookup takes logging's global lock."""
        return logging.getLogger(f"phasekit.job.{self.name}")

    # progress, warnings, errors, metrics

    def progress(
        self,
        done: int | None = None,
        total: int | None = None,
        *,
        percent: float | None = None,
        message: str | None = None,
        bytes_done: int | None = None,
        bytes_total: int | None = None,
        data: Any = None,
    ) -> None:
        """Report progress: a count (``done`` of ``total``), a ``percent``,
        indeterminate work (a ``message`` alone), bytes, or the job's own
        structured ``data`` (a dataclass instance, see ``Job.progress_type``).
        In a phased job these describe the current phase; the job's overall
        percent is derived from them and the phases' weights.

        Cheap to call often: the value is written to jobs.db at most every
        :data:`PROGRESS_INTERVAL_S` (and at checkpoints and the end).
        """
        if percent is not None and not 0.0 <= percent <= 100.0:
            raise InvalidInputError(f"percent must be within 0..100, got {percent}")
        rate = eta = None
        if done is not None:
            rate, eta = self._rate.measure(done, total)
        self._report(
            JobProgress(
                done=done,
                total=total,
                message=message,
                bytes_done=bytes_done,
                bytes_total=bytes_total,
                rate=rate,
                eta_s=eta,
                data=data,
                phase=self.phase_progress,
                explicit_percent=percent,
            )
        )

    def final_progress(self, completed: bool) -> dict[str, Any] | None:
        """The progress to store with the run's end (in the same write): for
        a completed job its last report at 100 %, with no phase; else the
        report not written yet, if any. None: nothing new to store."""
        pending, self._pending_progress = self._pending_progress, None
        if completed:
            self.phase_progress = None
            final = self._last_report.to_dict()
            final.update(phase=None, explicit_percent=100.0, eta_s=0.0)
            return _stored(final)
        return None if pending is None else self._stored_form(pending)

    def report_phase(self, phase: PhaseProgress | None) -> None:
        """The phase processor's atomic-unit progress: replaces the phase part
        of the latest report and keeps the job's own fields."""
        self.phase_progress = phase
        self._report(self._last_report.replace(phase=phase))

    def start_phase(self, phase: PhaseProgress) -> None:
        """A phase starts: the job's counts, message and rate start afresh
        (its structured ``data`` is kept). Not written at once: the phase's
        first report, which usually follows at once and knows more (its
        total), takes its place; else the next write or checkpoint shows it."""
        self._rate.reset()
        self.phase_progress = phase
        self._last_report = self._pending_progress = JobProgress(
            data=self._last_report.data, phase=phase
        )

    def _report(self, value: JobProgress) -> None:
        self._last_report = value
        self._pending_progress = value
        if time.monotonic() - self._last_progress_write >= PROGRESS_INTERVAL_S:
            self.flush_progress()

    def flush_progress(self) -> None:
        """Write the latest report now, if it is not written yet."""
        if self._pending_progress is not None:
            stored = self._stored_form(self._pending_progress)
            self._store.set_progress(self.id, stored, lease=self.lease)
            self._pending_progress = None
            self._last_progress_write = time.monotonic()
            if self._on_progress is not None:
                self._on_progress(self.id, stored)

    def _stored_form(self, report: JobProgress) -> dict[str, Any]:
        """A report as stored: with the whole job's percent, never lower
        than an earlier one."""
        percent = self._floor.hold(overall_percent(report))
        return _stored(report.replace(explicit_percent=percent).to_dict())

    def warn(self, message: str) -> None:
        self.warnings.append(message)
        self.log.warning("%s", message)

    def error(self, message: str, *, path: str | None = None, errno: int | None = None) -> None:
        """A non-critical error: recorded, and the job goes on (it will end
        ``completed_with_errors``)."""
        self.errors.append({"message": message, "path": path, "errno": errno})
        self.log.error("%s%s", f"{path}: " if path else "", message)

    def add_items(self, n: int = 1, *, nbytes: int = 0) -> None:
        """Count work done, for the job's metrics (items, bytes, rates)."""
        self.metrics.items += n
        self.metrics.bytes += nbytes

    # interruption and checkpoints

    @property
    def stop_requested(self) -> bool:
        """True once the job was asked to pause or stop (by this process, or
        through jobs.db by another: looked at every :data:`REQUEST_POLL_S`).
        Check it to save a checkpoint before stopping; :meth:`check_interrupt`
        and :meth:`checkpoint` raise."""
        now = time.monotonic()
        if now - self._last_request_poll >= REQUEST_POLL_S:
            self._last_request_poll = now
            request = self._store.stop_request(self.id, lease=self.lease)
            if request == "cancel":
                self._control.cancel()
            elif request == "pause":
                self._control.pause()
        return self._control.cancel_requested or self._control.pause_requested

    def check_interrupt(self) -> None:
        """Raise :class:`JobCancelled` or :class:`JobPaused` if asked to stop
        (see :attr:`stop_requested`)."""
        if not self.stop_requested:
            return
        if self._control.cancel_requested:
            raise JobCancelled(f"job {self.id} cancelled")
        if self._control.pause_requested:
            raise JobPaused(f"job {self.id} paused")

    def checkpoint(self, state: Any, *, interrupt: bool = True) -> int:
        """Save ``state`` atomically (the frontier of the work, not its results),
        then honour a pending pause or cancel (unless ``interrupt`` is
        False: the work is done, stopping now would only leave it to redo).
        Returns the sequence number."""
        seq = self._store.save_checkpoint(self.id, state, lease=self.lease)
        self._checkpoint = (seq, state)
        self.flush_progress()
        if interrupt:
            self.check_interrupt()
        return seq

    def load_state(self) -> Any | None:
        """The state of the last checkpoint (None on a first run)."""
        return None if self._checkpoint is None else self._checkpoint[1]

    # child jobs

    def spawn_child(
        self, job: Job[Any], *, priority: int | None = None, key: str | None = None
    ) -> str:
        """Queue ``job`` as a child of this job; returns the child's id.

        Idempotent: the child is identified among this job's children by
        ``key`` (default: its job name and a hash of its stored input), and
        spawning a key that exists returns the existing child, so a job that
        re-runs from an earlier checkpoint does not create its children twice.
        Two children with identical input therefore need explicit keys.
        ``priority`` defaults to this job's priority.

        The child is only queued: a :class:`JobManager` on this jobs.db runs
        it (with plain :func:`execute`, someone must run it). Raises
        :class:`UnknownJobError` if ``job``'s class is not registered in the
        registry this job runs with, and :class:`JobCancelled` if this job
        was cancelled (so a cancelled parent spawns nothing more).
        """
        name = type(job).job_name
        try:
            registered = self._registry.get(name) if name else None
        except UnknownJobError:
            registered = None
        if registered is not type(job):
            raise UnknownJobError(
                f"cannot spawn {type(job).__qualname__} from job {self.name!r}: "
                f"it is not registered (as {name!r}) in the registry this job runs with"
            )
        if self._control.cancel_requested:
            raise JobCancelled(f"job {self.id} cancelled")
        state = job.to_state()
        if key is None:
            import hashlib  # here: only jobs with children need it (start-up time)

            key = f"{name}:{hashlib.sha256(encode(state)).hexdigest()[:32]}"
        child_id, created = self._store.create_child(
            self.id,
            key,
            name,
            state,
            priority=priority,
            conflict_key=job.conflict_key(),
            lease=self.lease,
            scope=job.scope(),
        )
        if created and self._on_spawn is not None:
            self._on_spawn(child_id, name)
        return child_id

    def wait_for_children(self) -> dict[str, JobStatus]:
        """Block until every child of this job has finished; returns each
        child's final status by id (oldest child first; empty if none).

        A failed or cancelled child does not raise: check the statuses. A
        paused child is not finished, so the wait goes on until it is
        resumed. Pause and cancel of this job take effect while waiting
        (:class:`JobPaused` / :class:`JobCancelled`, as at
        :meth:`check_interrupt`); the children keep running. While waiting,
        this job does not count against the manager's concurrency limits.
        """
        self._control.waiting = True
        try:
            while True:
                # Interrupt first: a cancel that also cancelled the children
                # must end this job cancelled, not completed.
                self.check_interrupt()
                children = self._store.children(self.id)
                if not self._children_run and not all(s.finished for s in children.values()):
                    # Its unfinished children go too: a later manager must
                    # not run them for a parent that failed.
                    for child_id, status in children.items():
                        if not status.finished:
                            self._store.move(
                                child_id,
                                JobStatus.CANCELLED,
                                only_from=(JobStatus.QUEUED, JobStatus.PAUSED),
                            )
                    raise JobStateError(
                        f"job {self.id} waits for its child jobs, which a direct run"
                        " (Library.run) does not run: run it through a JobManager"
                    )
                if all(status.finished for status in children.values()):
                    # A cancel may have landed between the check above and
                    # this read, and ended the children: it asks this job
                    # first (manager.cancel goes parent before descendants),
                    # so a fresh look at the request, not throttled by
                    # REQUEST_POLL_S, sees it and this job ends cancelled.
                    self._last_request_poll = -math.inf
                    self.check_interrupt()
                    return children
                time.sleep(CHILD_POLL_S)
        finally:
            self._control.waiting = False


def _stored(progress: dict[str, Any]) -> dict[str, Any]:
    """The stored form of a progress mapping: the fields not set (None) are
    left out, as readers default them (JobProgress.from_dict). Most are unset,
    and a job's row holds its progress: a smaller row means fewer B-tree pages
    rewritten when the job ends."""
    return {key: value for key, value in progress.items() if value is not None}
