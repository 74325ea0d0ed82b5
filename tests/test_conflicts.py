"""Jobs that must not run together never do: two indexes of one location, an
index and a validation of it; in one process or across processes. A second
identical dispatch returns the job already queued or running."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from jobs_fixture import subprocess_env
from phasekit.dupes import DupesJob
from phasekit.indexing import IndexJob
from phasekit.jobs import JobStatus, JobStore
from phasekit.library import Library
from phasekit.reference import scan_tree
from phasekit.validation import ValidateJob
from test_indexing import make_tree


def spans(jobs_db: Path) -> dict[str, tuple[float, float]]:
    """When each finished job started and ended (from its history)."""
    with JobStore(jobs_db) as store:
        return {h.id: (h.started_at or 0.0, h.finished_at) for h in store.history(limit=None)}


def assert_apart(a: tuple[float, float], b: tuple[float, float]) -> None:
    first, second = sorted([a, b])
    assert first[1] <= second[0], f"ran at the same time: {first} and {second}"


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_two_indexes_and_a_validation_of_one_location_run_one_at_a_time(tmp_path, backend):
    root = tmp_path / "tree"
    make_tree(root, dirs=40, files_per_dir=30)
    other = tmp_path / "other"
    make_tree(other, dirs=4, files_per_dir=5, seed=2)
    with Library.open(tmp_path / "lib") as library:
        location = library.add_location(root)
        elsewhere = library.add_location(other)

        async def main() -> list[JobStatus]:
            async with library.jobs(max_concurrency=4) as manager:
                handles = [
                    # Not identical (batch sizes differ): each runs, in turn.
                    await manager.dispatch(IndexJob(location.id, batch_size=50)),
                    await manager.dispatch(IndexJob(location.id, batch_size=70)),
                    await manager.dispatch(ValidateJob(location.id)),
                    await manager.dispatch(DupesJob(location_id=location.id)),
                    # Another location is free to run beside them.
                    await manager.dispatch(IndexJob(elsewhere.id)),
                ]
                return [await h.wait() for h in handles]

        statuses = anyio.run(main, backend=backend)
    assert statuses == [JobStatus.COMPLETED] * 5, statuses
    times = spans(tmp_path / "lib" / "jobs.db")
    with JobStore(tmp_path / "lib" / "jobs.db") as store:
        keyed = [r.id for r in store.list_jobs() if r.conflict_key == f"location:{location.id}"]
    assert len(keyed) == 4
    for i, a in enumerate(keyed):
        for b in keyed[i + 1 :]:
            assert_apart(times[a], times[b])


def test_an_identical_dispatch_returns_the_job_already_there(tmp_path):
    root = tmp_path / "tree"
    make_tree(root, dirs=10, files_per_dir=10)
    with Library.open(tmp_path / "lib") as library:
        location = library.add_location(root)

        async def main() -> tuple[str, str, str, JobStatus]:
            async with library.jobs() as manager:
                first = await manager.dispatch(IndexJob(location.id))
                again = await manager.dispatch(IndexJob(location.id))  # "rescan" twice
                await first.wait()
                later = await manager.dispatch(IndexJob(location.id))  # after: a new one
                return first.id, again.id, later.id, await later.wait()

        first, again, later, status = anyio.run(main)
    assert again == first
    assert later != first
    assert status is JobStatus.COMPLETED


def test_two_processes_index_one_location_at_once(tmp_path):
    root = tmp_path / "tree"
    make_tree(root, dirs=60, files_per_dir=40)
    lib = tmp_path / "lib"
    cmd = [sys.executable, "-m", "phasekit", "--library", str(lib), "index", str(root)]
    procs = [
        subprocess.Popen(
            [*cmd, "--batch-size", str(size)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=subprocess_env(),
        )
        for size in (20, 30)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    for proc, (_, err) in zip(procs, outs, strict=True):
        assert proc.returncode == 0, err
        assert "UNIQUE" not in err
    times = spans(lib / "jobs.db")
    assert len(times) == 2
    a, b = times.values()
    assert_apart(a, b)
    with Library.open(lib) as library:
        location = library.location(str(root))
        assert library.entry_count(location) == len(scan_tree(root))


def test_an_index_of_a_location_another_process_just_added_indexes_that_one(tmp_path):
    """``phasekit index`` looks for the location, then adds it: another
    process may add it in between (two indexes of a new location at once).
    The command then indexes the location that process added; a refusal
    for any other reason (a location inside another) still stands."""
    import argparse

    from phasekit.cli.index import _add
    from phasekit.errors import LocationOverlapError

    root = tmp_path / "tree"
    (root / "sub").mkdir(parents=True)
    args = argparse.Namespace(mode=None, one_level=False, nested=False)
    with Library.open(tmp_path / "lib") as first, Library.open(tmp_path / "lib") as second:
        added = first.add_location(str(root))
        assert _add(second, str(root), args).id == added.id
        with pytest.raises(LocationOverlapError):
            _add(second, str(root / "sub"), args)
