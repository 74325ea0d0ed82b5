"""One job run in the calling thread (``run_direct``, ``Library.run``, what a
command that starts one job uses): the manager's rules without an event
loop. Pause and cancel from this process and from another, joining and
following an identical job another process runs, waiting for a conflicting
one, recovery after SIGKILL, and the result a manager's handle gives."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

from jobs_fixture import CountJob, effects, subprocess_env
from phasekit.indexing import IndexJob, IndexSummary
from phasekit.jobs import (
    JobControl,
    JobManager,
    JobProgress,
    JobStatus,
    JobStore,
    execute,
    job,
    run_direct,
)
from phasekit.library import Library


@job("test.keyed_count")
class KeyedCount(CountJob):
    """CountJob that never overlaps another job with its ``key``."""

    key: str = "k"

    def conflict_key(self) -> str | None:
        return f"test:{self.key}"


#: ``python -c RUN_DIRECT JOBS_DB N EFFECTS HOLD_AT HOLD_PATH``: runs a
#: KeyedCount directly (holding before item HOLD_AT while HOLD_PATH exists)
#: and prints its status, id and whether it ran there.
RUN_DIRECT = """
import sys
import test_direct_run  # registers the test jobs
from phasekit.jobs import JobStore, run_direct
store = JobStore(sys.argv[1])
job = test_direct_run.KeyedCount(
    int(sys.argv[2]), sys.argv[3], every=5, hold_at=int(sys.argv[4]), hold_path=sys.argv[5]
)
run = run_direct(store, job)
print(run.status.value, run.id, run.ran_here, flush=True)
store.close()
"""


def direct_process(db: Any, n: int, fx: Any, hold_at: int, hold: Any) -> subprocess.Popen[str]:
    """Another process running a KeyedCount directly, held before item
    ``hold_at`` while the file ``hold`` exists (created here)."""
    Path(hold).touch()
    return subprocess.Popen(
        [sys.executable, "-c", RUN_DIRECT, str(db), str(n), str(fx), str(hold_at), str(hold)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=subprocess_env(),
    )


def in_thread(fn: Any) -> tuple[threading.Thread, dict[str, Any]]:
    """Run ``fn()`` in a thread; its result (or error) lands in the dict."""
    result: dict[str, Any] = {}

    def target() -> None:
        try:
            result["value"] = fn()
        except BaseException as exc:  # handed to the test
            result["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    return thread, result


def until(condition: Any, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.01)


def wait_running(db: Any, name: str = "test.keyed_count", timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    with JobStore(db) as store:
        while time.monotonic() < deadline:
            running = [r.id for r in store.list_jobs() if r.status is JobStatus.RUNNING]
            if running:
                return running[0]
            time.sleep(0.01)
    raise AssertionError("no job started running")


def done_items(fx: Any) -> list[tuple[int, int]]:
    conn = effects(str(fx))
    try:
        return list(conn.execute("SELECT i, square FROM done ORDER BY i"))
    finally:
        conn.close()


def test_a_direct_run_completes_and_is_recorded_like_a_managed_one(tmp_path):
    fx = tmp_path / "fx.db"
    heard: list[JobProgress] = []
    with JobStore(tmp_path / "jobs.db") as store:
        run = run_direct(store, CountJob(20, str(fx), every=5), on_progress=heard.append)
        assert (run.status, run.ran_here) == (JobStatus.COMPLETED, True)
        assert run.output() == {"count": 20}
        assert run.record.status is JobStatus.COMPLETED
        assert [h.status for h in store.history()] == [JobStatus.COMPLETED]
        assert store.running_owners() == []
    assert heard
    assert heard[-1].done == 20
    assert heard[-1].percent == 100.0  # the end's progress, told last
    assert done_items(fx) == [(i, i * i) for i in range(20)]


def test_pause_through_control_then_a_manager_finishes_it(tmp_path):
    fx = tmp_path / "fx.db"
    control = JobControl()
    with JobStore(tmp_path / "jobs.db") as store:
        timer = threading.Timer(0.3, control.pause)
        timer.start()
        run = run_direct(store, CountJob(400, str(fx), every=5, delay_s=0.005), control=control)
        timer.cancel()
        assert run.status is JobStatus.PAUSED
        assert len(done_items(fx)) < 400

    async def finish() -> JobStatus:
        async with JobManager(tmp_path / "jobs.db") as manager:
            handle = manager.handle(run.id)
            await manager.resume(run.id)
            return await handle.wait()

    assert anyio.run(finish) is JobStatus.COMPLETED
    assert done_items(fx) == [(i, i * i) for i in range(400)]


def test_another_process_pauses_a_direct_run(tmp_path):
    """``phasekit jobs pause`` in a second process, against a job this one
    runs directly (no manager, no event loop here)."""
    lib = tmp_path / "lib"
    fx = tmp_path / "fx.db"
    result: dict[str, Any] = {}
    with Library.open(lib) as library:
        thread = threading.Thread(
            target=lambda: result.update(run=library.run(CountJob(100_000, str(fx), delay_s=0.001)))
        )
        thread.start()
        job_id = wait_running(lib / "jobs.db", "test.count")
        paused = subprocess.run(
            [sys.executable, "-m", "phasekit", "--library", str(lib), "jobs", "pause", job_id],
            capture_output=True,
            text=True,
            env=subprocess_env(),
            timeout=120,
        )
        assert paused.returncode == 0, paused.stderr
        thread.join(120)
        assert not thread.is_alive()
        assert result["run"].status is JobStatus.PAUSED
        assert result["run"].id == job_id


def test_an_identical_job_another_process_runs_is_followed_not_run_twice(tmp_path):
    db, fx, hold = tmp_path / "jobs.db", tmp_path / "fx.db", tmp_path / "hold"
    other = direct_process(db, 60, fx, 20, hold)
    try:
        job_id = wait_running(db)
        heard: list[JobProgress] = []
        with JobStore(db) as store:
            job = KeyedCount(60, str(fx), every=5, hold_at=20, hold_path=str(hold))
            thread, result = in_thread(lambda: run_direct(store, job, on_progress=heard.append))
            until(lambda: bool(heard))  # following the other process's run
            hold.unlink()
            thread.join(120)
            run = result["value"]
            assert (run.id, run.ran_here, run.status) == (job_id, False, JobStatus.COMPLETED)
            assert run.output() == {"count": 60}
            assert len(store.list_jobs()) == 1
        out, err = other.communicate(timeout=120)
    finally:
        other.kill()
    assert out.split() == ["completed", job_id, "True"], err
    conn = effects(str(fx))
    assert [s for (s,) in conn.execute("SELECT at FROM starts")] == [0]  # one run only
    conn.close()


def test_a_conflicting_job_waits_for_the_one_another_process_runs(tmp_path):
    db, hold = tmp_path / "jobs.db", tmp_path / "hold"
    fx_a, fx_b = tmp_path / "a.db", tmp_path / "b.db"
    other = direct_process(db, 40, fx_a, 5, hold)
    try:
        first = wait_running(db)
        with JobStore(db) as store:
            thread, result = in_thread(lambda: run_direct(store, KeyedCount(10, str(fx_b))))
            until(lambda: len(store.list_jobs()) == 2)  # queued behind the other one
            assert done_items(fx_b) == []
            hold.unlink()
            thread.join(120)
            run = result["value"]
            assert run.ran_here
            assert run.status is JobStatus.COMPLETED
            ended = {h.id: h for h in store.history()}
            started_b = ended[run.id].started_at
            assert started_b is not None
            assert started_b >= ended[first].finished_at  # never side by side
        other.communicate(timeout=120)
    finally:
        other.kill()


def test_a_killed_direct_run_is_resumed_by_the_next_one(tmp_path):
    db, fx, hold = tmp_path / "jobs.db", tmp_path / "fx.db", tmp_path / "hold"
    other = direct_process(db, 200, fx, 30, hold)
    job_id = wait_running(db)
    with JobStore(db) as store:
        # Held before item 30, once its checkpoint at 30 is written.
        until(lambda: store.load_checkpoint(job_id) == (6, {"next": 30}))
    other.kill()
    other.communicate()
    hold.unlink()
    with JobStore(db) as store:
        # The identical job is joined: the dead owner's run is queued again
        # and resumed from its last checkpoint, not started over.
        run = run_direct(store, KeyedCount(200, str(fx), every=5, hold_at=30, hold_path=str(hold)))
        assert (run.id, run.ran_here, run.status) == (job_id, True, JobStatus.COMPLETED)
    conn = effects(str(fx))
    starts = [s for (s,) in conn.execute("SELECT at FROM starts")]
    conn.close()
    assert starts == [0, 30]  # from its last checkpoint, not from the start
    assert done_items(fx) == [(i, i * i) for i in range(200)]


def test_library_run_gives_the_index_summary_a_manager_gives(tmp_path):
    root = tmp_path / "tree"
    (root / "d").mkdir(parents=True)
    for i, name in enumerate([b"caf\xe9.jpg", b"a\nb", b"plain.txt"]):
        (root / "d").joinpath(name.decode("utf-8", "surrogateescape")).write_bytes(b"x" * i)
    with Library.open(tmp_path / "lib") as library:
        location = library.add_location(root)
        run = library.run(IndexJob(location.id))
        assert run.status is JobStatus.COMPLETED
        summary = run.output()
        assert isinstance(summary, IndexSummary)
        assert summary.files == 3

        async def from_a_handle() -> Any:
            async with library.jobs() as manager:
                return manager.handle(run.id).output()

        stored = anyio.run(from_a_handle)
        assert stored == summary
    with pytest.raises(Exception, match="closed"):
        library.run(IndexJob(location.id))


def test_a_job_waiting_for_children_fails_clearly_instead_of_hanging(tmp_path):
    """Nothing runs the children a direct run's job queues: waiting for them
    would wait for ever, so the job fails and says why."""
    from jobs_fixture import ParentJob

    with JobStore(tmp_path / "jobs.db") as store:
        run = run_direct(store, ParentJob(2, str(tmp_path / "log.db")))
        assert run.status is JobStatus.FAILED
        assert "direct run" in (run.error or "")
        assert "JobManager" in (run.error or "")
        # Cancelled with it: no later manager runs them for a failed parent.
        assert list(store.children(run.id).values()) == [JobStatus.CANCELLED] * 2


def test_a_failing_progress_callback_pauses_the_job_and_reaches_the_caller(tmp_path):
    fx = tmp_path / "fx.db"

    def broken(progress: JobProgress) -> None:
        raise ValueError("a bug in the progress bar")

    with JobStore(tmp_path / "jobs.db") as store:
        job = CountJob(300, str(fx), every=5, delay_s=0.002)
        with pytest.raises(ValueError, match="a bug in the progress bar"):
            run_direct(store, job, on_progress=broken)
        (record,) = store.list_jobs()
        assert record.status is JobStatus.PAUSED  # resumable, not failed
        assert execute(store, record.id) is JobStatus.COMPLETED  # goes on from its checkpoint
    assert done_items(fx) == [(i, i * i) for i in range(300)]


def test_what_is_not_a_job_is_refused_clearly(tmp_path):
    from phasekit.errors import InvalidInputError

    with JobStore(tmp_path / "jobs.db") as store:
        with pytest.raises(InvalidInputError, match="takes a job"):
            run_direct(store, "hello")  # type: ignore[arg-type]
        assert store.list_jobs() == []


def test_the_same_search_of_paths_asked_again_joins_the_interrupted_one(tmp_path):
    """``phasekit dupes PATH`` run again after Ctrl-C goes on with the search
    left paused (its digests kept) instead of starting over."""
    from phasekit.dupes import DupesJob, DupesSummary

    root = tmp_path / "tree"
    root.mkdir()
    for i in range(6):
        (root / f"copy{i % 2}-{i}.bin").write_bytes(b"x" * 1000 if i % 2 else b"y" * 1000)
    (root / "caf\udce9.bin").write_bytes(b"x" * 1000)
    with Library.open(tmp_path / "lib") as library:
        stopped = JobControl()
        stopped.pause()  # Ctrl-C before its first safe point
        first = library.run(DupesJob(paths=[str(root)]), control=stopped)
        assert first.status is JobStatus.PAUSED
        again = library.run(DupesJob(paths=[str(root)]))
        assert (again.id, again.status) == (first.id, JobStatus.COMPLETED)
        summary = again.output()
        assert isinstance(summary, DupesSummary)
        assert sorted(len(g.copies) for g in summary.groups) == [3, 4]
        other = library.run(DupesJob(paths=[str(root / "copy0-0.bin"), str(root)]))
        assert other.id != first.id  # other roots: another search
