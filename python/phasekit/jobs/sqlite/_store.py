"""jobs.db: the job records, their checkpoints and their history (SQLite, WAL).

Every write is one short transaction that takes the write lock up front
(``BEGIN IMMEDIATE``, or a single statement on its own), the connection waits
for a busy database instead of failing, and a checkpoint row is written in
the same transaction that drops the older ones, so a crash at any moment
leaves the previous checkpoint intact (SQLite's atomic commit).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...errors import (
    CorruptStateError,
    InvalidInputError,
    JobNotFound,
    LeaseLostError,
    TaskNotFound,
)
from . import _children, _claims, _history, _schedule, _tasks

if TYPE_CHECKING:
    from .._backend import JobBackend
    from .._events import JobEvent

from .._codec import decode, encode, new_id, text_in, text_out
from .._model import (
    ANY,
    DEFAULT_TENANT,
    HistoryRecord,
    JobRecord,
    JobStatus,
    RunStart,
    TaskRecord,
    WorkerRecord,
    _Any,
)
from .._progress import JobProgress
from .._schedule import check_every
from ..sql._listing import HistoryCursor, JobCursor, id_chunks, list_jobs_query, statuses_query
from ._connect import Transaction, connect, is_busy, retry_busy, translate
from ._owners import Ownership, live_owners

#: Events kept in the log (see JobStore.events): the newest; older ones are
#: pruned when history is, and by each worker's heartbeat thread now and then.
EVENTS_KEPT = 100_000
#: Checkpoints kept per job: the newest and the one before it.
CHECKPOINTS_KEPT = 2
#: A busy worker's finished jobs get their history rows written together,
#: this many at a time (see _history); a job finished alone gets its row at once.
HISTORY_BATCH = 64


# --- the store --------------------------------------------------------------------


class JobStore:
    """Access to one jobs.db. Thread-safe; several processes may share the file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._conn = connect(self.path)
        self._lock = threading.RLock()
        #: Jobs this store finished whose history rows are not written yet.
        self._history_pending = 0
        self.closed = False

    @property
    def location(self) -> str:
        """The path of jobs.db."""
        return str(self.path)

    def register_owner(self, *, stale_after_s: float | None = None, info: Any = None) -> Ownership:
        """A new owner lease: a lock file in ``<jobs.db>.owners/`` that the
        kernel releases when the process dies, and a row in ``workers`` that
        its heartbeat keeps fresh (see _owners). ``info``: what the worker
        says of itself (listed by :meth:`workers`)."""
        return Ownership(self, stale_after_s, info)

    def live_owners(self) -> list[str]:
        """The owner ids whose process holds its lock and beats now."""
        return live_owners(self)

    # workers: their heartbeats (see _owners)

    def add_worker(
        self, worker_id: str, host: str, pid: int, now: float, stale_after_s: float, info: bytes
    ) -> None:
        """Record a worker starting now."""
        with self._write() as db:
            db.execute(
                "INSERT INTO workers (id, host, pid, started_at, heartbeat_at, stale_after_s,"
                " info) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (worker_id, host, pid, now, now, stale_after_s, info),
            )

    def heartbeat(self, worker_id: str, now: float) -> bool:
        """A worker's heartbeat; False if it has no row (taken for dead)."""
        cur = self._write_one("UPDATE workers SET heartbeat_at = ? WHERE id = ?", (now, worker_id))
        return cur.rowcount == 1

    def remove_worker(self, worker_id: str) -> None:
        """A worker stopped (or was found dead)."""
        self._write_one("DELETE FROM workers WHERE id = ?", (worker_id,))

    def heartbeats(self) -> dict[str, tuple[float, float]]:
        """``{worker id: (last heartbeat, its staleness limit)}``."""
        rows = self._read("SELECT id, heartbeat_at, stale_after_s FROM workers")
        return {r[0]: (float(r[1]), float(r[2])) for r in rows}

    def workers(self) -> list[WorkerRecord]:
        """The workers registered now, oldest first, with the jobs each runs
        (a worker whose heartbeat is stale is listed until another runner
        finds it dead)."""
        running: dict[str, list[str]] = {}
        for job_id, owner in self._read("SELECT id, owner FROM jobs WHERE status = 'running'"):
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

    def close(self) -> None:
        """Close jobs.db (idempotent), writing the history rows still pending."""
        with self._lock:
            if self.closed:
                return
            self.closed = True
            try:
                if self._history_pending:
                    self.flush_history()
            finally:
                self._conn.close()

    def quick_check(self) -> list[str]:
        """SQLite's quick integrity check of jobs.db: ``["ok"]`` when sound."""
        return [str(row[0]) for row in self._read("PRAGMA quick_check")]

    def flush_history(self) -> None:
        """Write the history rows of the finished jobs that do not have
        theirs yet (those of every process sharing the file)."""
        with self._write() as db:
            _history.flush(db)
            self._history_pending = 0

    def __enter__(self) -> JobStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _write(self) -> Transaction:
        """One short write transaction, taken up front (no lock upgrade
        deadlocks): ``with self._write() as db:``."""
        return Transaction(self._lock, self._conn, self.path)

    def _write_one(self, sql: str, args: tuple[Any, ...]) -> sqlite3.Cursor:
        """A write of one statement, as a transaction of its own (SQLite's
        autocommit): the statement takes the write lock when it starts, as
        ``BEGIN IMMEDIATE`` does, and commits when it ends, in one call to
        SQLite instead of three (every dispatch is one)."""
        with self._lock:
            try:
                try:
                    return self._conn.execute(sql, args)
                except sqlite3.OperationalError as exc:
                    if not is_busy(exc):
                        raise
                return retry_busy(lambda: self._conn.execute(sql, args))
            except sqlite3.Error as exc:
                raise translate(exc, self.path) from exc

    def _read(self, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
        with self._lock:
            try:
                try:
                    return self._conn.execute(sql, args).fetchall()
                except sqlite3.OperationalError as exc:
                    if not is_busy(exc):
                        raise
                return retry_busy(lambda: self._conn.execute(sql, args).fetchall())
            except sqlite3.Error as exc:
                raise translate(exc, self.path) from exc

    # jobs

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
        """Insert a queued job of ``tenant`` acting on ``scope``; returns its id.

        With ``run_every_s`` the job is the first occurrence of an interval
        schedule (it runs at ``next_run_at``, default now); ``next_run_at``
        alone delays a one-off job. Raises InvalidInputError if
        ``run_every_s`` is not a finite number > 0. A job with a
        ``conflict_key`` never runs while another job with that key runs.
        """
        return self._insert(
            name,
            state,
            priority,
            parent_id,
            depends_on,
            run_every_s,
            next_run_at,
            conflict_key,
            tenant,
            scope,
        )[0]

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
        """Queue a job with ``conflict_key`` unless an identical one (same
        tenant, name and input) is already queued, running or paused: then
        return that one.
        Returns ``(job_id, created)``; one transaction, so two processes
        asking at once create one job."""
        return self._insert(
            name, state, priority, None, None, None, None, conflict_key, tenant, scope, join=True
        )

    def _insert(
        self,
        name: str,
        state: Any,
        priority: int,
        parent_id: str | None,
        depends_on: str | None,
        run_every_s: float | None,
        next_run_at: float | None,
        conflict_key: str | None,
        tenant: str,
        scope: str | None,
        *,
        join: bool = False,
    ) -> tuple[str, bool]:
        check_every(run_every_s)
        job_id = new_id()
        now = time.time()
        if run_every_s is not None and next_run_at is None:
            next_run_at = now
        blob = encode(state)
        args = (
            job_id,
            name,
            blob,
            priority,
            parent_id,
            depends_on,
            run_every_s,
            next_run_at,
            job_id if run_every_s is not None else None,
            now,
            now,
            conflict_key,
            tenant,
            scope,
        )
        if not join:
            self._write_one(_INSERT, args)
            return job_id, True
        with self._write() as db:
            row = db.execute(
                "SELECT id FROM jobs WHERE conflict_key = ?"
                " AND status IN ('queued', 'running', 'paused')"
                " AND name = ? AND state = ? AND next_run_at IS NULL AND depends_on IS NULL"
                " AND tenant = ? AND task_id IS NULL ORDER BY created_at LIMIT 1",
                (conflict_key, name, blob, tenant),
            ).fetchone()
            if row is not None:
                return str(row[0]), False
            db.execute(_INSERT, args)
        return job_id, True

    def get_job(self, job_id: str) -> JobRecord:
        rows = self._read(f"SELECT {_COLUMNS} FROM jobs WHERE id = ?", (job_id,))
        if not rows:
            raise JobNotFound(f"no job with id {job_id!r}")
        return _record(rows[0])

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
        """Jobs in dispatch order (higher priority first, then oldest first),
        optionally only those with ``status``, job type ``name``, parent,
        ``tenant``, ``scope`` or task, only the unfinished ones, only those
        after the cursor ``after``."""
        sql, args = list_jobs_query(
            _COLUMNS,
            "?",
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
        return [_record(r) for r in self._read(sql, tuple(args))]

    def ready(
        self,
        *,
        limit: int,
        offset: int = 0,
        now: float | None = None,
        exclude: list[str] | None = None,
        tenants: list[str] | None = None,
    ) -> list[tuple[str, str, int, str]]:
        """``(id, name, priority, tenant)`` of up to ``limit`` queued jobs
        that can start now (due, dependency completed, no job with the same
        conflict key running, the earlier steps of their task completed), in
        dispatch order: higher priority first, then oldest first; none of
        the job types named in ``exclude``; only ``tenants``' if given."""
        when = time.time() if now is None else now
        sql = _claims.ready_page(len(exclude or ()), len(tenants or ()))
        rows = self._read(sql, (when, *(exclude or ()), *(tenants or ()), limit, offset))
        return [(r[0], r[1], r[2], r[3]) for r in rows]

    def claim(self, job_ids: list[str], owner: str | None = None) -> list[str]:
        """Mark queued jobs running (by ``owner``), in one transaction; returns
        the ids claimed (a job paused, cancelled or claimed elsewhere meanwhile
        is not)."""
        if not job_ids:
            return []
        with self._write() as db:
            return [row[0] for row in _claims.claim(db, job_ids, time.time(), owner)]

    def claim_runs(self, job_ids: list[str], owner: str | None = None) -> list[RunStart]:
        """:meth:`claim`, returning what each job claimed starts from (read
        in the claim's transaction, so its lease epoch is this claim's)."""
        if not job_ids:
            return []
        with self._write() as db:
            rows = _claims.claim(db, job_ids, time.time(), owner, returning=_RUN_START)
        return [_run_start(row) for row in rows]

    def running_owners(self) -> list[tuple[str, str | None]]:
        """``(id, owner)`` of the jobs marked running."""
        rows = self._read("SELECT id, owner FROM jobs WHERE status = 'running'")
        return [(r[0], r[1]) for r in rows]

    def fail_blocked(self) -> list[str]:
        """Fail the queued jobs whose dependency failed, was cancelled or is
        gone; returns their ids."""
        failed = []
        for job_id, depends_on, status in self._read(_claims.BLOCKED):
            reason = "not found" if status is None else status
            self.finish(job_id, JobStatus.FAILED, error=f"dependency {depends_on} {reason}")
            failed.append(job_id)
        return failed

    def next_due(self, after: float) -> float | None:
        """The earliest ``next_run_at`` later than ``after`` of the queued jobs
        (None if there is none): when the next one becomes due."""
        rows = self._read(_claims.NEXT_DUE, (after,))
        return None if rows[0][0] is None else float(rows[0][0])

    def request_stop(self, job_id: str, what: str) -> bool:
        """Ask the process running ``job_id`` to ``"pause"`` or ``"cancel"`` it
        (it looks at its next safe point). False if the job is not running."""
        if what not in ("pause", "cancel"):
            raise InvalidInputError(f"a stop request is 'pause' or 'cancel', not {what!r}")
        cur = self._write_one(
            "UPDATE jobs SET request = ? WHERE id = ? AND status = 'running'"
            " AND (request IS NULL OR request = 'pause')",
            (what, job_id),
        )
        return cur.rowcount == 1

    def stop_request(self, job_id: str, *, lease: int | None = None) -> str | None:
        """The pending stop request of a running job: "pause", "cancel" or
        None. Given the ``lease`` of a run, raises LeaseLostError once the
        job is no longer that run's (how a run that never writes learns it)."""
        rows = self._read("SELECT request, lease, status FROM jobs WHERE id = ?", (job_id,))
        if lease is not None:
            _check_lease(job_id, lease, rows[0][1:] if rows else None)
        return None if not rows else rows[0][0]

    def status(self, job_id: str) -> JobStatus:
        """A job's status (KeyError if there is no such job)."""
        rows = self._read("SELECT status FROM jobs WHERE id = ?", (job_id,))
        if not rows:
            raise JobNotFound(f"no job with id {job_id!r}")
        return JobStatus(rows[0][0])

    def status_and_progress(
        self, job_id: str, data_type: type[Any] | None = None
    ) -> tuple[JobStatus, JobProgress | None]:
        """A job's status and latest progress, in one read."""
        rows = self._read("SELECT status, progress FROM jobs WHERE id = ?", (job_id,))
        if not rows:
            raise JobNotFound(f"no job with id {job_id!r}")
        status, blob = rows[0]
        progress = None if blob is None else JobProgress.from_dict(decode(blob), data_type)
        return JobStatus(status), progress

    def statuses_and_progress(
        self, job_ids: list[str], data_type: type[Any] | None = None
    ) -> dict[str, tuple[JobStatus, JobProgress | None]]:
        """The status and latest progress of each of ``job_ids`` that exists,
        one read per :data:`~phasekit.jobs.sql._listing.IDS_PER_READ` ids."""
        found: dict[str, tuple[JobStatus, JobProgress | None]] = {}
        for chunk in id_chunks(job_ids):
            for job_id, status, blob in self._read(statuses_query("?", len(chunk)), tuple(chunk)):
                progress = None if blob is None else JobProgress.from_dict(decode(blob), data_type)
                found[job_id] = (JobStatus(status), progress)
        return found

    def load_for_run(self, job_id: str) -> RunStart:
        """A job, its newest checkpoint and the percent it had reached, in one
        read: what starting a run needs (see :class:`RunStart`)."""
        rows = self._read(f"SELECT {_RUN_START} FROM jobs WHERE id = ?", (job_id,))
        if not rows:
            raise JobNotFound(f"no job with id {job_id!r}")
        return _run_start(rows[0])

    def set_status(self, job_id: str, status: JobStatus, *, error: str | None = None) -> None:
        """Change a job's status; a finished status has the effects of :meth:`finish`."""
        if not self.move(job_id, status, error=error):
            raise JobNotFound(f"no job with id {job_id!r}")

    def move(
        self,
        job_id: str,
        status: JobStatus,
        *,
        only_from: tuple[JobStatus, ...] | None = None,
        owner: str | _Any | None = ANY,
        error: str | None = None,
    ) -> bool:
        """Change a job's status if it is still in one of ``only_from`` (and,
        if given, still claimed by ``owner``), in one transaction: a
        compare-and-set, so another process's change in between is never
        overwritten. Returns whether the job moved."""
        now = time.time()
        where = "id = ?"
        args: list[object] = [job_id]
        # Into running from another status: a new claim, with a new lease;
        # out of running, the job is nobody's (a manager closing later must
        # not take a job paused or queued since for one of its own).
        if only_from is not None:
            where += f" AND status IN ({', '.join('?' * len(only_from))})"
            args += [s.value for s in only_from]
        if not isinstance(owner, _Any):
            where += " AND owner IS ?"
            args.append(owner)
        with self._write() as db:
            before, scheduled, pending, task_id = _state_of(db, job_id)
            if pending:
                _history.flush_job(db, job_id)  # before its row changes
            cur = db.execute(
                "UPDATE jobs SET status = ?, error = ?, traceback = NULL, updated_at = ?,"
                " request = NULL, lease = lease + (? = 'running' AND status != 'running'),"
                " owner = CASE WHEN ? = 'running' THEN owner ELSE NULL END,"
                " started_at = CASE WHEN ? = 'running' AND started_at IS NULL THEN ?"
                " ELSE started_at END,"
                f" finished_at = CASE WHEN ? THEN ? ELSE finished_at END WHERE {where}"
                # Into running from elsewhere: as a claim, never while a job
                # with its conflict key runs or an earlier step of its task
                # is unfinished.
                f" AND (? != 'running' OR status = 'running' OR ({_INTO_RUNNING}))",
                (
                    status.value,
                    text_in(error),
                    now,
                    status.value,
                    status.value,
                    status.value,
                    now,
                    status.finished,
                    now,
                    *args,
                    status.value,
                ),
            )
            if cur.rowcount == 0:
                return False
            if status.finished:
                _history.record(db, job_id, 0, 0)
            _ended(
                db, job_id, before is not None and before.finished, scheduled, status, now, task_id
            )
            return True

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
        """Record how a run ended (paused and cancelled runs too), in one write;
        ``progress``, if not None, replaces the stored progress; ``traceback``
        is kept beside the ``error`` message for debugging.

        In the same transaction, a finished job's summary goes to job_history
        (with those other finished jobs' that wait for theirs); when a job
        first finishes, a scheduled one that completed or failed gets its next
        occurrence queued, and a cancelled one has its queued and paused
        descendants cancelled too. Given the run's ``lease``, the end is
        refused (LeaseLostError) once the job is no longer that run's.
        """
        with self._write() as db:
            if lease is not None:
                _fence(db, job_id, lease)
            _finish(
                db,
                job_id,
                status,
                output,
                error,
                warnings,
                errors,
                metrics,
                progress,
                traceback=traceback,
            )
            if self._history_pending:
                _history.flush(db)
                self._history_pending = 0

    def finish_and_claim(
        self, job_id: str, status: JobStatus, end: dict[str, Any], claim: list[str], owner: str
    ) -> list[RunStart]:
        """:meth:`finish` (``end`` holds its keyword arguments) and
        :meth:`claim` of the next jobs, in one transaction: a worker going on
        to the next job writes once, and reads nothing more to start it:
        returns what each job claimed starts from (:meth:`load_for_run`). The
        finished job's history row is written with the next
        :data:`HISTORY_BATCH` ones' (listings see it meanwhile; see _history).
        ``end["lease"]``, if there, fences the end as in :meth:`finish`: a
        refused end claims nothing either."""
        with self._write() as db:
            if end.get("lease") is not None:
                _fence(db, job_id, end["lease"])
            self._end_run(db, job_id, status, end)
            if not claim:
                return []
            rows = _claims.claim(db, claim, time.time(), owner, returning=_RUN_START)
        return [_run_start(row) for row in rows]

    def finish_many_and_claim(
        self,
        ends: list[tuple[str, JobStatus, dict[str, Any]]],
        claim: list[str],
        owner: str,
    ) -> tuple[list[RunStart], list[str]]:
        """The ends of several runs (each ``(job_id, status, end)`` as in
        :meth:`finish_and_claim`) and the claim of the next jobs, in one
        transaction: a worker running many short jobs writes once for
        several. An end whose lease was lost is left out (that run's job is
        another run's now); the others are recorded. ``(what each claimed
        job starts from, the ids of the ends left out)``."""
        lost: list[str] = []
        with self._write() as db:
            for job_id, status, end in ends:
                lease = end.get("lease")
                if lease is not None:
                    row = db.execute(
                        "SELECT lease, status FROM jobs WHERE id = ?", (job_id,)
                    ).fetchone()
                    try:
                        _check_lease(job_id, lease, row)
                    except LeaseLostError:
                        lost.append(job_id)
                        continue
                self._end_run(db, job_id, status, end)
            if not claim:
                return [], lost
            rows = _claims.claim(db, claim, time.time(), owner, returning=_RUN_START)
        return [_run_start(row) for row in rows], lost

    def _end_run(
        self, db: sqlite3.Connection, job_id: str, status: JobStatus, end: dict[str, Any]
    ) -> None:
        """Inside a write: a run's end (``end``: finish's keyword arguments),
        its history row left for the next batch (see _history)."""
        _finish(
            db,
            job_id,
            status,
            end.get("output"),
            end.get("error"),
            end.get("warnings"),
            end.get("errors"),
            end.get("metrics"),
            end.get("progress"),
            traceback=end.get("traceback"),
            defer_history=True,
        )
        if status.finished:
            self._history_pending += 1
            if self._history_pending >= HISTORY_BATCH:
                _history.flush(db)
                self._history_pending = 0

    def outcome(self, job_id: str) -> dict[str, Any]:
        """Output, warnings, non-critical errors and metrics of the last run."""
        rows = self._read(
            "SELECT output, warnings, errors, metrics FROM jobs WHERE id = ?", (job_id,)
        )
        if not rows:
            raise JobNotFound(f"no job with id {job_id!r}")
        names = ("output", "warnings", "errors", "metrics")
        return {
            n: (decode(v) if v is not None else None) for n, v in zip(names, rows[0], strict=True)
        }

    def traceback(self, job_id: str) -> str | None:
        """The Python traceback of the job's last failure, if any (for debugging;
        :attr:`JobRecord.error` is the message)."""
        rows = self._read("SELECT traceback FROM jobs WHERE id = ?", (job_id,))
        if not rows:
            raise JobNotFound(f"no job with id {job_id!r}")
        return text_out(rows[0][0])

    def set_progress(self, job_id: str, progress: Any, *, lease: int | None = None) -> None:
        """Store the latest progress (callers throttle how often). Given the
        run's ``lease``: LeaseLostError once the job is no longer that run's."""
        if lease is None:
            self._write_one(
                "UPDATE jobs SET progress = ?, updated_at = ? WHERE id = ?",
                (encode(progress), time.time(), job_id),
            )
            return
        cur = self._write_one(
            "UPDATE jobs SET progress = ?, updated_at = ? WHERE id = ? AND lease = ?"
            " AND status = 'running'",
            (encode(progress), time.time(), job_id, lease),
        )
        if cur.rowcount != 1:
            rows = self._read("SELECT lease, status FROM jobs WHERE id = ?", (job_id,))
            _check_lease(job_id, lease, rows[0] if rows else None)

    def progress(self, job_id: str, data_type: type[Any] | None = None) -> JobProgress | None:
        """The latest stored progress (None before the first report);
        ``data_type`` rebuilds the job's structured ``data`` dataclass."""
        rows = self._read("SELECT progress FROM jobs WHERE id = ?", (job_id,))
        if not rows or rows[0][0] is None:
            return None
        return JobProgress.from_dict(decode(rows[0][0]), data_type)

    # checkpoints

    def save_checkpoint(self, job_id: str, data: Any, *, lease: int | None = None) -> int:
        """Store a checkpoint atomically; returns its sequence number.

        The new row, the pruning of old ones and the job's timestamp commit
        together: after a crash, the newest complete checkpoint is there.
        Given the run's ``lease``, refused (LeaseLostError) once the job is
        no longer that run's: a stalled run never replaces the checkpoint of
        the run that took its job over.
        """
        blob = encode(data)
        with self._write() as db:
            if lease is not None:
                _fence(db, job_id, lease)
            row = db.execute(
                "SELECT COALESCE(MAX(seq), 0) FROM job_checkpoints WHERE job_id = ?", (job_id,)
            ).fetchone()
            seq = int(row[0]) + 1
            db.execute(
                "INSERT INTO job_checkpoints (job_id, seq, version, data, created_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (job_id, seq, 1, blob, time.time()),
            )
            db.execute(
                "DELETE FROM job_checkpoints WHERE job_id = ? AND seq <= ?",
                (job_id, seq - CHECKPOINTS_KEPT),
            )
            db.execute("UPDATE jobs SET updated_at = ? WHERE id = ?", (time.time(), job_id))
        return seq

    def load_checkpoint(self, job_id: str) -> tuple[int, Any] | None:
        """The newest checkpoint as ``(seq, data)``, or None if there is none.

        Raises :class:`CorruptStateError` if it cannot be decoded.
        """
        rows = self._read(
            "SELECT seq, data FROM job_checkpoints WHERE job_id = ? ORDER BY seq DESC LIMIT 1",
            (job_id,),
        )
        if not rows:
            return None
        return int(rows[0][0]), decode(rows[0][1])

    # children

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
        """Queue a child of ``parent_id`` under ``key``, unless the parent
        already has a child with that key; returns ``(child_id, created)``.
        ``lease``: the parent's run's, fenced as in :meth:`save_checkpoint`.

        ``priority`` None takes the parent's. Raises JobNotFound if the
        parent does not exist, InvalidInputError if the key is taken by a job
        of another name. A child's ``conflict_key`` does not keep it waiting
        for its own parent.
        """
        blob = encode(state)
        with self._write() as db:
            if lease is not None:
                _fence(db, parent_id, lease)
            return _children.create(
                db, parent_id, key, name, blob, priority, time.time(), conflict_key, scope
            )

    def children(self, parent_id: str) -> dict[str, JobStatus]:
        """The status of each direct child of ``parent_id``, oldest first."""
        rows = self._read(
            "SELECT id, status FROM jobs WHERE parent_id = ? ORDER BY created_at, id",
            (parent_id,),
        )
        return {r[0]: JobStatus(r[1]) for r in rows}

    def descendants(self, job_id: str) -> list[str]:
        """Ids of the unfinished children, grandchildren, ... of ``job_id``."""
        return [r[0] for r in self._read(_children.UNFINISHED_DESCENDANTS, (job_id,))]

    # schedules and history

    def occurrences(self, schedule_id: str) -> list[JobRecord]:
        """Every stored occurrence of an interval schedule, oldest first."""
        rows = self._read(
            f"SELECT {_COLUMNS} FROM jobs WHERE schedule_id = ? ORDER BY created_at, id",
            (schedule_id,),
        )
        return [_record(r) for r in rows]

    def history(
        self,
        *,
        limit: int | None = 100,
        since: float | None = None,
        name: str | None = None,
        tenant: str | None = None,
        before: HistoryCursor | None = None,
    ) -> list[HistoryRecord]:
        """Finished jobs, newest first: at most ``limit`` (None: all), those
        finished at or after ``since`` (unix time), of job type ``name``, of
        ``tenant``, after the cursor ``before``."""
        if limit is not None and limit < 0:
            raise InvalidInputError(f"limit must be >= 0, got {limit}")

        def read() -> list[Any]:
            # One read transaction: a flush in between cannot hide a job.
            self._conn.execute("BEGIN")
            try:
                pending = self._conn.execute(
                    *_history.pending_query(since=since, name=name, tenant=tenant)
                ).fetchall()
                more = None if limit is None else limit + len(pending)
                sql, args = _history.query(
                    limit=more, since=since, name=name, tenant=tenant, before=before
                )
                rows = self._conn.execute(sql, args).fetchall()
            finally:
                self._conn.execute("COMMIT")
            return _history.merge(rows, pending, limit, before)

        with self._lock:
            try:
                rows = retry_busy(read)
            except sqlite3.Error as exc:
                raise translate(exc, self.path) from exc
        return [_history_record(r) for r in rows]

    # tasks (see the schema's version 12 and _tasks)

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
        """Store a task and every job of its steps (each ``(name, state,
        conflict_key, scope)``) in one transaction: ``(task id, job ids by
        step)``. A step's jobs become ready once the steps before completed."""
        if not steps or any(not jobs for jobs in steps):
            raise InvalidInputError("a task needs at least one step, and one job per step")
        encoded = [
            [(job, encode(state), key, job_scope) for job, state, key, job_scope in jobs]
            for jobs in steps
        ]
        with self._write() as db:
            return _tasks.create(
                db,
                tenant=tenant,
                name=name,
                scope=scope,
                definition=encode(definition),
                steps=encoded,
                priority=priority,
                now=time.time(),
            )

    def task(self, task_id: str) -> TaskRecord:
        """A task and its jobs (``TaskNotFound`` if there is none)."""

        def read() -> tuple[Any, list[Any]]:
            self._conn.execute("BEGIN")  # the row and its jobs as of one moment
            try:
                row = self._conn.execute(
                    f"SELECT {_tasks.TASK_COLUMNS} FROM tasks WHERE id = ?", (task_id,)
                ).fetchone()
                jobs = _tasks.jobs_of(self._conn, task_id) if row is not None else []
            finally:
                self._conn.execute("COMMIT")
            return row, jobs

        with self._lock:
            try:
                row, jobs = retry_busy(read)
            except sqlite3.Error as exc:
                raise translate(exc, self.path) from exc
        if row is None:
            raise TaskNotFound(f"no task with id {task_id!r}")
        return _tasks.task_record(row, jobs)

    def tasks(self, *, tenant: str | None = None, limit: int | None = 100) -> list[TaskRecord]:
        """Tasks, newest first (only ``tenant``'s if given)."""
        sql = f"SELECT id FROM tasks{' WHERE tenant = ?' if tenant is not None else ''}"
        sql += " ORDER BY created_at DESC, id DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        ids = [r[0] for r in self._read(sql, () if tenant is None else (tenant,))]
        found = []
        for task_id in ids:
            try:
                found.append(self.task(task_id))
            except TaskNotFound:
                continue  # pruned meanwhile
        return found

    # events (written by the schema's triggers: see version 11)

    def events(
        self, *, after: int = 0, limit: int = 1000, tenant: str | None = None
    ) -> list[JobEvent]:
        """The logged changes numbered above ``after``, oldest first (only
        ``tenant``'s jobs' if given)."""
        only, args = (
            ("", (after, limit)) if tenant is None else (" AND tenant = ?", (after, tenant, limit))
        )
        rows = self._read(
            "SELECT id, kind, job_id, name, status, progress, at, parent_id, owner, tenant, scope,"
            f" task_id FROM events WHERE id > ?{only} ORDER BY id LIMIT ?",
            args,
        )
        return [_event(r) for r in rows]

    def last_event_id(self) -> int:
        """The number of the newest logged change (0: none yet)."""
        return int(self._read("SELECT COALESCE(MAX(id), 0) FROM events")[0][0])

    def prune_events(self, keep: int = EVENTS_KEPT) -> int:
        """Drop all but the newest ``keep`` events; how many were dropped."""
        cur = self._write_one(
            "DELETE FROM events WHERE id <= (SELECT MAX(id) FROM events) - ?", (keep,)
        )
        return max(cur.rowcount, 0)

    def prune_history(self, older_than_s: float) -> tuple[int, int]:
        """Remove what finished more than ``older_than_s`` seconds ago: history
        rows, and finished jobs with their checkpoints (a job still pointed at
        by a live child or dependent stays). Returns ``(history_rows, jobs)``."""
        if not older_than_s >= 0:
            raise InvalidInputError(f"older_than_s must be >= 0, got {older_than_s!r}")
        with self._write() as db:
            pruned = _history.prune(db, time.time() - older_than_s)
            self._history_pending = 0
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
        """Queue an interval schedule of job type ``name`` (of ``scope``) (every ``every_s``
        seconds, first at ``first_at``, default now) unless one with
        ``conflict_key`` is unfinished (an occurrence queued, running or
        paused, whatever its input and interval): then return that one.
        ``(job_id, created)``; one transaction, so however many processes
        ask at once, one schedule exists afterwards."""
        check_every(every_s)
        blob = encode(state)
        now = time.time()
        first = now if first_at is None else first_at
        with self._write() as db:
            return _schedule.create_once(
                db, name, blob, conflict_key, every_s, first, priority, now, scope
            )

    def optimize(self, *, free_fraction: float, max_bytes: int) -> dict[str, Any]:
        """``PRAGMA optimize`` on jobs.db, and a VACUUM when at least
        ``free_fraction`` of its pages are free and it is at most
        ``max_bytes`` (see phasekit/_sqlite_tune.py): what was found and done."""
        from ..._sqlite_tune import tune

        with self._lock:
            try:
                return tune(self._conn, free_fraction=free_fraction, max_bytes=max_bytes)
            except sqlite3.Error as exc:
                raise translate(exc, self.path) from exc


#: What a job moved into running must satisfy, as a claim does (see _claims).
_INTO_RUNNING = f"{_claims.KEY_FREE} AND {_tasks.STEP_OPEN}"

_COLUMNS = (
    "id, name, status, priority, parent_id, depends_on, created_at, updated_at, error, state,"
    " run_every_s, next_run_at, schedule_id, child_key, conflict_key, tenant, scope, task_id,"
    " task_step"
)

_INSERT = (
    "INSERT INTO jobs (id, name, state, status, priority, parent_id, depends_on,"
    " run_every_s, next_run_at, schedule_id, created_at, updated_at, conflict_key, tenant,"
    " scope) VALUES (?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


#: What starting a run needs (see load_for_run): the job's record, then its
#: newest checkpoint's data and sequence number (NULL if it has none), then
#: its stored progress (a resumed run's percent never goes below it).
_RUN_START = (
    f"{_COLUMNS}, (SELECT data FROM job_checkpoints c WHERE c.job_id = jobs.id"
    " ORDER BY seq DESC LIMIT 1), (SELECT MAX(seq) FROM job_checkpoints c"
    " WHERE c.job_id = jobs.id), progress, lease"
)


def _run_start(row: tuple[Any, ...]) -> RunStart:
    """A RunStart from a row of _RUN_START (nothing decoded that could fail:
    the checkpoint is decoded by the run that uses it)."""
    *record, blob, seq, progress, lease = row
    percent = None
    if progress is not None:
        try:
            percent = JobProgress.from_dict(decode(progress)).percent
        except CorruptStateError:
            percent = None  # unreadable progress only loses the floor
    return RunStart(
        _record(tuple(record)), None if seq is None else int(seq), blob, percent, int(lease)
    )


def _event(row: tuple[Any, ...]) -> JobEvent:
    """A JobEvent from a row of the events table (an unreadable progress
    blob is left out rather than failing the reader)."""
    # Here, not at the top: the event module loads anyio, which the commands
    # that never follow events do not need at start-up.
    from .._events import JobEvent

    progress = None
    if row[5] is not None:
        try:
            progress = JobProgress.from_dict(decode(row[5]))
        except CorruptStateError:
            progress = None
    return JobEvent(
        int(row[0]),
        row[1],
        row[2],
        row[3],
        JobStatus(row[4]),
        progress,
        float(row[6]),
        parent_id=row[7],
        worker=row[8],
        tenant=row[9],
        scope=row[10],
        task_id=row[11],
    )


def _fence(db: sqlite3.Connection, job_id: str, lease: int) -> None:
    """Inside a write transaction: LeaseLostError unless ``job_id`` is still
    running under ``lease`` (the transaction is then rolled back)."""
    row = db.execute("SELECT lease, status FROM jobs WHERE id = ?", (job_id,)).fetchone()
    _check_lease(job_id, lease, row)


def _check_lease(job_id: str, lease: int, row: tuple[Any, ...] | None) -> None:
    """LeaseLostError unless ``row`` (the job's lease and status) is running
    under ``lease``."""
    if row is None:
        raise LeaseLostError(f"job {job_id} is gone: this run's writes are refused")
    current, status = int(row[0]), row[1]
    if current != lease or status != "running":
        raise LeaseLostError(
            f"job {job_id} is no longer this run's (its claim {lease}; now claim {current},"
            f" {status}): resumed elsewhere or stopped from outside; this run gives it up"
        )


def _record(row: tuple[Any, ...]) -> JobRecord:
    return JobRecord(
        row[0],
        row[1],
        JobStatus(row[2]),
        row[3],
        row[4],
        row[5],
        row[6],
        row[7],
        text_out(row[8]),
        *row[9:],
    )


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
        error=text_out(r[8]),
        warning_count=r[9],
        error_count=r[10],
        output_blob=r[11],
        metrics_blob=r[12],
        tenant=r[13],
        scope=r[14],
        task_id=r[15],
    )


def _finish(
    db: sqlite3.Connection,
    job_id: str,
    status: JobStatus,
    output: Any,
    error: str | None,
    warnings: list[str] | None,
    errors: list[dict[str, Any]] | None,
    metrics: dict[str, Any] | None,
    progress: Any,
    *,
    traceback: str | None = None,
    defer_history: bool = False,
) -> None:
    """The write of :meth:`JobStore.finish`, inside an open transaction; with
    ``defer_history``, the job's history row is left to a later flush."""
    now = time.time()
    warning_count, error_count = len(warnings or ()), len(errors or ())
    mark = 1 if defer_history and status.finished else None
    values = (
        status.value,
        text_in(error),
        text_in(traceback),
        _NONE if output is None else encode(output),
        encode(warnings) if warnings else _EMPTY_LIST,
        encode(errors) if errors else _EMPTY_LIST,
        encode(metrics) if metrics else _EMPTY_DICT,
        now,
        None if progress is None else encode(progress),
        status.finished,
        now,
        warning_count,
        error_count,
        mark,
        job_id,
    )
    # The usual case first, in one statement: a job that was not finished
    # and whose history row is written (RETURNING says whether it repeats).
    rows = db.execute(_FINISH_UNFINISHED, values).fetchall()
    if rows:
        was_finished, scheduled, task_id = False, bool(rows[0][0]), rows[0][1]
    else:
        before, scheduled, pending, task_id = _state_of(db, job_id)
        if before is None:
            raise JobNotFound(f"no job with id {job_id!r}")
        if pending:
            _history.flush_job(db, job_id)  # before its row changes
        db.execute(_FINISH, values)
        was_finished = before.finished
    if status.finished and mark is None:
        _history.record(db, job_id, warning_count, error_count)
    _ended(db, job_id, was_finished, scheduled, status, now, task_id)


#: The update of a job's row by :func:`_finish` (its arguments: ``values`` there).
_FINISH = (
    "UPDATE jobs SET status = ?, error = ?, traceback = ?, output = ?, warnings = ?, errors = ?,"
    " metrics = ?, updated_at = ?, request = NULL,"
    " progress = COALESCE(?, progress),"
    " finished_at = CASE WHEN ? THEN ? ELSE finished_at END,"
    " warning_count = ?, error_count = ?, history_pending = ? WHERE id = ?"
)

_FINISH_UNFINISHED = (
    f"{_FINISH} AND status NOT IN {_history.FINISHED_SQL} AND history_pending IS NULL"
    " RETURNING run_every_s IS NOT NULL, task_id"
)

#: Blobs of the usual empty ends, packed once.
_NONE, _EMPTY_LIST, _EMPTY_DICT = encode(None), encode([]), encode({})


def _state_of(
    db: sqlite3.Connection, job_id: str
) -> tuple[JobStatus | None, bool, bool, str | None]:
    """A job's status before a change (None if there is no such job),
    whether it repeats on a schedule, whether its history row is still to be
    written, and its task."""
    row = db.execute(
        "SELECT status, run_every_s IS NOT NULL, history_pending IS NOT NULL, task_id"
        " FROM jobs WHERE id = ?",
        (job_id,),
    ).fetchone()
    if row is None:
        return None, False, False, None
    return JobStatus(row[0]), bool(row[1]), bool(row[2]), row[3]


def _ended(
    db: sqlite3.Connection,
    job_id: str,
    was_finished: bool,
    scheduled: bool,
    status: JobStatus,
    now: float,
    task_id: str | None = None,
) -> None:
    """What finishing a job entails, inside the transaction that finishes it
    (its history row is written, or marked, by the caller)."""
    if not status.finished:
        return
    if was_finished:
        return  # finished again (a late cancel): the schedule and children were handled
    if status is JobStatus.CANCELLED:
        _children.cancel_waiting(db, job_id, now)
    elif scheduled:
        _schedule.schedule_next(db, job_id, now)
    if task_id is not None:
        _tasks.job_ended(db, task_id, job_id, status.value, now)


if TYPE_CHECKING:

    def _is_a_job_backend(store: JobStore) -> JobBackend:
        """mypy checks here that JobStore implements the whole protocol."""
        return store
