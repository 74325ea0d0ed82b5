"""The job storage seam: every operation the job system needs from where its
jobs are kept, as one protocol.

The manager, its scheduler, the runner, a job's context, handles and the
command line reach storage only through :class:`JobBackend`; it takes and
returns the job system's own records (``phasekit/jobs/_model.py``), never
rows or SQL. ``JobStore`` (jobs.db, SQLite) implements it and is what
``Library.jobs()`` builds; a second implementation (PostgreSQL, for workers
on several hosts) must pass the contract suite in
``tests/test_backend_contract.py`` unchanged.

Every method may be called from any thread; writes are atomic (one
transaction each); a backend is shared by the processes that open the same
library, so any value read may have been changed by another process since.
Values (inputs, outputs, checkpoints, progress, errors) round-trip exactly,
any POSIX path included. An unknown job id raises ``JobNotFound`` where a
method returns the job's data (``get_job``, ``status``, ``load_for_run``);
every method of a closed backend raises ``ClosedError``.

A claim gives the job a new lease epoch (:attr:`RunStart.lease`, a fencing
token): every write a run makes (progress, checkpoints, children, its end,
and its polls for stop requests) passes it, and a backend refuses it with
:class:`~phasekit.errors.LeaseLostError` once the job is no longer running
under that epoch (taken over after its worker's heartbeat went stale, or
moved out of running from outside). Writes without a lease are not fenced
(commands acting on a job from outside a run).

A job that reaches a finished status (through ``finish``, ``move``,
``set_status`` or ``finish_and_claim``), in the same write: gets its
``finished_at`` and a history entry; a cancelled one cancels its queued and
paused descendants; a scheduled one (``run_every_s``) queues its next
occurrence (same ``schedule_id``, ``next_run_at`` on the next slot); its
pending stop request is dropped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ._events import JobEvent
    from ._model import (
        HistoryRecord,
        JobRecord,
        JobStatus,
        RunStart,
        TaskRecord,
        WorkerRecord,
        _Any,
    )
    from ._progress import JobProgress
    from .sql._listing import HistoryCursor, JobCursor


class OwnerLease(Protocol):
    """One manager's claim to be alive: its owner id stamps the jobs it
    claims, and lasts while its process runs and its heartbeat stays fresh
    (it ends however the process dies, and when the process stalls longer
    than its staleness limit, so the jobs of a dead or stalled process can
    be resumed)."""

    @property
    def id(self) -> str: ...

    def alive(self, owner: str | None) -> bool:
        """True if ``owner`` is a manager that still runs (this one included)."""
        ...

    def close(self) -> None:
        """End the lease (idempotent)."""
        ...


class JobBackend(Protocol):
    """Where jobs, their checkpoints, progress and history are kept."""

    @property
    def location(self) -> str:
        """Where the jobs are (a path, or a URL), for messages."""
        ...

    def close(self) -> None:
        """Close (idempotent), writing anything still pending."""
        ...

    # owners: which manager runs which job

    def register_owner(self, *, stale_after_s: float | None = None, info: Any = None) -> OwnerLease:
        """A new lease for a manager opening now, which others take for dead
        after ``stale_after_s`` seconds without a heartbeat (None: the
        process's default, ``$PHASEKIT_STALE_AFTER_S`` or 30); ``info`` is
        what it says of itself (see :meth:`workers`)."""
        ...

    def live_owners(self) -> list[str]:
        """The owner ids of the managers alive now."""
        ...

    def workers(self) -> list[WorkerRecord]:
        """The managers registered now, with their heartbeats and jobs."""
        ...

    def running_owners(self) -> list[tuple[str, str | None]]:
        """``(job id, owner id)`` of the jobs marked running."""
        ...

    # creating jobs

    def create_job(
        self,
        name: str,
        state: Any,
        *,
        priority: int = 0,
        parent_id: str | None = None,
        depends_on: str | None = None,
        run_every_s: float | None = None,
        next_run_at: float | None = None,
        conflict_key: str | None = None,
        tenant: str = ...,
        scope: str | None = None,
    ) -> str:
        """Queue a job (its type's name and persisted fields) of ``tenant``
        (default ``"default"``) acting on ``scope``; its id."""
        ...

    def create_or_join(
        self,
        name: str,
        state: Any,
        conflict_key: str,
        *,
        priority: int = 0,
        tenant: str = ...,
        scope: str | None = None,
    ) -> tuple[str, bool]:
        """Queue a job with ``conflict_key`` unless an identical unfinished
        one of the same tenant exists: ``(id, created)``."""
        ...

    def create_child(
        self,
        parent_id: str,
        key: str,
        name: str,
        state: Any,
        *,
        priority: int | None = None,
        conflict_key: str | None = None,
        lease: int | None = None,
        scope: str | None = None,
    ) -> tuple[str, bool]:
        """Queue a child of ``parent_id`` under ``key`` unless it has one
        under that key: ``(id, created)`` (fenced by the parent run's
        ``lease`` when given). The child is the parent's tenant's."""
        ...

    def create_task(
        self,
        name: str,
        definition: Any,
        steps: list[list[tuple[str, Any, str | None, str | None]]],
        *,
        tenant: str = ...,
        scope: str | None = None,
        priority: int = 0,
    ) -> tuple[str, list[list[str]]]:
        """Store a task and every job of its steps (each ``(name, state,
        conflict_key, scope)``) at once: ``(task id, job ids by step)``. A
        job of a step is ready only once every job of the task's earlier
        steps completed; the first job of the task that fails or is
        cancelled ends the task (failed or cancelled, with the reason) and
        cancels its waiting jobs, in the write that ends that job."""
        ...

    def task(self, task_id: str) -> TaskRecord:
        """A task and its jobs (``TaskNotFound`` if there is none)."""
        ...

    def tasks(self, *, tenant: str | None = None, limit: int | None = 100) -> list[TaskRecord]:
        """Tasks, newest first (only ``tenant``'s if given)."""
        ...

    # reading jobs

    def get_job(self, job_id: str) -> JobRecord:
        """A job's record (``JobNotFound`` if there is none)."""
        ...

    def list_jobs(
        self,
        status: JobStatus | None = None,
        *,
        name: str | None = None,
        parent_id: str | None = None,
        limit: int | None = None,
        tenant: str | None = None,
        scope: str | None = None,
        task_id: str | None = None,
        unfinished: bool = False,
        after: JobCursor | None = None,
    ) -> list[JobRecord]:
        """Jobs in dispatch order (higher priority, then older, first), of
        the given status, type, parent, tenant, scope and task; only those
        not finished if ``unfinished``; at most ``limit``. A listing read in
        pages passes ``after``, the ``(priority, created_at, id)`` of the
        last job of the page before: the page goes on right after it in that
        order (whether that job still exists or not)."""
        ...

    def status(self, job_id: str) -> JobStatus:
        """A job's status (``JobNotFound`` if there is none)."""
        ...

    def status_and_progress(
        self, job_id: str, data_type: type[Any] | None = None
    ) -> tuple[JobStatus, JobProgress | None]:
        """A job's status and latest progress, in one read."""
        ...

    def statuses_and_progress(
        self, job_ids: list[str], data_type: type[Any] | None = None
    ) -> dict[str, tuple[JobStatus, JobProgress | None]]:
        """The status and latest progress of each of ``job_ids``, read
        together (a listing's page in a read or a few, not one per job); an
        id with no job is left out."""
        ...

    def progress(self, job_id: str, data_type: type[Any] | None = None) -> JobProgress | None:
        """A job's latest progress (None before its first report)."""
        ...

    def outcome(self, job_id: str) -> dict[str, Any]:
        """Output, warnings, non-critical errors and metrics of its last run."""
        ...

    def traceback(self, job_id: str) -> str | None:
        """The traceback of the job's last failure, if any."""
        ...

    def children(self, parent_id: str) -> dict[str, JobStatus]:
        """The status of each direct child, oldest first."""
        ...

    def descendants(self, job_id: str) -> list[str]:
        """Ids of the unfinished children, grandchildren, ... of a job."""
        ...

    def occurrences(self, schedule_id: str) -> list[JobRecord]:
        """Every stored occurrence of an interval schedule, oldest first."""
        ...

    # scheduling and running

    def ready(
        self,
        *,
        limit: int,
        offset: int = 0,
        now: float | None = None,
        exclude: list[str] | None = None,
        tenants: list[str] | None = None,
    ) -> list[tuple[str, str, int, str]]:
        """``(id, name, priority, tenant)`` of up to ``limit`` queued jobs
        that may start now (due, their dependency completed, no running job
        with their conflict key, their task's earlier steps completed), in
        dispatch order (``exclude``: job type names; ``tenants``: only
        theirs)."""
        ...

    def claim(self, job_ids: list[str], owner: str | None = None) -> list[str]:
        """Mark queued jobs running for ``owner``, atomically, setting their
        ``started_at`` and a new lease epoch; the ids claimed (one paused,
        cancelled, claimed elsewhere, or whose conflict key was taken
        meanwhile is not)."""
        ...

    def claim_runs(self, job_ids: list[str], owner: str | None = None) -> list[RunStart]:
        """:meth:`claim`, returning what each claimed job starts from (its
        lease epoch that of this claim)."""
        ...

    def load_for_run(self, job_id: str) -> RunStart:
        """What a run of the job starts from."""
        ...

    def finish(
        self,
        job_id: str,
        status: JobStatus,
        *,
        output: Any = None,
        error: str | None = None,
        warnings: list[str] | None = None,
        errors: list[dict[str, Any]] | None = None,
        metrics: dict[str, Any] | None = None,
        progress: Any = None,
        traceback: str | None = None,
        lease: int | None = None,
    ) -> None:
        """Record how a run ended (paused and cancelled runs too); fenced by
        the run's ``lease`` when given."""
        ...

    def finish_and_claim(
        self, job_id: str, status: JobStatus, end: dict[str, Any], claim: list[str], owner: str
    ) -> list[RunStart]:
        """:meth:`finish` and :meth:`claim` in one atomic write; what each
        job claimed starts from (``end["lease"]`` fences the end; a refused
        end claims nothing)."""
        ...

    def finish_many_and_claim(
        self,
        ends: list[tuple[str, JobStatus, dict[str, Any]]],
        claim: list[str],
        owner: str,
    ) -> tuple[list[RunStart], list[str]]:
        """The ends of several runs (``(job_id, status, end)`` each) and a
        claim, in one atomic write: ``(what each job claimed starts from,
        the ids of the ends refused for a lost lease)``; the other ends are
        recorded."""
        ...

    def move(
        self,
        job_id: str,
        status: JobStatus,
        *,
        only_from: tuple[JobStatus, ...] | None = None,
        owner: str | _Any | None = ...,
        error: str | None = None,
    ) -> bool:
        """Change a job's status if it is still in one of ``only_from`` (and
        held by ``owner``: ``ANY`` for any owner, None for none); whether it
        changed. A finished status has the effects of :meth:`finish`."""
        ...

    def set_status(self, job_id: str, status: JobStatus, *, error: str | None = None) -> None:
        """Change a job's status unconditionally (a finished one has the
        effects of :meth:`finish`)."""
        ...

    def fail_blocked(self) -> list[str]:
        """Fail the queued jobs whose dependency failed, was cancelled or is
        gone; their ids."""
        ...

    def next_due(self, after: float) -> float | None:
        """When the next queued job planned later than ``after`` is due."""
        ...

    def request_stop(self, job_id: str, what: str) -> bool:
        """Ask whoever runs the job to ``"pause"`` or ``"cancel"`` it at its
        next safe point; False if it is not running."""
        ...

    def stop_request(self, job_id: str, *, lease: int | None = None) -> str | None:
        """The pending stop request of a running job: ``"pause"``,
        ``"cancel"`` or None (also for a job that is not running, or none).
        Given a run's ``lease``, LeaseLostError once the job is not its."""
        ...

    # what a running job writes

    def set_progress(self, job_id: str, progress: Any, *, lease: int | None = None) -> None:
        """Store the job's latest progress (fenced by ``lease`` when given)."""
        ...

    def save_checkpoint(self, job_id: str, data: Any, *, lease: int | None = None) -> int:
        """Store a checkpoint atomically (the previous one stays until this
        one is whole); its sequence number (fenced by ``lease`` when given)."""
        ...

    def load_checkpoint(self, job_id: str) -> tuple[int, Any] | None:
        """The newest checkpoint as ``(seq, data)``, or None."""
        ...

    # the event log: every status and progress change, by any process

    def events(
        self, *, after: int = 0, limit: int = 1000, tenant: str | None = None
    ) -> list[JobEvent]:
        """The changes logged after event ``after`` (its ``seq``), oldest
        first, at most ``limit``: numbered in the order they committed, with
        no number skipped but those pruned (and, given ``tenant``, those of
        other tenants' jobs). Each carries its job's tenant, scope and task."""
        ...

    def last_event_id(self) -> int:
        """The ``seq`` of the newest logged change (0: none)."""
        ...

    def prune_events(self, keep: int = ...) -> int:
        """Drop all but the newest ``keep`` events; how many were dropped."""
        ...

    # history

    def history(
        self,
        *,
        limit: int | None = 100,
        since: float | None = None,
        name: str | None = None,
        tenant: str | None = None,
        before: HistoryCursor | None = None,
    ) -> list[HistoryRecord]:
        """Finished jobs, newest first (only ``tenant``'s if given), at most
        ``limit``. A history read in pages passes ``before``, the
        ``(finished_at, id)`` of the last entry of the page before: the page
        goes on right after it."""
        ...

    def prune_history(self, older_than_s: float) -> tuple[int, int]:
        """Remove what finished more than ``older_than_s`` seconds ago:
        ``(history entries, jobs)`` removed."""
        ...
