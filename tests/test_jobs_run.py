"""Running jobs: resume after SIGKILL is exact; pause, cancel, failures."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from backend_damage import corrupt_checkpoint
from jobs_fixture import RUN_JOB, CountJob, effects, subprocess_env
from phasekit.errors import UnknownJobError
from phasekit.jobs import JobControl, JobStatus, JobStore, execute
from phasekit.jobs._codec import decode

TESTS = Path(__file__).resolve().parent


def dispatch(store: JobStore, job: CountJob) -> str:
    return store.create_job(job.job_name, job.to_state())


def done_rows(path: Path) -> dict[int, int]:
    conn = effects(str(path))
    rows = dict(conn.execute("SELECT i, square FROM done").fetchall())
    conn.close()
    return rows


def test_uninterrupted_run_completes(store, tmp_path):
    job_id = dispatch(store, CountJob(n=120, effects_db=str(tmp_path / "fx.db")))
    assert execute(store, job_id) is JobStatus.COMPLETED
    assert done_rows(tmp_path / "fx.db") == {i: i * i for i in range(120)}
    outcome = store.outcome(job_id)
    assert outcome["output"] == {"count": 120}
    assert outcome["metrics"]["items"] == 120
    assert store.progress(job_id).done == 120
    assert store.load_checkpoint(job_id) == (2, {"next": 100})
    progress = store.progress(job_id)
    assert (progress.percent, progress.message, progress.phase) == (100.0, None, None)


def test_sigkill_then_resume_equals_an_uninterrupted_run(tmp_path):
    """Kill the process running the job at random moments, resume, compare."""
    rng = random.Random(7)
    n = 2000
    total_kills = 0
    for trial in range(4):
        db, fx = tmp_path / f"jobs{trial}.db", tmp_path / f"fx{trial}.db"
        with JobStore(db) as store:
            job_id = dispatch(store, CountJob(n=n, effects_db=str(fx), every=40, delay_s=0.0002))
        env = subprocess_env()
        kills = 0
        for _ in range(3):
            with subprocess.Popen(
                [sys.executable, "-c", RUN_JOB, str(db), job_id],
                stdout=subprocess.PIPE,
                text=True,
                env=env,
            ) as proc:
                assert proc.stdout is not None
                proc.stdout.readline()
                time.sleep(rng.uniform(0.05, 0.4))
                if proc.poll() is None:
                    os.kill(proc.pid, signal.SIGKILL)
                    kills += 1
                proc.wait()
        with JobStore(db) as store:
            before = store.load_checkpoint(job_id)
            status = store.get_job(job_id).status
            resumed_here = status is not JobStatus.COMPLETED
            if resumed_here:
                assert status is JobStatus.RUNNING  # died while running
                assert execute(store, job_id) is JobStatus.COMPLETED
            assert store.outcome(job_id)["output"] == {"count": n}
        assert done_rows(fx) == {i: i * i for i in range(n)}
        conn = effects(str(fx))
        starts = [r[0] for r in conn.execute("SELECT at FROM starts")]
        conn.close()
        # Every run after the first started at a checkpoint, never from scratch.
        assert starts[0] == 0
        assert all(s % 40 == 0 for s in starts)
        if resumed_here and before is not None:
            assert starts[-1] == before[1]["next"]  # resumed at the last checkpoint
        total_kills += kills
    assert total_kills >= 4, "the job finished before it could be killed: make it slower"


def test_pause_then_resume_completes(store, tmp_path):
    fx = tmp_path / "fx.db"
    job_id = dispatch(store, CountJob(n=400, effects_db=str(fx), every=20, delay_s=0.001))
    control = JobControl()
    threading.Timer(0.1, control.pause).start()
    assert execute(store, job_id, control=control) is JobStatus.PAUSED
    assert store.get_job(job_id).status is JobStatus.PAUSED
    _seq, state = store.load_checkpoint(job_id)
    assert 0 < state["next"] < 400
    assert len(done_rows(fx)) == state["next"]  # stopped exactly at the checkpoint
    assert execute(store, job_id) is JobStatus.COMPLETED
    assert done_rows(fx) == {i: i * i for i in range(400)}


def test_cancel_keeps_the_record(store, tmp_path):
    job_id = dispatch(
        store, CountJob(n=400, effects_db=str(tmp_path / "fx.db"), every=20, delay_s=0.001)
    )
    control = JobControl()
    threading.Timer(0.05, control.cancel).start()
    assert execute(store, job_id, control=control) is JobStatus.CANCELLED
    record = store.get_job(job_id)
    assert record.status is JobStatus.CANCELLED
    assert record.input()["n"] == 400


def test_failures_are_recorded_with_clear_messages(store, tmp_path):
    failing = dispatch(store, CountJob(n=10, effects_db=str(tmp_path / "fx.db"), fail_at=3))
    assert execute(store, failing) is JobStatus.FAILED
    assert store.get_job(failing).error == "RuntimeError: item 3 is broken"

    # A job whose type this process does not know is not failed: it is left
    # queued for a process that knows it.
    unknown = store.create_job("no.such.job", {})
    with pytest.raises(UnknownJobError, match=r"no job named 'no\.such\.job'"):
        execute(store, unknown)
    assert store.get_job(unknown).status is JobStatus.QUEUED
    assert store.get_job(unknown).error is None

    corrupt = dispatch(store, CountJob(n=10, effects_db=str(tmp_path / "fx2.db")))
    store.save_checkpoint(corrupt, {"next": 5})
    corrupt_checkpoint(store, corrupt)
    assert execute(store, corrupt) is JobStatus.FAILED
    assert "cannot start: cannot decode" in (store.get_job(corrupt).error or "")

    # The other jobs are untouched and still run.
    fine = dispatch(store, CountJob(n=5, effects_db=str(tmp_path / "fx3.db")))
    assert execute(store, fine) is JobStatus.COMPLETED


def test_non_critical_errors_complete_with_errors(store, tmp_path):
    job_id = dispatch(
        store, CountJob(n=100, effects_db=str(tmp_path / "fx.db"), soft_error_every=25)
    )
    assert execute(store, job_id) is JobStatus.COMPLETED_WITH_ERRORS
    errors = store.outcome(job_id)["errors"]
    assert [e["path"] for e in errors] == ["/items/0", "/items/25", "/items/50", "/items/75"]


def test_stored_dataclasses_are_the_mappings_asdict_makes():
    """The codec turns dataclasses into mappings one level at a time; what it
    stores is what ``dataclasses.asdict`` of the whole tree would give, and
    reads back equal, odd names included."""
    import dataclasses
    import enum

    import msgpack

    from phasekit._types import DuplicateGroup
    from phasekit.dupes import DupesSummary
    from phasekit.jobs._codec import encode

    class Colour(enum.Enum):
        RED = "red"

    @dataclasses.dataclass
    class Inner:
        colour: Colour
        names: tuple[str, ...]

    @dataclasses.dataclass
    class Outer:
        inner: Inner
        by_name: dict[str, Inner]
        many: list[Inner]

    odd = "caf\udce9\nb"
    inner = Inner(Colour.RED, (odd, "x"))
    outer = Outer(inner, {odd: inner}, [inner, inner])
    groups = [
        DuplicateGroup(f"k{i}", i, ((f"/a/{odd}{i}",), (f"/b/{i}", f"/c/{i}"))) for i in range(50)
    ]
    summary = DupesSummary(
        **{
            f.name: (groups if f.name == "groups" else None)
            for f in dataclasses.fields(DupesSummary)
        }
    )
    for value in (outer, summary, [summary, outer], {"k": outer}):
        plain = dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value
        expected = msgpack.packb(
            {"v": 1, "d": plain},
            use_bin_type=True,
            default=lambda v: dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v.value,
            unicode_errors="surrogateescape",
        )
        assert encode(value) == expected
    assert decode(encode(summary))["groups"][3]["copies"] == [[f"/a/{odd}3"], ["/b/3", "/c/3"]]


def test_a_dict_keyed_by_dataclasses_is_refused_when_stored_not_when_read():
    """Such a key would be stored as a mapping, which cannot be a key again:
    refused up front (the job fails with "cannot store"), and a blob that
    holds one anyway reads as corrupt state, never a raw TypeError."""
    import dataclasses

    import msgpack

    from phasekit.errors import CorruptStateError
    from phasekit.jobs._codec import encode

    @dataclasses.dataclass(frozen=True)
    class Key:
        n: int

    @dataclasses.dataclass
    class Holder:
        by_key: dict[Key, int]

    with pytest.raises(TypeError, match=r"cannot store.*keys are not plain"):
        encode(Holder({Key(1): 2}))
    unreadable = msgpack.packb({"v": 1, "d": [{(1, 2): 3}]}, use_bin_type=True)
    with pytest.raises(CorruptStateError, match="cannot decode"):
        decode(unreadable)
