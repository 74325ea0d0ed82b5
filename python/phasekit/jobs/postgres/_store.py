"""The job store in PostgreSQL: :class:`PostgresJobStore` implements
:class:`~phasekit.jobs.JobBackend` for workers on several hosts sharing one
library's jobs. The layout and why it differs from jobs.db: _schema; the
writes inside transactions: _sql; the connection, retries and errors:
_connect; owners and heartbeats: _owners.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from ...errors import InvalidInputError, JobNotFound
from .._codec import encode, new_id
from .._model import (
    ANY,
    DEFAULT_TENANT,
    JobStatus,
    RunStart,
    _Any,
)
from .._schedule import check_every
from . import _sql
from ._connect import Connection
from ._owners import PostgresOwnership, live_owners, owner_states
from ._reads import Reads
from ._sql import FINISHED_SQL, KEY_FREE, RUN_START, STEP_OPEN, b, check_text

if TYPE_CHECKING:
    import psycopg

    from .._backend import JobBackend

    Cursor = psycopg.Cursor[Any]

T = TypeVar("T")

#: Events kept in the log, as jobs.db keeps (see JobBackend.events).
EVENTS_KEPT = 100_000
#: Checkpoints kept per job: the newest and the one before it.
CHECKPOINTS_KEPT = 2
#: Changed rows that make a job table's statistics stale (see analyze_if_stale).
STALE_STATS_ROWS = 1000

_INSERT = (
    "INSERT INTO jobs (id, name, state, status, priority, parent_id, depends_on, run_every_s,"
    " next_run_at, schedule_id, created_at, updated_at, conflict_key, tenant, scope)"
    " VALUES (%s, %s, %s, 'queued', %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)


class PostgresJobStore(Reads):
    """The jobs of a library in a PostgreSQL database (``url``: a
    ``postgresql://`` URL or libpq connection string). Thread-safe; any
    number of processes on any number of hosts may share it."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.connection = Connection(url)
        self._closing = threading.Lock()
        self.closed = False

    @property
    def location(self) -> str:
        """The database, without its password."""
        return self.connection.where

    def close(self) -> None:
        """Close the connection (idempotent; nothing is pending)."""
        with self._closing:
            self.closed = True
            self.connection.close()

    def __enter__(self) -> PostgresJobStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _write(self, body: Callable[[Cursor], T]) -> T:
        return self.connection.run(body)

    # owners and workers (see _owners)

    def register_owner(
        self, *, stale_after_s: float | None = None, info: Any = None
    ) -> PostgresOwnership:
        """A new owner lease: a session holding an advisory lock, and a row
        in ``workers`` that its heartbeat keeps fresh."""
        return PostgresOwnership(self, stale_after_s, info)

    def live_owners(self) -> list[str]:
        return live_owners(self.connection)

    def remove_worker(self, worker_id: str) -> None:
        self._write(lambda cur: cur.execute("DELETE FROM workers WHERE id = %s", (worker_id,)))

    def heartbeats(self) -> dict[str, tuple[float, float]]:
        """``{worker id: (last heartbeat, its staleness limit)}``."""
        return {o: (at, stale) for o, (at, stale, _) in owner_states(self.connection).items()}

    def watch(self, wake: Callable[[], None]) -> Callable[[], None]:
        """Call ``wake()`` (from another thread) whenever a job is queued, by
        any process: a manager starts its next look at once rather than at
        its next poll (see _wakeups). Returns the function that stops it."""
        from ._wakeups import Wakeups

        return Wakeups(self.url, wake).close

    # creating jobs

    def create_job(
        self,
        name: str,
        state: Any,
        *,
        priority: int = 0,
        parent_id: str | None = None,
        depends_on: str | None = None,
        run_every_s: float | None = None,
        next_run_at: float | None = None,
        conflict_key: str | None = None,
        tenant: str = DEFAULT_TENANT,
        scope: str | None = None,
    ) -> str:
        check_every(run_every_s)
        job_id, now = new_id(), time.time()
        if run_every_s is not None and next_run_at is None:
            next_run_at = now
        args = self._insert_args(job_id, name, state, priority, tenant, scope, conflict_key, now)
        args[4:9] = [
            parent_id,
            depends_on,
            run_every_s,
            next_run_at,
            job_id if run_every_s is not None else None,
        ]
        self._write(lambda cur: cur.execute(_INSERT, args))
        return job_id

    @staticmethod
    def _insert_args(
        job_id: str,
        name: str,
        state: Any,
        priority: int,
        tenant: str,
        scope: str | None,
        conflict_key: str | None,
        now: float,
    ) -> list[Any]:
        return [
            job_id,
            check_text(name, "a job type's name"),
            encode(state),
            priority,
            None,
            None,
            None,
            None,
            None,
            now,
            now,
            b(conflict_key),
            check_text(tenant, "a tenant"),
            check_text(scope, "a scope"),
        ]

    def create_or_join(
        self,
        name: str,
        state: Any,
        conflict_key: str,
        *,
        priority: int = 0,
        tenant: str = DEFAULT_TENANT,
        scope: str | None = None,
    ) -> tuple[str, bool]:
        """Queue a job unless an identical unfinished one (same tenant, type,
        input and conflict key) exists: ``(id, created)``. Creators of one key
        queue on its advisory lock, so two asking at once create one job."""
        job_id = new_id()
        args = self._insert_args(
            job_id, name, state, priority, tenant, scope, conflict_key, time.time()
        )

        def join(cur: Cursor) -> tuple[str, bool]:
            _sql.lock_key(cur, _sql.KEY_LOCKS, conflict_key)
            cur.execute(
                "SELECT id FROM jobs WHERE conflict_key = %s"
                " AND status IN ('queued', 'running', 'paused') AND name = %s AND state = %s"
                " AND next_run_at IS NULL AND depends_on IS NULL AND tenant = %s"
                " AND task_id IS NULL ORDER BY created_at LIMIT 1",
                (args[11], args[1], args[2], args[12]),
            )
            row = cur.fetchone()
            if row is not None:
                return str(row[0]), False
            cur.execute(_INSERT, args)
            return job_id, True

        return self._write(join)

    def create_child(
        self,
        parent_id: str,
        key: str,
        name: str,
        state: Any,
        *,
        priority: int | None = None,
        conflict_key: str | None = None,
        lease: int | None = None,
        scope: str | None = None,
    ) -> tuple[str, bool]:
        blob = encode(state)
        check_text(name, "a job type's name")
        check_text(scope, "a scope")

        def create(cur: Cursor) -> tuple[str, bool]:
            if lease is not None:
                _sql.fence(cur, parent_id, lease)
            return _sql.create_child(cur, parent_id, key, name, blob, priority, conflict_key, scope)

        return self._write(create)

    def create_task(
        self,
        name: str,
        definition: Any,
        steps: list[list[tuple[str, Any, str | None, str | None]]],
        *,
        tenant: str = DEFAULT_TENANT,
        scope: str | None = None,
        priority: int = 0,
    ) -> tuple[str, list[list[str]]]:
        if not steps or any(not jobs for jobs in steps):
            raise InvalidInputError("a task needs at least one step, and one job per step")
        encoded = [
            [
                (check_text(job, "a job type's name") or "", encode(state), key, job_scope)
                for job, state, key, job_scope in jobs
            ]
            for jobs in steps
        ]
        blob, now = encode(definition), time.time()
        return self._write(
            lambda cur: _sql.create_task(
                cur,
                tenant=check_text(tenant, "a tenant") or DEFAULT_TENANT,
                name=check_text(name, "a task's name") or "",
                scope=check_text(scope, "a scope"),
                definition=blob,
                steps=encoded,
                priority=priority,
                now=now,
            )
        )

    # scheduling and running

    def claim(self, job_ids: list[str], owner: str | None = None) -> list[str]:
        if not job_ids:
            return []
        rows = self._write(lambda cur: _sql.claim(cur, job_ids, time.time(), owner))
        return [r[0] for r in rows]

    def claim_runs(self, job_ids: list[str], owner: str | None = None) -> list[RunStart]:
        if not job_ids:
            return []
        rows = self._write(
            lambda cur: _sql.claim(cur, job_ids, time.time(), owner, returning=RUN_START)
        )
        return [_sql.run_start(row) for row in rows]

    def finish(
        self,
        job_id: str,
        status: JobStatus,
        *,
        output: Any = None,
        error: str | None = None,
        warnings: list[str] | None = None,
        errors: list[dict[str, Any]] | None = None,
        metrics: dict[str, Any] | None = None,
        progress: Any = None,
        traceback: str | None = None,
        lease: int | None = None,
    ) -> None:
        end = {
            "output": output,
            "error": error,
            "warnings": warnings,
            "errors": errors,
            "metrics": metrics,
            "progress": progress,
            "traceback": traceback,
        }
        (prepared,) = _sql.prepare_ends([(job_id, status, {**end, "lease": lease})])
        self._write(lambda cur: _sql.finish(cur, prepared))

    def finish_and_claim(
        self, job_id: str, status: JobStatus, end: dict[str, Any], claim: list[str], owner: str
    ) -> list[RunStart]:
        (prepared,) = _sql.prepare_ends([(job_id, status, end)])

        def write(cur: Cursor) -> list[Any]:
            _sql.finish(cur, prepared)
            return _sql.claim(cur, claim, time.time(), owner, RUN_START) if claim else []

        return [_sql.run_start(row) for row in self._write(write)]

    def finish_many_and_claim(
        self,
        ends: list[tuple[str, JobStatus, dict[str, Any]]],
        claim: list[str],
        owner: str,
    ) -> tuple[list[RunStart], list[str]]:
        prepared = _sql.prepare_ends(ends)

        def write(cur: Cursor) -> tuple[list[Any], list[str]]:
            lost = [job_id for job_id, _ in _sql.finish_many(cur, prepared)]
            rows = _sql.claim(cur, claim, time.time(), owner, RUN_START) if claim else []
            return rows, lost

        rows, lost = self._write(write)
        return [_sql.run_start(row) for row in rows], lost

    def move(
        self,
        job_id: str,
        status: JobStatus,
        *,
        only_from: tuple[JobStatus, ...] | None = None,
        owner: str | _Any | None = ANY,
        error: str | None = None,
    ) -> bool:
        """A compare-and-set of the job's status (see JobBackend.move)."""

        def write(cur: Cursor) -> bool:
            cur.execute(
                "SELECT status, run_every_s IS NOT NULL, task_id, conflict_key FROM jobs"
                " WHERE id = %s FOR UPDATE",
                (job_id,),
            )
            row = cur.fetchone()
            if row is None:
                return False
            before = JobStatus(row[0])
            into_running = status is JobStatus.RUNNING and before is not JobStatus.RUNNING
            if into_running and row[3] is not None:
                _sql.lock_key(cur, _sql.KEY_LOCKS, bytes(row[3]))
            now = time.time()
            where = "id = %s"
            args: list[Any] = [job_id]
            if only_from is not None:
                where += " AND status = ANY(%s)"
                args.append([st.value for st in only_from])
            if not isinstance(owner, _Any):
                where += " AND owner IS NOT DISTINCT FROM %s"
                args.append(owner)
            if into_running:
                # As a claim: never while a job with its conflict key runs or
                # an earlier step of its task is unfinished.
                where += f" AND {KEY_FREE} AND {STEP_OPEN}"
            cur.execute(
                "UPDATE jobs SET status = %s, error = %s, traceback = NULL, updated_at = %s,"
                " request = NULL, lease = lease + %s,"
                " owner = CASE WHEN %s THEN owner ELSE NULL END,"
                " started_at = CASE WHEN %s AND started_at IS NULL THEN %s ELSE started_at END,"
                " finished_at = CASE WHEN %s THEN %s ELSE finished_at END,"
                " warning_count = CASE WHEN %s THEN NULL ELSE warning_count END,"
                " error_count = CASE WHEN %s THEN NULL ELSE error_count END"
                f" WHERE {where}",
                (
                    status.value,
                    b(error),
                    now,
                    1 if into_running else 0,
                    status is JobStatus.RUNNING,
                    status is JobStatus.RUNNING,
                    now,
                    status.finished,
                    now,
                    status.finished,
                    status.finished,
                    *args,
                ),
            )
            if cur.rowcount == 0:
                return False
            _sql.ended(cur, job_id, before.finished, bool(row[1]), status, now, row[2])
            return True

        return self._write(write)

    def set_status(self, job_id: str, status: JobStatus, *, error: str | None = None) -> None:
        if not self.move(job_id, status, error=error):
            raise JobNotFound(f"no job with id {job_id!r}")

    def fail_blocked(self) -> list[str]:
        failed = []
        rows = self._read(
            "SELECT j.id, j.depends_on, d.status FROM jobs j LEFT JOIN jobs d"
            " ON d.id = j.depends_on WHERE j.status = 'queued' AND j.depends_on IS NOT NULL"
            " AND (d.id IS NULL OR d.status IN ('failed', 'cancelled'))"
        )
        for job_id, depends_on, status in rows:
            reason = "not found" if status is None else status
            self.finish(job_id, JobStatus.FAILED, error=f"dependency {depends_on} {reason}")
            failed.append(job_id)
        return failed

    def request_stop(self, job_id: str, what: str) -> bool:
        if what not in ("pause", "cancel"):
            raise InvalidInputError(f"a stop request is 'pause' or 'cancel', not {what!r}")
        return bool(
            self._write(
                lambda cur: (
                    cur.execute(
                        "UPDATE jobs SET request = %s WHERE id = %s AND status = 'running'"
                        " AND (request IS NULL OR request = 'pause')",
                        (what, job_id),
                    ).rowcount
                )
            )
        )

    # what a running job writes

    def set_progress(self, job_id: str, progress: Any, *, lease: int | None = None) -> None:
        blob, now = encode(progress), time.time()
        if lease is None:
            self._write(
                lambda cur: cur.execute(
                    "UPDATE jobs SET progress = %s, updated_at = %s WHERE id = %s",
                    (blob, now, job_id),
                )
            )
            return

        def write(cur: Cursor) -> None:
            cur.execute(
                "UPDATE jobs_active SET progress = %s, updated_at = %s WHERE id = %s"
                " AND lease = %s AND status = 'running'",
                (blob, now, job_id, lease),
            )
            if cur.rowcount != 1:
                row = cur.execute(
                    "SELECT lease, status FROM jobs WHERE id = %s", (job_id,)
                ).fetchone()
                _sql.check_lease(job_id, lease, row)

        self._write(write)

    def save_checkpoint(self, job_id: str, data: Any, *, lease: int | None = None) -> int:
        blob = encode(data)

        def write(cur: Cursor) -> int:
            if lease is not None:
                _sql.fence(cur, job_id, lease)
            seq = 1 + int(
                _sql.scalar(
                    cur,
                    "SELECT COALESCE(MAX(seq), 0) FROM job_checkpoints WHERE job_id = %s",
                    (job_id,),
                )
            )
            now = time.time()
            cur.execute(
                "INSERT INTO job_checkpoints (job_id, seq, version, data, created_at)"
                " VALUES (%s, %s, 1, %s, %s)",
                (job_id, seq, blob, now),
            )
            cur.execute(
                "DELETE FROM job_checkpoints WHERE job_id = %s AND seq <= %s",
                (job_id, seq - CHECKPOINTS_KEPT),
            )
            cur.execute("UPDATE jobs SET updated_at = %s WHERE id = %s", (now, job_id))
            return seq

        return self._write(write)

    # the event log (see the schema: numbered after commit)

    def prune_events(self, keep: int = EVENTS_KEPT, *, via: Connection | None = None) -> int:
        """Number the pending events and delete all but the last ``keep``
        (through ``via``, else the store's connection); how many went."""

        def prune(cur: Cursor) -> int:
            last = _sql.scalar(cur, "SELECT phasekit_number_events()")
            return int(
                cur.execute("DELETE FROM events WHERE id <= %s", (int(last) - keep,)).rowcount
            )

        return max((via or self.connection).run(prune, write=False), 0)

    # history

    def flush_history(self) -> None:
        """Nothing to write: a finished job's history row is written with its end."""

    def prune_history(self, older_than_s: float) -> tuple[int, int]:
        if not older_than_s >= 0:
            raise InvalidInputError(f"older_than_s must be >= 0, got {older_than_s!r}")
        cutoff = time.time() - older_than_s
        prunable = (
            "SELECT id FROM jobs AS j WHERE j.finished_at < %s"
            f" AND j.status IN {FINISHED_SQL}"
            " AND NOT EXISTS (SELECT 1 FROM jobs AS c WHERE c.parent_id = j.id)"
            " AND NOT EXISTS (SELECT 1 FROM jobs AS d WHERE d.depends_on = j.id)"
        )

        def prune(cur: Cursor) -> tuple[int, int]:
            history = cur.execute(
                "DELETE FROM job_history WHERE finished_at < %s", (cutoff,)
            ).rowcount
            jobs = 0
            while True:
                cur.execute(f"DELETE FROM job_checkpoints WHERE job_id IN ({prunable})", (cutoff,))
                removed = cur.execute(
                    f"DELETE FROM jobs WHERE id IN ({prunable})", (cutoff,)
                ).rowcount
                if removed == 0:
                    cur.execute(
                        "DELETE FROM tasks WHERE finished_at < %s AND NOT EXISTS"
                        " (SELECT 1 FROM jobs WHERE jobs.task_id = tasks.id)",
                        (cutoff,),
                    )
                    return history, jobs
                jobs += removed

        pruned = self._write(prune)
        self.prune_events()
        return pruned

    # maintenance (see phasekit/maintenance)

    def create_schedule_once(
        self,
        name: str,
        state: Any,
        conflict_key: str,
        every_s: float,
        *,
        first_at: float | None = None,
        priority: int = 0,
        scope: str | None = None,
    ) -> tuple[str, bool]:
        """Queue an interval schedule unless one with ``conflict_key`` is
        unfinished (see JobStore.create_schedule_once): ``(job id, created)``."""
        check_every(every_s)
        blob, now = encode(state), time.time()
        first = now if first_at is None else first_at

        def create(cur: Cursor) -> tuple[str, bool]:
            _sql.lock_key(cur, _sql.KEY_LOCKS, conflict_key)
            row = cur.execute(
                "SELECT id FROM jobs WHERE conflict_key = %s AND name = %s"
                " AND run_every_s IS NOT NULL AND status IN ('queued', 'running', 'paused')"
                " ORDER BY created_at, id LIMIT 1",
                (b(conflict_key), name),
            ).fetchone()
            if row is not None:
                return str(row[0]), False
            job_id = new_id()
            cur.execute(
                "INSERT INTO jobs (id, name, state, status, priority, run_every_s, next_run_at,"
                " schedule_id, created_at, updated_at, conflict_key, scope)"
                " VALUES (%s, %s, %s, 'queued', %s, %s, %s, %s, %s, %s, %s, %s)",
                (
                    job_id,
                    name,
                    blob,
                    priority,
                    every_s,
                    first,
                    job_id,
                    now,
                    now,
                    b(conflict_key),
                    scope,
                ),
            )
            return job_id, True

        return self._write(create)

    def analyze_if_stale(self, *, hot: bool = False, via: Connection | None = None) -> list[str]:
        """``ANALYZE`` the job tables whose statistics are out of date (over
        a tenth of their rows, and at least STALE_STATS_ROWS, changed since;
        with ``hot``, the hot partition whatever the count): the tables
        analyzed. A queue swings from empty to a million jobs in seconds,
        faster than autovacuum looks (once a minute), and without statistics
        the planner scans the queue where a claim should take an index; so
        every worker analyzes the hot partition when it opens (the server's
        counts lag by a second: jobs queued just before are not in them yet)
        and the stale tables at each heartbeat. ANALYZE blocks no reader or
        writer. ``via``: the connection to use, else the store's."""
        conn = via or self.connection
        rows = conn.run(
            lambda cur: cur.execute(
                "SELECT relname FROM pg_stat_user_tables WHERE relid IN"
                " ('jobs_active'::regclass, 'jobs_done'::regclass)"
                " AND (n_mod_since_analyze > GREATEST(%s, (n_live_tup + n_dead_tup) / 10)"
                " OR (%s AND relid = 'jobs_active'::regclass))",
                (STALE_STATS_ROWS, hot),
            ).fetchall(),
            write=False,
        )
        stale = [str(r[0]) for r in rows]
        for table in stale:

            def analyze(cur: Cursor, table: str = table) -> None:
                cur.execute(f"ANALYZE {table}")

            conn.run(analyze, write=False)
        return stale


if TYPE_CHECKING:

    def _is_a_job_backend(store: PostgresJobStore) -> JobBackend:
        """mypy checks here that PostgresJobStore implements the whole protocol."""
        return store
