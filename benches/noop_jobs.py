"""Job types for benches/bench_workers.py, importable by the worker processes.

* phasekit: ``python -m phasekit --library DIR worker --import noop_jobs``
  (this folder on PYTHONPATH) registers ``bench.noop`` and ``bench.stamp``.
* huey: ``huey_consumer noop_jobs.huey`` with ``BENCH_HUEY_DB`` naming the
  database. huey is imported only when ``noop_jobs.huey`` is first asked for,
  so a phasekit worker does not pay for importing it.
"""

from __future__ import annotations

import os
import time
from typing import Any

from phasekit.jobs import Job, JobContext, job

#: The environment variable naming the huey consumer's database.
HUEY_DB_ENV = "BENCH_HUEY_DB"


@job("bench.noop")
class Noop(Job):
    """Does nothing: what is measured is the machinery around it."""

    i: int = 0

    def run(self, ctx: JobContext) -> None:
        return None


@job("bench.stamp")
class Stamp(Job):
    """Returns ``time.time()`` at its start (its output): the claim latency is
    that minus the time it was dispatched."""

    def run(self, ctx: JobContext) -> float:
        return time.time()


def make_huey(filename: str) -> tuple[Any, Any]:
    """huey's SQLite queue at jobs.db's durability, and its no-op task.

    As in benches/bench_jobs.py: results kept even when None (so each task
    leaves one, as a phasekit job leaves its status), and ``PRAGMA
    synchronous = NORMAL`` as jobs.db has (phasekit/jobs/sqlite/_connect.py,
    ``_configure``). huey 3.5's ``SqliteStorage`` opens in WAL already
    (``journal_mode='wal'``), but its ``fsync`` option only sets FULL (True)
    or OFF (False), and left alone SQLite's default is FULL: hence the
    subclass.
    """
    from huey import SqliteHuey
    from huey.storage import SqliteStorage

    class SyncNormalStorage(SqliteStorage):
        """huey's SQLite storage with jobs.db's durability setting."""

        def _create_connection(self) -> Any:
            conn = super()._create_connection()
            conn.execute("PRAGMA synchronous = NORMAL")
            return conn

    huey = SqliteHuey("bench", filename=filename, store_none=True, storage_class=SyncNormalStorage)

    @huey.task(name="bench.noop")
    def noop(i: int) -> None:
        return None

    return huey, noop


_huey: Any = None


def __getattr__(name: str) -> Any:
    """``noop_jobs.huey``: the huey app on ``$BENCH_HUEY_DB`` (made once)."""
    global _huey
    if name != "huey":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if _huey is None:
        _huey = make_huey(os.environ[HUEY_DB_ENV])[0]
    return _huey
