"""Repair of a damaged jobs.db: check it, read what can still be read, move
it aside and start a fresh one.

A damaged jobs.db never blocks the library (its entries live in library.db):
``phasekit jobs repair`` (:func:`repair`) keeps the damaged file beside the
new one, under a name that says when it was moved, and reports the jobs it
could still read, which are the jobs lost.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

from ...errors import JobStoreError
from ._owners import locked_owners
from ._store import JobStore

#: Companion files SQLite keeps beside a database in WAL mode.
_COMPANIONS = ("-wal", "-shm")


@dataclass
class RepairReport:
    """What :func:`repair` found and did."""

    path: Path
    #: None if jobs.db was healthy (nothing was moved).
    problem: str | None = None
    #: Where the damaged file went.
    moved_to: Path | None = None
    #: ``(id, name, status)`` of the jobs still readable in the damaged file
    #: (they are not in the fresh one); None if none could be read.
    lost: list[tuple[str, str, str]] | None = field(default=None)

    @property
    def unfinished(self) -> list[tuple[str, str, str]]:
        finished = {"completed", "completed_with_errors", "failed", "cancelled"}
        return [job for job in self.lost or [] if job[2] not in finished]


def check(path: Path) -> str | None:
    """None if jobs.db at ``path`` opens and passes SQLite's quick check,
    else what is wrong."""
    try:
        with JobStore(path) as store:
            problems = store.quick_check()
    except JobStoreError as exc:
        return str(exc)
    return None if problems == ["ok"] else "; ".join(problems[:5])


def repair(path: Path, *, force: bool = False) -> RepairReport:
    """Move a damaged jobs.db aside and create a fresh one. With ``force``,
    a jobs.db that looks healthy is replaced too. Refuses (JobStoreError)
    while a job manager of another process uses the file."""
    report = RepairReport(path)
    if not path.exists():
        return report
    if locked_owners(path):
        raise JobStoreError(
            f"{path} is in use by a running job manager (another phasekit process): "
            "stop it before repairing"
        )
    report.problem = check(path) or ("replaced on request" if force else None)
    if report.problem is None:
        return report
    report.lost = _salvage(path)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = path.with_name(f"{path.name}.damaged-{stamp}")
    os.replace(path, target)
    for suffix in _COMPANIONS:
        companion = path.with_name(path.name + suffix)
        with contextlib.suppress(FileNotFoundError):
            os.replace(companion, target.with_name(target.name + suffix))
    report.moved_to = target
    JobStore(path).close()  # a fresh, empty jobs.db
    return report


def _salvage(path: Path) -> list[tuple[str, str, str]] | None:
    """The jobs SQLite can still read from a damaged file (read-only)."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1.0)
    except sqlite3.Error:
        return None
    try:
        rows = conn.execute("SELECT id, name, status FROM jobs ORDER BY created_at").fetchall()
    except sqlite3.Error:
        return None
    finally:
        conn.close()
    return [(str(r[0]), str(r[1]), str(r[2])) for r in rows]


__all__ = ["RepairReport", "check", "repair"]
