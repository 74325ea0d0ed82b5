"""Interval schedules in jobs.db: validation, the next planned time, and the
next occurrence of a scheduled job (written inside the store's transaction).

A scheduled job is an ordinary row with ``run_every_s`` and ``next_run_at``;
every occurrence is a new row sharing the first occurrence's ``schedule_id``.
"""

from __future__ import annotations

import math
import sqlite3

from ..errors import InvalidInputError
from ._codec import new_id


def check_every(every: float | None) -> None:
    """Raise InvalidInputError unless ``every`` is None or a finite number of seconds > 0."""
    if every is None:
        return
    if isinstance(every, bool) or not isinstance(every, int | float):
        raise InvalidInputError(f"every must be a number of seconds, got {type(every).__name__}")
    if not (math.isfinite(every) and every > 0):
        raise InvalidInputError(f"every must be a finite number of seconds > 0, got {every!r}")


def next_run(planned: float, every: float, now: float) -> float:
    """The first ``planned + k * every`` (k >= 1) that lies after ``now``.

    Runs missed while nothing was running (the process was down, the queue
    was full) are skipped, not piled up: one occurrence, at the next slot.
    """
    k = max(1, math.floor((now - planned) / every) + 1)
    nxt = planned + k * every
    while nxt <= now:  # floating point at an exact multiple
        nxt += every
    return nxt


def schedule_next(db: sqlite3.Connection, job_id: str, now: float) -> str | None:
    """If ``job_id`` is scheduled, queue its next occurrence; returns its id.

    Called in the transaction that finishes ``job_id`` (completed,
    completed_with_errors or failed, never cancelled), so an occurrence is
    never lost nor created twice.
    """
    row = db.execute(
        "SELECT name, state, priority, depends_on, run_every_s, next_run_at, created_at,"
        " schedule_id FROM jobs WHERE id = ?",
        (job_id,),
    ).fetchone()
    if row is None or row[4] is None:
        return None
    name, state, priority, depends_on, every, planned, created_at, schedule_id = row
    occurrence_id = new_id()
    db.execute(
        "INSERT INTO jobs (id, name, state, status, priority, depends_on, run_every_s,"
        " next_run_at, schedule_id, created_at, updated_at)"
        " VALUES (?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?)",
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
        ),
    )
    return occurrence_id
