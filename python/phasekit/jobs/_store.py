"""jobs.db: the job records, their checkpoints and their history (SQLite, WAL).

Every write is one short transaction that takes the write lock up front
(``BEGIN IMMEDIATE``, or a single statement on its own), the connection waits
for a busy database instead of failing, and a checkpoint row is written in
the same transaction that drops the older ones, so a crash at any moment
leaves the previous checkpoint intact (SQLite's atomic commit).
"""

from __future__ import annotations

import enum
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from . import _children, _claims, _history, _schedule
from ._codec import decode, encode, new_id
from ._progress import JobProgress

T = TypeVar("T")

#: Seconds a connection waits for another writer before giving up.
BUSY_TIMEOUT_S = 30.0
#: Checkpoints kept per job: the newest and the one before it.
CHECKPOINTS_KEPT = 2
#: A busy worker's finished jobs get their history rows written together,
#: this many at a time (see _history); a job finished alone gets its row at once.
HISTORY_BATCH = 64


class JobStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    COMPLETED_WITH_ERRORS = "completed_with_errors"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in _FINISHED


_FINISHED = frozenset(
    {JobStatus.COMPLETED, JobStatus.COMPLETED_WITH_ERRORS, JobStatus.FAILED, JobStatus.CANCELLED}
)


class _Any:
    """The type of :data:`ANY`."""


#: "Whatever the owner" (``None`` means: claimed by no manager).
ANY = _Any()


@dataclass(frozen=True, slots=True)
class JobRecord:
    """One row of ``jobs``; blobs are decoded lazily by the caller."""

    id: str
    name: str
    status: JobStatus
    priority: int
    parent_id: str | None
    depends_on: str | None
    created_at: float
    updated_at: float
    error: str | None
    state_blob: bytes
    run_every_s: float | None = None
    next_run_at: float | None = None
    #: Every occurrence of an interval schedule shares the first one's id.
    schedule_id: str | None = None
    #: Identifies a child among its parent's children (see JobContext.spawn_child).
    child_key: str | None = None

    def input(self) -> Any:
        """The job's persisted fields (raises CorruptStateError if unreadable)."""
        return decode(self.state_blob)


# --- schema and migrations -------------------------------------------------------

_SCHEMA_V1 = """
CREATE TABLE jobs (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    state BLOB NOT NULL,
    status TEXT NOT NULL,
    priority INTEGER NOT NULL DEFAULT 0,
    progress BLOB,
    parent_id TEXT REFERENCES jobs(id),
    created_at REAL NOT NULL,
    started_at REAL,
    updated_at REAL NOT NULL,
    finished_at REAL,
    error TEXT,
    warnings BLOB,
    errors BLOB,
    metrics BLOB,
    output BLOB
);
CREATE INDEX jobs_status ON jobs(status, priority DESC, created_at);
CREATE TABLE job_checkpoints (
    job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    version INTEGER NOT NULL,
    data BLOB NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (job_id, seq)
);
CREATE TABLE job_history (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at REAL NOT NULL,
    finished_at REAL NOT NULL,
    error TEXT,
    output BLOB,
    metrics BLOB
);
CREATE INDEX job_history_finished ON job_history(finished_at);
"""

_V2 = """
ALTER TABLE jobs ADD COLUMN depends_on TEXT REFERENCES jobs(id);
ALTER TABLE jobs ADD COLUMN run_every_s REAL;
ALTER TABLE jobs ADD COLUMN next_run_at REAL;
CREATE INDEX jobs_depends_on ON jobs(depends_on);
"""

_V3 = """
ALTER TABLE jobs ADD COLUMN child_key TEXT;
ALTER TABLE jobs ADD COLUMN schedule_id TEXT;
CREATE UNIQUE INDEX jobs_child_key ON jobs(parent_id, child_key) WHERE child_key IS NOT NULL;
CREATE INDEX jobs_parent ON jobs(parent_id);
CREATE INDEX jobs_schedule ON jobs(schedule_id) WHERE schedule_id IS NOT NULL;
CREATE INDEX jobs_finished ON jobs(finished_at) WHERE finished_at IS NOT NULL;
ALTER TABLE job_history ADD COLUMN parent_id TEXT;
ALTER TABLE job_history ADD COLUMN schedule_id TEXT;
ALTER TABLE job_history ADD COLUMN started_at REAL;
ALTER TABLE job_history ADD COLUMN warning_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE job_history ADD COLUMN error_count INTEGER NOT NULL DEFAULT 0;
"""

_V4 = """
CREATE INDEX jobs_next_run ON jobs(next_run_at) WHERE next_run_at IS NOT NULL;
DROP INDEX jobs_status;
CREATE INDEX jobs_status ON jobs(status, priority DESC, created_at, id);
"""

_V5 = """
ALTER TABLE jobs ADD COLUMN request TEXT;
ALTER TABLE jobs ADD COLUMN owner TEXT;
"""

_V6 = """
DROP INDEX jobs_depends_on;
CREATE INDEX jobs_depends_on ON jobs(depends_on) WHERE depends_on IS NOT NULL;
DROP INDEX jobs_parent;
CREATE INDEX jobs_parent ON jobs(parent_id) WHERE parent_id IS NOT NULL;
"""

_V7 = """
ALTER TABLE jobs ADD COLUMN warning_count INTEGER;
ALTER TABLE jobs ADD COLUMN error_count INTEGER;
ALTER TABLE jobs ADD COLUMN history_pending INTEGER;
DROP INDEX jobs_finished;
CREATE INDEX jobs_finished ON jobs(history_pending, finished_at) WHERE finished_at IS NOT NULL;
"""

#: Migrations by the version they produce. Version 1 is the first layout;
#: version 2 added dependencies and interval schedules; version 3 added child
#: keys, schedule ids and a fuller history; version 4 an index for the next
#: scheduled start and the full dispatch order in the status index; version 5
#: a stop request (pause or cancel a job running in another process) and the
#: owner (the manager) of a running job; version 6 makes the dependency and
#: parent indices partial (most jobs have neither: a dispatch writes less);
#: version 7 lets a finished job's history row be written later, in a batch
#: (the mark, and the warning and error counts the row needs; see _history),
#: and puts the mark first in the index of finished jobs: one index finds
#: both the marked jobs and, once none is, the jobs old enough to prune.
#: Never edit a shipped entry: add a new one.
MIGRATIONS: dict[int, str] = {1: _SCHEMA_V1, 2: _V2, 3: _V3, 4: _V4, 5: _V5, 6: _V6, 7: _V7}
SCHEMA_VERSION = max(MIGRATIONS)


def _migrate(conn: sqlite3.Connection) -> None:
    """Bring the file to :data:`SCHEMA_VERSION`, one step per transaction.

    Each step re-reads the version inside its write lock, so two processes
    opening an old file at once upgrade it once; a crash mid-step leaves the
    previous version intact.
    """
    for target in range(1, SCHEMA_VERSION + 1):
        _retry_busy(lambda: conn.execute("BEGIN IMMEDIATE"))
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise sqlite3.DatabaseError(
                    f"jobs.db has schema version {version}, newer than this phasekit "
                    f"({SCHEMA_VERSION}); upgrade phasekit to open it"
                )
            if version < target:
                for statement in MIGRATIONS[target].split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {target}")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")


# --- the store --------------------------------------------------------------------


class JobStore:
    """Access to one jobs.db. Thread-safe; several processes may share the file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: we issue BEGIN/COMMIT ourselves. One connection
        # shared by this process's threads, serialised by a lock (SQLite
        # connections are not safe to use from two threads at once).
        self._conn = sqlite3.connect(
            self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
        )
        self._lock = threading.RLock()
        #: Jobs this store finished whose history rows are not written yet.
        self._history_pending = 0
        with self._lock:
            self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.execute("PRAGMA synchronous = NORMAL")
            # Copy the WAL back (with its fsyncs) every ~40 MB rather than
            # every 4 MB: a busy queue writes a few pages per job, and the
            # default made every hundred-odd jobs wait for a checkpoint.
            self._conn.execute("PRAGMA wal_autocheckpoint = 10000")
            self._conn.execute("PRAGMA foreign_keys = ON")
            self._conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            _migrate(self._conn)

    def close(self) -> None:
        with self._lock:
            try:
                if self._history_pending:
                    self.flush_history()
            finally:
                self._conn.close()

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

    def _write(self) -> _Transaction:
        """One short write transaction, taken up front (no lock upgrade
        deadlocks): ``with self._write() as db:``."""
        return _Transaction(self._lock, self._conn)

    def _write_one(self, sql: str, args: tuple[Any, ...]) -> sqlite3.Cursor:
        """A write of one statement, as a transaction of its own (SQLite's
        autocommit): the statement takes the write lock when it starts, as
        ``BEGIN IMMEDIATE`` does, and commits when it ends, in one call to
        SQLite instead of three (every dispatch is one)."""
        with self._lock:
            try:
                return self._conn.execute(sql, args)
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc):
                    raise
            return _retry_busy(lambda: self._conn.execute(sql, args))

    def _read(self, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
        with self._lock:
            try:
                return self._conn.execute(sql, args).fetchall()
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc):
                    raise
            return _retry_busy(lambda: self._conn.execute(sql, args).fetchall())

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
    ) -> str:
        """Insert a queued job; returns its id.

        With ``run_every_s`` the job is the first occurrence of an interval
        schedule (it runs at ``next_run_at``, default now); ``next_run_at``
        alone delays a one-off job. Raises ValueError if ``run_every_s`` is
        not a finite number > 0.
        """
        _schedule.check_every(run_every_s)
        job_id = new_id()
        now = time.time()
        if run_every_s is not None and next_run_at is None:
            next_run_at = now
        self._write_one(
            "INSERT INTO jobs (id, name, state, status, priority, parent_id, depends_on,"
            " run_every_s, next_run_at, schedule_id, created_at, updated_at)"
            " VALUES (?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                job_id,
                name,
                encode(state),
                priority,
                parent_id,
                depends_on,
                run_every_s,
                next_run_at,
                job_id if run_every_s is not None else None,
                now,
                now,
            ),
        )
        return job_id

    def get_job(self, job_id: str) -> JobRecord:
        rows = self._read(f"SELECT {_COLUMNS} FROM jobs WHERE id = ?", (job_id,))
        if not rows:
            raise KeyError(f"no job with id {job_id!r}")
        return _record(rows[0])

    def list_jobs(
        self,
        status: JobStatus | None = None,
        *,
        name: str | None = None,
        parent_id: str | None = None,
        limit: int | None = None,
    ) -> list[JobRecord]:
        """Jobs in dispatch order (higher priority first, then oldest first),
        optionally only those with ``status``, job type ``name`` or parent."""
        where, args = [], []
        for column, value in (("status", status), ("name", name), ("parent_id", parent_id)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value.value if isinstance(value, JobStatus) else value)
        sql = f"SELECT {_COLUMNS} FROM jobs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY priority DESC, created_at, id"
        if limit is not None:
            if limit < 0:
                raise ValueError(f"limit must be >= 0, got {limit}")
            sql += f" LIMIT {int(limit)}"
        return [_record(r) for r in self._read(sql, tuple(args))]

    def ready(
        self, *, limit: int, offset: int = 0, now: float | None = None
    ) -> list[tuple[str, str, int]]:
        """``(id, name, priority)`` of up to ``limit`` queued jobs that can
        start now (due, dependency completed), in dispatch order: higher
        priority first, then oldest first."""
        when = time.time() if now is None else now
        rows = self._read(_claims.READY_PAGE, (when, limit, offset))
        return [(r[0], r[1], r[2]) for r in rows]

    def claim(self, job_ids: list[str], owner: str | None = None) -> list[str]:
        """Mark queued jobs running (by ``owner``), in one transaction; returns
        the ids claimed (a job paused, cancelled or claimed elsewhere meanwhile
        is not)."""
        if not job_ids:
            return []
        with self._write() as db:
            return [row[0] for row in _claims.claim(db, job_ids, time.time(), owner)]

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
            raise ValueError(f"a stop request is 'pause' or 'cancel', not {what!r}")
        cur = self._write_one(
            "UPDATE jobs SET request = ? WHERE id = ? AND status = 'running'"
            " AND (request IS NULL OR request = 'pause')",
            (what, job_id),
        )
        return cur.rowcount == 1

    def stop_request(self, job_id: str) -> str | None:
        """The pending stop request of a running job: "pause", "cancel" or None."""
        rows = self._read("SELECT request FROM jobs WHERE id = ?", (job_id,))
        return None if not rows else rows[0][0]

    def status(self, job_id: str) -> JobStatus:
        """A job's status (KeyError if there is no such job)."""
        rows = self._read("SELECT status FROM jobs WHERE id = ?", (job_id,))
        if not rows:
            raise KeyError(f"no job with id {job_id!r}")
        return JobStatus(rows[0][0])

    def status_and_progress(
        self, job_id: str, data_type: type[Any] | None = None
    ) -> tuple[JobStatus, JobProgress | None]:
        """A job's status and latest progress, in one read."""
        rows = self._read("SELECT status, progress FROM jobs WHERE id = ?", (job_id,))
        if not rows:
            raise KeyError(f"no job with id {job_id!r}")
        status, blob = rows[0]
        progress = None if blob is None else JobProgress.from_dict(decode(blob), data_type)
        return JobStatus(status), progress

    def load_for_run(
        self, job_id: str, row: tuple[Any, ...] | None = None
    ) -> tuple[JobRecord, tuple[int, Any] | None]:
        """A job and its newest checkpoint as ``(seq, data)`` (None if it has
        none), in one read: what starting a run needs. ``row``: that read's
        row if the caller has it already (:meth:`finish_and_claim` returns
        it). Raises :class:`CorruptStateError` if the checkpoint cannot be
        decoded."""
        if row is None:
            rows = self._read(f"SELECT {_RUN_START} FROM jobs WHERE id = ?", (job_id,))
            if not rows:
                raise KeyError(f"no job with id {job_id!r}")
            row = rows[0]
        *record, blob, seq = row
        checkpoint = None if blob is None else (int(seq), decode(blob))
        return _record(tuple(record)), checkpoint

    def set_status(self, job_id: str, status: JobStatus, *, error: str | None = None) -> None:
        """Change a job's status; a finished status has the effects of :meth:`finish`."""
        if not self.move(job_id, status, error=error):
            raise KeyError(f"no job with id {job_id!r}")

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
        if only_from is not None:
            where += f" AND status IN ({', '.join('?' * len(only_from))})"
            args += [s.value for s in only_from]
        if not isinstance(owner, _Any):
            where += " AND owner IS ?"
            args.append(owner)
        with self._write() as db:
            before, scheduled, pending = _state_of(db, job_id)
            if pending:
                _history.flush_job(db, job_id)  # before its row changes
            cur = db.execute(
                "UPDATE jobs SET status = ?, error = ?, updated_at = ?, request = NULL,"
                " started_at = CASE WHEN ? = 'running' AND started_at IS NULL THEN ?"
                " ELSE started_at END,"
                f" finished_at = CASE WHEN ? THEN ? ELSE finished_at END WHERE {where}",
                (status.value, error, now, status.value, now, status.finished, now, *args),
            )
            if cur.rowcount == 0:
                return False
            if status.finished:
                _history.record(db, job_id, 0, 0)
            _ended(db, job_id, before is not None and before.finished, scheduled, status, now)
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
    ) -> None:
        """Record how a run ended (paused and cancelled runs too), in one write;
        ``progress``, if not None, replaces the stored progress.

        In the same transaction, a finished job's summary goes to job_history
        (with those other finished jobs' that wait for theirs); when a job
        first finishes, a scheduled one that completed or failed gets its next
        occurrence queued, and a cancelled one has its queued and paused
        descendants cancelled too.
        """
        with self._write() as db:
            _finish(db, job_id, status, output, error, warnings, errors, metrics, progress)
            if self._history_pending:
                _history.flush(db)
                self._history_pending = 0

    def finish_and_claim(
        self, job_id: str, status: JobStatus, end: dict[str, Any], claim: list[str], owner: str
    ) -> list[tuple[Any, ...]]:
        """:meth:`finish` (``end`` holds its keyword arguments) and
        :meth:`claim` of the next jobs, in one transaction: a worker going on
        to the next job writes once, and reads nothing more to start it:
        returns, for each job claimed, its row for :meth:`load_for_run`. The
        finished job's history row is written with the next
        :data:`HISTORY_BATCH` ones' (listings see it meanwhile; see _history)."""
        with self._write() as db:
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
                defer_history=True,
            )
            if status.finished:
                self._history_pending += 1
                if self._history_pending >= HISTORY_BATCH:
                    _history.flush(db)
                    self._history_pending = 0
            if not claim:
                return []
            return _claims.claim(db, claim, time.time(), owner, returning=_RUN_START)

    def outcome(self, job_id: str) -> dict[str, Any]:
        """Output, warnings, non-critical errors and metrics of the last run."""
        rows = self._read(
            "SELECT output, warnings, errors, metrics FROM jobs WHERE id = ?", (job_id,)
        )
        if not rows:
            raise KeyError(f"no job with id {job_id!r}")
        names = ("output", "warnings", "errors", "metrics")
        return {
            n: (decode(v) if v is not None else None) for n, v in zip(names, rows[0], strict=True)
        }

    def set_progress(self, job_id: str, progress: Any) -> None:
        """Store the latest progress (callers throttle how often)."""
        self._write_one(
            "UPDATE jobs SET progress = ?, updated_at = ? WHERE id = ?",
            (encode(progress), time.time(), job_id),
        )

    def progress(self, job_id: str, data_type: type[Any] | None = None) -> JobProgress | None:
        """The latest stored progress (None before the first report);
        ``data_type`` rebuilds the job's structured ``data`` dataclass."""
        rows = self._read("SELECT progress FROM jobs WHERE id = ?", (job_id,))
        if not rows or rows[0][0] is None:
            return None
        return JobProgress.from_dict(decode(rows[0][0]), data_type)

    # checkpoints

    def save_checkpoint(self, job_id: str, data: Any) -> int:
        """Store a checkpoint atomically; returns its sequence number.

        The new row, the pruning of old ones and the job's timestamp commit
        together: after a crash, the newest complete checkpoint is there.
        """
        blob = encode(data)
        with self._write() as db:
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
        self, parent_id: str, key: str, name: str, state: Any, *, priority: int | None = None
    ) -> tuple[str, bool]:
        """Queue a child of ``parent_id`` under ``key``, unless the parent
        already has a child with that key; returns ``(child_id, created)``.

        ``priority`` None takes the parent's. Raises KeyError if the parent
        does not exist, ValueError if the key is taken by a job of another name.
        """
        blob = encode(state)
        with self._write() as db:
            return _children.create(db, parent_id, key, name, blob, priority, time.time())

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
        self, *, limit: int | None = 100, since: float | None = None, name: str | None = None
    ) -> list[_history.HistoryRecord]:
        """Finished jobs, newest first: at most ``limit`` (None: all), those
        finished at or after ``since`` (unix time), of job type ``name``."""
        if limit is not None and limit < 0:
            raise ValueError(f"limit must be >= 0, got {limit}")

        def read() -> list[Any]:
            # One read transaction: a flush in between cannot hide a job.
            self._conn.execute("BEGIN")
            try:
                pending = self._conn.execute(
                    *_history.pending_query(since=since, name=name)
                ).fetchall()
                more = None if limit is None else limit + len(pending)
                sql, args = _history.query(limit=more, since=since, name=name)
                rows = self._conn.execute(sql, args).fetchall()
            finally:
                self._conn.execute("COMMIT")
            return _history.merge(rows, pending, limit)

        with self._lock:
            rows = _retry_busy(read)
        return [_history.HistoryRecord(r[0], r[1], JobStatus(r[2]), *r[3:]) for r in rows]

    def prune_history(self, older_than_s: float) -> tuple[int, int]:
        """Remove what finished more than ``older_than_s`` seconds ago: history
        rows, and finished jobs with their checkpoints (a job still pointed at
        by a live child or dependent stays). Returns ``(history_rows, jobs)``."""
        if not older_than_s >= 0:
            raise ValueError(f"older_than_s must be >= 0, got {older_than_s!r}")
        with self._write() as db:
            pruned = _history.prune(db, time.time() - older_than_s)
            self._history_pending = 0
            return pruned


_COLUMNS = (
    "id, name, status, priority, parent_id, depends_on, created_at, updated_at, error, state,"
    " run_every_s, next_run_at, schedule_id, child_key"
)


#: What starting a run needs (see load_for_run): the job's record, then its
#: newest checkpoint's data and sequence number (NULL if it has none).
_RUN_START = (
    f"{_COLUMNS}, (SELECT data FROM job_checkpoints c WHERE c.job_id = jobs.id"
    " ORDER BY seq DESC LIMIT 1), (SELECT MAX(seq) FROM job_checkpoints c"
    " WHERE c.job_id = jobs.id)"
)


def _record(row: tuple[Any, ...]) -> JobRecord:
    return JobRecord(row[0], row[1], JobStatus(row[2]), *row[3:])


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
    defer_history: bool = False,
) -> None:
    """The write of :meth:`JobStore.finish`, inside an open transaction; with
    ``defer_history``, the job's history row is left to a later flush."""
    now = time.time()
    warning_count, error_count = len(warnings or ()), len(errors or ())
    mark = 1 if defer_history and status.finished else None
    values = (
        status.value,
        error,
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
        was_finished, scheduled = False, bool(rows[0][0])
    else:
        before, scheduled, pending = _state_of(db, job_id)
        if before is None:
            raise KeyError(f"no job with id {job_id!r}")
        if pending:
            _history.flush_job(db, job_id)  # before its row changes
        db.execute(_FINISH, values)
        was_finished = before.finished
    if status.finished and mark is None:
        _history.record(db, job_id, warning_count, error_count)
    _ended(db, job_id, was_finished, scheduled, status, now)


#: The update of a job's row by :func:`_finish` (its arguments: ``values`` there).
_FINISH = (
    "UPDATE jobs SET status = ?, error = ?, output = ?, warnings = ?, errors = ?,"
    " metrics = ?, updated_at = ?, request = NULL,"
    " progress = COALESCE(?, progress),"
    " finished_at = CASE WHEN ? THEN ? ELSE finished_at END,"
    " warning_count = ?, error_count = ?, history_pending = ? WHERE id = ?"
)

_FINISH_UNFINISHED = (
    f"{_FINISH} AND status NOT IN {_history.FINISHED_SQL} AND history_pending IS NULL"
    " RETURNING run_every_s IS NOT NULL"
)

#: Blobs of the usual empty ends, packed once.
_NONE, _EMPTY_LIST, _EMPTY_DICT = encode(None), encode([]), encode({})


def _state_of(db: sqlite3.Connection, job_id: str) -> tuple[JobStatus | None, bool, bool]:
    """A job's status before a change (None if there is no such job),
    whether it repeats on a schedule, and whether its history row is still
    to be written."""
    row = db.execute(
        "SELECT status, run_every_s IS NOT NULL, history_pending IS NOT NULL"
        " FROM jobs WHERE id = ?",
        (job_id,),
    ).fetchone()
    if row is None:
        return None, False, False
    return JobStatus(row[0]), bool(row[1]), bool(row[2])


def _ended(
    db: sqlite3.Connection,
    job_id: str,
    was_finished: bool,
    scheduled: bool,
    status: JobStatus,
    now: float,
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


class _Transaction:
    """What :meth:`JobStore._write` returns: the store's lock and a ``BEGIN
    IMMEDIATE`` on enter, ``COMMIT`` (or ``ROLLBACK`` on an exception) on
    exit. A class rather than a generator-based context manager: two writes
    per job go through it."""

    __slots__ = ("_conn", "_lock")

    def __init__(self, lock: threading.RLock, conn: sqlite3.Connection) -> None:
        self._lock = lock
        self._conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self._lock.acquire()
        try:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc):
                    raise
                _retry_busy(lambda: self._conn.execute("BEGIN IMMEDIATE"))
        except BaseException:
            self._lock.release()
            raise
        return self._conn

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        try:
            self._conn.execute("ROLLBACK" if exc_type is not None else "COMMIT")
        finally:
            self._lock.release()


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    return "locked" in str(exc) or "busy" in str(exc)


def _retry_busy(fn: Callable[[], T], attempts: int = 5) -> T:
    """Retry when SQLite still says busy after its own timeout (rare, but it
    happens when a WAL checkpoint holds the lock)."""
    for attempt in range(attempts):
        try:
            return fn()
        except sqlite3.OperationalError as exc:
            if not _is_busy(exc) or attempt == attempts - 1:
                raise
            time.sleep(0.05 * 2**attempt)
    raise AssertionError("unreachable")
