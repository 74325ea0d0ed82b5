"""What the PostgreSQL job store reads: records, listings, the ready page,
what a run starts from, tasks, history and the event log. A mixin of
:class:`~phasekit.jobs.postgres.PostgresJobStore` (``_store.py``), which
holds the connection and the writes; reads are autocommit statements, tried
again on a new session if the old one broke (see _connect).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from ...errors import InvalidInputError, JobNotFound, TaskNotFound
from .._codec import decode
from .._model import HistoryRecord, JobRecord, JobStatus, RunStart, TaskRecord, WorkerRecord
from .._progress import JobProgress
from ..sql._listing import (
    HistoryCursor,
    JobCursor,
    before_args,
    history_after,
    id_chunks,
    list_jobs_query,
    statuses_query,
)
from . import _sql
from ._sql import COLUMNS, FINISHED_SQL, RUN_START, s

if TYPE_CHECKING:
    import psycopg

    from .._events import JobEvent
    from ._connect import Connection

    Cursor = psycopg.Cursor[Any]

_HISTORY_COLUMNS = (
    "h.id, h.name, h.status, h.parent_id, h.schedule_id, h.created_at, h.started_at,"
    " h.finished_at, h.error, h.warning_count, h.error_count, COALESCE(h.output, j.output),"
    " h.metrics, h.tenant, h.scope, h.task_id"
)


class Reads:
    """The reading half of the store (see the module comment)."""

    connection: Connection

    def _read(self, sql: str, args: tuple[Any, ...] | list[Any] = ()) -> list[Any]:
        return self.connection.run(lambda cur: cur.execute(sql, args).fetchall(), write=False)

    def _one(self, sql: str, args: tuple[Any, ...]) -> Any:
        """The first row of ``sql``, or JobNotFound (``args[0]``: the job id)."""
        rows = self._read(sql, args)
        if not rows:
            raise JobNotFound(f"no job with id {args[0]!r}")
        return rows[0]

    def workers(self) -> list[WorkerRecord]:
        running: dict[str, list[str]] = {}
        for job_id, owner in self.running_owners():
            if owner is not None:
                running.setdefault(owner, []).append(job_id)
        rows = self._read(
            "SELECT id, host, pid, started_at, heartbeat_at, stale_after_s, info FROM workers"
            " ORDER BY started_at, id"
        )
        return [
            WorkerRecord(
                id=r[0],
                host=r[1],
                pid=int(r[2]),
                started_at=float(r[3]),
                heartbeat_at=float(r[4]),
                stale_after_s=float(r[5]),
                info=None if r[6] is None else decode(r[6]),
                jobs=sorted(running.get(r[0], [])),
            )
            for r in rows
        ]

    def running_owners(self) -> list[tuple[str, str | None]]:
        rows = self._read("SELECT id, owner FROM jobs WHERE status = 'running'")
        return [(r[0], r[1]) for r in rows]

    def task(self, task_id: str) -> TaskRecord:
        def read(cur: Cursor) -> tuple[Any, list[Any]]:
            # The row and its jobs as of one moment.
            cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            row = cur.execute(
                f"SELECT {_sql.TASK_COLUMNS} FROM tasks WHERE id = %s", (task_id,)
            ).fetchone()
            jobs = cur.execute(
                "SELECT id, name, status, task_step, progress FROM jobs WHERE task_id = %s"
                " ORDER BY task_step, created_at, id",
                (task_id,),
            ).fetchall()
            return row, jobs

        row, jobs = self.connection.run(read)  # one transaction: one snapshot
        if row is None:
            raise TaskNotFound(f"no task with id {task_id!r}")
        return _sql.task_record(row, jobs)

    def tasks(self, *, tenant: str | None = None, limit: int | None = 100) -> list[TaskRecord]:
        sql = f"SELECT id FROM tasks{' WHERE tenant = %s' if tenant is not None else ''}"
        sql += " ORDER BY created_at DESC, id DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        found = []
        for (task_id,) in self._read(sql, () if tenant is None else (tenant,)):
            try:
                found.append(self.task(task_id))
            except TaskNotFound:
                continue  # pruned meanwhile
        return found

    def get_job(self, job_id: str) -> JobRecord:
        return _sql.record(self._one(f"SELECT {COLUMNS} FROM jobs WHERE id = %s", (job_id,)))

    def list_jobs(
        self,
        status: JobStatus | None = None,
        *,
        name: str | None = None,
        parent_id: str | None = None,
        limit: int | None = None,
        tenant: str | None = None,
        scope: str | None = None,
        task_id: str | None = None,
        unfinished: bool = False,
        after: JobCursor | None = None,
    ) -> list[JobRecord]:
        sql, args = list_jobs_query(
            COLUMNS,
            "%s",
            status=status,
            name=name,
            parent_id=parent_id,
            limit=limit,
            tenant=tenant,
            scope=scope,
            task_id=task_id,
            unfinished=unfinished,
            after=after,
        )
        return [_sql.record(r) for r in self._read(sql, args)]

    def status(self, job_id: str) -> JobStatus:
        return JobStatus(self._one("SELECT status FROM jobs WHERE id = %s", (job_id,))[0])

    def status_and_progress(
        self, job_id: str, data_type: type[Any] | None = None
    ) -> tuple[JobStatus, JobProgress | None]:
        status, blob = self._one("SELECT status, progress FROM jobs WHERE id = %s", (job_id,))
        progress = None if blob is None else JobProgress.from_dict(decode(blob), data_type)
        return JobStatus(status), progress

    def statuses_and_progress(
        self, job_ids: list[str], data_type: type[Any] | None = None
    ) -> dict[str, tuple[JobStatus, JobProgress | None]]:
        found: dict[str, tuple[JobStatus, JobProgress | None]] = {}
        for chunk in id_chunks(job_ids):
            for job_id, status, blob in self._read(statuses_query("%s", len(chunk)), chunk):
                progress = None if blob is None else JobProgress.from_dict(decode(blob), data_type)
                found[job_id] = (JobStatus(status), progress)
        return found

    def progress(self, job_id: str, data_type: type[Any] | None = None) -> JobProgress | None:
        rows = self._read("SELECT progress FROM jobs WHERE id = %s", (job_id,))
        if not rows or rows[0][0] is None:
            return None
        return JobProgress.from_dict(decode(rows[0][0]), data_type)

    def outcome(self, job_id: str) -> dict[str, Any]:
        row = self._one(
            "SELECT output, warnings, errors, metrics FROM jobs WHERE id = %s", (job_id,)
        )
        names = ("output", "warnings", "errors", "metrics")
        return {n: (decode(v) if v is not None else None) for n, v in zip(names, row, strict=True)}

    def traceback(self, job_id: str) -> str | None:
        return s(self._one("SELECT traceback FROM jobs WHERE id = %s", (job_id,))[0])

    def children(self, parent_id: str) -> dict[str, JobStatus]:
        rows = self._read(
            "SELECT id, status FROM jobs WHERE parent_id = %s ORDER BY created_at, id",
            (parent_id,),
        )
        return {r[0]: JobStatus(r[1]) for r in rows}

    def descendants(self, job_id: str) -> list[str]:
        rows = self._read(
            f"{_sql.DESCENDANTS} SELECT d.id FROM d JOIN jobs USING (id)"
            f" WHERE jobs.status NOT IN {FINISHED_SQL}",
            (job_id,),
        )
        return [r[0] for r in rows]

    def occurrences(self, schedule_id: str) -> list[JobRecord]:
        rows = self._read(
            f"SELECT {COLUMNS} FROM jobs WHERE schedule_id = %s ORDER BY created_at, id",
            (schedule_id,),
        )
        return [_sql.record(r) for r in rows]

    def ready(
        self,
        *,
        limit: int,
        offset: int = 0,
        now: float | None = None,
        exclude: list[str] | None = None,
        tenants: list[str] | None = None,
    ) -> list[tuple[str, str, int, str]]:
        args: list[Any] = [time.time() if now is None else now]
        if exclude:
            args.append(list(exclude))
        if tenants:
            args.append(list(tenants))
        rows = self._read(_sql.ready_page(bool(exclude), bool(tenants)), [*args, limit, offset])
        return [(r[0], r[1], r[2], r[3]) for r in rows]

    def load_for_run(self, job_id: str) -> RunStart:
        return _sql.run_start(self._one(f"SELECT {RUN_START} FROM jobs WHERE id = %s", (job_id,)))

    def next_due(self, after: float) -> float | None:
        rows = self._read(
            "SELECT MIN(next_run_at) FROM jobs WHERE next_run_at IS NOT NULL"
            " AND next_run_at > %s AND status = 'queued'",
            (after,),
        )
        return None if rows[0][0] is None else float(rows[0][0])

    def stop_request(self, job_id: str, *, lease: int | None = None) -> str | None:
        rows = self._read("SELECT request, lease, status FROM jobs WHERE id = %s", (job_id,))
        if lease is not None:
            _sql.check_lease(job_id, lease, rows[0][1:] if rows else None)
        return None if not rows else rows[0][0]

    def load_checkpoint(self, job_id: str) -> tuple[int, Any] | None:
        rows = self._read(
            "SELECT seq, data FROM job_checkpoints WHERE job_id = %s ORDER BY seq DESC LIMIT 1",
            (job_id,),
        )
        if not rows:
            return None
        return int(rows[0][0]), decode(rows[0][1])

    def events(
        self, *, after: int = 0, limit: int = 1000, tenant: str | None = None
    ) -> list[JobEvent]:
        from ..sqlite._store import _event

        only, args = (
            ("", (after, limit)) if tenant is None else (" AND tenant = %s", (after, tenant, limit))
        )

        def read(cur: Cursor) -> list[Any]:
            cur.execute("SELECT phasekit_number_events()")
            return cur.execute(
                "SELECT id, kind, job_id, name, status, progress, at, parent_id, owner, tenant,"
                f" scope, task_id FROM events WHERE id > %s{only} ORDER BY id LIMIT %s",
                args,
            ).fetchall()

        return [_event(r) for r in self.connection.run(read, write=False)]

    def last_event_id(self) -> int:
        rows = self._read("SELECT phasekit_number_events()")
        return int(rows[0][0])

    def history(
        self,
        *,
        limit: int | None = 100,
        since: float | None = None,
        name: str | None = None,
        tenant: str | None = None,
        before: HistoryCursor | None = None,
    ) -> list[HistoryRecord]:
        if limit is not None and limit < 0:
            raise InvalidInputError(f"limit must be >= 0, got {limit}")
        where: list[str] = []
        args: list[Any] = []
        for column, value in (("tenant", tenant), ("finished_at", since), ("name", name)):
            if value is not None:
                where.append(f"h.{column} {'>=' if column == 'finished_at' else '='} %s")
                args.append(value)
        if before is not None:
            where.append(history_after("h.", "%s"))
            args += before_args(before)
        sql = f"SELECT {_HISTORY_COLUMNS} FROM job_history h LEFT JOIN jobs j ON j.id = h.id"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY h.finished_at DESC, h.id DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [_history_record(r) for r in self._read(sql, args)]


def _history_record(r: tuple[Any, ...]) -> HistoryRecord:
    return HistoryRecord(
        id=r[0],
        name=r[1],
        status=JobStatus(r[2]),
        parent_id=r[3],
        schedule_id=r[4],
        created_at=r[5],
        started_at=r[6],
        finished_at=r[7],
        error=s(r[8]),
        warning_count=r[9],
        error_count=r[10],
        output_blob=None if r[11] is None else bytes(r[11]),
        metrics_blob=None if r[12] is None else bytes(r[12]),
        tenant=r[13],
        scope=r[14],
        task_id=r[15],
    )
