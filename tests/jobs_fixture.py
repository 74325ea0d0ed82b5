"""Jobs used by the job-system tests (importable by test subprocesses)."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path
from typing import Any

import phasekit
from phasekit.jobs import Job, JobContext, job


def subprocess_env() -> dict[str, str]:
    """Environment for a test subprocess: it imports these test jobs and the
    phasekit under test (not whichever one is installed)."""
    paths = [str(Path(__file__).resolve().parent), str(Path(phasekit.__file__).parents[1])]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}


def effects(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("CREATE TABLE IF NOT EXISTS done (i INTEGER PRIMARY KEY, square INTEGER)")
    conn.execute("CREATE TABLE IF NOT EXISTS starts (at INTEGER)")
    return conn


@job("test.count")
class CountJob(Job):
    """Squares 0..n-1 into an effects table, checkpointing every ``every`` items.

    Writes are upserts keyed by the item (idempotent between checkpoints), so a
    resumed run that redoes the items after the last checkpoint changes nothing.
    """

    n: int
    effects_db: str
    every: int = 50
    delay_s: float = 0.0
    fail_at: int = -1
    soft_error_every: int = 0

    def run(self, ctx: JobContext) -> Any:
        state = ctx.load_state() or {"next": 0}
        conn = effects(self.effects_db)
        conn.execute("INSERT INTO starts VALUES (?)", (state["next"],))
        i = state["next"]
        while i < self.n:
            if i == self.fail_at:
                raise RuntimeError(f"item {i} is broken")
            if self.soft_error_every and i % self.soft_error_every == 0:
                ctx.error(f"item {i} looked odd", path=f"/items/{i}")
            conn.execute("INSERT OR REPLACE INTO done VALUES (?, ?)", (i, i * i))
            if self.delay_s:
                time.sleep(self.delay_s)
            ctx.add_items(1)
            i += 1
            ctx.progress(done=i, total=self.n)
            if i % self.every == 0:
                ctx.checkpoint({"next": i})
        conn.close()
        return {"count": self.n}


@job("test.record")
class RecordJob(Job):
    """Logs (tag, start, end) to a table; sleeps in small steps, honouring pause."""

    tag: str
    log_db: str
    duration_s: float = 0.05
    fail: bool = False

    def run(self, ctx: JobContext) -> Any:
        conn = sqlite3.connect(self.log_db, timeout=30, isolation_level=None)
        conn.execute("CREATE TABLE IF NOT EXISTS log (tag TEXT, start REAL, end REAL)")
        start = time.monotonic()
        end = start + self.duration_s
        while time.monotonic() < end:
            time.sleep(0.005)
            ctx.check_interrupt()
        if self.fail:
            raise RuntimeError(f"{self.tag} failed on purpose")
        conn.execute("INSERT INTO log VALUES (?, ?, ?)", (self.tag, start, time.monotonic()))
        conn.close()
        return self.tag


@job("test.parent")
class ParentJob(Job):
    """Spawns ``children`` RecordJobs (or, with ``depth`` > 1, ParentJobs one
    level shallower), optionally holds while ``hold_path`` exists, then waits
    for them and returns their final statuses by tag."""

    children: int
    log_db: str
    depth: int = 1
    child_duration_s: float = 0.02
    fail_child: int = -1
    hold_path: str = ""
    prefix: str = "c"

    def run(self, ctx: JobContext) -> Any:
        ids = {}
        for i in range(self.children):
            tag = f"{self.prefix}{i}"
            child: Job
            if self.depth > 1:
                child = ParentJob(
                    self.children,
                    self.log_db,
                    depth=self.depth - 1,
                    child_duration_s=self.child_duration_s,
                    prefix=f"{tag}.",
                )
            else:
                child = RecordJob(
                    tag, self.log_db, duration_s=self.child_duration_s, fail=i == self.fail_child
                )
            ids[tag] = ctx.spawn_child(child)
        while self.hold_path and os.path.exists(self.hold_path):
            time.sleep(0.01)
            ctx.check_interrupt()
        statuses = ctx.wait_for_children()
        return {tag: statuses[child_id].value for tag, child_id in ids.items()}


def read_log(path: str) -> list[tuple[str, float, float]]:
    conn = sqlite3.connect(path)
    try:
        return list(conn.execute("SELECT tag, start, end FROM log ORDER BY start"))
    except sqlite3.OperationalError:
        return []
    finally:
        conn.close()
