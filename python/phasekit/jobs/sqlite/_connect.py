"""jobs.db through Python's ``sqlite3``: opening (private, migrated), short
write transactions, retries while SQLite says busy, and the one place where
``sqlite3``'s errors become phasekit's (:func:`translate`), so no
``sqlite3.*`` exception reaches a caller.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import TypeVar

from ..._private import create_private_file, make_private_dir
from ...errors import (
    ClosedError,
    JobStoreError,
    JobStoreFullError,
    JobStoreUnavailable,
    PhasekitError,
)
from ._schema import MIGRATIONS, SCHEMA_VERSION

T = TypeVar("T")

#: Seconds a connection waits for another writer before giving up.
BUSY_TIMEOUT_S = 30.0


def connect(path: Path) -> sqlite3.Connection:
    """Open (creating it, readable by its owner only) and migrate jobs.db.

    ``isolation_level=None``: the store issues BEGIN/COMMIT itself. One
    connection is shared by a process's threads, serialised by the store's
    lock (a SQLite connection is not safe to use from two threads at once).
    """
    try:
        make_private_dir(path.parent)
        create_private_file(path)
    except OSError as exc:
        raise JobStoreError(f"cannot create {path}: {exc.strerror or exc}") from exc
    # Several processes may open one jobs.db at once. Switching a new file to
    # WAL upgrades a read lock to a write lock, and SQLite answers a busy
    # database there at once rather than wait (waiting could deadlock): such
    # an open is tried again, with a growing pause, for up to BUSY_TIMEOUT_S.
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    pause = 0.005
    while True:
        try:
            conn = sqlite3.connect(
                path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise translate(exc, path) from exc
        try:
            _configure(conn, path)
        except sqlite3.OperationalError as exc:
            conn.close()
            if is_busy(exc) and time.monotonic() + pause < deadline:
                time.sleep(pause)
                pause = min(pause * 2, 0.2)
                continue
            raise translate(exc, path) from exc
        except BaseException as exc:
            conn.close()
            if isinstance(exc, sqlite3.Error):
                raise translate(exc, path) from exc
            raise
        return conn


def _configure(conn: sqlite3.Connection, path: Path) -> None:
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    # Copy the WAL back (with its fsyncs) every ~40 MB rather than every
    # 4 MB: a busy queue writes a few pages per job, and the default made
    # every hundred-odd jobs wait for a checkpoint.
    conn.execute("PRAGMA wal_autocheckpoint = 10000")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
    migrate(conn, path)


def migrate(conn: sqlite3.Connection, path: Path) -> None:
    """Bring the file to :data:`SCHEMA_VERSION`, one step per transaction.

    Each step re-reads the version inside its write lock, so two processes
    opening an old file at once upgrade it once; a crash mid-step leaves the
    previous version intact. A file already current costs one read.
    """
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise _newer(path, version)
    if version == SCHEMA_VERSION:
        return
    for target in range(version + 1, SCHEMA_VERSION + 1):
        retry_busy(lambda: conn.execute("BEGIN IMMEDIATE"))
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise _newer(path, version)
            if version < target:
                for statement in statements(MIGRATIONS[target]):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {target}")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")


def statements(script: str) -> list[str]:
    """The statements of a migration, one by one (inside the caller's
    transaction, which executescript would commit). Split at each ``;`` that
    ends a complete statement: a trigger's body holds ``;`` too."""
    out: list[str] = []
    pending = ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n;"):
                out.append(pending.strip())
            pending = ""
    if pending.strip(" \n;"):
        out.append(pending.strip())  # an unfinished last one: SQLite says what is wrong
    return out


def _newer(path: Path, version: int) -> JobStoreError:
    return JobStoreError(
        f"{path} has schema version {version}, newer than this phasekit's "
        f"({SCHEMA_VERSION}): upgrade phasekit to use it (the library's entries "
        "stay readable meanwhile)"
    )


def translate(exc: sqlite3.Error, path: Path) -> PhasekitError:
    """The phasekit error for what ``sqlite3`` raised on jobs.db at ``path``."""
    name = getattr(exc, "sqlite_errorname", None) or ""
    text = str(exc)
    if isinstance(exc, sqlite3.ProgrammingError) and "closed" in text:
        return ClosedError(f"{path} is closed")
    if name.startswith("SQLITE_FULL") or "disk is full" in text:
        return JobStoreFullError(
            f"{path} cannot grow: its disk is full. Nothing is lost: free some space, "
            "then resume the interrupted jobs (phasekit resume)"
        )
    if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")) or "malformed" in text:
        return JobStoreError(
            f"{path} is damaged ({text}). The library's entries are not affected: "
            "`phasekit jobs repair` moves the damaged jobs.db aside and starts a "
            "fresh one, and says which jobs were lost"
        )
    if _busy_name(name, text):
        return JobStoreUnavailable(
            f"{path} stayed locked by another process for more than "
            f"{BUSY_TIMEOUT_S:g} s ({text}); try again"
        )
    if name.startswith(("SQLITE_READONLY", "SQLITE_PERM", "SQLITE_CANTOPEN", "SQLITE_AUTH")):
        return JobStoreError(
            f"cannot use {path}: {text} (check the permissions of the file and its folder)"
        )
    return JobStoreError(f"{path}: {text}")


def _busy_name(name: str, text: str) -> bool:
    if name:
        return name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED"))
    return "locked" in text or "busy" in text


def is_busy(exc: sqlite3.OperationalError) -> bool:
    return _busy_name(getattr(exc, "sqlite_errorname", None) or "", str(exc))


def retry_busy(fn: Callable[[], T], attempts: int = 5) -> T:
    """Retry when SQLite still says busy after its own timeout (rare, but it
    happens when a WAL checkpoint holds the lock)."""
    for attempt in range(attempts):
        try:
            return fn()
        except sqlite3.OperationalError as exc:
            if not is_busy(exc) or attempt == attempts - 1:
                raise
            time.sleep(0.05 * 2**attempt)
    raise AssertionError("unreachable")


class Transaction:
    """What ``JobStore._write`` returns: the store's lock and a ``BEGIN
    IMMEDIATE`` on enter (the write lock up front: no lock-upgrade deadlock),
    ``COMMIT`` (or ``ROLLBACK`` on an exception) on exit; a ``sqlite3`` error
    inside leaves as a phasekit error. A class rather than a generator-based
    context manager: two writes per job go through it."""

    __slots__ = ("_conn", "_lock", "_path")

    def __init__(self, lock: threading.RLock, conn: sqlite3.Connection, path: Path) -> None:
        self._lock = lock
        self._conn = conn
        self._path = path

    def __enter__(self) -> sqlite3.Connection:
        self._lock.acquire()
        try:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                if not is_busy(exc):
                    raise
                retry_busy(lambda: self._conn.execute("BEGIN IMMEDIATE"))
        except sqlite3.Error as exc:
            self._lock.release()
            raise translate(exc, self._path) from exc
        except BaseException:
            self._lock.release()
            raise
        return self._conn

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if exc_type is None:
                try:
                    self._conn.execute("COMMIT")
                except sqlite3.Error as commit_exc:
                    self._rollback()
                    raise translate(commit_exc, self._path) from commit_exc
                return
            self._rollback()
            if isinstance(exc, sqlite3.Error):
                raise translate(exc, self._path) from exc
        finally:
            self._lock.release()

    def _rollback(self) -> None:
        # SQLite may have rolled back already (a full disk does): then there
        # is no transaction left to end, which is fine.
        if self._conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("ROLLBACK")
