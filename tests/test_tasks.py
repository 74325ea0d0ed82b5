"""Tasks: ordered steps, each one or more jobs, for one tenant and scope.

A step's jobs start only once every job of the step before completed; the
first job that fails stops the task (its waiting jobs are cancelled, the
task says which step failed); definitions are code, JSON or TOML; workers
in other processes run them through kills. Paths as items are bytes.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from jobs_fixture import effect_log, subprocess_env
from phasekit.errors import InvalidInputError, UnknownJobError
from phasekit.jobs import JobManager, JobStatus, JobStore, TaskDefinition, TaskStep
from phasekit.library import Library
from test_workers import Worker, wait_for

#: Items as a photo library has them: not UTF-8, with a newline, long.
ODD = [os.fsdecode(b"\xff-first"), "new\nline", "y" * 300, os.fsdecode(b"\x80-last")]


def record_step(tag: str, log: Path, **params: object) -> TaskStep:
    return TaskStep("test.record", {"tag": tag, "log_db": str(log), **params})


def log_rows(log: Path) -> dict[str, tuple[float, float]]:
    conn = sqlite3.connect(log)
    try:
        return {tag: (start, end) for tag, start, end in conn.execute("SELECT * FROM log")}
    finally:
        conn.close()


@pytest.mark.anyio
async def test_steps_run_in_order_each_after_the_one_before_completed(tmp_path: Path) -> None:
    log = tmp_path / "log.db"
    definition = TaskDefinition(
        "three",
        (
            record_step("s1", log, duration_s=0.3),
            record_step("s2", log, duration_s=0.1),
            record_step("s3", log),
        ),
    )
    async with JobManager(tmp_path / "jobs.db", max_concurrency=4) as manager:
        started = await manager.start_task(definition)
        assert started.job_count == 3
        assert started.split is False
        assert started.task_id is not None
        record = manager.task(started.task_id)
        assert record.steps == 3
        assert [j.step for j in record.jobs] == [1, 2, 3]
        done = await manager.wait_task(started.task_id, timeout=120)
    assert done.status == "completed"
    assert done.percent == 100
    assert done.step == 3
    rows = log_rows(log)
    assert rows["s2"][0] >= rows["s1"][1]
    assert rows["s3"][0] >= rows["s2"][1]


@pytest.mark.anyio
async def test_a_failed_step_stops_the_task_and_cancels_what_waits(tmp_path: Path) -> None:
    log = tmp_path / "log.db"
    fx = tmp_path / "fx.db"
    # Made (WAL) before any job opens it: jobs switching a new file to WAL
    # at the same moment would find it busy.
    effect_log(str(fx)).close()
    items = ODD + [f"i{i}" for i in range(2100)]
    definition = TaskDefinition(
        "breaks",
        (
            record_step("first", log),
            TaskStep("test.items", {"log_db": str(fx), "tag": "b", "fail_on": "i2050"}),
            TaskStep("test.items", {"log_db": str(fx), "tag": "never"}),
        ),
    )
    async with JobManager(tmp_path / "jobs.db", max_concurrency=1) as manager:
        started = await manager.start_task(definition, items=items)
        assert started.split is True  # 2,104 items: two jobs per item step
        assert started.job_count == 5
        assert started.task_id is not None
        done = await manager.wait_task(started.task_id, timeout=120)
        jobs = manager.jobs(task=started.task_id)
    assert done.status == "failed"
    assert done.error is not None
    assert done.error.startswith("step 2 (test.items): job ")
    assert "fails on 'i2050' on purpose" in done.error
    by_step: dict[int, list[JobStatus]] = {}
    for job in done.jobs:
        by_step.setdefault(job.step, []).append(job.status)
    assert by_step[1] == [JobStatus.COMPLETED]
    assert by_step[2] == [JobStatus.COMPLETED, JobStatus.FAILED]
    assert by_step[3] == [JobStatus.CANCELLED, JobStatus.CANCELLED]
    assert {j.scope for j in jobs} == {"entries"}
    assert "never" not in {row[0].split(":")[0] for row in effect_log(str(fx)).execute(
        "SELECT key FROM step")}  # fmt: skip
    with JobStore(tmp_path / "jobs.db") as store:
        events = [e for e in store.events() if e.task_id == started.task_id]
        assert {e.job_id for e in events} == set(started.job_ids)
        cancelled = [h for h in store.history(limit=None) if h.status is JobStatus.CANCELLED]
        assert {h.task_id for h in cancelled} == {started.task_id}


@pytest.mark.anyio
async def test_cancelling_a_task_cancels_its_jobs(tmp_path: Path) -> None:
    log = tmp_path / "log.db"
    definition = TaskDefinition(
        "long", (record_step("long", log, duration_s=60), record_step("after", log))
    )
    async with JobManager(tmp_path / "jobs.db") as manager:
        started = await manager.start_task(definition)
        assert started.task_id is not None
        with anyio.fail_after(60):
            while manager.task(started.task_id).status != "running":
                await anyio.sleep(0.02)
        await manager.cancel_task(started.task_id)
        done = await manager.wait_task(started.task_id, timeout=120)
    assert done.status == "cancelled"
    assert {j.status for j in done.jobs} == {JobStatus.CANCELLED}
    assert "after" not in log_rows(log)


def test_definitions_in_code_json_and_toml_are_the_same(tmp_path: Path) -> None:
    code = TaskDefinition(
        "import",
        (TaskStep("phasekit.index", {"mode": "content"}), TaskStep("phasekit.thumbs")),
    )
    as_json = json.dumps(code.to_dict())
    as_toml = """
name = "import"
[[steps]]
job = "phasekit.index"
params = { mode = "content" }
[[steps]]
job = "phasekit.thumbs"
"""
    assert TaskDefinition.from_json(as_json) == code
    assert TaskDefinition.from_toml(as_toml) == code
    (tmp_path / "t.toml").write_text(as_toml)
    (tmp_path / "t.json").write_text(as_json)
    assert TaskDefinition.load(tmp_path / "t.toml") == code
    assert TaskDefinition.load(tmp_path / "t.json") == code
    for bad in (
        "[]",
        '{"name": "x"}',
        '{"name": "x", "steps": []}',
        '{"name": "x", "steps": [{"params": {}}]}',
        '{"name": "x", "steps": [{"job": "a", "extra": 1}]}',
        '{"name": "", "steps": [{"job": "a"}]}',
        '{"name": "x", "steps": [{"job": "a", "params": [1]}]}',
        "not json",
    ):
        with pytest.raises(InvalidInputError):
            TaskDefinition.from_json(bad)
    with pytest.raises(InvalidInputError):
        TaskDefinition.from_toml("name = [")
    with pytest.raises(InvalidInputError):
        TaskDefinition.load(tmp_path / "t.yaml")


@pytest.mark.anyio
async def test_a_bad_step_stores_nothing(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    with Library.open(tmp_path / "lib") as library:
        location = library.add_location(tree)
        async with library.jobs() as manager:
            ok = TaskStep("phasekit.index")
            for steps, error in (
                ((ok, TaskStep("no.such.job")), UnknownJobError),
                ((ok, TaskStep("phasekit.index", {"no_such_field": 1})), InvalidInputError),
                ((ok, TaskStep("test.record", {"tag": "x"})), InvalidInputError),
            ):
                with pytest.raises(error):
                    await manager.start_task(
                        TaskDefinition("bad", steps), scope=f"location:{location.id}"
                    )
            with pytest.raises(InvalidInputError):  # items into a job that takes none
                await manager.start_task(TaskDefinition("x", (ok,)), items=["a"])
            assert manager.tasks() == []
            assert manager.jobs() == []


def cli(library: Path, *argv: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "phasekit", "--library", str(library), *argv],
        input=None if stdin is None else stdin.decode("latin-1"), capture_output=True,
        text=True, encoding="latin-1", env=subprocess_env(), check=False, timeout=120,
    )  # fmt: skip


def test_a_task_started_from_the_cli_is_run_by_workers_through_a_kill(tmp_path: Path) -> None:
    """`phasekit tasks start` a TOML definition over 4,101 items (NUL-separated
    names, non-UTF-8 and with newlines); two workers run it; the one running
    a job of the first step is killed -9: every item is recorded once per
    step, the second step after the first, and the task completes."""
    library = tmp_path / "lib"
    with Library.open(library):
        pass
    fx = tmp_path / "fx.db"
    # Made (WAL) before any job opens it: jobs switching a new file to WAL
    # at the same moment would find it busy.
    effect_log(str(fx)).close()
    items = [ODD[0], *[f"photo-{i}" for i in range(4099)], ODD[1]]
    (tmp_path / "items").write_bytes(b"\0".join(os.fsencode(i) for i in items))
    (tmp_path / "task.toml").write_text(
        f"""
name = "two steps"
[[steps]]
job = "test.items"
params = {{ log_db = "{fx}", tag = "one", delay_s = 0.001 }}
[[steps]]
job = "test.items"
params = {{ log_db = "{fx}", tag = "two" }}
"""
    )
    started = cli(library, "tasks", "start", str(tmp_path / "task.toml"), "--items-from",
                  str(tmp_path / "items"), "-0", "--tenant", "acme", "--json",
                  "--import", "jobs_fixture")  # fmt: skip
    assert started.returncode == 0, started.stderr
    submission = json.loads(started.stdout)
    assert submission["job_count"] == 6
    assert submission["split"] is True
    task_id = submission["task_id"]
    workers: list[Worker] = []
    try:
        workers += [Worker(library, "--maintenance-every", "0") for _ in range(2)]
        store = JobStore(library / "jobs.db")

        def first_step_running() -> str | None:
            for job_id, owner in store.running_owners():
                if store.get_job(job_id).task_step == 0 and store.progress(job_id):
                    return owner
            return None

        owner = wait_for("a job of the first step under way", first_step_running)
        victim = next(w for w in workers if w.id == owner)
        victim.proc.send_signal(signal.SIGKILL)
        victim.proc.wait()
        workers.append(Worker(library, "--maintenance-every", "0"))

        def ended() -> bool:
            return store.task(task_id).finished

        wait_for("the task to end", ended, timeout=300)
        shown = cli(library, "tasks", "show", task_id, "--json", "--tenant", "acme")
        assert shown.returncode == 0, shown.stderr
        record = json.loads(shown.stdout)
        assert record["status"] == "completed", record["error"]
        assert [j["step"] for j in record["jobs"]] == [1, 1, 1, 2, 2, 2]
        hidden = cli(library, "tasks", "show", task_id, "--tenant", "zeta")
        assert hidden.returncode != 0
        assert "no task with id" in hidden.stderr
        listed = cli(library, "tasks", "list", "--json", "--tenant", "acme")
        assert [json.loads(line)["id"] for line in listed.stdout.splitlines()] == [task_id]
        store.close()
    finally:
        for worker in workers:
            worker.close()
    conn = effect_log(str(fx))
    for tag in ("one", "two"):
        keys = [
            row[0] for row in conn.execute("SELECT key FROM step WHERE key LIKE ?", (f"{tag}:%",))
        ]
        assert len(keys) == len(items)  # each once (keyed), none missing
        assert f"{tag}:{os.fsencode(ODD[1]).hex()}" in keys
    assert conn.execute("SELECT COUNT(*) FROM final").fetchone()[0] == 6


def test_a_worker_for_some_tenants_leaves_the_others_jobs_queued(tmp_path: Path) -> None:
    library = tmp_path / "lib"
    log = tmp_path / "log.db"
    with Library.open(library) as lib:
        from jobs_fixture import RecordJob

        acme = lib.enqueue(RecordJob(tag="acme", log_db=str(log)), tenant="acme")
        beta = lib.enqueue(RecordJob(tag="beta", log_db=str(log)), tenant="beta")
    worker = Worker(library, "--tenant", "acme", "--maintenance-every", "0")
    try:
        with JobStore(library / "jobs.db") as store:
            wait_for("acme's job", lambda: store.status(acme).finished)
            assert store.status(beta) is JobStatus.QUEUED
        assert worker.stop() == 0
    finally:
        worker.close()
    bad = cli(library, "worker", "--tenant", "not a name")
    assert bad.returncode == 2
    assert "tenant" in bad.stderr


def test_a_later_step_is_never_moved_into_running_early(tmp_path: Path) -> None:
    """Every way into running waits for the task's earlier steps, as a
    claim does: a direct status change too; and an identical job joins no
    task's step."""
    with JobStore(tmp_path / "jobs.db") as store:
        task_id, (first, second) = store.create_task(
            "t",
            {},
            [[("test.record", {"tag": "a", "log_db": "x"}, None, "global")],
             [("test.record", {"tag": "b", "log_db": "x"}, "K", "global")]],
        )  # fmt: skip
        assert [j[0] for j in store.ready(limit=10)] == first
        assert not store.move(second[0], JobStatus.RUNNING, only_from=(JobStatus.QUEUED,))
        assert store.status(second[0]) is JobStatus.QUEUED
        joined, created = store.create_or_join("test.record", {"tag": "b", "log_db": "x"}, "K")
        assert created
        assert joined != second[0]
        assert store.move(first[0], JobStatus.RUNNING, only_from=(JobStatus.QUEUED,))
        store.finish(first[0], JobStatus.COMPLETED)
        assert second[0] in [j[0] for j in store.ready(limit=10)]
        record = store.task(task_id)
        assert (record.status, record.step) == ("running", 2)  # under way, between steps


def test_a_stopped_task_cancels_the_children_of_its_waiting_jobs(tmp_path: Path) -> None:
    with JobStore(tmp_path / "jobs.db") as store:
        task_id, (step,) = store.create_task(
            "t",
            {},
            [[("test.record", {"tag": t, "log_db": "x"}, None, "global") for t in "ab"]],
        )
        a, b = step
        store.claim([a, b])
        child, _ = store.create_child(b, "c", "test.record", {"tag": "c", "log_db": "x"})
        assert store.move(b, JobStatus.PAUSED, only_from=(JobStatus.RUNNING,))
        store.finish(a, JobStatus.FAILED, error="broken")
        assert store.status(b) is JobStatus.CANCELLED
        assert store.status(child) is JobStatus.CANCELLED
        record = store.task(task_id)
        assert record.status == "failed"
        assert record.error is not None
        assert record.error.endswith("failed: broken")
