"""The next occurrence of a scheduled job, written inside the store's
transaction (see phasekit/jobs/_schedule.py for the rule of the next time).

A scheduled job is an ordinary row with ``run_every_s`` and ``next_run_at``;
every occurrence is a new row sharing the first occurrence's ``schedule_id``.
"""

from __future__ import annotations

import sqlite3

from .._codec import new_id
from .._schedule import next_run


def schedule_next(db: sqlite3.Connection, job_id: str, now: float) -> str | None:
    """If ``job_id`` is scheduled, queue its next occurrence; returns its id.

    Called in the transaction that finishes ``job_id`` (completed,
    completed_with_errors or failed, never cancelled), so an occurrence is
    never lost nor created twice.
    """
    row = db.execute(
        "SELECT name, state, priority, depends_on, run_every_s, next_run_at, created_at,"
        " schedule_id, conflict_key, tenant, scope FROM jobs WHERE id = ?",
        (job_id,),
    ).fetchone()
    if row is None or row[4] is None:
        return None
    name, state, priority, depends_on, every, planned, created_at, schedule_id, key = row[:9]
    tenant, scope = row[9:]
    occurrence_id = new_id()
    # The conflict key goes on with the schedule: every occurrence keeps
    # out of the way of the jobs it must not overlap; so do its tenant and scope.
    db.execute(
        "INSERT INTO jobs (id, name, state, status, priority, depends_on, run_every_s,"
        " next_run_at, schedule_id, created_at, updated_at, conflict_key, tenant, scope)"
        " VALUES (?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            occurrence_id,
            name,
            state,
            priority,
            depends_on,
            every,
            next_run(planned if planned is not None else created_at, every, now),
            schedule_id or job_id,
            now,
            now,
            key,
            tenant,
            scope,
        ),
    )
    return occurrence_id


def create_once(
    db: sqlite3.Connection,
    name: str,
    state: bytes,
    conflict_key: str,
    every: float,
    first_at: float,
    priority: int,
    now: float,
    scope: str | None = None,
) -> tuple[str, bool]:
    """Inside a write transaction (``BEGIN IMMEDIATE``): the unfinished
    occurrence of an interval schedule of job type ``name`` with
    ``conflict_key``, whatever its input and interval, else a new schedule
    whose first occurrence runs at ``first_at``. ``(job id, created)``:
    processes asking at once serialise on the write lock, so one creates it
    and the others find it."""
    row = db.execute(
        "SELECT id FROM jobs WHERE conflict_key = ? AND name = ? AND run_every_s IS NOT NULL"
        " AND status IN ('queued', 'running', 'paused') ORDER BY created_at, id LIMIT 1",
        (conflict_key, name),
    ).fetchone()
    if row is not None:
        return str(row[0]), False
    job_id = new_id()
    db.execute(
        "INSERT INTO jobs (id, name, state, status, priority, run_every_s, next_run_at,"
        " schedule_id, created_at, updated_at, conflict_key, scope)"
        " VALUES (?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?)",
        (job_id, name, state, priority, every, first_at, job_id, now, now, conflict_key, scope),
    )
    return job_id, True
