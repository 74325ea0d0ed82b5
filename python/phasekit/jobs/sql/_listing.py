"""The queries both job stores list jobs with (``JobBackend.list_jobs``,
``JobBackend.statuses_and_progress``): the same filters, order, limit and
cursor, in each database's placeholder style."""

from __future__ import annotations

from typing import Any

from ...errors import InvalidInputError
from .._model import JobStatus

#: The statuses of a job not finished yet, as SQL (from JobStatus.finished).
UNFINISHED_SQL = "(" + ", ".join(f"'{s.value}'" for s in JobStatus if not s.finished) + ")"

#: Job ids read by one statement of ``statuses_and_progress``: within
#: SQLite's oldest limit of bound parameters (999).
IDS_PER_READ = 500

#: Where a page of a listing ends, to go on after it: ``(priority,
#: created_at, id)`` of its last job, the keys of the dispatch order.
JobCursor = tuple[int, float, str]


def list_jobs_query(
    columns: str,
    mark: str,
    *,
    status: JobStatus | None,
    name: str | None,
    parent_id: str | None,
    limit: int | None,
    tenant: str | None,
    scope: str | None,
    task_id: str | None,
    unfinished: bool = False,
    after: JobCursor | None = None,
) -> tuple[str, list[Any]]:
    """``(sql, args)`` selecting ``columns`` of the jobs that match every
    filter given, in dispatch order (higher priority first, then oldest
    first); only the unfinished ones if ``unfinished``; only those after
    ``after`` in that order (the cursor of the page before); ``mark`` is the
    database's placeholder (``?`` or ``%s``)."""
    where: list[str] = []
    args: list[Any] = []
    filters = (
        ("status", status),
        ("name", name),
        ("parent_id", parent_id),
        ("tenant", tenant),
        ("scope", scope),
        ("task_id", task_id),
    )
    for column, value in filters:
        if value is not None:
            where.append(f"{column} = {mark}")
            args.append(value.value if isinstance(value, JobStatus) else value)
    if unfinished:
        where.append(f"status IN {UNFINISHED_SQL}")
    if after is not None:
        priority, created_at, job_id = after
        where.append(
            f"(priority < {mark} OR (priority = {mark} AND (created_at > {mark}"
            f" OR (created_at = {mark} AND id > {mark}))))"
        )
        args += [int(priority), int(priority), float(created_at), float(created_at), job_id]
    sql = f"SELECT {columns} FROM jobs"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY priority DESC, created_at, id"
    if limit is not None:
        if limit < 0:
            raise InvalidInputError(f"limit must be >= 0, got {limit}")
        sql += f" LIMIT {int(limit)}"
    return sql, args


def statuses_query(mark: str, count: int) -> str:
    """The SQL reading ``id, status, progress`` of ``count`` jobs by id
    (``count`` placeholders)."""
    return f"SELECT id, status, progress FROM jobs WHERE id IN ({', '.join([mark] * count)})"


def id_chunks(job_ids: list[str]) -> list[list[str]]:
    """``job_ids`` without repeats, in reads of at most :data:`IDS_PER_READ`."""
    unique = list(dict.fromkeys(job_ids))
    return [unique[i : i + IDS_PER_READ] for i in range(0, len(unique), IDS_PER_READ)]


#: Where a page of the history ends, to go on after it: ``(finished_at,
#: id)`` of its last entry, the keys of its order (newest first).
HistoryCursor = tuple[float, str]


def history_after(table: str, mark: str) -> str:
    """The condition keeping the history entries after a cursor (newest
    first: finished earlier, or at the same time with a smaller id); its
    arguments are :func:`before_args`."""
    return f"({table}finished_at < {mark} OR ({table}finished_at = {mark} AND {table}id < {mark}))"


def before_args(before: HistoryCursor) -> list[Any]:
    """The arguments of :func:`history_after`."""
    finished_at, job_id = before
    return [float(finished_at), float(finished_at), job_id]
