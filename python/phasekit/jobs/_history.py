"""job_history in jobs.db: one summary row per finished job, and retention.

The functions here run inside a transaction the store has opened; the store
turns rows into :class:`HistoryRecord` objects.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._codec import decode

if TYPE_CHECKING:
    from ._store import JobStatus

#: The statuses a job ends in, as stored (kept in step with JobStatus.finished).
FINISHED_SQL = "('completed', 'completed_with_errors', 'failed', 'cancelled')"


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
    output_blob: bytes | None
    metrics_blob: bytes | None

    def output(self) -> Any:
        """The job's output (None if it had none)."""
        return None if self.output_blob is None else decode(self.output_blob)

    def metrics(self) -> dict[str, Any]:
        """Items, bytes and rates of the job's last run."""
        return {} if self.metrics_blob is None else dict(decode(self.metrics_blob))


HISTORY_COLUMNS = (
    "id, name, status, parent_id, schedule_id, created_at, started_at, finished_at, error,"
    " warning_count, error_count, output, metrics"
)


def record(db: sqlite3.Connection, job_id: str, warning_count: int, error_count: int) -> None:
    """Copy the summary of finished job ``job_id`` into job_history (replacing
    an earlier summary of the same job)."""
    db.execute(
        f"INSERT OR REPLACE INTO job_history ({HISTORY_COLUMNS})"
        " SELECT id, name, status, parent_id, schedule_id, created_at, started_at,"
        " finished_at, error, ?, ?, output, metrics FROM jobs WHERE id = ?",
        (warning_count, error_count, job_id),
    )


def query(
    *, limit: int | None, since: float | None, name: str | None
) -> tuple[str, tuple[Any, ...]]:
    """SQL and arguments selecting history rows, newest first."""
    where: list[str] = []
    args: list[Any] = []
    if since is not None:
        where.append("finished_at >= ?")
        args.append(since)
    if name is not None:
        where.append("name = ?")
        args.append(name)
    sql = f"SELECT {HISTORY_COLUMNS} FROM job_history"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY finished_at DESC, id DESC"
    if limit is not None:
        sql += " LIMIT ?"
        args.append(limit)
    return sql, tuple(args)


def prune(db: sqlite3.Connection, cutoff: float) -> tuple[int, int]:
    """Delete history rows and finished jobs (with their checkpoints) that
    finished before ``cutoff``; returns ``(history_rows, jobs)`` removed.

    A finished job that another row still points at (a child, or a job that
    depends on it) is kept until that row goes: children are removed before
    their parents, in as many passes as the tree is deep.
    """
    history = db.execute("DELETE FROM job_history WHERE finished_at < ?", (cutoff,)).rowcount
    prunable = (
        "SELECT id FROM jobs AS j"
        f" WHERE j.status IN {FINISHED_SQL} AND j.finished_at < ?"
        " AND NOT EXISTS (SELECT 1 FROM jobs AS c WHERE c.parent_id = j.id)"
        " AND NOT EXISTS (SELECT 1 FROM jobs AS d WHERE d.depends_on = j.id)"
    )
    jobs = 0
    while True:
        db.execute(f"DELETE FROM job_checkpoints WHERE job_id IN ({prunable})", (cutoff,))
        removed = db.execute(f"DELETE FROM jobs WHERE id IN ({prunable})", (cutoff,)).rowcount
        if removed == 0:
            return history, jobs
        jobs += removed
