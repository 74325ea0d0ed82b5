"""The global maintenance job (phasekit.maintenance): each step does its
work on real files and databases, it is scheduled once however many
processes ask (3 `phasekit worker` processes on a library of 10 locations:
one occurrence per interval, never two at once), and a worker killed while
running it leaves it to another, which resumes it without redoing a step."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from jobs_fixture import subprocess_env
from phasekit.indexing import IndexJob
from phasekit.jobs import JobStatus, JobStore, PhaseStatus, phase_history
from phasekit.library import Library
from phasekit.maintenance import (
    CONFLICT_KEY,
    JOB_NAME,
    MaintenanceJob,
    MaintenanceSummary,
    revalidation_issues,
)
from phasekit.thumbs import sidecar_path
from phasekit.validation import Category, ValidateJob
from test_workers import WAIT_S, Worker, wait_for

from conftest import BAD_NAME, NEWLINE_NAME

DAY = 24 * 3600.0
#: A second job's id (any 32 hex digits not in the library's jobs.db).
GONE_JOB = "0" * 31 + "1"


def make_tree(root: Path, files: int = 6) -> None:
    """Files with a non-UTF-8 name and a newline in a name among them."""
    (root / "sub").mkdir(parents=True)
    names = [os.fsdecode(BAD_NAME), NEWLINE_NAME] + [f"f{i}.txt" for i in range(files - 2)]
    for i, name in enumerate(names):
        (root / name).write_bytes(b"content %d " % i * (i + 1))
        (root / "sub" / name).write_bytes(b"other %d " % i * (i + 2))


def age(path: str | bytes | Path, seconds: float) -> None:
    """Make a file look untouched for ``seconds``."""
    then = time.time() - seconds
    os.utime(path, (then, then))


def maintained(library: Library, **settings: object) -> MaintenanceSummary:
    run = library.run(MaintenanceJob(**settings))  # type: ignore[arg-type]
    assert run.status is JobStatus.COMPLETED, (run.status, run.error, run.errors())
    summary = run.output()
    assert isinstance(summary, MaintenanceSummary)
    return summary


@pytest.fixture
def indexed(tmp_path: Path) -> tuple[Path, Path]:
    """A library folder, and a tree indexed in it (content mode)."""
    tree = tmp_path / "tree"
    make_tree(tree)
    folder = tmp_path / "lib"
    with Library.open(folder) as library:
        location = library.add_location(tree, mode="content")
        assert library.run(IndexJob(location.id)).status is JobStatus.COMPLETED
    return folder, tree


def test_orphaned_sidecars_and_old_temporary_files_go_live_and_fresh_ones_stay(
    indexed: tuple[Path, Path], tmp_path: Path
) -> None:
    folder, tree = indexed
    with Library.open(folder) as library:
        entry = library.entry(library.locations()[0], tree / os.fsdecode(BAD_NAME))
        assert entry is not None
        assert entry.cas_id is not None
        live = sidecar_path(library.path, entry.cas_id, "grid")
        orphan = sidecar_path(library.path, "ab" * 8, "grid")
        for path in (live, orphan):
            path.parent.mkdir(parents=True)
            path.write_bytes(b"RIFF....WEBP")
        # Thumbnails' temporary names: one a killed run left, one being written.
        old_temp = live.parent / f".grid.webp.{os.getpid()}.0a0b.tmp"
        fresh_temp = live.parent / f".grid.webp.{os.getpid()}.0c0d.tmp"
        old_temp.write_bytes(b"half")
        fresh_temp.write_bytes(b"half")
        age(old_temp, 2 * DAY)
        # Scratch files: a forgotten job's (old, and fresh), a queued job's (old).
        scratch = library.path / "scratch"
        scratch.mkdir()
        forgotten = scratch / f"dupes-{GONE_JOB}.digests"
        recent = scratch / f"dupes-{'0' * 31}2.digests"
        queued_id = library.enqueue(ValidateJob(library.locations()[0].id))
        needed = scratch / f"dupes-{queued_id}.digests"
        for path in (forgotten, recent, needed):
            path.write_bytes(b"digests")
        age(forgotten, 2 * DAY)
        age(needed, 30 * DAY)
        # An interrupted copy of a forgotten job: its plan, and the temporary
        # names it left in its destination (a non-UTF-8 folder name).
        from phasekit._core import CopyPlan

        dest = tmp_path / "dest" / os.fsdecode(BAD_NAME)
        plan, errors = CopyPlan.make([os.fsencode(tree / "sub")], [os.fsencode(dest)])
        assert errors == []
        plan_path = scratch / f"copy-{GONE_JOB}.plan"
        plan.save(plan_path)
        age(plan_path, 2 * DAY)
        dest.mkdir(parents=True)
        left = dest / f".pk{GONE_JOB}-3.pktmp"
        writing = dest / f".pk{GONE_JOB}-4.pktmp"
        others = dest / f".pk{'0' * 31}3-3.pktmp"  # another job's: never ours to take
        for path in (left, writing, others):
            path.write_bytes(b"part of a copy")
        age(left, 2 * DAY)
        age(others, 2 * DAY)

        summary = maintained(library, revalidate=0)

        assert live.exists()
        assert not orphan.parent.exists()
        assert not old_temp.exists()
        assert fresh_temp.exists()
        assert not forgotten.exists()
        assert recent.exists()
        assert needed.exists()
        assert not plan_path.exists()
        assert not left.exists()
        assert writing.exists()
        assert others.exists()
        assert (summary.sidecars_removed, summary.sidecar_temps_removed) == (1, 1)
        assert (summary.scratch_removed, summary.copy_temps_removed) == (2, 1)
        assert summary.temps_kept == 3  # recent, needed (its job is queued), writing
        # A run later finds nothing more to do.
        again = maintained(library, revalidate=0)
        assert (again.sidecars_removed, again.scratch_removed, again.copy_temps_removed) == (0,) * 3


def test_history_older_than_the_setting_and_events_beyond_those_kept_are_pruned(
    indexed: tuple[Path, Path],
) -> None:
    folder, _tree = indexed
    with Library.open(folder) as library:
        location = library.locations()[0]
        waiting = library.enqueue(ValidateJob(location.id))
        with JobStore(folder / "jobs.db") as store:
            [index_job] = [h.id for h in store.history() if h.name == "phasekit.index"]
            # The default keeps a month: nothing of today goes.
            kept = maintained(library, revalidate=0)
            assert (kept.history_pruned, kept.jobs_pruned) == (0, 0)
            assert index_job in {h.id for h in store.history()}
            before = store.last_event_id()
            assert before > 5
            summary = maintained(library, revalidate=0, keep_history_s=0, keep_events=5)
            assert summary.jobs_pruned >= 2  # the index and the first maintenance
            assert summary.history_pruned >= 2
            assert summary.events_pruned > 0
            assert index_job not in {h.id for h in store.history()}
            assert store.status(waiting) is JobStatus.QUEUED  # unfinished: kept
            # The events kept: the newest five when it pruned, and those since.
            assert store.events()[0].seq > before - 5


def test_the_stalest_entries_are_revalidated_in_turn_and_rot_is_reported(
    indexed: tuple[Path, Path],
) -> None:
    folder, tree = indexed
    rotten = tree / "sub" / os.fsdecode(BAD_NAME)
    stat = rotten.stat()
    data = rotten.read_bytes()
    rotten.write_bytes(bytes(b ^ 0xFF for b in data))  # same size...
    os.utime(rotten, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # ...same mtime: rot
    with Library.open(folder) as library:
        location = library.locations()[0]
        total = library.entry_count(location)
        seen: list[tuple[int, str]] = []
        found: list[bytes] = []
        done = 0
        # Windows of 5 entries: each run goes on where the last one stopped.
        while done < total:
            window = min(5, total - done)
            summary = maintained(library, revalidate=window, page=2)
            assert summary.revalidated == window
            assert summary.databases
            assert all(d.vacuum for d in summary.databases)
            seen += summary.runs
            rot = [
                os.fsencode(i.path)
                for i in revalidation_issues(library, summary)
                if i.category is Category.CONTENT_CHANGED
            ]
            found += rot
            # The names with a newline or bytes that are not UTF-8 are
            # reported too (warnings); rot is critical.
            assert summary.by_severity["critical"] == len(rot)
            assert summary.by_category.get("content_changed", 0) == len(rot)
            if rot:
                assert summary.sample_rows[0][0] == os.fsencode(rotten)
            done += summary.revalidated
        assert found == [os.fsencode(rotten)]  # exactly once over the turn
        # Every entry was reached once: the windows joined end to end.
        checked = maintained(library, revalidate=total)
        assert checked.revalidated == total
        assert checked.samples[0].path == str(rotten)
        assert checked.samples[0].category is Category.CONTENT_CHANGED
        assert checked.by_severity["critical"] == 1


def test_a_database_with_many_free_pages_is_vacuumed(tmp_path: Path) -> None:
    folder = tmp_path / "lib"
    big = tmp_path / "big"
    big.mkdir()
    for i in range(3000):
        (big / f"file-with-a-rather-long-name-{i:05d}.txt").write_bytes(b"%d" % i)
    with Library.open(folder) as library:
        location = library.add_location(big, mode="shallow")
        assert library.run(IndexJob(location.id)).status is JobStatus.COMPLETED
        library.remove_location(location)  # most of library.db is free now
        summary = maintained(library, revalidate=0)
        [db] = [d for d in summary.databases if d.name == "library.db"]
        assert db.free_pages / db.pages >= 0.25
        assert db.vacuum == "full"
        assert db.bytes_after < db.bytes_before
        # Too large for one short step: left, and said why.
        again = maintained(library, revalidate=0, vacuum_free_fraction=0.0001, vacuum_max_bytes=1)
        assert all(d.vacuum in ("none",) or d.vacuum.startswith("skipped") for d in again.databases)


def test_phasekit_maintenance_reports_each_step_and_the_rot_it_found(
    indexed: tuple[Path, Path],
) -> None:
    folder, tree = indexed
    rotten = tree / NEWLINE_NAME
    stat = rotten.stat()
    rotten.write_bytes(bytes(b ^ 0x55 for b in rotten.read_bytes()))
    os.utime(rotten, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    argv = [sys.executable, "-m", "phasekit", "--library", str(folder), "maintenance"]
    done = subprocess.run([*argv, "--json"], env=subprocess_env(), capture_output=True,
                          text=True, timeout=WAIT_S, check=False)  # fmt: skip
    assert done.returncode == 1, done.stderr  # something critical was found
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    issues = [x for x in lines if x["type"] == "issue"]
    [issue] = [x for x in issues if x["category"] == "content_changed"]
    assert (issue["path"], issue["severity"]) == (str(rotten), "critical")
    # The odd names are warnings, each path as it is on disk (JSON escapes).
    assert {x["category"] for x in issues} == {"content_changed", "problematic_name"}
    assert str(tree / os.fsdecode(BAD_NAME)) in {x["path"] for x in issues}
    [summary] = [x for x in lines if x["type"] == "summary"]
    assert {d["name"] for d in summary["databases"]} == {"library.db", "jobs.db"}
    assert summary["revalidated"] > 0
    assert summary["issues"] == len(issues)
    text = subprocess.run([*argv, "--revalidate", "0"], env=subprocess_env(), capture_output=True,
                          text=True, timeout=WAIT_S, check=False)  # fmt: skip
    assert text.returncode == 0, text.stderr
    assert "library.db:" in text.stdout
    assert "re-validated: 0 entries" in text.stdout


SCHEDULE = """
import sys
from phasekit.library import Library
with Library.open(sys.argv[1]) as library:
    print(library.schedule_maintenance(every_s=float(sys.argv[2])), flush=True)
"""


def unfinished_maintenance(store: JobStore) -> list[str]:
    return [r.id for r in store.list_jobs(name=JOB_NAME) if not r.status.finished]


def test_schedule_maintenance_from_ten_processes_and_ten_threads_makes_one(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "lib"
    with Library.open(folder):
        pass
    procs = [
        subprocess.Popen([sys.executable, "-c", SCHEDULE, str(folder), "3600"],
                         env=subprocess_env(), stdout=subprocess.PIPE, text=True)
        for _ in range(10)
    ]  # fmt: skip
    ids: list[str] = []
    with Library.open(folder) as library:
        threads = [
            threading.Thread(target=lambda: ids.append(library.schedule_maintenance(60)))
            for _ in range(10)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    for proc in procs:
        out, _ = proc.communicate(timeout=WAIT_S)
        assert proc.returncode == 0
        ids.append(out.strip())
    with JobStore(folder / "jobs.db") as store:
        [one] = unfinished_maintenance(store)
        assert set(ids) == {one}
        record = store.get_job(one)
        assert record.conflict_key == CONFLICT_KEY
        assert record.run_every_s in (60, 3600)
        assert record.next_run_at is not None
        assert record.next_run_at > record.created_at


def test_three_workers_on_ten_locations_run_one_maintenance_per_interval(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "lib"
    with Library.open(folder) as library:
        for i in range(10):
            tree = tmp_path / f"tree{i}"
            make_tree(tree, files=3)
            location = library.add_location(tree)
            assert library.run(IndexJob(location.id)).status is JobStatus.COMPLETED
    workers: list[Worker] = []
    try:
        with JobStore(folder / "jobs.db") as store:
            # All three start together, each making sure of the schedule.
            starting = [
                threading.Thread(
                    target=lambda: workers.append(
                        Worker(folder, "--maintenance-every", "1", "--concurrency", "2")
                    )
                )
                for _ in range(3)
            ]
            for t in starting:
                t.start()
            for t in starting:
                t.join()
            assert len(workers) == 3
            most_unfinished = most_running = 0

            def enough_runs() -> bool:
                nonlocal most_unfinished, most_running
                records = [r for r in store.list_jobs(name=JOB_NAME) if not r.status.finished]
                running = [r for r in records if r.status is JobStatus.RUNNING]
                most_unfinished = max(most_unfinished, len(records))
                most_running = max(most_running, len(running))
                ended = [h for h in store.history(name=JOB_NAME, limit=None)]
                return len(ended) >= 4

            wait_for("four maintenance runs", enough_runs)
            for worker in workers:
                assert worker.stop() == 0
            assert most_unfinished == 1
            assert most_running <= 1
            jobs = store.list_jobs(name=JOB_NAME)
            [schedule] = {r.schedule_id for r in jobs}  # one schedule, however many asked
            assert schedule is not None
            occurrences = store.occurrences(schedule)
            assert len(unfinished_maintenance(store)) == 1  # the next one, queued
            ended = sorted(
                (h for h in store.history(name=JOB_NAME, limit=None)),
                key=lambda h: h.finished_at,
            )
            assert {h.status for h in ended} == {JobStatus.COMPLETED}
            # Never two at once: each started after the one before ended.
            for before, after in itertools.pairwise(ended):
                assert after.started_at is not None
                assert after.started_at >= before.finished_at
            # One occurrence per interval: each planned on a slot of its own.
            planned = [o.next_run_at for o in occurrences]
            assert all(p is not None for p in planned)
            assert planned == sorted(planned)
            assert len(set(planned)) == len(planned)
            # Each run re-validated entries of the ten locations in turn.
            outputs = [MaintenanceSummary.from_mapping(h.output()) for h in ended]
            assert all(o.revalidated > 0 for o in outputs)
    finally:
        for worker in workers:
            worker.close()


def test_a_killed_worker_running_maintenance_is_resumed_by_another(tmp_path: Path) -> None:
    folder = tmp_path / "lib"
    tree = tmp_path / "tree"
    make_tree(tree, files=400)
    with Library.open(folder) as library:
        location = library.add_location(tree, mode="content")
        assert library.run(IndexJob(location.id)).status is JobStatus.COMPLETED
        total = library.entry_count(location)
        # One entry a page, a checkpoint each: long enough to be killed in.
        job_id = library.enqueue(MaintenanceJob(revalidate=total, page=1))
    workers: list[Worker] = []
    try:
        with JobStore(folder / "jobs.db") as store:
            first = Worker(folder, "--maintenance-every", "0")
            workers.append(first)

            def revalidating() -> bool:
                saved = store.load_checkpoint(job_id)
                snap = saved[1] if saved else None
                return (
                    isinstance(snap, dict)
                    and snap.get("at") == "revalidate"
                    and isinstance(snap.get("state"), dict)
                    and snap["state"]["done"] >= 20
                )

            wait_for("the maintenance to be re-validating", revalidating)
            first.proc.kill()
            first.proc.wait()
            second = Worker(folder, "--maintenance-every", "0")
            workers.append(second)
            wait_for("it to complete", lambda: store.status(job_id) is JobStatus.COMPLETED)
            assert store.load_for_run(job_id).lease == 2  # taken over once
            summary = MaintenanceSummary.from_mapping(store.outcome(job_id)["output"])
            assert summary.revalidated == total  # every entry once: none twice
            # The steps that had ended were not run again.
            history = phase_history(store, job_id)
            for step in ("optimize", "prune", "sidecars", "temps"):
                runs = [p for p in history if p.phase == step]
                assert [p.status for p in runs] == [PhaseStatus.COMPLETED], step
            assert second.stop() == 0
    finally:
        for worker in workers:
            worker.close()
