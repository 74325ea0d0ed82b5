"""`phasekit worker` processes whose jobs are in PostgreSQL, on this host
(tests/test_postgres_hosts.py puts them on several): what a server holding
row locks does to them. A worker's heartbeat never waits for its jobs'
writes, and a worker stopped inside a write transaction does not hold its
job's row for longer than the server's idle-in-transaction limit.
"""

from __future__ import annotations

import random
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from jobs_fixture import CountJob
from phasekit.jobs import JobStatus
from phasekit.jobs.postgres import PostgresJobStore
from worker_procs import Worker, done_items, owner_of, started_at, wait_for


@pytest.fixture
def store(pg_url: str) -> Iterator[PostgresJobStore]:
    with PostgresJobStore(pg_url) as opened:
        yield opened


def start_worker(
    monkeypatch: pytest.MonkeyPatch, library: Path, url: str, name: str, *extra: str
) -> Worker:
    """A worker whose jobs are at ``url``, its sessions named ``name`` in
    the server (``application_name``)."""
    monkeypatch.setenv("PHASEKIT_JOBS", f"{url}?application_name={name}")
    return Worker(library, "--concurrency", "1", *extra)


def count_job_under_way(
    monkeypatch: pytest.MonkeyPatch,
    store: PostgresJobStore,
    library: Path,
    workers: list[Worker],
    fx: Path,
    job: CountJob,
    name: str,
) -> tuple[str, Worker]:
    """``job`` queued and a worker (stale after 2 s, its sessions named
    ``name``) that has done 50 of its items; the job's id and the worker."""
    job_id = store.create_job("test.count", job.to_state())
    worker = start_worker(monkeypatch, library, store.url, name, "--stale-after", "2")
    workers.append(worker)
    wait_for("the worker to run the job", lambda: owner_of(store, job_id) == worker.id)
    wait_for("some items done", lambda: done_items(fx) >= 50)
    return job_id, worker


def test_a_worker_whose_writes_wait_on_a_row_lock_stays_live(
    monkeypatch: pytest.MonkeyPatch,
    library: Path,
    store: PostgresJobStore,
    pg_url: str,
    tmp_path: Path,
    workers: list[Worker],
) -> None:
    """Another session holds the running job's row for four times the
    worker's staleness: the job's writes wait for it, the worker's
    heartbeat does not (its upkeep goes through the heartbeat's own session,
    not the connection the job's writes hold), so the worker never looks
    dead and its job is never taken from it."""
    fx = tmp_path / "effects.db"
    job = CountJob(600, str(fx), every=25, delay_s=0.005)
    job_id, worker = count_job_under_way(monkeypatch, store, library, workers, fx, job, "busy")
    lease = store.load_for_run(job_id).lease
    missing: list[float] = []
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("BEGIN")
        conn.execute("SELECT 1 FROM jobs WHERE id = %s FOR UPDATE", (job_id,))
        began = time.monotonic()
        held_at = None
        while time.monotonic() - began < 8.0:
            if worker.id not in store.live_owners():
                missing.append(time.monotonic() - began)
            if held_at is None and time.monotonic() - began >= 2.0:
                held_at = done_items(fx)  # its next write waits by now
            time.sleep(0.1)
        # The lock did hold the job up (else this test would prove nothing).
        assert held_at is not None
        assert done_items(fx) - held_at <= 1
        conn.execute("ROLLBACK")
    assert not missing, f"the worker looked dead at {missing} s into the wait"
    wait_for("the job to complete", lambda: store.status(job_id) is JobStatus.COMPLETED)
    assert store.load_for_run(job_id).lease == lease  # never claimed again
    assert started_at(fx) == [0]
    assert done_items(fx) == 600
    assert worker.stop() == 0


def stop_inside_a_write(worker: Worker, url: str, name: str) -> None:
    """SIGSTOP ``worker`` while its job's session is inside a write
    transaction (the job's row locked in the server), its COMMIT not sent."""
    inside = (
        "SELECT pid FROM pg_stat_activity WHERE application_name = %s"
        " AND state = 'idle in transaction' AND backend_xid IS NOT NULL"
        " AND query NOT LIKE '%%workers%%'"
    )
    rng = random.Random(7)
    with psycopg.connect(url, autocommit=True) as conn:
        for _ in range(2000):
            worker.signal(signal.SIGSTOP)
            time.sleep(0.05)  # what it sent just before it stopped lands first
            caught = conn.execute(inside, (name,)).fetchall()
            if caught:
                time.sleep(0.2)
                if conn.execute(inside, (name,)).fetchall() == caught:
                    return
            worker.signal(signal.SIGCONT)
            time.sleep(rng.uniform(0, 0.05))
    pytest.fail("the worker was never caught inside a write")


def test_a_worker_stopped_inside_a_write_does_not_hold_its_job(
    monkeypatch: pytest.MonkeyPatch,
    library: Path,
    store: PostgresJobStore,
    pg_url: str,
    tmp_path: Path,
    workers: list[Worker],
) -> None:
    """A worker stopped (SIGSTOP) while its job's write transaction is open
    holds the job's row: the worker that takes the stale worker's job over
    would wait on it for as long as the stopped one sleeps. The server ends
    a session idle in a transaction for 30 s (phasekit/jobs/postgres/
    _connect.py: SESSION_SETTINGS), so the job moves on while the stopped
    worker still sleeps; woken, that one finds its write undone and its
    lease gone, and gives the job up without failing it."""
    fx = tmp_path / "effects.db"
    job = CountJob(4000, str(fx), every=25, delay_s=0.003)
    job_id, stalled = count_job_under_way(monkeypatch, store, library, workers, fx, job, "stalled")
    lease = store.load_for_run(job_id).lease
    stop_inside_a_write(stalled, pg_url, "stalled")
    other = start_worker(monkeypatch, library, pg_url, "other", "--stale-after", "2")
    workers.append(other)
    wait_for("the other worker to take the job over", lambda: owner_of(store, job_id) == other.id)
    assert stalled.proc.poll() is None  # still stopped all along
    assert store.load_for_run(job_id).lease > lease
    stalled.signal(signal.SIGCONT)
    wait_for("the stalled worker to give the job up", lambda: stalled.said(f"gave up job {job_id}"))
    wait_for("the job to complete", lambda: store.status(job_id) is JobStatus.COMPLETED)
    assert done_items(fx) == 4000
    starts = started_at(fx)
    assert starts[0] == 0
    assert all(at % 25 == 0 for at in starts[1:])
    assert [h.status for h in store.history(limit=None) if h.id == job_id] == [JobStatus.COMPLETED]
    # Its write was undone and tried again on a new session, where the
    # lease taken meanwhile refused it (or, the stop landing in its COMMIT,
    # the write's outcome was unknown and the run interrupted): the job
    # given up, not failed, not lost.
    assert not stalled.said(f"job {job_id} (test.count) failed"), "".join(stalled.lines)
    assert stalled.stop() == 0, "".join(stalled.lines)
    assert other.stop() == 0
