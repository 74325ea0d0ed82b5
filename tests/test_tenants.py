"""Tenants and scopes: every job belongs to one tenant and has a scope.

Another tenant's job behaves as if it did not exist, through the API (a
manager bound to a tenant) and the command line (``--tenant``): the same
error, worded the same, as for an id that was never used; listings, history
and the event log show a tenant only its own. Scopes are derived from the
job's fields unless given, stored, listed by, and carried by every event.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from jobs_fixture import ItemsJob, RecordJob, effect_log, subprocess_env
from phasekit.dupes import DupesJob
from phasekit.errors import InvalidInputError, JobNotFound, TaskNotFound
from phasekit.indexing import IndexJob
from phasekit.jobs import (
    ENTRIES,
    GLOBAL,
    JobManager,
    JobStatus,
    JobStore,
    TaskDefinition,
    TaskStep,
    location_scope,
)
from phasekit.library import Library

pytestmark = pytest.mark.anyio

#: Item names as a photo library has them: not UTF-8, with a newline, long.
ODD = [os.fsdecode(b"\xff\xfe-first"), "with\nnewline", "x" * 300, os.fsdecode(b"last-\x80")]


async def finished(handle: object) -> None:
    with anyio.fail_after(120):
        await handle.wait()  # type: ignore[attr-defined]


def cli(library: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "phasekit", "--library", str(library), *argv],
        capture_output=True, text=True, env=subprocess_env(), check=False, timeout=120,
    )  # fmt: skip


async def test_another_tenants_job_is_not_found_through_the_api(tmp_path: Path) -> None:
    db = tmp_path / "jobs.db"
    log = str(tmp_path / "log.db")
    async with (
        JobManager(db, tenant="acme") as acme,
        JobManager(db, tenant="zeta", max_concurrency=1) as zeta,
    ):
        theirs = await acme.dispatch(RecordJob(tag="a", log_db=log, duration_s=30))
        mine = await zeta.dispatch(RecordJob(tag="z", log_db=log))
        await finished(mine)
        missing = "0" * 32
        for job_id in (theirs.id, missing):
            with pytest.raises(JobNotFound) as caught:
                zeta.handle(job_id)
            assert str(caught.value) == f"no job with id {job_id!r}"
            for control in (zeta.pause, zeta.resume, zeta.cancel):
                with pytest.raises(JobNotFound):
                    await control(job_id)
            with pytest.raises(JobNotFound):
                await zeta.dispatch(RecordJob(tag="after", log_db=log), after=job_id)
        assert [r.id for r in zeta.jobs()] == [mine.id]
        assert theirs.id in [r.id for r in acme.jobs()]
        assert mine.id not in [r.id for r in acme.jobs()]
        assert acme.jobs()[0].tenant == "acme"
        # Untouched by all of that: acme's job still runs or waits to.
        assert acme.handle(theirs.id).status in (JobStatus.QUEUED, JobStatus.RUNNING)
        await acme.cancel(theirs.id)
        task = await acme.start_task(
            TaskDefinition("t", (TaskStep("test.record", {"tag": "t", "log_db": log}),))
        )
        assert task.task_id is not None
        with pytest.raises(TaskNotFound):
            zeta.task(task.task_id)
        with pytest.raises(TaskNotFound):
            await zeta.cancel_task(task.task_id)
        assert [t.id for t in zeta.tasks()] == []
        assert [t.id for t in acme.tasks()] == [task.task_id]
        await acme.wait_task(task.task_id, timeout=60)
    with JobStore(db) as store:
        assert {h.tenant for h in store.history(tenant="zeta")} == {"zeta"}
        assert mine.id not in [h.id for h in store.history(tenant="acme")]
        assert {e.tenant for e in store.events(tenant="acme")} == {"acme"}
        assert {e.tenant for e in store.events()} == {"acme", "zeta"}


async def test_a_manager_runs_only_its_tenants_jobs(tmp_path: Path) -> None:
    db = tmp_path / "jobs.db"
    log = str(tmp_path / "log.db")
    with JobStore(db) as store:
        other = store.create_job("test.record", {"tag": "o", "log_db": log}, tenant="other")
    async with JobManager(db) as manager:  # the default tenant's
        mine = await manager.dispatch(RecordJob(tag="m", log_db=log))
        await finished(mine)
        await anyio.sleep(0.3)
        with JobStore(db) as store:
            assert store.status(other) is JobStatus.QUEUED
    async with JobManager(db, tenant="other") as manager:
        await finished(manager.handle(other))


def test_bad_tenants_and_scopes_are_refused(tmp_path: Path) -> None:
    for bad in ("", "*", "a b", "-lead", "x" * 200, "é"):
        with pytest.raises(InvalidInputError):
            JobManager(tmp_path / "jobs.db", tenant=bad)
    with pytest.raises(InvalidInputError):
        JobManager(tmp_path / "jobs.db", tenants="acme")  # a list, or "*"
    with pytest.raises(InvalidInputError):
        JobManager(tmp_path / "jobs.db", tenant_limits={"acme": 0})
    with Library.open(tmp_path / "lib") as library, pytest.raises(InvalidInputError):
        library.enqueue(RecordJob(tag="x", log_db="x"), tenant="not a name")
    with pytest.raises(InvalidInputError):
        location_scope(0)
    for bad_scope in ("location:0", "location:x", "everything", "location:"):
        result = cli(tmp_path / "lib", "jobs", "list", "--scope", bad_scope)
        assert result.returncode != 0
        assert "scope" in result.stderr


def test_another_tenants_job_is_not_found_through_the_cli(tmp_path: Path) -> None:
    library = tmp_path / "lib"
    log = str(tmp_path / "log.db")
    with Library.open(library) as lib:
        theirs = lib.enqueue(RecordJob(tag=ODD[0], log_db=log), tenant="acme")
        mine = lib.enqueue(RecordJob(tag=ODD[1], log_db=log), tenant="zeta")
    missing = "0" * 32
    refusals = {}
    for job_id in (theirs, missing):
        for action in ("show", "pause", "resume", "cancel"):
            result = cli(library, "jobs", action, job_id, "--tenant", "zeta")
            assert result.returncode != 0
            refusals[(job_id, action)] = (result.returncode, result.stderr.replace(job_id, "ID"))
    for action in ("show", "pause", "resume", "cancel"):
        assert refusals[(theirs, action)] == refusals[(missing, action)]
    listed = cli(library, "jobs", "list", "--json", "--tenant", "zeta")
    assert [json.loads(line)["id"] for line in listed.stdout.splitlines()] == [mine]
    shown = cli(library, "jobs", "show", theirs, "--json", "--tenant", "acme")
    assert shown.returncode == 0
    assert json.loads(shown.stdout)["tenant"] == "acme"
    # PHASEKIT_TENANT is the default --tenant.
    env = {**subprocess_env(), "PHASEKIT_TENANT": "acme"}
    listed = subprocess.run(
        [sys.executable, "-m", "phasekit", "--library", str(library), "jobs", "--json"],
        capture_output=True, text=True, env=env, check=True,
    )  # fmt: skip
    assert [json.loads(line)["id"] for line in listed.stdout.splitlines()] == [theirs]
    events = cli(library, "events", "--json", "--tenant", "zeta")
    assert {json.loads(line)["job_id"] for line in events.stdout.splitlines()} == {mine}
    with JobStore(library / "jobs.db") as store:
        # Nothing the refused commands did reached acme's job.
        assert store.status(theirs) is JobStatus.QUEUED
        assert store.get_job(theirs).input()["tag"] == ODD[0]


async def test_scopes_are_derived_stored_listed_and_carried_by_events(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "a").write_bytes(b"x")
    with Library.open(tmp_path / "lib") as library:
        location = library.add_location(tree)
        index_id = library.enqueue(IndexJob(location_id=location.id))
        dupes_id = library.enqueue(DupesJob(paths=[str(tree)]))
        log = str(tmp_path / "log.db")
        record_id = library.enqueue(RecordJob(tag="g", log_db=log))
        async with library.jobs() as manager:
            pinned = await manager.dispatch(
                RecordJob(tag="pinned", log_db=log), scope=location_scope(location.id)
            )
            with pytest.raises(InvalidInputError):
                await manager.dispatch(RecordJob(tag="bad", log_db=log), scope="somewhere")
            by_scope = {
                scope: [r.id for r in manager.jobs(scope=scope)]
                for scope in (location_scope(location.id), ENTRIES, GLOBAL)
            }
            for job_id in (index_id, dupes_id, record_id, pinned.id):
                await finished(manager.handle(job_id))
        assert by_scope == {
            location_scope(location.id): [index_id, pinned.id],
            ENTRIES: [dupes_id],
            GLOBAL: [record_id],
        }
        with JobStore(library.path / "jobs.db") as store:
            scopes = {e.job_id: e.scope for e in store.events()}
            assert scopes[index_id] == f"location:{location.id}"
            assert scopes[dupes_id] == "entries"
            assert {h.id: h.scope for h in store.history()}[record_id] == "global"


async def test_a_tenants_limit_bounds_its_running_jobs(tmp_path: Path) -> None:
    db = tmp_path / "jobs.db"
    log = tmp_path / "log.db"
    with JobStore(db) as store:
        for i in range(4):
            store.create_job(
                "test.record", {"tag": f"a{i}", "log_db": str(log), "duration_s": 0.2},
                tenant="acme",
            )  # fmt: skip
            store.create_job(
                "test.record", {"tag": f"b{i}", "log_db": str(log), "duration_s": 0.2},
                tenant="beta",
            )  # fmt: skip
    async with JobManager(db, tenants="*", max_concurrency=3, tenant_limits={"acme": 1}) as manager:
        with anyio.fail_after(120):
            while len(JobStore(db).history(limit=None)) < 8:
                await anyio.sleep(0.05)
        del manager
    import sqlite3

    rows = sqlite3.connect(log).execute("SELECT tag, start, end FROM log").fetchall()
    acme = sorted((start, end) for tag, start, end in rows if tag.startswith("a"))
    assert len(acme) == 4
    assert len(rows) == 8
    for (_, end), (start, _) in itertools.pairwise(acme):
        assert start >= end  # never two of acme's at once


async def test_split_items_keep_every_item_once_in_order(tmp_path: Path) -> None:
    db = tmp_path / "jobs.db"
    log = str(tmp_path / "fx.db")
    # Made (WAL) before any job opens it: jobs switching a new file to WAL
    # at the same moment would find it busy.
    effect_log(log).close()
    limit = ItemsJob.item_limit
    assert limit == 2000
    async with JobManager(db, max_concurrency=2) as manager:
        for n, jobs in ((limit, 1), (limit + 1, 2), (2 * limit + 1, 3)):
            items = ODD + [f"item-{i}" for i in range(n - len(ODD) - 1)] + [ODD[0] + "-end"]
            job = ItemsJob(items=items, log_db=log, tag=f"n{n}")
            if jobs > 1:
                with pytest.raises(InvalidInputError, match="submit"):
                    await manager.dispatch(job)
            submission = await manager.submit(job)
            assert submission.job_count == jobs
            assert submission.split is (jobs > 1)
            assert (submission.task_id is None) is (jobs == 1)
            parts = [manager.handle(j).record.input()["items"] for j in submission.job_ids]
            assert [len(p) for p in parts] == [min(limit, n - i * limit) for i in range(jobs)]
            assert [item for part in parts for item in part] == items
            if submission.task_id is not None:
                record = await manager.wait_task(submission.task_id, timeout=120)
                assert record.status == "completed"
                assert record.percent == 100
                assert {j.status for j in record.jobs} == {JobStatus.COMPLETED}
                assert record.steps == 1
                assert len(record.jobs) == jobs
                assert record.definition["split"] == {"field": "items", "jobs": jobs}
                assert "items" not in record.definition["steps"][0]["params"]
                assert {r.task_id for r in manager.jobs(task=submission.task_id)} == {
                    submission.task_id
                }
            else:
                await finished(manager.handle(submission.job_ids[0]))

    conn = effect_log(log)
    for n in (limit, limit + 1, 2 * limit + 1):
        done = conn.execute("SELECT COUNT(*) FROM step WHERE key LIKE ?", (f"n{n}:%",)).fetchone()
        assert done[0] == n
    first = f"n{limit}:{os.fsencode(ODD[0]).hex()}"
    assert conn.execute("SELECT COUNT(*) FROM step WHERE key = ?", (first,)).fetchone()[0] == 1


def test_the_library_splits_what_it_submits(tmp_path: Path) -> None:
    log = str(tmp_path / "fx.db")
    # Made (WAL) before any job opens it: jobs switching a new file to WAL
    # at the same moment would find it busy.
    effect_log(log).close()
    with Library.open(tmp_path / "lib") as library:
        items = [f"i{i}" for i in range(2001)]
        with pytest.raises(InvalidInputError, match="submit"):
            library.enqueue(ItemsJob(items=items, log_db=log))
        submission = library.submit(ItemsJob(items=items, log_db=log), tenant="acme")
        assert (submission.job_count, submission.split) == (2, True)
        assert submission.task_id is not None
        record = library.task(submission.task_id, tenant="acme")
        assert record.status == "queued"
        assert record.scope == "entries"
        with pytest.raises(TaskNotFound):
            library.task(submission.task_id)  # the default tenant's: none
        one = library.submit(ItemsJob(items=items[:3], log_db=log))
        assert (one.job_count, one.split, one.task_id) == (1, False, None)


async def test_a_managers_events_never_show_another_tenants_jobs(tmp_path: Path) -> None:
    """A manager that runs every tenant's jobs (a shared worker) streams
    only its own tenant's changes: ends, failures of dependencies and all."""
    from jobs_fixture import listening

    db = tmp_path / "jobs.db"
    log = str(tmp_path / "log.db")
    with JobStore(db) as store:
        theirs = store.create_job("test.record", {"tag": "b", "log_db": log}, tenant="beta")
        blocked = store.create_job(
            "test.record", {"tag": "b2", "log_db": log}, tenant="beta", depends_on=theirs
        )
    async with JobManager(db, tenant="acme", tenants="*") as manager, listening(manager) as seen:
        mine = await manager.dispatch(RecordJob(tag="a", log_db=log))
        await finished(mine)
        await manager.handle(mine.id).wait()
        with JobStore(db) as store:
            with anyio.fail_after(60):
                while not store.status(theirs).finished:
                    await anyio.sleep(0.02)
            store.set_status(theirs, JobStatus.FAILED, error="made to fail")
        with anyio.fail_after(60):
            while not JobStore(db).status(blocked).finished:
                await anyio.sleep(0.05)
    assert {event.job_id for event in seen} == {mine.id}
