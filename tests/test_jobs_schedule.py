"""Interval schedules: due filter, next occurrence on finish (missed runs
skipped), the manager repeating a job, cancel ending the schedule."""

from __future__ import annotations

import math
import time

import anyio
import pytest

from jobs_fixture import RecordJob
from phasekit.jobs import JobManager, JobStatus, JobStore
from phasekit.jobs._schedule import next_run


def test_next_run_skips_missed_slots():
    assert next_run(100.0, 10.0, now=105.0) == 110.0
    assert next_run(100.0, 10.0, now=100.0) == 110.0
    assert next_run(100.0, 10.0, now=110.0) == 120.0  # exactly on a slot: the next one
    assert next_run(100.0, 10.0, now=137.5) == 140.0  # three missed, not piled up
    assert next_run(100.0, 10.0, now=50.0) == 110.0  # planned in the future: one step
    assert next_run(0.0, 0.1, now=0.3) > 0.3


def test_store_queues_the_next_occurrence_when_one_ends(store):
    now = time.time()
    first = store.create_job("noop", {"n": 1}, priority=3, run_every_s=10.0, next_run_at=now - 35)
    store.create_job("noop", {"n": 2}, run_every_s=10.0, next_run_at=now + 3600)
    oneoff = store.create_job("noop", {"n": 3})
    assert [q[0] for q in store.ready(limit=100)] == [first, oneoff]  # `later` is not due
    assert store.next_due(after=now) == pytest.approx(now + 3600)

    store.set_status(first, JobStatus.RUNNING)
    store.finish(first, JobStatus.COMPLETED)
    _, second = store.occurrences(first)
    assert (second.name, second.input(), second.priority) == ("noop", {"n": 1}, 3)
    assert (second.run_every_s, second.schedule_id, second.status) == (10.0, first, "queued")
    assert second.next_run_at is not None
    assert time.time() < second.next_run_at <= time.time() + 10
    assert math.isclose((second.next_run_at - (now - 35)) % 10.0, 0.0, abs_tol=1e-6)
    assert second.id not in [q[0] for q in store.ready(limit=100)]

    store.finish(second.id, JobStatus.FAILED, error="boom")  # failures repeat too
    third = store.occurrences(first)[-1]
    assert third.next_run_at == pytest.approx(second.next_run_at + 10.0)
    store.finish(third.id, JobStatus.CANCELLED)  # cancel ends the schedule
    assert len(store.occurrences(first)) == 3
    store.finish(third.id, JobStatus.FAILED)  # a late second ending adds nothing
    assert len(store.occurrences(first)) == 3

    store.finish(oneoff, JobStatus.COMPLETED)
    assert store.get_job(oneoff).schedule_id is None
    assert len(store.list_jobs()) == 5


@pytest.mark.anyio
@pytest.mark.parametrize("every", [0, -1.0, math.nan, math.inf, "5"])
async def test_bad_every_is_refused(tmp_path, every):
    async with JobManager(tmp_path / "jobs.db") as manager:
        with pytest.raises(ValueError, match="every must be"):
            await manager.dispatch(RecordJob("x", str(tmp_path / "log.db")), every=every)
        assert manager.store.list_jobs() == []
    with JobStore(tmp_path / "jobs.db") as store, pytest.raises(ValueError, match="every must be"):
        store.create_job("noop", {}, run_every_s=every)


@pytest.mark.anyio
async def test_scheduled_job_repeats_until_cancelled(tmp_path):
    log = str(tmp_path / "log.db")
    async with JobManager(tmp_path / "jobs.db") as manager:
        handle = await manager.dispatch(RecordJob("tick", log, duration_s=0.0), every=0.1)
        with anyio.fail_after(20):
            assert await handle.wait() is JobStatus.COMPLETED
            while sum(o.status.finished for o in manager.store.occurrences(handle.id)) < 3:
                await anyio.sleep(0.01)
            await handle.cancel()  # the first occurrence is long done: ends the schedule
        occurrences = manager.store.occurrences(handle.id)
        assert {o.status for o in occurrences} <= {JobStatus.COMPLETED, JobStatus.CANCELLED}
        planned = [o.next_run_at for o in occurrences]
        assert all(p is not None for p in planned)
        for p in planned[1:]:
            steps = (p - planned[0]) / 0.1
            assert round(steps) >= 1
            assert steps == pytest.approx(round(steps), abs=1e-4)
        await anyio.sleep(0.3)
        assert len(manager.store.occurrences(handle.id)) == len(occurrences)


@pytest.mark.anyio
async def test_job_scheduled_later_waits_and_cancel_stops_it(tmp_path):
    log = str(tmp_path / "log.db")
    async with JobManager(tmp_path / "jobs.db", max_concurrency=1) as manager:
        later = await manager.dispatch(
            RecordJob("later", log), every=60, first_at=time.time() + 3600, priority=10
        )
        now = await manager.dispatch(RecordJob("now", log, duration_s=0.0))
        with anyio.fail_after(20):
            assert await now.wait() is JobStatus.COMPLETED
        assert later.status is JobStatus.QUEUED
        await later.cancel()
        assert later.status is JobStatus.CANCELLED
        assert len(manager.store.occurrences(later.id)) == 1
