"""The SQLite backend's job history (jobs.db's job_history): written with
the finishing status (or deferred by a busy worker and written in batches,
on close, after a crash), listed newest first, the output stored once,
pruned by age (jobs and checkpoints too) by the store and the manager. Ages
are set through SQL (``backdate``). What every backend must do is in
test_backend_contract.py."""

from __future__ import annotations

import time

import anyio
import pytest

from jobs_fixture import CountJob, RecordJob
from phasekit.errors import InvalidInputError, JobStoreError
from phasekit.jobs import HistoryRecord, JobManager, JobStatus, JobStore, run_direct
from phasekit.jobs import _manager as manager_module
from phasekit.jobs.sqlite import _store as store_module

DAY = 24 * 3600.0


def backdate(store: JobStore, job_id: str, days: float) -> None:
    """Pretend ``job_id`` finished ``days`` ago."""
    when = time.time() - days * DAY
    with store._write() as db:
        db.execute("UPDATE jobs SET finished_at = ? WHERE id = ?", (when, job_id))
        db.execute("UPDATE job_history SET finished_at = ? WHERE id = ?", (when, job_id))


def test_an_output_is_stored_once_and_listed_with_its_history(store):
    """jobs.db keeps a job's output in its row only (a duplicate search's
    is megabytes); the history listing reads it from there, whether the
    summary was copied at once or in a later batch, and a row an earlier
    version wrote with its own copy still lists it."""
    big = {"groups": [f"/photos/caf\udce9 {i}.jpg" for i in range(20_000)]}
    a = store.create_job("alpha", {})
    store.set_status(a, JobStatus.RUNNING)
    store.finish(a, JobStatus.COMPLETED, output=big)
    b = store.create_job("beta", {})
    store.finish_and_claim(b, JobStatus.COMPLETED, {"output": [1, 2]}, [], "owner")
    assert {h.id: h.output() for h in store.history()} == {a: big, b: [1, 2]}
    store.flush_history()
    with store._write() as db:
        copies = db.execute("SELECT count(*) FROM job_history WHERE output IS NOT NULL")
        assert copies.fetchone() == (0,)
        assert db.execute("SELECT count(*) FROM job_history").fetchone() == (2,)
        # As an earlier version left it: a copy in the history row only.
        db.execute(
            "UPDATE job_history SET output = (SELECT output FROM jobs WHERE id = ?) WHERE id = ?",
            (b, b),
        )
        db.execute("UPDATE jobs SET output = NULL WHERE id = ?", (b,))
    assert {h.id: h.output() for h in store.history()} == {a: big, b: [1, 2]}


def test_a_finished_job_set_going_again_keeps_its_history_output(store):
    """The history lists the output of the run it stands for, even when the
    job's row is later set back to running and given another end."""
    job_id = store.create_job("alpha", {})
    store.set_status(job_id, JobStatus.RUNNING)
    store.finish(job_id, JobStatus.COMPLETED, output={"count": 10})
    store.set_status(job_id, JobStatus.RUNNING)
    store.finish(job_id, JobStatus.PAUSED)
    assert store.outcome(job_id)["output"] is None
    assert [(h.status, h.output()) for h in store.history()] == [
        (JobStatus.COMPLETED, {"count": 10})
    ]
    # Deferred by a busy worker, the same.
    other = store.create_job("alpha", {})
    store.finish_and_claim(other, JobStatus.COMPLETED, {"output": "first"}, [], "owner")
    store.set_status(other, JobStatus.QUEUED)
    store.finish(other, JobStatus.PAUSED)
    assert {h.id: h.output() for h in store.history()}[other] == "first"


def test_finishing_writes_history_newest_first(store):
    a = store.create_job("alpha", {})
    store.set_status(a, JobStatus.RUNNING)
    store.finish(a, JobStatus.PAUSED)
    assert store.history() == []  # paused is not finished
    store.finish(
        a,
        JobStatus.COMPLETED_WITH_ERRORS,
        output={"n": 3},
        warnings=["w1", "w2"],
        errors=[{"message": "e"}],
        metrics={"items": 3},
    )
    b = store.create_job("beta", {})
    store.set_status(b, JobStatus.FAILED, error="boom")
    c = store.create_job("alpha", {})
    store.finish(c, JobStatus.CANCELLED)

    history = store.history()
    assert [h.id for h in history] == [c, b, a]
    entry = history[-1]
    assert isinstance(entry, HistoryRecord)
    assert (entry.name, entry.status, entry.output(), entry.metrics()) == (
        "alpha",
        JobStatus.COMPLETED_WITH_ERRORS,
        {"n": 3},
        {"items": 3},
    )
    assert (entry.warning_count, entry.error_count) == (2, 1)
    assert entry.started_at is not None
    assert entry.started_at <= entry.finished_at
    assert (history[1].error, history[1].output()) == ("boom", None)
    assert [h.id for h in store.history(limit=2)] == [c, b]
    assert [h.id for h in store.history(name="alpha")] == [c, a]
    backdate(store, a, 2)
    assert [h.id for h in store.history(since=time.time() - DAY)] == [c, b]
    assert store.history(limit=0) == []
    with pytest.raises(ValueError, match="limit"):
        store.history(limit=-1)


def test_history_row_and_status_change_commit_together(store):
    job_id = store.create_job("alpha", {})
    with store._write() as db:
        db.execute("DROP TABLE job_history")
    with pytest.raises(JobStoreError, match="job_history"):
        store.finish(job_id, JobStatus.COMPLETED, output="lost")
    record = store.get_job(job_id)
    assert record.status is JobStatus.QUEUED  # rolled back with the failed insert
    assert store.outcome(job_id)["output"] is None


def finish_busy(store: JobStore, job_id: str, status: JobStatus, **end: object) -> None:
    """Finish ``job_id`` as a busy worker does (its history row may be deferred)."""
    store.finish_and_claim(job_id, status, dict(end), [], "owner")


def history_rows(store: JobStore) -> set[str]:
    """Ids of the rows written to job_history (pending ones excluded)."""
    return {r[0] for r in store._read("SELECT id FROM job_history")}


def test_history_deferred_by_a_busy_worker_is_listed_at_once(store, tmp_path):
    ids = [store.create_job("alpha", {}) for _ in range(3)]
    finish_busy(store, ids[0], JobStatus.COMPLETED, output=1, warnings=["w"])
    finish_busy(store, ids[1], JobStatus.FAILED, error="boom", errors=[{"message": "e"}])
    finish_busy(store, ids[2], JobStatus.PAUSED)  # not finished: no history
    assert history_rows(store) == set()  # deferred
    listed = store.history()
    assert [h.id for h in listed] == [ids[1], ids[0]]
    assert (listed[1].output(), listed[1].warning_count, listed[1].error_count) == (1, 1, 0)
    assert (listed[0].error, listed[0].warning_count, listed[0].error_count) == ("boom", 0, 1)
    assert [h.id for h in store.history(limit=1)] == [ids[1]]
    assert [h.id for h in store.history(name="beta")] == []
    # Another process sees them too.
    with JobStore(tmp_path / "jobs.db") as other:
        assert [h.id for h in other.history()] == [ids[1], ids[0]]
    # A job finished alone writes its row, and those still waiting, at once.
    alone = store.create_job("alpha", {})
    store.finish(alone, JobStatus.COMPLETED)
    assert history_rows(store) == {ids[0], ids[1], alone}
    assert store.history() == [*store.history(limit=1), *listed]


def test_deferred_history_is_written_in_batches_and_on_close(tmp_path, monkeypatch):
    monkeypatch.setattr(store_module, "HISTORY_BATCH", 3)
    with JobStore(tmp_path / "jobs.db") as store:
        ids = [store.create_job("alpha", {}) for _ in range(4)]
        for job_id in ids:
            finish_busy(store, job_id, JobStatus.COMPLETED)
        assert history_rows(store) == set(ids[:3])
    with JobStore(tmp_path / "jobs.db") as store:
        assert history_rows(store) == set(ids)
        assert {h.id for h in store.history()} == set(ids)


def test_deferred_history_survives_a_crash(tmp_path):
    store = JobStore(tmp_path / "jobs.db")
    job_id = store.create_job("alpha", {})
    finish_busy(store, job_id, JobStatus.COMPLETED, warnings=["w", "w"])
    store._conn.close()  # dies without writing the row
    with JobStore(tmp_path / "jobs.db") as store:
        assert history_rows(store) == set()
        assert [(h.id, h.warning_count) for h in store.history()] == [(job_id, 2)]
        store.flush_history()
        assert history_rows(store) == {job_id}
        assert [(h.id, h.warning_count) for h in store.history()] == [(job_id, 2)]


def test_deferred_history_keeps_the_summary_when_the_job_changes(store):
    requeued, cancelled = store.create_job("alpha", {}), store.create_job("alpha", {})
    finish_busy(store, requeued, JobStatus.COMPLETED, output="first")
    finish_busy(store, cancelled, JobStatus.COMPLETED, output="done")
    store.set_status(requeued, JobStatus.QUEUED)  # leaves its finished state
    store.set_status(cancelled, JobStatus.CANCELLED)  # finished again: replaces
    entries = {h.id: h for h in store.history()}
    assert (entries[requeued].status, entries[requeued].output()) == (
        JobStatus.COMPLETED,
        "first",
    )
    assert entries[cancelled].status is JobStatus.CANCELLED
    assert history_rows(store) == {requeued, cancelled}


def test_prune_writes_deferred_history_first(store):
    old, recent = store.create_job("alpha", {}), store.create_job("alpha", {})
    finish_busy(store, old, JobStatus.COMPLETED)
    finish_busy(store, recent, JobStatus.COMPLETED)
    backdate(store, old, 40)
    assert store.prune_history(30 * DAY) == (1, 1)
    assert [h.id for h in store.history()] == [recent]
    assert history_rows(store) == {recent}


def test_prune_removes_old_history_jobs_and_checkpoints(store):
    old = store.create_job("alpha", {})
    store.save_checkpoint(old, {"i": 1})
    store.finish(old, JobStatus.COMPLETED)
    recent = store.create_job("alpha", {})
    store.finish(recent, JobStatus.FAILED)
    unfinished = store.create_job("alpha", {})
    store.set_status(unfinished, JobStatus.PAUSED)
    parent = store.create_job("alpha", {})
    child, _ = store.create_child(parent, "k", "alpha", {})
    store.finish(parent, JobStatus.COMPLETED)  # its child is still queued
    dependency = store.create_job("alpha", {})
    store.finish(dependency, JobStatus.COMPLETED)
    dependent = store.create_job("alpha", {}, depends_on=dependency)
    for job_id in (old, parent, dependency):
        backdate(store, job_id, 40)
    backdate(store, unfinished, 40)

    assert store.prune_history(30 * DAY) == (3, 1)
    remaining = {r.id for r in store.list_jobs()}
    assert remaining == {recent, unfinished, parent, child, dependency, dependent}
    assert [h.id for h in store.history()] == [recent]
    assert store._read("SELECT COUNT(*) FROM job_checkpoints")[0][0] == 0

    # Once the child is gone too, the parent goes with it (children first).
    store.finish(child, JobStatus.COMPLETED)
    store.finish(dependent, JobStatus.COMPLETED)
    for job_id in (child, dependent):
        backdate(store, job_id, 40)
    assert store.prune_history(30 * DAY) == (2, 4)
    assert {r.id for r in store.list_jobs()} == {recent, unfinished}
    with pytest.raises(ValueError, match="older_than_s"):
        store.prune_history(-1)


@pytest.mark.anyio
async def test_manager_prunes_on_open_unless_disabled(tmp_path):
    db = tmp_path / "jobs.db"
    with JobStore(db) as store:
        old = store.create_job("test.record", {})
        store.finish(old, JobStatus.COMPLETED)
        backdate(store, old, 31)
    async with JobManager(db, history_retention_s=None) as manager:
        assert [h.id for h in manager.store.history()] == [old]
    async with JobManager(db, history_retention_s=40 * DAY) as manager:
        assert [h.id for h in manager.store.history()] == [old]
    async with JobManager(db) as manager:  # default: 30 days
        assert manager.store.history() == []
        assert manager.store.list_jobs() == []
    with pytest.raises(ValueError, match="history_retention_s"):
        JobManager(db, history_retention_s=-1)


@pytest.mark.anyio
async def test_manager_prunes_while_running(tmp_path, monkeypatch):
    monkeypatch.setattr(manager_module, "PRUNE_EVERY_S", 0.0)
    async with JobManager(tmp_path / "jobs.db", history_retention_s=DAY) as manager:
        handle = await manager.dispatch(RecordJob("r", str(tmp_path / "log.db"), duration_s=0))
        with anyio.fail_after(20):
            assert await handle.wait() is JobStatus.COMPLETED
            assert [h.id for h in manager.store.history()] == [handle.id]
            backdate(manager.store, handle.id, 2)
            while manager.store.history():
                await anyio.sleep(0.01)
        assert manager.store.list_jobs() == []


def test_old_history_is_pruned_once_the_run_stopped(tmp_path):
    """``history_retention_s`` prunes what finished before it, after the job
    ran (not before: the run starts sooner); the job just run is kept."""
    with JobStore(tmp_path / "jobs.db") as store:
        old = run_direct(store, CountJob(3, str(tmp_path / "old.db"), every=5))
        backdate(store, old.id, 40)
        new = run_direct(
            store, CountJob(3, str(tmp_path / "new.db"), every=5), history_retention_s=DAY
        )
        assert new.status is JobStatus.COMPLETED
        assert [h.id for h in store.history()] == [new.id]
        assert [j.id for j in store.list_jobs()] == [new.id]
        # Pruning runs after the job: even a retention of 0 keeps the job
        # the run returns, which the caller reads next.
        now = run_direct(
            store, CountJob(3, str(tmp_path / "now.db"), every=5), history_retention_s=0
        )
        assert now.record.status is JobStatus.COMPLETED
        assert now.output() == {"count": 3}
        assert {h.id for h in store.history()} == {now.id}
        with pytest.raises(InvalidInputError, match="history_retention_s"):
            run_direct(store, CountJob(3, str(tmp_path / "bad.db")), history_retention_s=-1)
        assert {j.id for j in store.list_jobs()} == {now.id}  # refused before queueing
