"""jobs.db: the job records, their checkpoints and their history (SQLite, WAL).

Every write is one short ``BEGIN IMMEDIATE`` transaction, the connection waits
for a busy database instead of failing, and a checkpoint row is written in
the same transaction that drops the older ones, so a crash at any moment
leaves the previous checkpoint intact (SQLite's atomic commit).
"""

from __future__ import annotations

import enum
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from ._codec import decode, encode
from ._progress import JobProgress

T = TypeVar("T")

#: Seconds a connection waits for another writer before giving up.
BUSY_TIMEOUT_S = 30.0
#: Checkpoints kept per job: the newest and the one before it.
CHECKPOINTS_KEPT = 2


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

#: Migrations by the version they produce. Version 1 is the first layout;
#: version 2 added dependencies and interval schedules. Never edit a shipped
#: entry: add a new one.
MIGRATIONS: dict[int, str] = {1: _SCHEMA_V1, 2: _V2}
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
        with self._lock:
            self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.execute("PRAGMA synchronous = NORMAL")
            self._conn.execute("PRAGMA foreign_keys = ON")
            self._conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            _migrate(self._conn)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> JobStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One short write transaction, taken up front (no lock upgrade deadlocks)."""
        with self._lock:
            _retry_busy(lambda: self._conn.execute("BEGIN IMMEDIATE"))
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _read(self, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
        with self._lock:
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
        """Insert a queued job; returns its id."""
        job_id = uuid.uuid4().hex
        now = time.time()
        with self._write() as db:
            db.execute(
                "INSERT INTO jobs (id, name, state, status, priority, parent_id, depends_on,"
                " run_every_s, next_run_at, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    job_id,
                    name,
                    encode(state),
                    JobStatus.QUEUED.value,
                    priority,
                    parent_id,
                    depends_on,
                    run_every_s,
                    next_run_at,
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

    def list_jobs(self, status: JobStatus | None = None) -> list[JobRecord]:
        """Jobs in dispatch order: higher priority first, then oldest first."""
        order = "ORDER BY priority DESC, created_at, id"
        if status is None:
            rows = self._read(f"SELECT {_COLUMNS} FROM jobs {order}")
        else:
            rows = self._read(
                f"SELECT {_COLUMNS} FROM jobs WHERE status = ? {order}", (status.value,)
            )
        return [_record(r) for r in rows]

    def queued(self) -> list[tuple[str, str, str | None]]:
        """``(id, name, depends_on)`` of queued jobs in dispatch order, without
        their input blobs: what the scheduler needs on every pass."""
        rows = self._read(
            "SELECT id, name, depends_on FROM jobs WHERE status = ?"
            " ORDER BY priority DESC, created_at, id",
            (JobStatus.QUEUED.value,),
        )
        return [(r[0], r[1], r[2]) for r in rows]

    def set_status(self, job_id: str, status: JobStatus, *, error: str | None = None) -> None:
        now = time.time()
        with self._write() as db:
            cur = db.execute(
                "UPDATE jobs SET status = ?, error = ?, updated_at = ?,"
                " started_at = CASE WHEN ? = 'running' AND started_at IS NULL THEN ?"
                " ELSE started_at END,"
                " finished_at = CASE WHEN ? THEN ? ELSE finished_at END WHERE id = ?",
                (status.value, error, now, status.value, now, status.finished, now, job_id),
            )
            if cur.rowcount == 0:
                raise KeyError(f"no job with id {job_id!r}")

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
    ) -> None:
        """Record how a run ended (paused and cancelled runs too), in one write."""
        now = time.time()
        with self._write() as db:
            cur = db.execute(
                "UPDATE jobs SET status = ?, error = ?, output = ?, warnings = ?, errors = ?,"
                " metrics = ?, updated_at = ?,"
                " finished_at = CASE WHEN ? THEN ? ELSE finished_at END WHERE id = ?",
                (
                    status.value,
                    error,
                    encode(output),
                    encode(warnings or []),
                    encode(errors or []),
                    encode(metrics or {}),
                    now,
                    status.finished,
                    now,
                    job_id,
                ),
            )
            if cur.rowcount == 0:
                raise KeyError(f"no job with id {job_id!r}")

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
        with self._write() as db:
            db.execute(
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


_COLUMNS = "id, name, status, priority, parent_id, depends_on, created_at, updated_at, error, state"


def _record(row: tuple[Any, ...]) -> JobRecord:
    return JobRecord(
        row[0], row[1], JobStatus(row[2]), row[3], row[4], row[5], row[6], row[7], row[8], row[9]
    )


def _retry_busy(fn: Callable[[], T], attempts: int = 5) -> T:
    """Retry when SQLite still says busy after its own timeout (rare, but it
    happens when a WAL checkpoint holds the lock)."""
    for attempt in range(attempts):
        try:
            return fn()
        except sqlite3.OperationalError as exc:
            retryable = "locked" in str(exc) or "busy" in str(exc)
            if not retryable or attempt == attempts - 1:
                raise
            time.sleep(0.05 * 2**attempt)
    raise AssertionError("unreachable")
