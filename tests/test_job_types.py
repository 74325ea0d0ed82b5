"""Job types another process must know: phasekit's own jobs are known to
every manager, and a job whose type a process does not know is never failed
by it: it stays queued for a process that knows it (``jobs show`` says so,
``phasekit resume`` loads the installed packages' entry points first)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from jobs_fixture import subprocess_env
from phasekit.jobs import JobStatus, JobStore
from test_indexing import cli, kill_while_running, make_tree

#: A process that imported nothing but phasekit.library: it opens the
#: library's job manager and waits for the given job (or for a second).
ONLY_LIBRARY = """
import sys
import anyio
from phasekit.library import Library

async def main(library, job_id):
    async with library.jobs() as manager:
        handle = manager.handle(job_id)
        with anyio.move_on_after(float(sys.argv[3])):
            await handle.wait()
        print(handle.status.value, flush=True)

with Library.open(sys.argv[1]) as library:
    anyio.run(main, library, sys.argv[2])
assert "phasekit.indexing" not in sys.argv  # (nothing else was imported on purpose)
"""


def only_library(lib: Path, job_id: str, wait_s: float = 60.0) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", ONLY_LIBRARY, str(lib), job_id, str(wait_s)],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_an_index_killed_then_resumed_by_a_process_that_imported_only_the_library(tmp_path):
    root = tmp_path / "tree"
    make_tree(root, dirs=60, files_per_dir=40)
    args = ["index", str(root), "--batch-size", "10", "--checkpoint-every", "0.001",
            "--threads", "1"]  # fmt: skip
    killed = False
    for attempt, delay in enumerate((0.05, 0.0, 0.0)):
        lib = tmp_path / f"lib{attempt}"  # each attempt a first index
        killed = kill_while_running(args, lib, delay)
        if killed:
            break
    assert killed, "the index finished before it could be killed: make the tree bigger"
    with JobStore(lib / "jobs.db") as store:
        (record,) = store.list_jobs()
        assert record.status is JobStatus.RUNNING  # left so by the dead process
    assert only_library(lib, record.id) == "completed"
    listing = cli("ls", str(root), "--json", library=lib)
    assert len(listing.stdout.splitlines()) > 60 * 40


def test_a_queued_builtin_job_runs_in_a_process_that_never_imported_it(tmp_path):
    root = tmp_path / "tree"
    make_tree(root, dirs=3, files_per_dir=5)
    lib = tmp_path / "lib"
    # Queue an index the way another program would: by name, through jobs.db.
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(f"""
            from phasekit.library import Library
            from phasekit.jobs import JobStore
            with Library.open({str(lib)!r}) as library:
                location = library.add_location({str(root)!r})
            with JobStore({str(lib / "jobs.db")!r}) as store:
                print(store.create_job("phasekit.index", {{"location_id": location.id}}))
        """)],
        capture_output=True, text=True, env=subprocess_env(), check=True,
    )  # fmt: skip
    job_id = proc.stdout.strip()
    assert only_library(lib, job_id) == "completed"


APP_JOB = """
from phasekit.jobs import Job, job

@job("myapp.touch")
class TouchJob(Job):
    path: str

    def run(self, ctx):
        open(self.path, "w").write("done")
        return "touched"
"""


def _app_package(site: Path, with_entry_point: bool) -> None:
    """An application's job module, and (optionally) an installed
    distribution that declares it under the ``phasekit.jobs`` entry point."""
    site.mkdir()
    (site / "myapp_jobs.py").write_text(APP_JOB)
    if with_entry_point:
        info = site / "myapp_jobs-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text("Metadata-Version: 2.1\nName: myapp-jobs\nVersion: 1.0\n")
        (info / "entry_points.txt").write_text(
            "[phasekit.jobs]\nmyapp.touch = myapp_jobs:TouchJob\n"
        )


def _cli(site: Path | None, *args: str, lib: Path) -> subprocess.CompletedProcess[str]:
    env = subprocess_env()
    if site is not None:
        env["PYTHONPATH"] = f"{site}:{env['PYTHONPATH']}"
    return subprocess.run(
        [sys.executable, "-m", "phasekit", "--library", str(lib), *args],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip


@pytest.mark.parametrize("with_entry_point", [True, False])
def test_an_unknown_job_type_waits_and_is_never_failed(tmp_path, with_entry_point):
    lib = tmp_path / "lib"
    lib.mkdir()
    marker = tmp_path / "touched"
    with JobStore(lib / "jobs.db") as store:
        job_id = store.create_job("myapp.touch", {"path": str(marker)})
    # A process that knows only phasekit's jobs leaves it queued.
    assert only_library(lib, job_id, wait_s=1.0) == "queued"
    shown = cli("jobs", "show", job_id, "--json", library=lib)
    assert shown.returncode == 0, shown.stderr
    detail = json.loads(shown.stdout)
    assert detail["status"] == "queued"
    assert "waits" in detail["waiting"]
    assert "myapp.touch" in detail["waiting"]
    plain = cli("resume", library=lib)
    assert plain.returncode == 0, plain.stderr
    assert "waits for a program that knows its type" in plain.stderr
    with JobStore(lib / "jobs.db") as store:
        assert store.get_job(job_id).status is JobStatus.QUEUED
        assert store.get_job(job_id).error is None
    # `phasekit resume` loads the entry points of installed packages first.
    site = tmp_path / "site"
    _app_package(site, with_entry_point)
    done = _cli(site, "resume", "--json", lib=lib)
    assert done.returncode == 0, done.stderr
    with JobStore(lib / "jobs.db") as store:
        status = store.get_job(job_id).status
    if with_entry_point:
        assert status is JobStatus.COMPLETED
        assert marker.read_text() == "done"
    else:
        # Importable, but declared nowhere: still unknown, still waiting.
        assert status is JobStatus.QUEUED
        assert not marker.exists()


def test_an_open_manager_resumes_the_job_of_a_process_killed_meanwhile(tmp_path):
    """A long-running application's manager takes over an index that a CLI
    process was running when it was killed, without being reopened."""
    import anyio

    from phasekit.indexing import IndexJob
    from phasekit.library import Library

    root = tmp_path / "tree"
    make_tree(root, dirs=300, files_per_dir=60)
    args = ["index", str(root), "--batch-size", "10", "--checkpoint-every", "0.001",
            "--threads", "1"]  # fmt: skip

    async def main(library: Library, delay: float) -> str | None:
        async with library.jobs() as manager:
            # Opened before the other process starts its index.
            killed = await anyio.to_thread.run_sync(kill_while_running, args, library.path, delay)
            if not killed:
                return None  # it finished first: the caller tries again, sooner
            (record,) = manager.jobs()
            handle = manager.handle(record.id)
            # Identical to the killed one: joins it instead of a second index.
            same = IndexJob(location.id, batch_size=10, checkpoint_every_s=0.001, threads=1)
            again = await manager.dispatch(same)
            assert again.id == record.id
            return (await handle.wait()).value

    # The whole index takes a fraction of a second on a fast machine: each
    # attempt a first index in its own library, killed sooner than the last.
    outcome = None
    for attempt, delay in enumerate((0.05, 0.0, 0.0)):
        with Library.open(tmp_path / f"lib{attempt}") as library:
            location = library.add_location(root)
            outcome = anyio.run(main, library, delay)
            if outcome is None:
                continue
            assert outcome == "completed"
            assert library.location(location.id).indexed_at is not None
            break
    assert outcome is not None, "the index finished before it could be killed: make the tree bigger"
