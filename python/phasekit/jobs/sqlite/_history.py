"""job_history in jobs.db: one summary row per finished job, and retention.

A job finished by a busy worker is not copied into job_history at once: its
row in ``jobs`` is marked (``history_pending``, with the counts the summary
needs) in the transaction that finishes it, and the marked rows are copied
in batches (:func:`flush`). The mark costs one small index entry where the
copy wrote three B-tree pages, per job. A listing reads the marked rows
with job_history, so it misses nothing, from any process, and a crash loses
nothing: the marks are in jobs.db, and the next flush copies them.

The functions here run inside a transaction the store has opened; the store
turns rows into :class:`HistoryRecord` objects.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from .._model import JobStatus
from ..sql._listing import HistoryCursor, before_args, history_after

#: The statuses a job ends in, as SQL (from JobStatus.finished).
FINISHED_SQL = "(" + ", ".join(f"'{s.value}'" for s in JobStatus if s.finished) + ")"


HISTORY_COLUMNS = (
    "id, name, status, parent_id, schedule_id, created_at, started_at, finished_at, error,"
    " warning_count, error_count, output, metrics, tenant, scope, task_id"
)


#: The summary of a job, from its row in ``jobs`` (in HISTORY_COLUMNS' order).
_SUMMARY = (
    "id, name, status, parent_id, schedule_id, created_at, started_at, finished_at, error,"
    " COALESCE(warning_count, 0), COALESCE(error_count, 0), output, metrics, tenant, scope,"
    " task_id"
)

#: What a history row keeps of a job's row: the summary without the output.
#: The output is stored once, in ``jobs`` (a finished job's row no longer
#: changes, and pruning removes a history row no later than its job's row),
#: and a listing reads it from there (_LISTED): a duplicate search's output
#: of thousands of groups is megabytes, written and checkpointed once, not
#: twice. Rows written by earlier versions keep their own copy, read first.
_COPIED = _SUMMARY.replace(" output,", " NULL,")

#: HISTORY_COLUMNS as a listing reads them, from job_history ``h`` joined
#: with jobs ``j`` for the output.
_LISTED = (
    "h.id, h.name, h.status, h.parent_id, h.schedule_id, h.created_at, h.started_at,"
    " h.finished_at, h.error, h.warning_count, h.error_count, COALESCE(h.output, j.output),"
    " h.metrics, h.tenant, h.scope, h.task_id"
)

#: Finished jobs whose summary is not copied yet: the end of the index of
#: finished jobs, which holds the mark first (named: without statistics
#: SQLite could take jobs_status and scan every finished job).
_MARKED = "history_pending IS NOT NULL AND finished_at IS NOT NULL"
_PENDING = f"FROM jobs INDEXED BY jobs_finished WHERE {_MARKED} AND status IN {FINISHED_SQL}"


def record(db: sqlite3.Connection, job_id: str, warning_count: int, error_count: int) -> None:
    """Copy the summary of finished job ``job_id`` into job_history now
    (replacing an earlier summary of the same job)."""
    db.execute(
        f"INSERT OR REPLACE INTO job_history ({HISTORY_COLUMNS})"
        " SELECT id, name, status, parent_id, schedule_id, created_at, started_at,"
        " finished_at, error, ?, ?, NULL, metrics, tenant, scope, task_id FROM jobs WHERE id = ?",
        (warning_count, error_count, job_id),
    )


def flush(db: sqlite3.Connection) -> None:
    """Copy the summaries of every marked job (whoever marked it) into
    job_history, and clear the marks."""
    db.execute(
        f"INSERT OR REPLACE INTO job_history ({HISTORY_COLUMNS}) SELECT {_COPIED} {_PENDING}"
    )
    db.execute(f"UPDATE jobs INDEXED BY jobs_finished SET history_pending = NULL WHERE {_MARKED}")


def flush_job(db: sqlite3.Connection, job_id: str) -> None:
    """Copy the summary of ``job_id`` if it is marked, and clear its mark:
    before a change to the row would alter the summary it stands for."""
    db.execute(
        f"INSERT OR REPLACE INTO job_history ({HISTORY_COLUMNS}) SELECT {_COPIED}"
        f" FROM jobs WHERE id = ? AND history_pending IS NOT NULL AND status IN {FINISHED_SQL}",
        (job_id,),
    )
    db.execute("UPDATE jobs SET history_pending = NULL WHERE id = ?", (job_id,))


def query(
    *,
    limit: int | None,
    since: float | None,
    name: str | None,
    tenant: str | None = None,
    before: HistoryCursor | None = None,
) -> tuple[str, tuple[Any, ...]]:
    """SQL and arguments selecting history rows, newest first (those after
    ``before`` in that order, if given)."""
    where, args = _filters(since, name, tenant, "h.", before)
    sql = f"SELECT {_LISTED} FROM job_history AS h LEFT JOIN jobs AS j ON j.id = h.id"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY h.finished_at DESC, h.id DESC"
    if limit is not None:
        sql += " LIMIT ?"
        args.append(limit)
    return sql, tuple(args)


def pending_query(
    *, since: float | None, name: str | None, tenant: str | None = None
) -> tuple[str, tuple[Any, ...]]:
    """SQL and arguments selecting the summaries of the marked jobs (not yet
    in job_history), in HISTORY_COLUMNS' order; few, in no particular order."""
    where, args = _filters(since, name, tenant)
    sql = f"SELECT {_SUMMARY} {_PENDING}"
    if where:
        sql += " AND " + " AND ".join(where)
    return sql, tuple(args)


def merge(
    rows: list[tuple[Any, ...]],
    pending: list[tuple[Any, ...]],
    limit: int | None,
    before: HistoryCursor | None = None,
) -> list[tuple[Any, ...]]:
    """History rows (newest first, read with ``limit`` plus the number of
    pending ones, after ``before`` if given) and pending summaries (all of
    them), as one listing: a pending summary replaces the job's older row
    (whichever page it falls on), newest first, after ``before``, at most
    ``limit``."""
    if not pending:
        return rows[:limit]
    ids = {row[0] for row in pending}
    if before is not None:
        pending = [row for row in pending if (row[7], row[0]) < before]
    merged = [row for row in rows if row[0] not in ids] + pending
    merged.sort(key=lambda row: (row[7], row[0]), reverse=True)  # finished_at, id
    return merged[:limit]


def _filters(
    since: float | None,
    name: str | None,
    tenant: str | None,
    table: str = "",
    before: HistoryCursor | None = None,
) -> tuple[list[str], list[Any]]:
    where: list[str] = []
    args: list[Any] = []
    if tenant is not None:
        where.append(f"{table}tenant = ?")
        args.append(tenant)
    if since is not None:
        where.append(f"{table}finished_at >= ?")
        args.append(since)
    if name is not None:
        where.append(f"{table}name = ?")
        args.append(name)
    if before is not None:
        where.append(history_after(table, "?"))
        args += before_args(before)
    return where, args


def prune(db: sqlite3.Connection, cutoff: float) -> tuple[int, int]:
    """Delete history rows and finished jobs (with their checkpoints) that
    finished before ``cutoff``; returns ``(history_rows, jobs)`` removed.

    A finished job that another row still points at (a child, or a job that
    depends on it) is kept until that row goes: children are removed before
    their parents, in as many passes as the tree is deep.
    """
    flush(db)  # a marked job is history like any other (and unmarked now)
    history = db.execute("DELETE FROM job_history WHERE finished_at < ?", (cutoff,)).rowcount
    prunable = (
        "SELECT id FROM jobs AS j INDEXED BY jobs_finished"
        " WHERE j.history_pending IS NULL AND j.finished_at < ?"
        f" AND j.status IN {FINISHED_SQL}"
        " AND NOT EXISTS (SELECT 1 FROM jobs AS c WHERE c.parent_id = j.id)"
        " AND NOT EXISTS (SELECT 1 FROM jobs AS d WHERE d.depends_on = j.id)"
    )
    jobs = 0
    while True:
        db.execute(f"DELETE FROM job_checkpoints WHERE job_id IN ({prunable})", (cutoff,))
        removed = db.execute(f"DELETE FROM jobs WHERE id IN ({prunable})", (cutoff,)).rowcount
        if removed == 0:
            # A finished task goes with the last of its jobs.
            db.execute(
                "DELETE FROM tasks WHERE finished_at < ?"
                " AND NOT EXISTS (SELECT 1 FROM jobs WHERE jobs.task_id = tasks.id)",
                (cutoff,),
            )
            return history, jobs
        jobs += removed
