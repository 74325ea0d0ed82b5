"""Child jobs in jobs.db: idempotent creation by key, descendants, and the
cascade of a cancel. The functions run inside a transaction the store opened."""

from __future__ import annotations

import sqlite3

from ...errors import InvalidInputError, JobNotFound
from .._codec import new_id
from ._history import FINISHED_SQL, record

#: Recursive CTE ``d(id)``: every descendant of the job bound to ``?``.
DESCENDANTS = (
    "WITH RECURSIVE d(id) AS (SELECT id FROM jobs WHERE parent_id = ?"
    " UNION SELECT jobs.id FROM jobs JOIN d ON jobs.parent_id = d.id)"
)

#: Unfinished descendants of the job bound to ``?``.
UNFINISHED_DESCENDANTS = (
    f"{DESCENDANTS} SELECT d.id FROM d JOIN jobs USING (id) WHERE jobs.status NOT IN {FINISHED_SQL}"
)


def create(
    db: sqlite3.Connection,
    parent_id: str,
    key: str,
    name: str,
    blob: bytes,
    priority: int | None,
    now: float,
    conflict_key: str | None = None,
    scope: str | None = None,
) -> tuple[str, bool]:
    """Insert a queued child unless ``parent_id`` has one under ``key``;
    returns ``(child_id, created)``. The child is its parent's tenant's (and
    of the parent's scope unless given). See :meth:`JobStore.create_child`."""
    row = db.execute(
        "SELECT id, name FROM jobs WHERE parent_id = ? AND child_key = ?", (parent_id, key)
    ).fetchone()
    if row is not None:
        if row[1] != name:
            raise InvalidInputError(
                f"child key {key!r} of job {parent_id} is already used by a {row[1]!r} job"
            )
        return str(row[0]), False
    parent = db.execute(
        "SELECT priority, tenant, scope FROM jobs WHERE id = ?", (parent_id,)
    ).fetchone()
    if parent is None:
        raise JobNotFound(f"no job with id {parent_id!r}")
    child_id = new_id()
    prio = parent[0] if priority is None else priority
    db.execute(
        "INSERT INTO jobs (id, name, state, status, priority, parent_id, child_key,"
        " created_at, updated_at, conflict_key, tenant, scope)"
        " VALUES (?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            child_id,
            name,
            blob,
            prio,
            parent_id,
            key,
            now,
            now,
            conflict_key,
            parent[1],
            parent[2] if scope is None else scope,
        ),
    )
    return child_id, True


def cancel_waiting(db: sqlite3.Connection, job_id: str, now: float) -> None:
    """Cancel the queued and paused descendants of ``job_id`` (running ones
    are stopped by whoever runs them: the manager signals them)."""
    waiting = db.execute(
        f"{DESCENDANTS} SELECT d.id FROM d JOIN jobs USING (id)"
        " WHERE jobs.status IN ('queued', 'paused')",
        (job_id,),
    ).fetchall()
    for (child_id,) in waiting:
        db.execute(
            "UPDATE jobs SET status = 'cancelled', updated_at = ?, finished_at = ? WHERE id = ?",
            (now, now, child_id),
        )
        record(db, child_id, 0, 0)
