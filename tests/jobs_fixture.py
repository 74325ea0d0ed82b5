"""Jobs used by the job-system tests (importable by test subprocesses)."""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import anyio

import phasekit
from phasekit.jobs import (
    COMPLETE,
    FatalError,
    Job,
    JobContext,
    JobEvent,
    JobManager,
    NonFatalError,
    Phase,
    PhaseContext,
    PhasedJob,
    PhaseGroup,
    PhaseResult,
    Recovery,
    SkipTo,
    job,
    transient,
)

#: A child process that runs (or resumes) one job: ``python -c RUN_JOB JOBS_DB JOB_ID``.
#: It prints "go" once it is about to start, so a test can time a kill.
RUN_JOB = """
import sys
import jobs_fixture  # registers the test jobs
from phasekit.jobs import JobStore, execute
store = JobStore(sys.argv[1])
print("go", flush=True)
execute(store, sys.argv[2])
"""


@asynccontextmanager
async def listening(manager: JobManager) -> AsyncIterator[list[JobEvent]]:
    """Every event of ``manager.events()`` while the block runs (and 50 ms
    after it, for the last ones), in a list that grows as they come."""
    events: list[JobEvent] = []
    async with anyio.create_task_group() as tg:

        async def listen() -> None:
            async for event in manager.events():
                events.append(event)

        tg.start_soon(listen)
        await anyio.sleep(0)  # listening before the block dispatches anything
        yield events
        await anyio.sleep(0.05)
        tg.cancel_scope.cancel()


def subprocess_env() -> dict[str, str]:
    """Environment for a test subprocess: it imports these test jobs and the
    phasekit under test (not whichever one is installed)."""
    paths = [str(Path(__file__).resolve().parent), str(Path(phasekit.__file__).parents[1])]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}


def wal(conn: sqlite3.Connection) -> None:
    """Switch a connection's file to WAL. On a new file, jobs of several
    threads or processes may do it at the same moment, and SQLite answers
    that switch with "database is locked" at once instead of waiting (the
    job would fail): tried again for a while."""
    deadline = time.monotonic() + 60
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def effects(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    wal(conn)
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
    #: Before item ``hold_at``, wait (honouring pause and cancel) while the
    #: file ``hold_path`` exists: a test decides when the job goes on.
    hold_at: int = -1
    hold_path: str = ""

    def run(self, ctx: JobContext) -> Any:
        state = ctx.load_state() or {"next": 0}
        conn = effects(self.effects_db)
        conn.execute("INSERT INTO starts VALUES (?)", (state["next"],))
        i = state["next"]
        while i < self.n:
            while i == self.hold_at and os.path.exists(self.hold_path):
                time.sleep(0.005)
                ctx.check_interrupt()
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


@dataclass
class SquareProgress:
    """Structured progress of :class:`PhasedCount`."""

    squared: int
    last: int


@dataclass
class PhasedOutput:
    count: int
    total: int


@job("test.phased")
class PhasedCount(PhasedJob):
    """prepare → work (square → verify) → report, with knobs for every path of
    the phase processor. Effects are upserts (idempotent between checkpoints);
    each start of ``square`` logs where it began in ``phase_starts``."""

    progress_type: ClassVar[type[Any] | None] = SquareProgress
    output_type: ClassVar[type[Any] | None] = PhasedOutput

    n: int
    effects_db: str
    every: int = 10
    mode: str = "full"  # "quick" leaves "verify" out
    skip_to: str = ""  # "prepare" returns SkipTo(skip_to)
    complete_early: bool = False  # "prepare" returns COMPLETE
    fail_at: int = -1  # "square" raises at this item...
    fail_times: int = 0  # ...this many times
    recovery: str = "abort"
    fatal: bool = False  # ...raising FatalError
    non_fatal: bool = False  # ...raising NonFatalError
    soft_errors: int = 0  # "verify" records this many non-fatal errors
    delay_s: float = 0.0
    backoff_s: float = 0.001
    failures: int = transient(default=0)
    hooks: list[str] = transient(default_factory=list)

    def phases(self) -> Any:
        work = PhaseGroup(
            "work",
            [
                Phase(
                    "square",
                    self.square,
                    recovery=Recovery(self.recovery),
                    backoff_s=self.backoff_s,
                    initial_state=lambda: {"next": 0},
                    on_success=lambda ctx: self.hooks.append("square ok"),
                    on_failure=lambda ctx, exc: self.hooks.append(f"square failed: {exc}"),
                ),
                Phase("verify", self.verify, when=lambda ctx: self.mode != "quick"),
            ],
        )
        return Phase("prepare", self.prepare).then(work, Phase("report", self.report))

    def prepare(self, ctx: PhaseContext) -> PhaseResult:
        ctx.shared["count"] = self.n
        if self.complete_early:
            return COMPLETE
        return SkipTo(self.skip_to) if self.skip_to else None

    def square(self, ctx: PhaseContext) -> PhaseResult:
        conn = effects(self.effects_db)
        conn.execute("CREATE TABLE IF NOT EXISTS phase_starts (at INTEGER)")
        conn.execute("INSERT INTO phase_starts VALUES (?)", (ctx.state["next"],))
        i = ctx.state["next"]
        while i < self.n:
            if i == self.fail_at and self.failures < self.fail_times:
                self.failures += 1
                error = FatalError if self.fatal else NonFatalError if self.non_fatal else OSError
                raise error(f"item {i} is broken")
            conn.execute("INSERT OR REPLACE INTO done VALUES (?, ?)", (i, i * i))
            if self.delay_s:
                time.sleep(self.delay_s)
            i += 1
            ctx.units(i, self.n)
            ctx.progress(data=SquareProgress(squared=i, last=(i - 1) ** 2))
            if i % self.every == 0:
                ctx.checkpoint({"next": i})
        conn.close()
        return None

    def verify(self, ctx: PhaseContext) -> PhaseResult:
        for k in range(self.soft_errors):
            ctx.error(f"item {k} looks odd", path=f"/items/{k}")
        conn = effects(self.effects_db)
        ctx.shared["total"] = conn.execute("SELECT COALESCE(SUM(square), 0) FROM done").fetchone()[
            0
        ]
        conn.close()
        return None

    def report(self, ctx: PhaseContext) -> PhaseResult:
        ctx.shared.setdefault("total", -1)
        return None

    def output(self, shared: dict[str, Any]) -> Any:
        return PhasedOutput(count=shared["count"], total=shared.get("total", -1))


def effect_log(path: str) -> sqlite3.Connection:
    """The effects of :class:`EffectJob`: ``step`` (each step of each job,
    keyed), ``final`` (each job's end, keyed) and ``attempts`` (every run's
    start, not keyed: a resumed job adds one)."""
    conn = sqlite3.connect(path, timeout=120, isolation_level=None)
    wal(conn)
    conn.execute(
        "CREATE TABLE IF NOT EXISTS step (key TEXT, step INTEGER, PRIMARY KEY (key, step))"
    )
    conn.execute("CREATE TABLE IF NOT EXISTS final (key TEXT PRIMARY KEY, pid INTEGER)")
    conn.execute("CREATE TABLE IF NOT EXISTS attempts (key TEXT, at INTEGER, pid INTEGER)")
    return conn


@job("test.effect")
class EffectJob(Job):
    """``steps`` steps, each an idempotency-keyed record (``key``, step),
    checkpointed one by one; then the job's final record, keyed by ``key``.
    ``fail_at``: the step that raises (the job fails)."""

    key: str
    log_db: str
    steps: int = 4
    delay_s: float = 0.002
    fail_at: int = -1

    def run(self, ctx: JobContext) -> Any:
        state = ctx.load_state() or {"next": 0}
        conn = effect_log(self.log_db)
        try:
            conn.execute(
                "INSERT INTO attempts VALUES (?, ?, ?)", (self.key, state["next"], os.getpid())
            )
            for i in range(state["next"], self.steps):
                if i == self.fail_at:
                    raise RuntimeError(f"{self.key} fails at step {i} on purpose")
                time.sleep(self.delay_s)
                conn.execute("INSERT OR IGNORE INTO step VALUES (?, ?)", (self.key, i))
                ctx.progress(done=i + 1, total=self.steps)
                ctx.checkpoint({"next": i + 1})
            conn.execute("INSERT OR IGNORE INTO final VALUES (?, ?)", (self.key, os.getpid()))
        finally:
            conn.close()
        # The run's lease epoch: the recorded end must be the last claim's.
        return {"key": self.key, "steps": self.steps, "lease": ctx.lease}


@job("test.items")
class ItemsJob(Job):
    """Records each of its items (keyed by item and tag) in an
    :func:`effect_log`, one by one, checkpointed; fails on ``fail_on``.
    Submitted with more than ``item_limit`` items it is split."""

    items_field: ClassVar[str | None] = "items"

    items: list[str]
    log_db: str
    tag: str = ""
    fail_on: str | None = None
    delay_s: float = 0.0

    def run(self, ctx: JobContext) -> Any:
        state = ctx.load_state() or {"next": 0}
        conn = effect_log(self.log_db)
        try:
            conn.execute(
                "INSERT INTO attempts VALUES (?, ?, ?)", (self.tag, state["next"], os.getpid())
            )
            for i in range(state["next"], len(self.items)):
                item = self.items[i]
                if item == self.fail_on:
                    raise RuntimeError(f"{self.tag} fails on {item!r} on purpose")
                if self.delay_s:
                    time.sleep(self.delay_s)
                # Keyed by the item's bytes (a name need not be UTF-8).
                key = f"{self.tag}:{os.fsencode(item).hex()}"
                conn.execute("INSERT OR IGNORE INTO step VALUES (?, ?)", (key, i))
                if i % 100 == 99 or i == len(self.items) - 1:
                    ctx.progress(done=i + 1, total=len(self.items))
                    ctx.checkpoint({"next": i + 1})
            conn.execute("INSERT OR IGNORE INTO final VALUES (?, ?)", (ctx.id, os.getpid()))
        finally:
            conn.close()
        return {"items": len(self.items), "first": self.items[0] if self.items else None}


@job("test.tick")
class TickJob(Job):
    """A short job (well under a millisecond): appends its key to a file
    (one ``write`` with O_APPEND: lines never interleave) and returns its
    run's lease. Short runs' ends are written in groups (see Slots)."""

    key: str
    path: str

    def run(self, ctx: JobContext) -> Any:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{self.key}\n".encode())
        finally:
            os.close(fd)
        return {"lease": ctx.lease}


@job("test.gate")
class GateJob(Job):
    """Waits until ``path`` holds ``lines`` lines (written by TickJobs run
    meanwhile by others), then completes; fails after ``timeout_s``."""

    path: str
    lines: int
    timeout_s: float = 120.0

    def run(self, ctx: JobContext) -> Any:
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            try:
                with open(self.path, "rb") as f:
                    if f.read().count(b"\n") >= self.lines:
                        return "open"
            except FileNotFoundError:
                pass
            ctx.check_interrupt()
            time.sleep(0.01)
        raise RuntimeError(f"{self.path} never had {self.lines} lines")


@job("test.odd_error")
class OddErrorJob(Job):
    """Records a non-critical error whose path is not text (a Path object,
    which jobs.db cannot store): its end cannot be stored, and it fails."""

    def run(self, ctx: JobContext) -> Any:
        ctx.error("odd", path=Path("/x"))  # type: ignore[arg-type]
        return None
