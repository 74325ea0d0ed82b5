"""The query both job stores list jobs with (``JobBackend.list_jobs``): the
same filters, order and limit, in each database's placeholder style."""

from __future__ import annotations

from typing import Any

from ..errors import InvalidInputError
from ._model import JobStatus


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
) -> tuple[str, list[Any]]:
    """``(sql, args)`` selecting ``columns`` of the jobs that match every
    filter given, in dispatch order (higher priority first, then oldest
    first); ``mark`` is the database's placeholder (``?`` or ``%s``)."""
    where, args = [], []
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
    sql = f"SELECT {columns} FROM jobs"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY priority DESC, created_at, id"
    if limit is not None:
        if limit < 0:
            raise InvalidInputError(f"limit must be >= 0, got {limit}")
        sql += f" LIMIT {int(limit)}"
    return sql, args
