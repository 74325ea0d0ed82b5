"""The phase processor: order, skip-to, conditions, groups, composition,
history, errors, recovery strategies, pause and crash resume."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from jobs_fixture import RUN_JOB, PhasedCount, PhasedOutput, SquareProgress, effects, subprocess_env
from phasekit.jobs import (
    JobControl,
    JobDefinitionError,
    JobManager,
    JobProgress,
    JobStatus,
    JobStore,
    Phase,
    PhaseContext,
    PhasedJob,
    PhaseGroup,
    PhaseProgress,
    PhaseResult,
    Phases,
    PhaseStatus,
    execute,
    job,
    phase_history,
)

TESTS = Path(__file__).resolve().parent
SQUARES = {i: i * i for i in range(40)}
TOTAL = sum(SQUARES.values())


def run(store: JobStore, job: PhasedCount, control: JobControl | None = None) -> str:
    job_id = store.create_job(job.job_name, job.to_state())
    execute(store, job_id, control=control)
    return job_id


def statuses(store: JobStore, job_id: str) -> list[tuple[str, str]]:
    return [(r.phase, r.status.value) for r in phase_history(store, job_id)]


def done_rows(fx: Path) -> dict[int, int]:
    conn = effects(str(fx))
    rows = dict(conn.execute("SELECT i, square FROM done"))
    conn.close()
    return rows


def phase_starts(fx: Path) -> list[int]:
    conn = effects(str(fx))
    rows = [r[0] for r in conn.execute("SELECT at FROM phase_starts")]
    conn.close()
    return rows


def test_phases_run_in_order_and_produce_the_output(store, tmp_path):
    job_id = run(store, PhasedCount(n=40, effects_db=str(tmp_path / "fx.db")))
    assert store.get_job(job_id).status is JobStatus.COMPLETED
    assert store.outcome(job_id)["output"] == {"count": 40, "total": TOTAL}
    assert statuses(store, job_id) == [
        ("prepare", "completed"),
        ("work.square", "completed"),
        ("work.verify", "completed"),
        ("report", "completed"),
    ]
    history = phase_history(store, job_id)
    assert all(r.started_at and r.ended_at and r.started_at <= r.ended_at for r in history)
    progress = store.progress(job_id, SquareProgress)
    assert progress is not None
    assert progress.data == SquareProgress(squared=40, last=39**2)
    assert progress.phase is None  # done: no current phase, 100 %
    assert progress.percent == 100.0


def test_skip_to_a_phase_a_group_and_complete_early(store, tmp_path):
    fx = str(tmp_path / "fx.db")
    to_report = run(store, PhasedCount(n=40, effects_db=fx, skip_to="report"))
    assert statuses(store, to_report) == [
        ("prepare", "completed"),
        ("work.square", "skipped"),
        ("work.verify", "skipped"),
        ("report", "completed"),
    ]
    assert store.outcome(to_report)["output"] == {"count": 40, "total": -1}

    to_verify = run(store, PhasedCount(n=40, effects_db=fx, skip_to="verify"))  # a bare name
    assert [s for _, s in statuses(store, to_verify)] == [
        "completed",
        "skipped",
        "completed",
        "completed",
    ]
    to_group = run(store, PhasedCount(n=40, effects_db=fx, skip_to="work"))
    assert store.outcome(to_group)["output"] == {"count": 40, "total": TOTAL}

    early = run(store, PhasedCount(n=40, effects_db=fx, complete_early=True))
    assert store.get_job(early).status is JobStatus.COMPLETED
    assert [s for _, s in statuses(store, early)] == ["completed", "skipped", "skipped", "skipped"]

    nowhere = run(store, PhasedCount(n=40, effects_db=fx, skip_to="nowhere"))
    record = store.get_job(nowhere)
    assert record.status is JobStatus.FAILED
    assert "'prepare' asked to skip to 'nowhere', which is not a phase" in (record.error or "")


def test_mode_driven_condition_skips_a_phase(store, tmp_path):
    job_id = run(store, PhasedCount(n=10, effects_db=str(tmp_path / "fx.db"), mode="quick"))
    assert statuses(store, job_id)[2] == ("work.verify", "skipped")
    assert store.outcome(job_id)["output"] == {"count": 10, "total": -1}


def test_fatal_error_fails_the_job_and_runs_the_failure_hook(store, tmp_path):
    job = PhasedCount(n=40, effects_db=str(tmp_path / "fx.db"), fail_at=5, fail_times=1, fatal=True)
    job_id = run(store, job)
    record = store.get_job(job_id)
    assert record.status is JobStatus.FAILED
    assert record.error == "FatalError: item 5 is broken"
    assert statuses(store, job_id)[1:] == [
        ("work.square", "failed"),
        ("work.verify", "pending"),
        ("report", "pending"),
    ]
    assert phase_history(store, job_id)[1].error == "FatalError: item 5 is broken"


def test_non_fatal_error_records_and_goes_on(store, tmp_path):
    fx = tmp_path / "fx.db"
    job_id = run(
        store,
        PhasedCount(
            n=40, effects_db=str(fx), fail_at=5, fail_times=1, non_fatal=True, soft_errors=2
        ),
    )
    assert store.get_job(job_id).status is JobStatus.COMPLETED_WITH_ERRORS
    history = phase_history(store, job_id)
    assert (history[1].status, history[1].errors) == (PhaseStatus.FAILED, 1)
    assert (history[2].status, history[2].errors) == (PhaseStatus.COMPLETED, 2)
    errors = store.outcome(job_id)["errors"]
    assert [e["message"] for e in errors] == [
        "phase work.square: item 5 is broken",
        "item 0 looks odd",
        "item 1 looks odd",
    ]
    assert len(done_rows(fx)) == 5  # the failed phase stopped where it failed


def test_restart_phase_starts_again_from_the_initial_state(store, tmp_path):
    fx = tmp_path / "fx.db"
    job_id = run(
        store,
        PhasedCount(n=40, effects_db=str(fx), fail_at=25, fail_times=2, recovery="restart_phase"),
    )
    assert store.get_job(job_id).status is JobStatus.COMPLETED
    assert phase_starts(fx) == [0, 0, 0]
    square = [r for r in phase_history(store, job_id) if r.phase == "work.square"]
    assert [(r.attempt, r.status.value) for r in square] == [
        (1, "failed"),
        (2, "failed"),
        (3, "completed"),
    ]
    assert square[0].error == "OSError: item 25 is broken"
    assert done_rows(fx) == SQUARES


def test_retry_from_checkpoint_resumes_at_the_last_checkpoint(store, tmp_path):
    fx = tmp_path / "fx.db"
    job_id = run(
        store,
        PhasedCount(
            n=40, effects_db=str(fx), fail_at=25, fail_times=1, recovery="retry_from_checkpoint"
        ),
    )
    assert store.get_job(job_id).status is JobStatus.COMPLETED
    assert phase_starts(fx) == [0, 20]
    assert done_rows(fx) == SQUARES


def test_retries_are_bounded(store, tmp_path):
    job_id = run(
        store,
        PhasedCount(
            n=40,
            effects_db=str(tmp_path / "fx.db"),
            fail_at=3,
            fail_times=10,
            recovery="retry_from_checkpoint",
        ),
    )
    record = store.get_job(job_id)
    assert record.status is JobStatus.FAILED
    assert record.error == "OSError: item 3 is broken"
    attempts = [r.attempt for r in phase_history(store, job_id) if r.phase == "work.square"]
    assert attempts == [1, 2, 3]  # max_attempts defaults to 3


def test_skip_phase_records_the_error_and_goes_on(store, tmp_path):
    job_id = run(
        store,
        PhasedCount(
            n=40, effects_db=str(tmp_path / "fx.db"), fail_at=5, fail_times=1, recovery="skip_phase"
        ),
    )
    assert store.get_job(job_id).status is JobStatus.COMPLETED_WITH_ERRORS
    assert statuses(store, job_id)[1] == ("work.square", "skipped")
    assert store.outcome(job_id)["errors"][0]["message"] == (
        "phase work.square skipped after OSError: item 5 is broken"
    )
    assert store.outcome(job_id)["output"] == {"count": 40, "total": sum(i * i for i in range(5))}


def test_abort_is_the_default(store, tmp_path):
    job_id = run(
        store, PhasedCount(n=40, effects_db=str(tmp_path / "fx.db"), fail_at=5, fail_times=1)
    )
    assert store.get_job(job_id).status is JobStatus.FAILED
    assert [r.attempt for r in phase_history(store, job_id) if r.phase == "work.square"] == [1]


def test_hooks_run_on_success_and_failure(tmp_path):
    with JobStore(tmp_path / "jobs.db") as store:
        job = PhasedCount(
            n=20,
            effects_db=str(tmp_path / "fx.db"),
            fail_at=5,
            fail_times=1,
            recovery="restart_phase",
        )
        ctx_store_id = store.create_job(job.job_name, job.to_state())
        from phasekit.jobs import JobContext

        ctx = JobContext(ctx_store_id, job.job_name, store, JobControl())
        job.run(ctx)
    assert job.hooks == ["square failed: item 5 is broken", "square ok"]


def test_pause_mid_phase_then_resume(store, tmp_path):
    fx = tmp_path / "fx.db"
    job = PhasedCount(n=400, effects_db=str(fx), every=20, delay_s=0.001)
    job_id = store.create_job(job.job_name, job.to_state())
    control = JobControl()
    threading.Timer(0.1, control.pause).start()
    assert execute(store, job_id, control=control) is JobStatus.PAUSED
    paused_at = phase_starts(fx)
    progress = store.progress(job_id)
    assert progress is not None
    assert progress.phase is not None
    assert progress.phase.name == "work.square"
    assert (progress.phase.index, progress.phase.count, progress.phase.total) == (1, 4, 400)
    assert 0 < progress.phase.done < 400
    assert progress.percent is not None
    assert 25.0 < progress.percent < 50.0
    assert execute(store, job_id) is JobStatus.COMPLETED
    starts = phase_starts(fx)
    assert paused_at == [0]
    assert len(starts) == 2
    assert starts[1] > 0
    assert starts[1] % 20 == 0
    assert statuses(store, job_id) == [
        ("prepare", "completed"),
        ("work.square", "paused"),
        ("work.square", "completed"),
        ("work.verify", "completed"),
        ("report", "completed"),
    ]
    assert done_rows(fx) == {i: i * i for i in range(400)}


def test_checkpoint_in_a_phase_the_job_no_longer_has(store, tmp_path):
    job = PhasedCount(n=10, effects_db=str(tmp_path / "fx.db"))
    job_id = store.create_job(job.job_name, job.to_state())
    store.save_checkpoint(job_id, {"v": 1, "at": "gone", "state": None, "history": []})
    assert execute(store, job_id) is JobStatus.FAILED
    assert "checkpoint is in phase 'gone', which this job no longer has" in (
        store.get_job(job_id).error or ""
    )


def test_sigkill_then_resume_equals_an_uninterrupted_run(tmp_path):
    rng = random.Random(11)
    n = 1500
    kills = 0
    for trial in range(3):
        db, fx = tmp_path / f"jobs{trial}.db", tmp_path / f"fx{trial}.db"
        job = PhasedCount(n=n, effects_db=str(fx), every=30, delay_s=0.0003)
        with JobStore(db) as store:
            job_id = store.create_job(job.job_name, job.to_state())
        env = subprocess_env()
        for _ in range(3):
            with subprocess.Popen(
                [sys.executable, "-c", RUN_JOB, str(db), job_id], stdout=subprocess.PIPE, env=env
            ) as proc:
                assert proc.stdout is not None
                proc.stdout.readline()
                time.sleep(rng.uniform(0.05, 0.4))
                if proc.poll() is None:
                    os.kill(proc.pid, signal.SIGKILL)
                    kills += 1
                proc.wait()
        with JobStore(db) as store:
            if store.get_job(job_id).status is not JobStatus.COMPLETED:
                assert execute(store, job_id) is JobStatus.COMPLETED
            total = sum(i * i for i in range(n))
            assert store.outcome(job_id)["output"] == {"count": n, "total": total}
            assert [s for _, s in statuses(store, job_id) if s != "paused"][-3:] == [
                "completed"
            ] * 3
        assert done_rows(fx) == {i: i * i for i in range(n)}
        starts = phase_starts(fx)
        assert starts[0] == 0
        assert all(s % 30 == 0 for s in starts)
    assert kills >= 3, "the job finished before it could be killed: make it slower"


def test_definition_errors():
    with pytest.raises(JobDefinitionError, match=r"without '\.'"):
        Phase("a.b", lambda ctx: None)
    with pytest.raises(JobDefinitionError, match="max_attempts"):
        Phase("a", lambda ctx: None, max_attempts=0)
    with pytest.raises(JobDefinitionError, match="is empty"):
        PhaseGroup("g", [])
    from phasekit.jobs import PhaseProcessor

    with pytest.raises(JobDefinitionError, match=r"two phases are named 'g\.a'"):
        PhaseProcessor([PhaseGroup("g", [Phase("a", lambda c: None), Phase("a", lambda c: None)])])
    # The same name in two groups is fine: names are qualified.
    PhaseProcessor([PhaseGroup("g", [Phase("a", lambda c: None)]), Phase("a", lambda c: None)])


def test_progress_forms():
    assert JobProgress(done=5, total=20).percent == 25.0
    assert JobProgress(message="scanning").indeterminate
    assert JobProgress(bytes_done=1, bytes_total=4).percent == 25.0
    assert JobProgress(explicit_percent=12.5).percent == 12.5
    phase = PhaseProgress(name="b", index=1, count=4, done=5, total=10)
    assert JobProgress(phase=phase).percent == pytest.approx(37.5)
    restored = JobProgress.from_dict(JobProgress(done=1, phase=phase).to_dict())
    assert restored.phase == phase


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
async def test_typed_progress_and_output_through_a_handle(tmp_path, anyio_backend):
    async with JobManager(tmp_path / "jobs.db") as manager:
        handle = await manager.dispatch(
            PhasedCount(n=200, effects_db=str(tmp_path / "fx.db"), delay_s=0.002)
        )
        seen = [u async for u in handle.updates()]
        assert seen[-1].status is JobStatus.COMPLETED
        structured = [u.progress.data for u in seen if u.progress and u.progress.data]
        assert structured
        assert all(isinstance(d, SquareProgress) for d in structured)
        assert handle.output() == PhasedOutput(count=200, total=sum(i * i for i in range(200)))
        assert [r.status for r in handle.phases()] == [PhaseStatus.COMPLETED] * 4


def test_the_first_phase_starts_from_its_initial_state(store):
    from phasekit.jobs import JobContext, PhaseProcessor

    seen = []
    processor = PhaseProcessor(
        [Phase("first", lambda ctx: seen.append(ctx.state), initial_state=lambda: {"next": 0})]
    )
    job_id = store.create_job("x", {})
    processor.run(JobContext(job_id, "x", store, JobControl()))
    assert seen == [{"next": 0}]


def test_a_pause_during_the_backoff_resumes_the_retry(store, tmp_path):
    fx = tmp_path / "fx.db"
    job = PhasedCount(n=40, effects_db=str(fx), fail_at=25, fail_times=1,
                      recovery="restart_phase", backoff_s=0.6)  # fmt: skip
    job_id = store.create_job(job.job_name, job.to_state())
    control = JobControl()
    threading.Timer(0.25, control.pause).start()  # lands in the 0.6 s backoff
    assert execute(store, job_id, control=control) is JobStatus.PAUSED
    # Resumed, the retry starts the phase from its initial state (not from
    # the mid-phase checkpoint at 20). The rebuilt job fails once more (its
    # failure counter is not persisted), so a third attempt completes.
    assert execute(store, job_id) is JobStatus.COMPLETED
    assert phase_starts(fx) == [0, 0, 0]
    square = [r for r in phase_history(store, job_id) if r.phase == "work.square"]
    assert [r.attempt for r in square] == [1, 2, 3]
    assert square[-1].status is PhaseStatus.COMPLETED
    assert done_rows(fx) == SQUARES


def test_a_pause_asked_during_the_last_phase_lets_the_job_complete(store):
    """The checkpoint after the last phase is not a place to stop: a pause
    that arrives then would leave a job with nothing to run but its end."""
    job_id = store.create_job(PauseAtEnd.job_name, PauseAtEnd().to_state())
    assert execute(store, job_id) is JobStatus.COMPLETED
    assert store.outcome(job_id)["output"] == "done"


@job("test.pause_at_end")
class PauseAtEnd(PhasedJob[str]):
    def phases(self) -> Phases:
        return [Phase("only", self.only)]

    def only(self, ctx: PhaseContext) -> PhaseResult:
        ctx.job_ctx._control.pause()  # as a pause from another thread would
        return None

    def output(self, shared: dict[str, Any]) -> str:
        return "done"


_BOUNDARY = JobControl()


@job("test.cancel_at_a_phase_boundary")
class CancelAtBoundary(PhasedJob[None]):
    """Its first phase asks for a cancel as it ends: the cancel lands at the
    boundary, before the second phase begins."""

    def phases(self) -> Phases:
        return [Phase("one", self.one), Phase("two", self.two)]

    def one(self, ctx: PhaseContext) -> PhaseResult:
        _BOUNDARY.cancel()
        return None

    def two(self, ctx: PhaseContext) -> PhaseResult:
        raise AssertionError("the second phase must not run")


def test_a_cancel_between_phases_shows_where_the_job_stopped(store):
    job_id = store.create_job(CancelAtBoundary.job_name, CancelAtBoundary().to_state())
    assert execute(store, job_id, control=_BOUNDARY) is JobStatus.CANCELLED
    assert statuses(store, job_id) == [("one", "completed"), ("two", "cancelled")]
