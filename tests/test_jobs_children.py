"""Child jobs: idempotent spawn by key, waiting without holding a slot,
failed children reported, recursive cancel, resume after SIGKILL."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from typing import Any

import anyio
import pytest

from jobs_fixture import RUN_JOB, ParentJob, RecordJob, read_log, subprocess_env
from phasekit.jobs import (
    Job,
    JobCancelled,
    JobContext,
    JobControl,
    JobManager,
    JobRegistry,
    JobStatus,
    JobStore,
    UnknownJobError,
    execute,
    job,
)


@job("test.spawn_only")
class SpawnOnly(Job):
    """Spawns RecordJobs and returns without waiting for them."""

    tags: list[str]
    log_db: str

    def run(self, ctx: JobContext) -> Any:
        return [ctx.spawn_child(RecordJob(tag, self.log_db, duration_s=0.0)) for tag in self.tags]


def context(store: JobStore, control: JobControl | None = None) -> JobContext:
    parent = store.create_job("test.spawn_only", {"tags": [], "log_db": ""}, priority=4)
    return JobContext(parent, "test.spawn_only", store, control or JobControl())


def test_spawn_child_is_idempotent_by_key(store, tmp_path):
    ctx = context(store)
    log = str(tmp_path / "log.db")
    a = ctx.spawn_child(RecordJob("a", log))
    assert ctx.spawn_child(RecordJob("a", log)) == a  # same input, default key
    b = ctx.spawn_child(RecordJob("b", log), priority=9)
    assert b != a
    k1 = ctx.spawn_child(RecordJob("a", log), key="second-a")
    assert k1 not in (a, b)
    assert ctx.spawn_child(RecordJob("other input", log), key="second-a") == k1
    assert list(store.children(ctx.id)) == [a, b, k1]
    records = {i: store.get_job(i) for i in (a, b, k1)}
    assert {r.parent_id for r in records.values()} == {ctx.id}
    assert (records[a].priority, records[b].priority) == (4, 9)  # inherited, explicit
    assert records[k1].child_key == "second-a"
    assert str(records[a].child_key).startswith("test.record:")


def test_spawn_child_failures_are_clear(store, tmp_path):
    elsewhere = JobRegistry()

    @job("test.unregistered", registry=elsewhere)
    class Unregistered(Job):
        x: int = 0

    ctx = context(store)
    with pytest.raises(UnknownJobError, match=r"Unregistered.*not registered"):
        ctx.spawn_child(Unregistered())
    ctx.spawn_child(RecordJob("a", str(tmp_path / "log.db")), key="k")
    with pytest.raises(ValueError, match=r"already used by a 'test\.record' job"):
        ctx.spawn_child(SpawnOnly([], ""), key="k")
    cancelled = JobControl()
    cancelled.cancel()
    with pytest.raises(JobCancelled):
        context(store, cancelled).spawn_child(RecordJob("late", ""))
    assert len(store.list_jobs()) == 3  # two parents and the one keyed child


def test_execute_without_a_manager_only_queues_children(store, tmp_path):
    log = str(tmp_path / "log.db")
    parent = store.create_job("test.spawn_only", SpawnOnly(["x", "y"], log).to_state())
    assert execute(store, parent) is JobStatus.COMPLETED
    children = store.children(parent)
    assert list(children.values()) == [JobStatus.QUEUED, JobStatus.QUEUED]
    assert list(children) == store.outcome(parent)["output"]
    for child in children:  # someone has to run them
        assert execute(store, child) is JobStatus.COMPLETED
    assert [tag for tag, _, _ in read_log(log)] == ["x", "y"]


def test_store_cancel_cascades_to_waiting_descendants(store):
    parent = store.create_job("noop", {})
    queued, _ = store.create_child(parent, "a", "noop", {})
    running, _ = store.create_child(parent, "b", "noop", {})
    paused, _ = store.create_child(running, "c", "noop", {})
    store.set_status(running, JobStatus.RUNNING)
    store.set_status(paused, JobStatus.PAUSED)
    assert set(store.descendants(parent)) == {queued, running, paused}
    store.finish(parent, JobStatus.CANCELLED)
    statuses = {i: store.get_job(i).status for i in (queued, running, paused)}
    # A running child is stopped by whoever runs it (the manager signals it).
    assert statuses == {
        queued: JobStatus.CANCELLED,
        running: JobStatus.RUNNING,
        paused: JobStatus.CANCELLED,
    }
    assert store.descendants(parent) == [running]
    assert {h.id for h in store.history()} == {parent, queued, paused}
    with pytest.raises(KeyError):
        store.create_child("missing", "k", "noop", {})


def test_wait_for_children_honours_pause(store, tmp_path):
    log = str(tmp_path / "log.db")
    parent = store.create_job("test.parent", ParentJob(2, log).to_state())
    control = JobControl()
    control.pause()  # already asked to pause: the wait must not block
    assert execute(store, parent, control=control) is JobStatus.PAUSED
    assert len(store.children(parent)) == 2


def test_cancel_landing_after_the_last_poll_ends_a_waiting_parent_cancelled(
    store, tmp_path, monkeypatch
):
    """The interleaving behind a flaky recursive cancel: the parent looked
    for a stop request, then the cancel asked it to stop and ended its
    children, then the parent saw them all finished. It must end cancelled,
    not completed with cancelled children."""
    from phasekit.jobs import _context

    monkeypatch.setattr(_context, "REQUEST_POLL_S", 3600.0)  # the next poll is far off
    parent = store.create_job("test.spawn_only", {"tags": [], "log_db": ""})
    store.set_status(parent, JobStatus.RUNNING)
    ctx = JobContext(parent, "test.spawn_only", store, JobControl())
    child = ctx.spawn_child(RecordJob("a", str(tmp_path / "log.db")))
    ctx.check_interrupt()  # nothing asked yet
    # What manager.cancel does from another process: the parent first, then its children.
    assert store.request_stop(parent, "cancel")
    assert store.move(child, JobStatus.CANCELLED, only_from=(JobStatus.QUEUED,))
    with pytest.raises(JobCancelled):
        ctx.wait_for_children()


@pytest.mark.anyio
async def test_waiting_parents_hold_no_slot(tmp_path):
    """max_concurrency=1 and a per-type limit of 1: a tree of waiting parents
    still completes, and the leaves never overlap."""
    log = str(tmp_path / "log.db")
    async with JobManager(
        tmp_path / "jobs.db", max_concurrency=1, limits={"test.parent": 1}
    ) as manager:
        handle = await manager.dispatch(ParentJob(2, log, depth=2))
        with anyio.fail_after(20):
            assert await handle.wait() is JobStatus.COMPLETED
        assert manager.store.outcome(handle.id)["output"] == {"c0": "completed", "c1": "completed"}
        flat = await manager.dispatch(ParentJob(3, log, prefix="f"))
        with anyio.fail_after(20):
            assert await flat.wait() is JobStatus.COMPLETED
    rows = read_log(log)
    assert sorted(tag for tag, _, _ in rows) == ["c0.0", "c0.1", "c1.0", "c1.1", "f0", "f1", "f2"]
    for (_, _, end), (_, start, _) in itertools.pairwise(rows):
        assert start >= end, "two leaf jobs ran at once under max_concurrency=1"


@pytest.mark.anyio
async def test_failed_child_is_reported_not_raised(tmp_path):
    log = str(tmp_path / "log.db")
    async with JobManager(tmp_path / "jobs.db") as manager:
        handle = await manager.dispatch(ParentJob(3, log, fail_child=1))
        with anyio.fail_after(20):
            assert await handle.wait() is JobStatus.COMPLETED
        output = manager.store.outcome(handle.id)["output"]
    assert output == {"c0": "completed", "c1": "failed", "c2": "completed"}


@pytest.mark.anyio
async def test_cancel_parent_cancels_descendants(tmp_path):
    log = str(tmp_path / "log.db")
    async with JobManager(tmp_path / "jobs.db", max_concurrency=2) as manager:
        root = await manager.dispatch(ParentJob(2, log, depth=2, child_duration_s=30))
        with anyio.fail_after(20):
            while len(manager.store.list_jobs()) < 7:  # root, 2 children, 4 grandchildren
                await anyio.sleep(0.01)
            await root.cancel()
            assert await root.wait() is JobStatus.CANCELLED
            while not all(r.status.finished for r in manager.store.list_jobs()):
                await anyio.sleep(0.01)
        statuses = {r.status for r in manager.store.list_jobs()}
    assert statuses == {JobStatus.CANCELLED}
    assert read_log(log) == []


@pytest.mark.anyio
async def test_parent_killed_after_spawning_does_not_spawn_twice(tmp_path):
    db, log, hold = tmp_path / "jobs.db", str(tmp_path / "log.db"), tmp_path / "hold"
    hold.touch()
    with JobStore(db) as store:
        parent = store.create_job("test.parent", ParentJob(3, log, hold_path=str(hold)).to_state())
    with subprocess.Popen(
        [sys.executable, "-c", RUN_JOB, str(db), parent], env=subprocess_env()
    ) as proc:
        with JobStore(db) as store:
            while len(store.children(parent)) < 3:
                assert proc.poll() is None, "the parent process ended early"
                time.sleep(0.01)
            first = list(store.children(parent))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    hold.unlink()
    async with JobManager(db) as manager:
        with anyio.fail_after(20):
            assert await manager.handle(parent).wait() is JobStatus.COMPLETED
        assert list(manager.store.children(parent)) == first
        assert manager.store.outcome(parent)["output"] == {f"c{i}": "completed" for i in range(3)}
    assert sorted(tag for tag, _, _ in read_log(log)) == ["c0", "c1", "c2"]


@pytest.mark.anyio
async def test_pausing_a_waiting_parent_leaves_children_running(tmp_path):
    log = str(tmp_path / "log.db")
    async with JobManager(tmp_path / "jobs.db", max_concurrency=1) as manager:
        parent = await manager.dispatch(ParentJob(2, log, child_duration_s=0.2))
        with anyio.fail_after(20):
            while len(manager.store.children(parent.id)) < 2:
                await anyio.sleep(0.01)
            first = list(manager.store.children(parent.id))
            await parent.pause()
            assert await parent.wait() is JobStatus.PAUSED
            for child in first:  # the children are not paused with it
                assert await manager.handle(child).wait() is JobStatus.COMPLETED
            await parent.resume()
            assert await parent.wait() is JobStatus.COMPLETED
        assert list(manager.store.children(parent.id)) == first
