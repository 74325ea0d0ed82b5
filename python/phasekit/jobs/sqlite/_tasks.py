"""Tasks in jobs.db: a task's row and its jobs, created together; the gate
that keeps a step's jobs waiting for the steps before; and what a task's job
ending does to its task. The functions run inside a transaction the store
opened (see the schema's version 12).
"""

from __future__ import annotations

import sqlite3
from typing import Any

from ...errors import CorruptStateError
from .._codec import decode, new_id, text_in, text_out
from .._model import JobStatus, TaskJob, TaskRecord
from .._progress import JobProgress
from ._children import cancel_waiting
from ._history import FINISHED_SQL, record

#: A queued job of a task may start only once every job of the task's
#: earlier steps completed (with or without non-critical errors). Checked
#: when the ready page is read and again in the claim, like the conflict key.
STEP_OPEN = (
    "(task_id IS NULL OR NOT EXISTS (SELECT 1 FROM jobs p INDEXED BY jobs_task"
    " WHERE p.task_id = jobs.task_id AND p.task_step < jobs.task_step"
    " AND p.status NOT IN ('completed', 'completed_with_errors')))"
)

#: One job of a step: its type's name, encoded input, conflict key, scope.
StepJob = tuple[str, bytes, "str | None", "str | None"]


def create(
    db: sqlite3.Connection,
    *,
    tenant: str,
    name: str,
    scope: str | None,
    definition: bytes,
    steps: list[list[StepJob]],
    priority: int,
    now: float,
) -> tuple[str, list[list[str]]]:
    """Insert a task and every job of every step (queued; a later step's
    gated by :data:`STEP_OPEN`); its id and its jobs' ids, by step."""
    task_id = new_id()
    db.execute(
        "INSERT INTO tasks (id, tenant, name, scope, definition, steps, status, created_at,"
        " updated_at) VALUES (?, ?, ?, ?, ?, ?, 'running', ?, ?)",
        (task_id, tenant, name, scope, definition, len(steps), now, now),
    )
    ids: list[list[str]] = []
    # Dispatch order is priority, then creation time, then id (random
    # within a clock tick): each job gets its own microsecond, so a task's
    # jobs start in the order they were planned (a split's parts in order).
    created = now
    for step, jobs in enumerate(steps):
        step_ids = []
        for job_name, blob, conflict_key, job_scope in jobs:
            job_id = new_id()
            created += 1e-6
            db.execute(
                "INSERT INTO jobs (id, name, state, status, priority, created_at, updated_at,"
                " conflict_key, tenant, scope, task_id, task_step)"
                " VALUES (?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    job_id,
                    job_name,
                    blob,
                    priority,
                    created,
                    now,
                    conflict_key,
                    tenant,
                    job_scope,
                    task_id,
                    step,
                ),
            )
            step_ids.append(job_id)
        ids.append(step_ids)
    return task_id, ids


def job_ended(db: sqlite3.Connection, task_id: str, job_id: str, status: str, now: float) -> None:
    """A job of ``task_id`` reached finished ``status``: a failed or
    cancelled job stops the task (its queued and paused jobs are cancelled,
    running ones finish what they do); the last job completing completes it."""
    if status in ("failed", "cancelled"):
        row = db.execute(
            "SELECT j.task_step, j.name, j.error FROM jobs j WHERE j.id = ?", (job_id,)
        ).fetchone()
        step, job_name, error = row if row is not None else (None, "?", None)
        why = f"step {None if step is None else step + 1} ({job_name}): job {job_id} {status}"
        if error:
            why += f": {error}"
        stopped = db.execute(
            "UPDATE tasks SET status = ?, error = ?, updated_at = ?, finished_at = ?"
            " WHERE id = ? AND status = 'running'",
            (status, text_in(why), now, now, task_id),
        ).rowcount
        if stopped:
            waiting = db.execute(
                "SELECT id FROM jobs INDEXED BY jobs_task WHERE task_id = ?"
                " AND status IN ('queued', 'paused')",
                (task_id,),
            ).fetchall()
            for (other,) in waiting:
                db.execute(
                    "UPDATE jobs SET status = 'cancelled', updated_at = ?, finished_at = ?,"
                    " error = ? WHERE id = ?",
                    (now, now, text_in(f"task {task_id} stopped: {why}"), other),
                )
                record(db, other, 0, 0)
                # A paused job may have children waiting: they go with it.
                cancel_waiting(db, other, now)
        return
    unfinished = db.execute(
        "SELECT 1 FROM jobs INDEXED BY jobs_task WHERE task_id = ?"
        f" AND status NOT IN {FINISHED_SQL} LIMIT 1",
        (task_id,),
    ).fetchone()
    if unfinished is None:
        db.execute(
            "UPDATE tasks SET status = 'completed', updated_at = ?, finished_at = ?"
            " WHERE id = ? AND status = 'running'",
            (now, now, task_id),
        )


#: A task's row and the counts of its jobs by status, per step.
TASK_COLUMNS = (
    "id, tenant, name, scope, definition, steps, status, error, created_at, updated_at, finished_at"
)


def jobs_of(db: sqlite3.Connection, task_id: str) -> list[tuple[Any, ...]]:
    """``(id, name, status, task_step, progress)`` of every job of a task,
    by step, oldest first."""
    return db.execute(
        "SELECT id, name, status, task_step, progress FROM jobs INDEXED BY jobs_task"
        " WHERE task_id = ? ORDER BY task_step, rowid",
        (task_id,),
    ).fetchall()


def task_record(row: tuple[Any, ...], jobs: list[tuple[Any, ...]]) -> TaskRecord:
    """A TaskRecord from a row of TASK_COLUMNS and :func:`jobs_of`'s rows."""
    task_jobs = []
    for job_id, job_name, status_text, step, progress in jobs:
        status = JobStatus(status_text)
        percent: float | None = 100.0 if status.finished else None
        if percent is None and progress is not None:
            try:
                percent = JobProgress.from_dict(decode(progress)).percent
            except CorruptStateError:
                percent = None  # unreadable progress: counted as not started
        task_jobs.append(TaskJob(job_id, job_name, status, int(step) + 1, percent))
    stored: str = row[6]
    steps = int(row[5])
    unfinished = [job for job in task_jobs if not job.status.finished]
    current = min((job.step for job in unfinished), default=steps)
    task_status = stored
    if stored == "running":
        now = [job for job in unfinished if job.step == current]
        if any(job.status is JobStatus.RUNNING for job in now):
            task_status = "running"
        elif any(job.status is JobStatus.PAUSED for job in now):
            task_status = "paused"
        elif all(job.status is JobStatus.QUEUED for job in task_jobs):
            task_status = "queued"
    percent = sum(job.percent or 0.0 for job in task_jobs) / len(task_jobs) if task_jobs else 100.0
    try:
        definition = decode(row[4])
    except CorruptStateError:
        definition = None
    return TaskRecord(
        id=row[0],
        tenant=row[1],
        name=row[2],
        scope=row[3],
        status=task_status,
        step=current,
        steps=steps,
        jobs=task_jobs,
        percent=round(percent, 2),
        error=text_out(row[7]),
        created_at=row[8],
        updated_at=row[9],
        finished_at=row[10],
        definition=definition,
    )
