"""The scheduler's queries: which queued jobs may start, claiming them, and
jobs whose dependency failed. Run inside the store's lock or transaction.

A scheduling pass reads one short page of ready jobs (due, dependency met)
in dispatch order through the ``jobs_status`` index, never the whole queue,
and claims the ones it starts in one transaction, so dispatching N jobs
costs O(N) and not O(N^2) reads.
"""

from __future__ import annotations

import functools
import sqlite3
from typing import Any

from ._tasks import STEP_OPEN

#: A queued job whose conflict key is free: no job with that key is running
#: (see Job.conflict_key), but for its own parent (a parent waiting for its
#: children would otherwise wait for ever). Checked when the page is read and
#: again, inside the claiming transaction, for each job claimed, so two
#: processes (or two jobs claimed together) never run two jobs with one key.
KEY_FREE = (
    "(conflict_key IS NULL OR NOT EXISTS (SELECT 1 FROM jobs r"
    " WHERE r.conflict_key = jobs.conflict_key AND r.status = 'running'"
    " AND r.id IS NOT jobs.parent_id))"
)


@functools.cache
def ready_page(excluded: int, tenants: int = 0) -> str:
    """SQL of ``(id, name, priority, tenant)`` of queued jobs that can start
    now, in dispatch order, but for jobs of ``excluded`` types: a manager
    leaves a job whose type it does not know queued for one that does; with
    ``tenants`` > 0, only the jobs of that many tenants (a worker serving
    some tenants). Arguments: now, the excluded names, the tenants, limit,
    offset."""
    only = f"AND name NOT IN ({', '.join('?' * excluded)})" if excluded else ""
    if tenants:
        only += f" AND tenant IN ({', '.join('?' * tenants)})"
    return f"""
SELECT id, name, priority, tenant FROM jobs
WHERE status = 'queued'
  AND (next_run_at IS NULL OR next_run_at <= ?)
  {only}
  AND (depends_on IS NULL OR (SELECT d.status FROM jobs d WHERE d.id = jobs.depends_on)
       IN ('completed', 'completed_with_errors'))
  AND {KEY_FREE}
  AND {STEP_OPEN}
ORDER BY priority DESC, created_at, id
LIMIT ? OFFSET ?
"""


#: Queued jobs whose dependency failed, was cancelled or no longer exists.
BLOCKED = """
SELECT j.id, j.depends_on, d.status FROM jobs j LEFT JOIN jobs d ON d.id = j.depends_on
WHERE j.status = 'queued' AND j.depends_on IS NOT NULL
  AND (d.id IS NULL OR d.status IN ('failed', 'cancelled'))
"""

#: The earliest future start of a queued job. Without statistics SQLite
#: would scan every queued job through ``jobs_status``; the schedule index
#: holds only the few jobs with a planned start.
NEXT_DUE = """
SELECT MIN(next_run_at) FROM jobs INDEXED BY jobs_next_run
WHERE next_run_at IS NOT NULL AND next_run_at > ? AND status = 'queued'
"""


def claim(
    db: sqlite3.Connection,
    job_ids: list[str],
    now: float,
    owner: str | None,
    returning: str = "id",
) -> list[Any]:
    """Mark the given queued jobs running by ``owner``, each with a new lease
    epoch (see the schema's version 10); returns a row of
    ``returning`` (SQL) for each job claimed (a job paused or cancelled
    meanwhile, claimed by another process, or whose conflict key another
    running job holds, is not)."""
    claimed = []
    for job_id in job_ids:
        rows = db.execute(
            "UPDATE jobs SET status = 'running', updated_at = ?, owner = ?, lease = lease + 1,"
            " started_at = COALESCE(started_at, ?) WHERE id = ? AND status = 'queued'"
            f" AND {KEY_FREE} AND {STEP_OPEN} RETURNING {returning}",
            (now, owner, now, job_id),
        ).fetchall()
        claimed += rows
    return claimed
