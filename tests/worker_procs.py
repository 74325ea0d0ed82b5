"""`phasekit worker` processes for tests: start one on a library, watch
what it says, stop or kill it; and what its CountJobs left behind (used by
tests/test_workers.py and tests/test_postgres_workers.py)."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from jobs_fixture import effects, subprocess_env
from phasekit.jobs import JobBackend

#: Generous waits: the suite must pass on a loaded machine.
WAIT_S = 120.0


def wait_for(what: str, check: Callable[[], object], timeout: float = WAIT_S) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.02)
    pytest.fail(f"timed out waiting for {what}")


class WorkerProcess:
    """A `phasekit worker` process started with ``argv``; its stderr lines
    are collected (and written to ``log`` with their times, if given)."""

    def __init__(self, argv: list[str], what: str, log: Path | None = None) -> None:
        self.log = log
        self.proc = subprocess.Popen(
            argv, env=subprocess_env(), stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
            text=True, errors="replace",
        )  # fmt: skip
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._collect, daemon=True)
        self._reader.start()
        self.id = str(wait_for(what, self._started))

    def _collect(self) -> None:
        assert self.proc.stderr is not None
        out = None if self.log is None else self.log.open("a")
        try:
            for line in self.proc.stderr:
                self.lines.append(line)
                if out is not None:
                    out.write(f"{time.time():.3f} {line}")
                    out.flush()
        finally:
            if out is not None:
                out.close()

    def _started(self) -> str | None:
        for line in self.lines:
            match = re.search(r"worker (\w+) running jobs", line)
            if match:
                return match.group(1)
        if self.proc.poll() is not None:
            self._reader.join()
            pytest.fail(f"the worker exited: {''.join(self.lines)}")
        return None

    def said(self, text: str) -> bool:
        return any(text in line for line in self.lines)

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def stop(self) -> int:
        """SIGTERM, and its exit status (SIGCONT first: a stopped process
        would not handle it)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=WAIT_S)
        self.close()
        return code

    def close(self) -> None:
        """Kill it if it still runs; its pipe is read to the end and closed."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait()
        self._reader.join()
        if self.proc.stderr is not None:
            self.proc.stderr.close()


class Worker(WorkerProcess):
    """A `phasekit worker` process on ``library``."""

    def __init__(self, library: Path, *extra: str) -> None:
        # No maintenance schedule unless a test asks (``extra`` comes last):
        # its queued occurrence would be one more job in every listing.
        argv = [sys.executable, "-m", "phasekit", "--library", str(library), "worker",
                "--import", "jobs_fixture", "--maintenance-every", "0", *extra]  # fmt: skip
        super().__init__(argv, "the worker to start")


def owner_of(store: JobBackend, job_id: str) -> str | None:
    return dict(store.running_owners()).get(job_id)


def started_at(path: Path) -> list[int]:
    """The item each run of a CountJob started from, in order."""
    conn = effects(str(path))
    try:
        return [int(row[0]) for row in conn.execute("SELECT at FROM starts ORDER BY rowid")]
    finally:
        conn.close()


def done_items(path: Path) -> int:
    conn = effects(str(path))
    try:
        return int(conn.execute("SELECT COUNT(*) FROM done").fetchone()[0])
    finally:
        conn.close()
