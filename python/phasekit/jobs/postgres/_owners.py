"""Which process runs a job, when the job store is PostgreSQL: one owner per
JobManager (a worker, on any host), alive while its session holds its
advisory lock and its heartbeat stays fresh.

Every owner opens a session of its own that holds a session-level advisory
lock (its key in ``workers.lock_key``) for its lifetime, and refreshes its
``workers`` row every heartbeat through it. Another runner takes it for dead
when

* the lock is free: PostgreSQL drops it when the session ends, which it does
  when the process dies (the kernel closes its socket), so this is known at
  once; or
* its heartbeat is older than the staleness it declared: the process lives
  but makes no progress (stopped, swapped out), or its host's link is cut
  (the server may keep the dead session, and the lock, for a long while).

Either way its jobs are queued again and resumed elsewhere from their
checkpoints; a stale owner that goes on later finds its claims moved on (the
lease epochs fence its writes) and gives those jobs up. A session that broke
(the server restarted) is opened again by the heartbeat, which takes the
lock back and registers the owner again.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import zlib
from typing import TYPE_CHECKING, Any

from ...errors import InvalidInputError, JobStoreError, PhasekitError
from .._codec import encode, new_id
from .._recovery import check_stale_after, default_stale_after
from ._connect import Connection
from ._sql import OWNER_LOCKS, scalar

if TYPE_CHECKING:
    from ._store import PostgresJobStore

log = logging.getLogger("phasekit.jobs")

#: Heartbeats per staleness period: a few missed beats are not yet stale.
BEATS_PER_PERIOD = 6
#: How often a live owner numbers and trims the event log (s).
PRUNE_EVENTS_EVERY_S = 60.0
#: How long the upkeep (ANALYZE, pruning the event log) waits for a lock
#: before it gives up until a later round (ms), and how often it looks (s).
UPKEEP_LOCK_WAIT_MS = 1000
UPKEEP_EVERY_S = 5.0

#: Whether each worker's lock is held now, from the server's lock table.
_HELD = (
    "EXISTS (SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted"
    " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    f" AND l.classid = {OWNER_LOCKS}::oid AND l.objid = w.lock_key::oid AND l.objsubid = 2)"
)


def owner_states(conn: Connection) -> dict[str, tuple[float, float, bool]]:
    """``{worker id: (last heartbeat, staleness limit, lock held)}``."""
    rows = conn.run(
        lambda cur: cur.execute(
            f"SELECT w.id, w.heartbeat_at, w.stale_after_s, {_HELD} FROM workers w"
        ).fetchall(),
        write=False,
    )
    return {r[0]: (float(r[1]), float(r[2]), bool(r[3])) for r in rows}


def live_owners(conn: Connection) -> list[str]:
    """The owners whose session holds its lock and whose heartbeat is fresh."""
    now = time.time()
    return [o for o, (at, stale, held) in owner_states(conn).items() if held and now - at <= stale]


class PostgresOwnership:
    """This manager's owner id, the session holding its lock, and the thread
    that keeps its heartbeat fresh."""

    def __init__(
        self, store: PostgresJobStore, stale_after_s: float | None = None, info: Any = None
    ) -> None:
        self._store = store
        self.stale_after_s = (
            default_stale_after() if stale_after_s is None else check_stale_after(stale_after_s)
        )
        try:
            self._info = encode(info)
        except TypeError as exc:
            raise InvalidInputError(f"worker info cannot be stored: {exc}") from exc
        # The heartbeat's own session: a beat never waits for the store's
        # shared connection (a job's write, a reconnect).
        self._session = Connection(store.url, migrate=False)
        # The upkeep's (see _upkeep), opened on its first round: it gives up
        # on a lock rather than wait behind it.
        self._upkeep_session: Connection | None = None
        self._closed = False
        try:
            self._lock_session_id = self._take_lock()
            self._register()
            for other, (_at, _stale, held) in owner_states(self._session).items():
                if other != self.id and not held:
                    store.remove_worker(other)  # its session ended: its process died
        except BaseException:
            self._session.close()  # a failed open holds nothing
            raise
        self._stop = threading.Event()
        self._beating = threading.Thread(
            target=self._beat, name=f"phasekit-heartbeat-{self.id[:8]}", daemon=True
        )
        self._beating.start()
        self._upkeeping = threading.Thread(
            target=self._upkeep, name=f"phasekit-upkeep-{self.id[:8]}", daemon=True
        )
        self._upkeeping.start()

    def _take_lock(self) -> int:
        """A new owner id whose lock this session now holds; the session's
        backend pid (a new one means the session was opened again)."""
        for _ in range(100):
            owner = new_id()
            key = zlib.crc32(owner.encode()) & 0x7FFFFFFF

            def take(cur: Any, key: int = key) -> Any:
                return cur.execute(
                    "SELECT pg_try_advisory_lock(%s, %s), pg_backend_pid()", (OWNER_LOCKS, key)
                ).fetchone()

            got, pid = self._session.run(take, write=False)
            if got:  # else another live owner's key: draw another id
                self.id, self.lock_key = owner, key
                return int(pid)
        raise JobStoreError("no free owner lock found")

    def _register(self) -> None:
        now = time.time()
        self._session.run(
            lambda cur: cur.execute(
                "INSERT INTO workers (id, host, pid, started_at, heartbeat_at, stale_after_s,"
                " info, lock_key) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (id) DO UPDATE SET heartbeat_at = EXCLUDED.heartbeat_at",
                (
                    self.id,
                    os.uname().nodename,
                    os.getpid(),
                    now,
                    now,
                    self.stale_after_s,
                    self._info,
                    self.lock_key,
                ),
            )
        )

    def _upkeep(self) -> None:
        """The job tables' statistics and the event log kept in shape, on a
        thread and a session of their own: not through the store's shared
        connection (it may be held for long: a write waiting on a row, a
        reconnect), nor on the heartbeat's thread (an ANALYZE, or a lock
        waited for, would delay the beat and make this live worker look
        stale)."""
        pruned = time.monotonic()
        # The first round runs as the owner opens, with the hot partition
        # analyzed whatever the server's counts say (see analyze_if_stale);
        # here rather than in __init__, whose caller (a run about to claim
        # its job) would wait for it.
        hot = True  # until a round went through
        period = max(self.stale_after_s / BEATS_PER_PERIOD, UPKEEP_EVERY_S)
        delay = 0.0
        while not self._stop.wait(delay):
            delay = period
            try:
                if self._upkeep_session is None:
                    self._upkeep_session = Connection(
                        self._store.url,
                        settings={"lock_timeout": f"{UPKEEP_LOCK_WAIT_MS}"},
                        migrate=False,
                    )
                    if self._stop.is_set():
                        break  # close() came meanwhile, and may have stopped waiting
                self._store.analyze_if_stale(hot=hot, via=self._upkeep_session)
                hot = False
                if time.monotonic() - pruned >= PRUNE_EVENTS_EVERY_S:
                    pruned = time.monotonic()
                    self._store.prune_events(via=self._upkeep_session)
            except Exception as exc:  # later rounds try again, whatever failed
                log.info("worker %s: job store upkeep not done this round: %s", self.id, exc)
        # Closed here as well as by close(), which waits for this thread only
        # so long: a round still connecting then would leave its session open.
        if self._upkeep_session is not None:
            self._upkeep_session.close()

    def _beat(self) -> None:
        period = self.stale_after_s / BEATS_PER_PERIOD
        while not self._stop.wait(period):
            try:
                self._beat_once()
            except Exception as exc:  # the beat must go on, whatever failed
                # The server is unreachable (restarting, link cut): try again
                # at the next beat; past the staleness period others resume
                # our jobs, and the lease epochs keep our late writes out.
                log.warning("heartbeat of worker %s not written: %s", self.id, exc)

    def _beat_once(self) -> None:
        def beat(cur: Any) -> tuple[int, int]:
            cur.execute(
                "UPDATE workers SET heartbeat_at = %s WHERE id = %s", (time.time(), self.id)
            )
            count = cur.rowcount
            return count, scalar(cur, "SELECT pg_backend_pid()")

        count, pid = self._session.run(beat)
        if pid != self._lock_session_id:
            # The session was opened again (the server restarted, or the
            # link broke): the lock went with the old session, or goes once
            # the server ends it (its keepalives: see _connect). Take it
            # back; until then the others take this owner for dead (its
            # jobs are resumed elsewhere, its late writes refused), and the
            # next beat tries again.
            got = self._session.run(
                lambda cur: scalar(
                    cur, "SELECT pg_try_advisory_lock(%s, %s)", (OWNER_LOCKS, self.lock_key)
                ),
                write=False,
            )
            if not got:
                log.warning("worker %s: its lock is still held by its old session", self.id)
                return
            self._lock_session_id = pid
        if count == 0 and not self._stop.is_set():
            self._register()  # its row was taken for a dead owner's: back

    def alive(self, owner: str | None) -> bool:
        """True if ``owner`` is a manager that still runs (this one included)
        and whose heartbeat is fresh."""
        if owner is None:
            return False  # claimed outside any manager
        if owner == self.id:
            return not self._closed
        state = owner_states(self._store.connection).get(owner)
        if state is None:
            return False  # no row: it closed, or was found dead
        at, stale_after_s, held = state
        if not held:
            with contextlib.suppress(PhasekitError):
                self._store.remove_worker(owner)  # its session ended: forget it
            return False
        return time.time() - at <= stale_after_s

    def close(self) -> None:
        """Stop beating, drop the row and the lock (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self._beating.join(self.stale_after_s)
        self._upkeeping.join(self.stale_after_s)
        if self._upkeep_session is not None:
            self._upkeep_session.close()
        with contextlib.suppress(PhasekitError):
            self._store.remove_worker(self.id)
        self._session.close()  # ends the session: releases the lock
