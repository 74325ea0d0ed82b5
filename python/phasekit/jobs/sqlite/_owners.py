"""Which process runs a job: one owner per JobManager (a worker), alive while
it holds a lock and keeps its heartbeat fresh.

Every manager takes an exclusive ``flock`` on its own file in
``<jobs.db>.owners/`` for its lifetime, stamps the jobs it claims with its
id, and refreshes its row of the ``workers`` table every heartbeat. Another
runner of the library takes it for dead when

* the lock is free: the kernel drops it when the process dies, however it
  dies (SIGKILL included), so this is known at once; or
* its heartbeat is older than the staleness it declared: the process lives
  but makes no progress (stopped with SIGSTOP, swapped out, its host cut
  off), and its jobs must not wait for it for ever.

Either way its jobs are queued again and resumed from their checkpoints
elsewhere (see jobs/_recovery.py). A stale owner that goes on later finds
its claims moved on: each claim's lease epoch fences its writes (see the
schema's version 10), so it gives those jobs up instead of running them
twice.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..._private import FILE_MODE, make_private_dir
from ...errors import InvalidInputError, PhasekitError
from .._codec import encode, new_id
from .._recovery import check_stale_after, default_stale_after

if TYPE_CHECKING:
    from ._store import JobStore

log = logging.getLogger("phasekit.jobs")

#: Heartbeats per staleness period: a few missed beats are not yet stale.
BEATS_PER_PERIOD = 6
#: How often a live owner trims the event log to its newest events (s).
PRUNE_EVENTS_EVERY_S = 60.0


def _owners_dir(jobs_db: Path) -> Path:
    return jobs_db.with_name(jobs_db.name + ".owners")


def _locked_file(folder: Path, owner: str) -> int:
    """``<owner>.lock`` in ``folder``, created already locked: it is locked
    under a temporary name and then renamed, so a file under a ``.lock`` name
    is always held by its creator, and a prober (which removes the files it
    can lock: dead owners') never mistakes a starting owner's for one."""
    staging = folder / f"{owner}.new"
    fd = os.open(staging, os.O_CREAT | os.O_EXCL | os.O_RDWR | os.O_CLOEXEC, FILE_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.rename(staging, folder / f"{owner}.lock")
    except BaseException:
        os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            staging.unlink()
        raise
    return fd


def _lock_held(folder: Path, owner: str) -> bool:
    """Whether ``owner``'s process holds its lock (lives); a dead owner's
    file is removed."""
    path = folder / f"{owner}.lock"
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True  # its process holds the lock: alive
    finally:
        os.close(fd)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()  # a dead owner's file: tidy up
    return False


def locked_owners(jobs_db: Path) -> list[str]:
    """The ids of the managers whose process holds its lock (lives, stalled
    or not): read from the lock files alone, so it works on a jobs.db too
    damaged to open."""
    folder = _owners_dir(jobs_db)
    try:
        names = sorted(os.listdir(folder))
    except FileNotFoundError:
        return []
    owners = (name.removesuffix(".lock") for name in names if name.endswith(".lock"))
    return [owner for owner in owners if _lock_held(folder, owner)]


def live_owners(store: JobStore) -> list[str]:
    """The ids of the managers whose process holds its lock and whose
    heartbeat is fresh."""
    beats = store.heartbeats()
    now = time.time()
    return [o for o in locked_owners(store.path) if _fresh(beats.get(o), now)]


def _fresh(beat: tuple[float, float] | None, now: float) -> bool:
    """Whether a heartbeat ``(at, stale_after_s)`` is recent enough; an owner
    without a row (a process of an older phasekit) counts as fresh: its
    lock alone tells."""
    if beat is None:
        return True
    at, stale_after_s = beat
    return now - at <= stale_after_s


class Ownership:
    """This manager's owner id, the lock that proves it alive and the thread
    that keeps its heartbeat fresh."""

    def __init__(
        self, store: JobStore, stale_after_s: float | None = None, info: Any = None
    ) -> None:
        self._store = store
        self.stale_after_s = (
            default_stale_after() if stale_after_s is None else check_stale_after(stale_after_s)
        )
        try:
            self._info = encode(info)
        except TypeError as exc:
            raise InvalidInputError(f"worker info cannot be stored: {exc}") from exc
        self.folder = _owners_dir(store.path)
        make_private_dir(self.folder)
        self.id = new_id()
        self._fd: int | None = _locked_file(self.folder, self.id)
        try:
            self._register()
            for other in store.heartbeats():
                if other != self.id and not _lock_held(self.folder, other):
                    store.remove_worker(other)  # its process died: forget it
        except BaseException:
            self._release()  # a failed open holds nothing
            raise
        self._stop = threading.Event()
        self._beating = threading.Thread(
            target=self._beat, name=f"phasekit-heartbeat-{self.id[:8]}", daemon=True
        )
        self._beating.start()

    def _register(self) -> None:
        self._store.add_worker(
            self.id, os.uname().nodename, os.getpid(), time.time(), self.stale_after_s, self._info
        )

    def _beat(self) -> None:
        period = self.stale_after_s / BEATS_PER_PERIOD
        pruned = time.monotonic()
        while not self._stop.wait(period):
            try:
                if not self._store.heartbeat(self.id, time.time()) and not self._stop.is_set():
                    self._register()  # its row was taken for a dead owner's: back
                if time.monotonic() - pruned >= PRUNE_EVENTS_EVERY_S:
                    pruned = time.monotonic()
                    self._store.prune_events()
            except Exception as exc:  # the beat must go on, whatever failed
                # jobs.db cannot be written now (full, busy for too long,
                # closed under us): try again at the next beat; if this goes
                # on past the staleness period, others resume our jobs, and
                # the lease epochs keep our late writes out.
                log.warning("heartbeat of worker %s not written: %s", self.id, exc)

    def alive(self, owner: str | None) -> bool:
        """True if ``owner`` is a manager that still runs (this one included)
        and whose heartbeat is fresh."""
        if owner is None:
            return False  # claimed outside any manager (a bare execute())
        if owner == self.id:
            return self._fd is not None
        if not _lock_held(self.folder, owner):
            with contextlib.suppress(PhasekitError):
                self._store.remove_worker(owner)  # its process died: forget it
            return False
        return _fresh(self._store.heartbeats().get(owner), time.time())

    def close(self) -> None:
        """Stop beating, drop the row and the lock (idempotent)."""
        if self._fd is None:
            return
        self._stop.set()
        # Bounded: a beat stuck behind a busy jobs.db must not hold up a
        # closing manager (it re-adds no row once stopped).
        self._beating.join(self.stale_after_s)
        with contextlib.suppress(PhasekitError):
            self._store.remove_worker(self.id)  # a closed or failing store: the lock tells
        self._release()

    def _release(self) -> None:
        """Remove the lock file and release the lock."""
        if self._fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            (self.folder / f"{self.id}.lock").unlink()
        os.close(self._fd)  # releases the lock
        self._fd = None
