"""JobManager under asyncio and trio: dispatch, updates, pause/resume/cancel,
priorities, limits, dependencies, recovery after a crash."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

from backend_damage import corrupt_checkpoint
from jobs_fixture import CountJob, RecordJob, effects, read_log, subprocess_env
from phasekit.errors import JobStoreUnavailable
from phasekit.jobs import JobManager, JobStatus, JobStore

pytestmark = pytest.mark.anyio
TESTS = Path(__file__).resolve().parent


async def test_dispatch_wait_and_updates(tmp_path):
    async with JobManager(tmp_path / "jobs.db") as manager:
        handle = await manager.dispatch(
            CountJob(n=300, effects_db=str(tmp_path / "fx.db"), delay_s=0.001)
        )
        seen = [u async for u in handle.updates()]
        assert seen[-1].status is JobStatus.COMPLETED
        assert any(u.status is JobStatus.RUNNING and u.progress for u in seen)
        assert await handle.wait() is JobStatus.COMPLETED
        assert manager.store.outcome(handle.id)["output"] == {"count": 300}


async def test_pause_resume_cancel(tmp_path):
    log = str(tmp_path / "log.db")
    async with JobManager(tmp_path / "jobs.db") as manager:
        handle = await manager.dispatch(RecordJob("a", log, duration_s=0.3))
        while handle.status is not JobStatus.RUNNING:
            await _tick()
        await handle.pause()
        assert await handle.wait() is JobStatus.PAUSED
        await handle.resume()
        assert await handle.wait() is JobStatus.COMPLETED

        other = await manager.dispatch(RecordJob("b", log, duration_s=5))
        while other.status is not JobStatus.RUNNING:
            await _tick()
        await other.cancel()
        assert await other.wait() is JobStatus.CANCELLED
        assert manager.store.get_job(other.id).input()["tag"] == "b"  # record kept


async def test_priorities_and_global_limit(tmp_path):
    log = str(tmp_path / "log.db")
    async with JobManager(tmp_path / "jobs.db", max_concurrency=1) as manager:
        blocker = await manager.dispatch(RecordJob("blocker", log, duration_s=0.2))
        while blocker.status is not JobStatus.RUNNING:
            await _tick()
        low = await manager.dispatch(RecordJob("low", log, duration_s=0.01), priority=0)
        high = await manager.dispatch(RecordJob("high", log, duration_s=0.01), priority=10)
        for h in (blocker, low, high):
            assert await h.wait() is JobStatus.COMPLETED
    assert [tag for tag, _, _ in read_log(log)] == ["blocker", "high", "low"]


async def test_per_type_limit_never_overlaps(tmp_path):
    log = str(tmp_path / "log.db")
    async with JobManager(
        tmp_path / "jobs.db", max_concurrency=4, limits={"test.record": 1}
    ) as manager:
        handles = [
            await manager.dispatch(RecordJob(f"r{i}", log, duration_s=0.05)) for i in range(4)
        ]
        for h in handles:
            assert await h.wait() is JobStatus.COMPLETED
    rows = read_log(log)
    assert len(rows) == 4
    for (_, _, end), (_, start, _) in itertools.pairwise(rows):
        assert start >= end, "two jobs of a type limited to 1 ran at once"


async def test_dependencies(tmp_path):
    log = str(tmp_path / "log.db")
    async with JobManager(tmp_path / "jobs.db", max_concurrency=2) as manager:
        first = await manager.dispatch(RecordJob("first", log, duration_s=0.1))
        second = await manager.dispatch(RecordJob("second", log, duration_s=0.01), after=first)
        assert await second.wait() is JobStatus.COMPLETED
        broken = await manager.dispatch(RecordJob("broken", log, fail=True, duration_s=0.01))
        never = await manager.dispatch(RecordJob("never", log), after=broken)
        assert await never.wait() is JobStatus.FAILED
        assert manager.store.get_job(never.id).error == f"dependency {broken.id} failed"
    rows = read_log(log)
    assert [tag for tag, _, _ in rows] == ["first", "second"]
    assert rows[1][1] >= rows[0][2]


async def test_paused_stays_paused_and_interrupted_resumes(tmp_path):
    db, fx = tmp_path / "jobs.db", str(tmp_path / "fx.db")
    async with JobManager(db) as manager:
        paused = await manager.dispatch(CountJob(n=10_000, effects_db=fx, delay_s=0.0005))
        while paused.status is not JobStatus.RUNNING:
            await _tick()
        await paused.pause()
        assert await paused.wait() is JobStatus.PAUSED
        interrupted = await manager.dispatch(
            CountJob(n=2000, effects_db=str(tmp_path / "fx2.db"), delay_s=0.0005)
        )
        while interrupted.status is not JobStatus.RUNNING:
            await _tick()
    # Shutting the manager down interrupts, it does not pause: the job is queued again.
    with JobStore(db) as store:
        assert store.get_job(paused.id).status is JobStatus.PAUSED
        assert store.get_job(interrupted.id).status in (JobStatus.QUEUED, JobStatus.COMPLETED)
    async with JobManager(db) as manager:
        assert await manager.handle(interrupted.id).wait() is JobStatus.COMPLETED
        assert manager.handle(paused.id).status is JobStatus.PAUSED


MANAGER = textwrap.dedent(
    """
    import sys
    import anyio
    from jobs_fixture import CountJob
    from phasekit.jobs import JobManager

    async def main():
        async with JobManager(sys.argv[1]) as manager:
            handle = await manager.dispatch(CountJob(n=3000, effects_db=sys.argv[2], every=25,
                                                     delay_s=0.0003))
            print(handle.id, flush=True)
            await handle.wait()

    anyio.run(main)
    """
)


async def test_sigkill_of_the_manager_process_then_reopen_resumes(tmp_path):
    db, fx = tmp_path / "jobs.db", str(tmp_path / "fx.db")
    env = subprocess_env()
    with subprocess.Popen(
        [sys.executable, "-c", MANAGER, str(db), fx], stdout=subprocess.PIPE, text=True, env=env
    ) as proc:
        assert proc.stdout is not None
        job_id = proc.stdout.readline().strip()
        time.sleep(0.4)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    with JobStore(db) as store:
        assert store.get_job(job_id).status is JobStatus.RUNNING  # died mid-run
        checkpoint = store.load_checkpoint(job_id)
    assert checkpoint is not None
    async with JobManager(db) as manager:
        assert await manager.handle(job_id).wait() is JobStatus.COMPLETED
    conn = effects(fx)
    assert dict(conn.execute("SELECT i, square FROM done")) == {i: i * i for i in range(3000)}
    assert [r[0] for r in conn.execute("SELECT at FROM starts")][-1] == checkpoint[1]["next"]
    conn.close()


async def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="max_concurrency"):
        JobManager(tmp_path / "jobs.db", max_concurrency=0)
    async with JobManager(tmp_path / "jobs.db") as manager:
        with pytest.raises(KeyError):
            manager.handle("nope")
        with pytest.raises(TypeError, match="cannot store"):
            await manager.dispatch(CountJob(n=1, effects_db=object()))  # type: ignore[arg-type]
        assert manager.jobs() == []  # nothing was queued


async def _tick() -> None:
    import anyio

    await anyio.sleep(0.01)


async def test_list_and_query_jobs_and_the_library_reaches_the_job(tmp_path):
    from phasekit.jobs import Job, JobContext, JobRegistry, job

    registry = JobRegistry()
    seen: list[object] = []

    @job("test.sees-library", registry=registry)
    class SeesLibrary(Job):
        def run(self, ctx: JobContext) -> None:
            seen.append(ctx.library)

    library = object()
    async with JobManager(tmp_path / "jobs.db", registry=registry, library=library) as manager:
        first = await manager.dispatch(SeesLibrary())
        assert await first.wait() is JobStatus.COMPLETED
        # Not due for an hour, so it is still queued when paused.
        paused = await manager.dispatch(SeesLibrary(), priority=5, first_at=time.time() + 3600)
        await paused.pause()
        assert [r.id for r in manager.jobs()] == [paused.id, first.id]  # dispatch order
        assert [r.id for r in manager.jobs(JobStatus.PAUSED)] == [paused.id]
        assert [r.id for r in manager.jobs(name="test.sees-library", limit=1)] == [paused.id]
        assert manager.jobs(name="nothing") == []
        with pytest.raises(ValueError, match="limit"):
            manager.jobs(limit=-1)
    assert seen == [library]


async def test_another_process_pauses_and_cancels_without_stealing(tmp_path):
    """A second manager on the same jobs.db leaves a live process's running
    job alone, pauses it through jobs.db, then resumes and finishes it here."""
    db, fx = tmp_path / "jobs.db", str(tmp_path / "fx.db")
    with subprocess.Popen(
        [sys.executable, "-c", MANAGER, str(db), fx],
        stdout=subprocess.PIPE,
        text=True,
        env=subprocess_env(),
    ) as proc:
        assert proc.stdout is not None
        job_id = proc.stdout.readline().strip()
        with JobStore(db) as store:
            while store.get_job(job_id).status is not JobStatus.RUNNING:
                time.sleep(0.01)
        async with JobManager(db) as manager:
            handle = manager.handle(job_id)
            assert handle.status is JobStatus.RUNNING  # not requeued: its owner lives
            await handle.pause()
            assert await handle.wait() is JobStatus.PAUSED
            assert proc.wait(timeout=30) == 0  # the other process saw it stop
            await handle.resume()
            assert await handle.wait() is JobStatus.COMPLETED
    conn = effects(fx)
    assert dict(conn.execute("SELECT i, square FROM done")) == {i: i * i for i in range(3000)}
    starts = [r[0] for r in conn.execute("SELECT at FROM starts")]
    conn.close()
    assert len(starts) == 2  # one run there, one resumed here: never two at once
    assert starts[0] == 0


async def test_a_job_whose_output_cannot_be_stored_fails_alone(tmp_path):
    from phasekit.jobs import Job, JobContext, JobRegistry, job

    registry = JobRegistry()

    @job("test.bad-output", registry=registry)
    class BadOutput(Job):
        def run(self, ctx: JobContext) -> object:
            return object()  # not msgpack-able

    @job("test.fine", registry=registry)
    class Fine(Job):
        def run(self, ctx: JobContext) -> int:
            return 1

    async with JobManager(tmp_path / "jobs.db", registry=registry, max_concurrency=1) as manager:
        bad = await manager.dispatch(BadOutput())
        fine = await manager.dispatch(Fine())
        assert await bad.wait() is JobStatus.FAILED
        assert "cannot store the job's end" in (manager.store.get_job(bad.id).error or "")
        assert await fine.wait() is JobStatus.COMPLETED


async def test_a_busy_worker_starts_each_job_from_its_claim(tmp_path):
    """A worker going from job to job gets the next job's input and checkpoint
    from the claim's own write: a resumed job resumes, a corrupt checkpoint
    fails that job only, a job of an unknown type is left queued (for a
    process that knows it) and the others go on past it."""
    db, fx = tmp_path / "jobs.db", str(tmp_path / "fx.db")
    with JobStore(db) as store:
        state = CountJob(n=10, effects_db=fx).to_state()
        ids = [
            # The fourth is of a type no module of this process knows.
            store.create_job("test.gone" if i == 3 else CountJob.job_name, state)
            for i in range(6)
        ]
        resumed, corrupt, unknown = ids[1], ids[2], ids[3]
        store.save_checkpoint(resumed, {"next": 7})
        store.save_checkpoint(corrupt, {"next": 5})
        corrupt_checkpoint(store, corrupt)
    async with JobManager(db, max_concurrency=1) as manager:
        statuses = [await manager.handle(job_id).wait() for job_id in ids if job_id != unknown]
        errors = {job_id: manager.store.get_job(job_id).error for job_id in ids}
        left = manager.handle(unknown).status
    assert (
        statuses
        == [JobStatus.COMPLETED, JobStatus.COMPLETED, JobStatus.FAILED] + [JobStatus.COMPLETED] * 2
    )
    assert "cannot start: cannot decode" in (errors[corrupt] or "")
    assert left is JobStatus.QUEUED
    assert errors[unknown] is None
    conn = effects(fx)
    starts = sorted(r[0] for r in conn.execute("SELECT at FROM starts"))
    conn.close()
    assert starts == [0, 0, 0, 7]  # the resumed job started from its checkpoint


@pytest.mark.anyio
async def test_a_manager_of_some_types_starts_the_oldest_of_them_first(tmp_path: Path) -> None:
    """A full page of jobs of other types at the head of the queue is left
    for other managers without skipping the oldest jobs of this one's types."""
    log = str(tmp_path / "log.db")
    fx = str(tmp_path / "fx.db")
    with JobStore(tmp_path / "jobs.db") as store:
        others = [store.create_job("test.count", CountJob(5, fx).to_state()) for _ in range(40)]
        for i in range(40):
            store.create_job("test.record", RecordJob(f"r{i:02}", log, duration_s=0).to_state())
    async with JobManager(tmp_path / "jobs.db", types=["test.record"], max_concurrency=1) as m:
        while len(read_log(log)) < 40:
            await anyio.sleep(0.02)
        assert {m.store.status(job_id) for job_id in others} == {JobStatus.QUEUED}
    started = [tag for tag, _, _ in read_log(log)]
    assert started == [f"r{i:02}" for i in range(40)]  # one at a time: in age order


async def test_an_end_that_cannot_be_stored_among_short_jobs_fails_alone(tmp_path):
    """Short jobs' ends are written in groups: one end jobs.db refuses fails
    its own job, and every other end is stored."""
    from jobs_fixture import OddErrorJob, TickJob

    ticks = str(tmp_path / "ticks")
    async with JobManager(tmp_path / "jobs.db", max_concurrency=1) as manager:
        handles = [await manager.dispatch(TickJob(f"t{i}", ticks)) for i in range(8)]
        odd = await manager.dispatch(OddErrorJob())
        handles += [await manager.dispatch(TickJob(f"u{i}", ticks)) for i in range(8)]
        slow = await manager.dispatch(RecordJob(tag="slow", log_db=str(tmp_path / "l.db")))
        with anyio.fail_after(120):
            assert await odd.wait() is JobStatus.FAILED
            assert [await h.wait() for h in handles] == [JobStatus.COMPLETED] * 16
            assert await slow.wait() is JobStatus.COMPLETED
    with JobStore(tmp_path / "jobs.db") as store:
        assert store.get_job(odd.id).error.startswith("cannot store the job's end")
        assert {r.status for r in store.list_jobs()} == {JobStatus.COMPLETED, JobStatus.FAILED}


async def test_a_job_claimed_ahead_is_cancelled_and_paused_at_once(tmp_path):
    """Jobs claimed ahead of time (after a short one) are not running yet:
    cancel and pause stop them at once, and they never start."""
    from jobs_fixture import TickJob

    ticks = tmp_path / "ticks"
    log = str(tmp_path / "l.db")
    async with JobManager(tmp_path / "jobs.db", max_concurrency=1) as manager:
        first = await manager.dispatch(TickJob("first", str(ticks)))
        long = await manager.dispatch(RecordJob(tag="long", log_db=log, duration_s=1.0))
        cancelled = await manager.dispatch(TickJob("cancelled", str(ticks)))
        paused = await manager.dispatch(TickJob("paused", str(ticks)))
        with anyio.fail_after(60):
            await first.wait()
            while long.status is not JobStatus.RUNNING:
                await anyio.sleep(0.005)
        await manager.cancel(cancelled.id)
        await manager.pause(paused.id)
        assert cancelled.status is JobStatus.CANCELLED
        assert paused.status is JobStatus.PAUSED
        with anyio.fail_after(60):
            assert await long.wait() is JobStatus.COMPLETED
        await anyio.sleep(0.1)
        assert paused.status is JobStatus.PAUSED
    assert ticks.read_text().split() == ["first"]


class _CommitReportedBroken(JobStore):
    """jobs.db whose next end-and-claim write goes through but is reported
    broken, as a PostgreSQL COMMIT whose connection broke is (the outcome
    unknown to the writer): the write itself is the real one."""

    armed = False

    def finish_and_claim(self, *args: object, **kwargs: object) -> list[Any]:
        out = super().finish_and_claim(*args, **kwargs)  # type: ignore[arg-type]
        if _CommitReportedBroken.armed:
            _CommitReportedBroken.armed = False
            raise JobStoreUnavailable(
                "the connection broke while a write committed: whether it was stored is unknown"
            )
        return out


def test_an_end_stored_though_its_commit_was_reported_broken(tmp_path):
    """A run's end and the claim of the next job are one write; its COMMIT
    is reported broken though it went through. The manager takes neither
    for done: once the store answers it finds the end stored (the job's
    waiter sees it completed, once) and the job that write claimed marked
    running by this manager while nothing runs it here: queued again and
    run, once, instead of waiting for this manager to close."""
    log = str(tmp_path / "log.db")

    async def main() -> tuple[JobStatus, JobStatus]:
        store = _CommitReportedBroken(tmp_path / "jobs.db")
        async with JobManager(backend=store, max_concurrency=1) as manager:
            _CommitReportedBroken.armed = True
            first = await manager.dispatch(RecordJob(tag="first", log_db=log, duration_s=0.5))
            second = await manager.dispatch(RecordJob(tag="second", log_db=log, duration_s=0.05))
            with anyio.fail_after(120):
                second_status = await second.wait()
                first_status = await first.wait()
        return first_status, second_status

    assert anyio.run(main) == (JobStatus.COMPLETED, JobStatus.COMPLETED)
    assert not _CommitReportedBroken.armed  # the broken report did happen
    assert sorted(tag for tag, _, _ in read_log(log)) == ["first", "second"]
