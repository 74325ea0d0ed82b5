"""The PostgreSQL job store's connection: opening (migrated), transactions
retried when PostgreSQL asks for it or the server went away, and the one
place where psycopg's errors become phasekit's (:func:`translate`), so no
``psycopg`` exception reaches a caller.

One connection per store, shared by a process's threads and serialised by a
lock (a psycopg connection runs one command at a time). Writes are explicit
transactions (``BEGIN`` ... ``COMMIT``) so that a failure is known to have
happened before the commit (then the transaction is rolled back and tried
again, on a new connection if the old one broke: a restarted server costs a
wait, not a job) or during it (then its outcome is unknown, and the store
says so rather than guess).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from ...errors import (
    ClosedError,
    JobStoreError,
    JobStoreFullError,
    JobStoreUnavailable,
    PhasekitError,
)
from ._schema import LOCK_NAMESPACE, MIGRATE_LOCK, MIGRATIONS, SCHEMA_VERSION, VERSION_TABLE

if TYPE_CHECKING:
    import psycopg

T = TypeVar("T")

#: How long a store tries to reach a server that went away before failing (s).
RECONNECT_S = 30.0
#: Transactions tried at most this many times when PostgreSQL aborts them
#: for a conflict (a serialization failure or a deadlock it broke).
CONFLICT_TRIES = 50

#: Connection settings unless the URL sets them: keepalives and a TCP user
#: timeout, so a link that was cut is noticed in seconds, not in the
#: kernel's minutes (a worker cut off must give its jobs up, and a store
#: blocked on a dead socket would hold its lock meanwhile).
DEFAULT_OPTIONS = {
    "connect_timeout": "10",
    "keepalives": "1",
    "keepalives_idle": "5",
    "keepalives_interval": "2",
    "keepalives_count": "3",
    "tcp_user_timeout": "10000",
    "application_name": "phasekit",
}

#: Settings of every session, sent in the connection's ``options`` (after
#: the URL's own, for the settings those do not name).
SESSION_SETTINGS = {
    # The server's side of the keepalives: a client whose link was cut holds
    # its session's locks (a row it was writing, its owner lock) until the
    # server notices, after the kernel's two hours by default; with these
    # the server ends such a session in about 15 s and the locks go with it.
    "tcp_keepalives_idle": "5",
    "tcp_keepalives_interval": "2",
    "tcp_keepalives_count": "3",
    "tcp_user_timeout": "10000",
    # A client stopped inside a transaction (SIGSTOP, swapped out) while its
    # link lives holds its row locks as long as it sleeps: a worker taking
    # its jobs over would wait on them. Our transactions never wait on
    # anything but the server, so one idle this long belongs to a stalled
    # client; the server ends its session (the client, if it wakes, finds
    # the connection broken before its commit: nothing of it was stored).
    "idle_in_transaction_session_timeout": "30s",
}


def _psycopg() -> Any:
    """psycopg, or a clear error saying how to get it."""
    try:
        import psycopg
    except ImportError as exc:  # an optional dependency
        raise JobStoreError(
            "a PostgreSQL job store needs psycopg: pip install 'phasekit[postgres]'"
        ) from exc
    return psycopg


def redact(url: str) -> str:
    """``url`` without its password, for messages."""
    psycopg = _psycopg()
    try:
        params = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "<unparsable PostgreSQL URL>"
    params.pop("password", None)
    host = params.get("host", "localhost")
    port = params.get("port", "5432")
    return f"postgresql://{params.get('user', '')}@{host}:{port}/{params.get('dbname', '')}"


#: SQLSTATEs of a server that cannot serve for now: its connection broken
#: (class 08), shutting down or starting (57P01-57P03), a session it ended
#: for sitting idle in a transaction (25P03, see SESSION_SETTINGS).
_UNAVAILABLE_STATES = ("08", "57P01", "57P02", "57P03", "25P03")


def translate(exc: BaseException, where: str) -> PhasekitError:
    """A phasekit error for a psycopg one: JobStoreUnavailable when the
    server cannot be reached or used for now (a run meeting it is resumed
    later), JobStoreFullError for a full disk, else JobStoreError (a
    statement refused: running it again would meet the same refusal)."""
    psycopg = _psycopg()
    if isinstance(exc, psycopg.errors.DiskFull):
        return JobStoreFullError(f"the job store at {where} is full: {exc}")
    state = getattr(exc, "sqlstate", None)
    if (state is None and isinstance(exc, psycopg.OperationalError)) or (
        state is not None and state.startswith(_UNAVAILABLE_STATES)
    ):
        # No SQLSTATE: the client's own failure to connect or to talk.
        return JobStoreUnavailable(f"cannot reach the job store at {where}: {exc}")
    return JobStoreError(f"the job store at {where} failed: {exc}")


class Connection:
    """The store's connection, with its lock, its retries and its reconnects."""

    def __init__(
        self, url: str, *, settings: dict[str, str] | None = None, migrate: bool = True
    ) -> None:
        """``settings``: more session settings (see SESSION_SETTINGS).
        ``migrate``: bring the tables to this code's version first (the
        store's own connection); False for the sessions a store opens beside
        it (an owner's lock and heartbeat, the upkeep, the wake-ups), which
        find them migrated: a check costs a transaction of three statements."""
        self.url = url
        self._settings = {**SESSION_SETTINGS, **(settings or {})}
        self.where = redact(url)
        self._psycopg = _psycopg()
        self._lock = threading.RLock()
        self._conn: psycopg.Connection[Any] | None = None
        self.closed = False
        self._conn = self._connect()
        if not migrate:
            return
        try:
            migrate_tables(self._conn, self.where)
        except BaseException:
            self._conn.close()
            raise

    def _connect(self) -> psycopg.Connection[Any]:
        pg = self._psycopg
        try:
            given = pg.conninfo.conninfo_to_dict(self.url)
        except pg.ProgrammingError as exc:
            from ...errors import InvalidInputError

            raise InvalidInputError(f"not a PostgreSQL URL: {exc}") from exc
        options = {k: v for k, v in DEFAULT_OPTIONS.items() if k not in given}
        own = str(given.get("options", ""))
        options["options"] = " ".join(
            [own, *(f"-c {k}={v}" for k, v in self._settings.items() if k not in own)]
        ).strip()
        try:
            conn: psycopg.Connection[Any] = pg.connect(self.url, autocommit=True, **options)
        except pg.Error as exc:
            raise translate(exc, self.where) from exc
        return conn

    def connection(self) -> psycopg.Connection[Any]:
        """The open connection (a new one if the last broke, waiting up to
        RECONNECT_S for a server that restarts). Call with the lock held."""
        if self.closed:
            raise ClosedError(f"the job store at {self.where} is closed")
        if self._conn is not None and not self._conn.broken and not self._conn.closed:
            return self._conn
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None
        deadline = time.monotonic() + RECONNECT_S
        pause = 0.05
        while True:
            try:
                self._conn = self._connect()
                return self._conn
            except JobStoreError:
                if time.monotonic() + pause >= deadline:
                    raise
                time.sleep(pause)
                pause = min(pause * 2, 1.0)

    def run(self, body: Callable[[psycopg.Cursor[Any]], T], *, write: bool = True) -> T:
        """``body(cursor)`` in one transaction (``write``) or as autocommit
        reads, tried again while PostgreSQL aborts it for a conflict or the
        connection broke before the commit. PhasekitErrors raised by ``body``
        roll it back and pass through."""
        psycopg = self._psycopg
        conflicts = 0
        deadline: float | None = None
        with self._lock:
            while True:
                conn = self.connection()
                committing = False
                try:
                    with conn.cursor() as cur:
                        if not write:
                            return body(cur)
                        cur.execute("BEGIN")
                        try:
                            result = body(cur)
                        except BaseException:
                            if not conn.broken:
                                cur.execute("ROLLBACK")
                            raise
                        committing = True
                        cur.execute("COMMIT")
                        return result
                except (
                    psycopg.errors.SerializationFailure,
                    psycopg.errors.DeadlockDetected,
                ) as exc:
                    # Another transaction moved the row first (a job finishing
                    # moves partitions) or PostgreSQL broke a deadlock: all of
                    # this one was rolled back; again, with fresh snapshots.
                    conflicts += 1
                    if conflicts >= CONFLICT_TRIES:
                        raise translate(exc, self.where) from exc
                    time.sleep(0.001 * conflicts)
                except psycopg.errors.IdleInTransactionSessionTimeout as exc:
                    # This client sat inside the transaction past the
                    # server's limit (see SESSION_SETTINGS: it was stopped):
                    # the server rolled it back and ended the session. Like
                    # a connection broken before its commit: again, on a
                    # new one (where a lease taken meanwhile refuses it).
                    with contextlib.suppress(Exception):
                        conn.close()
                    deadline = deadline or time.monotonic() + RECONNECT_S
                    if time.monotonic() >= deadline:
                        raise translate(exc, self.where) from exc
                except psycopg.OperationalError as exc:
                    if not conn.broken and not conn.closed:
                        raise translate(exc, self.where) from exc
                    if committing:
                        raise JobStoreUnavailable(
                            f"the connection to {self.where} broke while a write committed:"
                            " whether it was stored is unknown"
                        ) from exc
                    # Broken before the commit: the server rolled it back.
                    deadline = deadline or time.monotonic() + RECONNECT_S
                    if time.monotonic() >= deadline:
                        raise translate(exc, self.where) from exc
                except psycopg.Error as exc:
                    raise translate(exc, self.where) from exc

    def close(self) -> None:
        with self._lock:
            if self.closed:
                return
            self.closed = True
            if self._conn is not None:
                with contextlib.suppress(Exception):
                    self._conn.close()
                self._conn = None


def migrate_tables(conn: psycopg.Connection[Any], where: str) -> None:
    """Bring the database's phasekit tables to SCHEMA_VERSION, one version
    per transaction, under an advisory lock (processes opening a new
    database at once migrate it once). JobStoreError for a newer layout.
    (A library in the same database runs these same steps as it opens, in
    Rust while psycopg loads: see rust/core/src/library/postgres/neighbour.rs;
    then this finds the layout current.)"""
    psycopg = _psycopg()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(%s, %s)", (LOCK_NAMESPACE, MIGRATE_LOCK))
            try:
                cur.execute(f"CREATE TABLE IF NOT EXISTS {VERSION_TABLE} (version INTEGER)")
                cur.execute(f"SELECT version FROM {VERSION_TABLE}")
                row = cur.fetchone()
                version = 0 if row is None else int(row[0])
                if version > SCHEMA_VERSION:
                    raise JobStoreError(
                        f"the job store at {where} has layout version {version}; this phasekit"
                        f" knows up to {SCHEMA_VERSION}: upgrade phasekit"
                    )
                for target in range(version + 1, SCHEMA_VERSION + 1):
                    cur.execute("BEGIN")
                    cur.execute(MIGRATIONS[target])
                    cur.execute(f"DELETE FROM {VERSION_TABLE}")
                    cur.execute(f"INSERT INTO {VERSION_TABLE} VALUES (%s)", (target,))
                    cur.execute("COMMIT")
            finally:
                if not conn.broken:
                    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                        cur.execute("ROLLBACK")
                    cur.execute("SELECT pg_advisory_unlock(%s, %s)", (LOCK_NAMESPACE, MIGRATE_LOCK))
    except psycopg.Error as exc:
        raise translate(exc, where) from exc
