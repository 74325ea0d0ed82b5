"""Which process runs a job: one owner per JobManager, alive while it holds
a lock.

Every manager takes an exclusive ``flock`` on its own file in
``<jobs.db>.owners/`` for its lifetime and stamps the jobs it claims with its
id. The kernel drops the lock when the process dies, however it dies
(SIGKILL included), so a manager opening the library can tell a job left
running by a dead process (resume it) from one another live process is
running (leave it alone): several processes can share a library without
running any job twice.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from ..._private import FILE_MODE, make_private_dir
from .._codec import new_id


def live_owners(jobs_db: Path) -> list[str]:
    """The ids of the managers that hold ``jobs_db`` now (their process lives)."""
    folder = jobs_db.with_name(jobs_db.name + ".owners")
    try:
        names = sorted(os.listdir(folder))
    except FileNotFoundError:
        return []
    alive = []
    for name in names:
        if not name.endswith(".lock"):
            continue
        try:
            fd = os.open(folder / name, os.O_RDWR)
        except FileNotFoundError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            alive.append(name.removesuffix(".lock"))
        finally:
            os.close(fd)
    return alive


class Ownership:
    """This manager's owner id and the lock that proves it alive."""

    def __init__(self, jobs_db: Path) -> None:
        self.folder = jobs_db.with_name(jobs_db.name + ".owners")
        make_private_dir(self.folder)
        self.id = new_id()
        self._fd: int | None = os.open(
            self.folder / f"{self.id}.lock", os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, FILE_MODE
        )
        fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def alive(self, owner: str | None) -> bool:
        """True if ``owner`` is a manager that still runs (this one included)."""
        if owner is None:
            return False  # claimed outside any manager (a bare execute())
        if owner == self.id:
            return self._fd is not None
        path = self.folder / f"{owner}.lock"
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

    def close(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(FileNotFoundError):
                (self.folder / f"{self.id}.lock").unlink()
            os.close(self._fd)  # releases the lock
            self._fd = None
