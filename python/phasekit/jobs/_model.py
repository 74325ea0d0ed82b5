"""The job system's own records: what the manager, the runner, handles and
the command line pass between them, and what every job storage backend takes
and returns (never rows or SQL). Nothing here knows how they are stored.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from ._codec import decode


class JobStatus(enum.StrEnum):
    """Where a job is: waiting (queued, paused), running, or finished
    (completed, with or without non-critical errors; failed; cancelled)."""

    QUEUED = "queued"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    COMPLETED_WITH_ERRORS = "completed_with_errors"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in _FINISHED


_FINISHED = frozenset(
    {JobStatus.COMPLETED, JobStatus.COMPLETED_WITH_ERRORS, JobStatus.FAILED, JobStatus.CANCELLED}
)


#: The tenant of embedded use: every job belongs to one tenant, and a
#: manager opened without naming one sees only this one's.
DEFAULT_TENANT = "default"


class _Any:
    """The type of :data:`ANY`."""


#: "Whatever the owner" (``None`` means: claimed by no manager).
ANY = _Any()


@dataclass(frozen=True, slots=True)
class JobRecord:
    """One row of ``jobs``; blobs are decoded lazily by the caller."""

    id: str
    name: str
    status: JobStatus
    priority: int
    parent_id: str | None
    depends_on: str | None
    created_at: float
    updated_at: float
    #: Why the last run failed or stopped (a message; the traceback of a
    #: failure is kept apart, for ``phasekit jobs show --debug``).
    error: str | None
    state_blob: bytes = field(repr=False)
    run_every_s: float | None = None
    next_run_at: float | None = None
    #: Every occurrence of an interval schedule shares the first one's id.
    schedule_id: str | None = None
    #: Identifies a child among its parent's children (see JobContext.spawn_child).
    child_key: str | None = None
    #: Jobs with the same key never run at the same time (see Job.conflict_key).
    conflict_key: str | None = None
    #: Whose job it is (see :data:`DEFAULT_TENANT`); another tenant's
    #: manager behaves as if the job did not exist.
    tenant: str = DEFAULT_TENANT
    #: What it acts on: ``location:<id>``, ``entries`` or ``global`` (None
    #: for a job stored by a phasekit that did not record scopes).
    scope: str | None = None
    #: The task it is a step of, and which step (0 first), if any.
    task_id: str | None = None
    task_step: int | None = None

    def input(self) -> Any:
        """The job's persisted fields (raises CorruptStateError if unreadable)."""
        return decode(self.state_blob)

    def to_dict(self) -> dict[str, Any]:
        """The record as JSON-ready values (the input stays encoded: see :meth:`input`)."""
        return {
            "id": self.id,
            "name": self.name,
            "status": self.status.value,
            "priority": self.priority,
            "parent_id": self.parent_id,
            "depends_on": self.depends_on,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "error": self.error,
            "run_every_s": self.run_every_s,
            "next_run_at": self.next_run_at,
            "schedule_id": self.schedule_id,
            "child_key": self.child_key,
            "conflict_key": self.conflict_key,
            "tenant": self.tenant,
            "scope": self.scope,
            "task_id": self.task_id,
            "task_step": self.task_step,
        }


@dataclass(frozen=True, slots=True)
class WorkerRecord:
    """A worker (a process running a JobManager) as jobs.db knows it."""

    id: str
    host: str
    pid: int
    started_at: float
    #: When it last said it was alive; past ``stale_after_s`` others take it
    #: for dead and resume its jobs.
    heartbeat_at: float
    stale_after_s: float
    #: What the worker said of itself when it started (concurrency, types...).
    info: Any
    #: The jobs marked running by it.
    jobs: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "host": self.host,
            "pid": self.pid,
            "started_at": self.started_at,
            "heartbeat_at": self.heartbeat_at,
            "stale_after_s": self.stale_after_s,
            "info": self.info,
            "jobs": list(self.jobs),
        }


@dataclass(frozen=True, slots=True)
class RunStart:
    """What a run starts from: the job's record, its newest checkpoint and
    the percent its progress had reached (a resumed run goes on from it).
    The store returns one for each job it claims, read in the claim's
    transaction (see :meth:`JobStore.finish_and_claim`); the checkpoint is
    decoded when asked for, so a corrupt one fails only its own job."""

    record: JobRecord
    #: The newest checkpoint's sequence number and encoded data; None on a first run.
    checkpoint_seq: int | None
    checkpoint_blob: bytes | None = field(repr=False)
    percent: float | None
    #: The claim's lease epoch (a fencing token): every write of this run
    #: passes it, and the store refuses it once the job was claimed again
    #: (see :class:`~phasekit.errors.LeaseLostError`).
    lease: int = 0

    @property
    def checkpoint(self) -> tuple[int, Any] | None:
        """The newest checkpoint as ``(seq, data)``; None on a first run.
        Raises :class:`~phasekit.errors.CorruptStateError` if unreadable."""
        if self.checkpoint_blob is None or self.checkpoint_seq is None:
            return None
        return self.checkpoint_seq, decode(self.checkpoint_blob)


@dataclass(frozen=True, slots=True)
class HistoryRecord:
    """How one job ended; blobs are decoded on demand by :meth:`output` and
    :meth:`metrics` (an unreadable blob never breaks a listing)."""

    id: str
    name: str
    status: JobStatus
    parent_id: str | None
    schedule_id: str | None
    created_at: float
    started_at: float | None
    finished_at: float
    error: str | None
    warning_count: int
    error_count: int
    output_blob: bytes | None = field(repr=False)
    metrics_blob: bytes | None = field(repr=False)
    tenant: str = DEFAULT_TENANT
    scope: str | None = None
    task_id: str | None = None

    def output(self) -> Any:
        """The job's output (None if it had none)."""
        return None if self.output_blob is None else decode(self.output_blob)

    def metrics(self) -> dict[str, Any]:
        """Items, bytes and rates of the job's last run."""
        return {} if self.metrics_blob is None else dict(decode(self.metrics_blob))

    def to_dict(self) -> dict[str, Any]:
        """The summary as JSON-ready values (``phasekit jobs history --json``
        prints these; the output and metrics stay encoded: see :meth:`output`)."""
        return {
            "id": self.id,
            "name": self.name,
            "status": self.status.value,
            "parent_id": self.parent_id,
            "schedule_id": self.schedule_id,
            "created_at": self.created_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "error": self.error,
            "errors": self.error_count,
            "warnings": self.warning_count,
            "tenant": self.tenant,
            "scope": self.scope,
            "task_id": self.task_id,
        }


@dataclass(frozen=True, slots=True)
class ErrorRecord:
    """A non-critical error a job recorded and went on after (a file it
    could not read, say): the path (None if not about a file), the OS errno
    (None if not an OS error) and a message."""

    message: str
    path: str | None = None
    errno: int | None = None

    @classmethod
    def from_dict(cls, value: dict[str, Any]) -> ErrorRecord:
        return cls(str(value.get("message", "")), value.get("path"), value.get("errno"))

    def to_dict(self) -> dict[str, Any]:
        return {"message": self.message, "path": self.path, "errno": self.errno}


@dataclass(frozen=True, slots=True)
class TaskJob:
    """One job of a task: its id, type, status and step (1 first)."""

    id: str
    name: str
    status: JobStatus
    step: int
    #: Its latest progress percent (100 once finished; None if unknown).
    percent: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "status": self.status.value,
            "step": self.step,
            "percent": self.percent,
        }


@dataclass(frozen=True, slots=True)
class TaskRecord:
    """A task as jobs.db knows it: its steps' jobs and where it stands.

    ``status`` is ``queued`` (no job started yet), ``running``, ``paused``
    (a job of its current step is paused and none runs), ``completed``,
    ``failed`` or ``cancelled`` (a job of the task failed or was cancelled:
    ``error`` says which, and the task's waiting jobs were cancelled)."""

    id: str
    tenant: str
    name: str
    scope: str | None
    status: str
    #: The step under way (1 first; the last step once the task ended).
    step: int
    steps: int
    jobs: list[TaskJob]
    #: The mean of its jobs' percents (a finished job counts 100).
    percent: float
    error: str | None
    created_at: float
    updated_at: float
    finished_at: float | None
    #: The definition it was started from (see phasekit.jobs.TaskDefinition).
    definition: Any

    @property
    def finished(self) -> bool:
        """Ended (completed, failed or cancelled) with none of its jobs
        still running (a job under way when its task stopped finishes what
        it does, or stops at its next safe point when cancelled)."""
        return self.status in ("completed", "failed", "cancelled") and all(
            job.status.finished for job in self.jobs
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "tenant": self.tenant,
            "name": self.name,
            "scope": self.scope,
            "status": self.status,
            "step": self.step,
            "steps": self.steps,
            "percent": self.percent,
            "error": self.error,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "finished_at": self.finished_at,
            "jobs": [job.to_dict() for job in self.jobs],
        }
