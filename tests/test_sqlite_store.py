"""The SQLite backend's own storage (jobs.db): what only it has, checked
through SQL where that is the point: checkpoint retention, damaged rows,
the stored progress format, migrations of old files, a newer file refused,
integrity after SIGKILL mid-write, job definitions. What every backend
must do is in test_backend_contract.py."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest

from phasekit.errors import JobStoreError
from phasekit.jobs import (
    SCHEMA_VERSION,
    CorruptStateError,
    Job,
    JobDefinitionError,
    JobRegistry,
    JobStatus,
    JobStore,
    UnknownJobError,
    job,
    transient,
)
from phasekit.jobs.sqlite import _claims
from phasekit.jobs.sqlite._schema import MIGRATIONS


def test_create_list_and_status(store):
    low = store.create_job("noop", {"n": 1})
    high = store.create_job("noop", {"n": 2}, priority=5)
    assert [r.id for r in store.list_jobs()] == [high, low]
    store.set_status(low, JobStatus.RUNNING)
    store.set_status(low, JobStatus.FAILED, error="boom")
    record = store.get_job(low)
    assert (record.status, record.error, record.input()) == (JobStatus.FAILED, "boom", {"n": 1})
    assert [r.id for r in store.list_jobs(JobStatus.QUEUED)] == [high]
    with pytest.raises(KeyError):
        store.set_status("missing", JobStatus.RUNNING)


def test_checkpoints_are_sequenced_and_pruned(store):
    job_id = store.create_job("noop", {})
    assert store.load_checkpoint(job_id) is None
    for i in range(5):
        assert store.save_checkpoint(job_id, {"i": i, "blob": b"x" * 10_000}) == i + 1
    assert store.load_checkpoint(job_id) == (5, {"i": 4, "blob": b"x" * 10_000})
    kept = store._read("SELECT seq FROM job_checkpoints WHERE job_id = ? ORDER BY seq", (job_id,))
    assert [r[0] for r in kept] == [4, 5]


def test_progress_is_stored_without_its_unset_fields(store, tmp_path):
    from jobs_fixture import CountJob
    from phasekit.jobs import execute
    from phasekit.jobs._codec import decode

    job = CountJob(n=120, effects_db=str(tmp_path / "fx.db"))
    job_id = store.create_job(job.job_name, job.to_state())
    assert execute(store, job_id) is JobStatus.COMPLETED
    # Stored without the fields it leaves unset; read back with them as None.
    (blob,) = store._read("SELECT progress FROM jobs WHERE id = ?", (job_id,))[0]
    stored = decode(blob)
    assert None not in stored.values()
    assert {"done", "total", "explicit_percent"} <= stored.keys()
    progress = store.progress(job_id)
    assert (progress.percent, progress.message, progress.phase) == (100.0, None, None)


def test_corrupt_checkpoint_is_a_clear_error(store):
    job_id = store.create_job("noop", {})
    store.save_checkpoint(job_id, {"ok": True})
    with store._write() as db:
        db.execute("UPDATE job_checkpoints SET data = ? WHERE job_id = ?", (b"\xc1junk", job_id))
    with pytest.raises(CorruptStateError, match="cannot decode"):
        store.load_checkpoint(job_id)


def test_unstorable_state_is_refused_up_front(store):
    with pytest.raises(TypeError, match="cannot store"):
        store.create_job("noop", {"when": object()})


def test_old_jobs_db_is_upgraded_in_place(tmp_path):
    path = tmp_path / "jobs.db"
    conn = sqlite3.connect(path)
    conn.executescript(MIGRATIONS[1] + "\nPRAGMA user_version = 1;")
    conn.execute(
        "INSERT INTO jobs (id, name, state, status, priority, created_at, updated_at)"
        " VALUES ('old', 'noop', ?, 'paused', 3, 1.0, 1.0)",
        (b"\x82\xa1v\x01\xa1d\x81\xa1n\x07",),  # {"v": 1, "d": {"n": 7}}
    )
    conn.commit()
    conn.close()
    with JobStore(path) as store:
        record = store.get_job("old")
        assert (record.status, record.priority, record.input()) == (JobStatus.PAUSED, 3, {"n": 7})
        assert record.depends_on is None
        version = store._read("PRAGMA user_version")[0][0]
        assert version == SCHEMA_VERSION == 12
        new = store.create_job("noop", {}, depends_on="old", run_every_s=60.0)
        assert store.get_job(new).depends_on == "old"
        # v3: child keys, schedule ids, fuller history
        assert (record.child_key, record.schedule_id) == (None, None)
        assert store.get_job(new).schedule_id == new
        # v8: conflict keys and failure tracebacks
        assert record.conflict_key is None
        assert store.traceback("old") is None
        child, created = store.create_child("old", "k", "noop", {})
        assert created
        assert store.create_child("old", "k", "noop", {}) == (child, False)
        store.finish(child, JobStatus.COMPLETED, warnings=["w"])
        (entry,) = store.history()
        assert (entry.id, entry.parent_id, entry.warning_count) == (child, "old", 1)
        # v4: the next scheduled start is found through its own index
        plan = store._read("EXPLAIN QUERY PLAN " + _claims.NEXT_DUE, (0.0,))
        assert any("jobs_next_run" in str(row) for row in plan)
        columns = {r[1] for r in store._read("PRAGMA table_info(job_history)")}
        assert {"parent_id", "schedule_id", "started_at", "warning_count"} <= columns
        # v7: a busy worker's history rows are written later, listed meanwhile
        store.finish_and_claim(new, JobStatus.FAILED, {"errors": [{"message": "e"}]}, [], "o")
        assert [(h.id, h.error_count) for h in store.history()] == [(new, 1), (child, 0)]
        assert store._read("SELECT COUNT(*) FROM job_history")[0][0] == 1


def test_newer_jobs_db_is_refused(tmp_path):
    path = tmp_path / "jobs.db"
    JobStore(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(JobStoreError, match="newer than this phasekit"):
        JobStore(path)


WRITER = textwrap.dedent(
    """
    import sys
    from phasekit.jobs import JobStore
    store = JobStore(sys.argv[1])
    job_id = sys.argv[2]
    i = 1
    store.save_checkpoint(job_id, {"i": i, "pad": b"p" * 20_000})
    # Ready once this process has written one: a kill that comes before
    # the loop's first write (on a loaded machine) still finds progress.
    print("ready", flush=True)
    while True:
        i += 1
        store.save_checkpoint(job_id, {"i": i, "pad": b"p" * 20_000})
    """
)


def test_kill_during_checkpoint_writes_keeps_the_last_one(tmp_path):
    """SIGKILL a process that checkpoints in a loop; the newest checkpoint is whole."""
    path = tmp_path / "jobs.db"
    with JobStore(path) as store:
        job_id = store.create_job("noop", {})
    last_seq = 0
    for trial in range(6):
        with subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), job_id], stdout=subprocess.PIPE, text=True
        ) as proc:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready"
            time.sleep(0.05 + 0.03 * trial)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        with JobStore(path) as store:
            loaded = store.load_checkpoint(job_id)
            assert loaded is not None
            seq, data = loaded
            assert seq > last_seq, "no checkpoint was written, or one went backwards"
            assert data["pad"] == b"p" * 20_000
            assert store._read("PRAGMA integrity_check")[0][0] == "ok"
        last_seq = seq


READER = textwrap.dedent(
    """
    import sys, time
    from phasekit.jobs import JobStore, JobStatus
    store = JobStore(sys.argv[1])
    end = time.time() + 1.5
    n = 0
    while time.time() < end:
        store.list_jobs()
        store.set_status(sys.argv[2], JobStatus.PAUSED)
        store.set_status(sys.argv[2], JobStatus.QUEUED)
        n += 1
    print(n)
    """
)


def test_two_processes_never_see_database_locked(tmp_path):
    path = tmp_path / "jobs.db"
    with JobStore(path) as store:
        busy = store.create_job("noop", {})
        other = store.create_job("noop", {})
    with subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), busy], stdout=subprocess.PIPE, text=True
    ) as writer:
        try:
            assert writer.stdout is not None
            writer.stdout.readline()
            reader = subprocess.run(
                [sys.executable, "-c", READER, str(path), other],
                capture_output=True,
                text=True,
                check=False,
            )
        finally:
            writer.kill()
            writer.wait()
    assert reader.returncode == 0, reader.stderr
    assert int(reader.stdout) > 10


def test_job_definitions_and_registry():
    registry = JobRegistry()

    @job("copy-files", registry=registry)
    class CopyFiles(Job):
        sources: list[str]
        overwrite: bool = False
        cache: dict[str, int] = transient(default_factory=dict)

    j = CopyFiles(["a", "b"], cache={"x": 1})
    assert j.to_state() == {"sources": ["a", "b"], "overwrite": False}
    again = registry.get("copy-files").from_state(j.to_state())
    assert again == CopyFiles(["a", "b"])
    assert "copy-files" in registry

    with pytest.raises(JobDefinitionError, match="already registered"):

        @job("copy-files", registry=registry)
        class Other(Job):
            x: int = 0

    with pytest.raises(UnknownJobError, match="no job named 'nope'"):
        registry.get("nope")
    with pytest.raises(CorruptStateError, match="unknown fields"):
        CopyFiles.from_state({"sources": [], "bogus": 1})
    with pytest.raises(CorruptStateError, match="does not fit"):
        CopyFiles.from_state({})
    with pytest.raises(JobDefinitionError, match="needs a default"):
        transient()
    with pytest.raises(JobDefinitionError, match="letters"):
        registry.register("bad name!", CopyFiles)


@pytest.mark.parametrize("refused", ["checkpoint", "end"])
def test_a_write_jobs_db_refuses_for_good_fails_the_job_once(tmp_path, refused):
    """jobs.db refuses one job's checkpoints, or its end, every time (a
    trigger here; a constraint or a value too big in life): that is not the
    store away for now (JobStoreUnavailable), so the job fails with the
    store's message, once, instead of being queued again and redoing its
    work forever; the manager goes on with the other jobs."""
    import anyio

    from jobs_fixture import CountJob, effects
    from phasekit.jobs import JobManager

    db, fx = tmp_path / "jobs.db", tmp_path / "effects.db"
    with JobStore(db) as store:
        doomed = store.create_job("test.count", CountJob(40, str(fx), every=5).to_state())
    conn = sqlite3.connect(db)
    if refused == "checkpoint":
        when = f"BEFORE INSERT ON job_checkpoints WHEN NEW.job_id = '{doomed}'"
    else:
        when = (
            f"BEFORE UPDATE OF status ON jobs WHEN NEW.id = '{doomed}' AND NEW.status = 'completed'"
        )
    conn.execute(f"CREATE TRIGGER refuse {when} BEGIN SELECT RAISE(ABORT, 'row refused'); END")
    conn.commit()
    conn.close()

    async def main() -> tuple[JobStatus, JobStatus]:
        async with JobManager(db, max_concurrency=1) as manager:
            with anyio.fail_after(120):
                failed = await manager.handle(doomed).wait()
                other = await manager.dispatch(CountJob(10, str(tmp_path / "other.db")))
                return failed, await other.wait()

    failed, other = anyio.run(main)
    assert (failed, other) == (JobStatus.FAILED, JobStatus.COMPLETED)
    with JobStore(db) as store:
        record = store.get_job(doomed)
        assert record.status is JobStatus.FAILED
        assert "row refused" in (record.error or "")
    conn = effects(str(fx))
    try:  # ran once: a run started again would log a second start
        assert [row[0] for row in conn.execute("SELECT at FROM starts")] == [0]
    finally:
        conn.close()
