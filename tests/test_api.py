"""The public API as an application meets it: a typed, complete handle;
input checked when a job is made; one exception tree with no sqlite3, bare
KeyError or ValueError reaching the caller; a damaged jobs.db that never
blocks the library; cancel recorded as such; private library files."""

from __future__ import annotations

import dataclasses
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any, ClassVar

import anyio
import pytest

from jobs_fixture import CountJob, subprocess_env
from phasekit.dupes import DupesJob
from phasekit.errors import (
    InvalidInputError,
    JobNotFound,
    JobStateError,
    JobStoreError,
    LibraryClosed,
    LocationOverlapError,
    ManagerClosed,
    PhasekitError,
)
from phasekit.indexing import IndexJob, IndexSummary
from phasekit.jobs import (
    ErrorRecord,
    Job,
    JobEvent,
    JobManager,
    JobStatus,
    JobStore,
    PhaseStatus,
    job,
)
from phasekit.library import Library
from phasekit.validation import ValidateJob
from test_indexing import cli, make_tree

from conftest import run_as_nobody


def test_a_handle_tells_everything_without_the_store(tmp_path):
    root = tmp_path / "tree"
    make_tree(root, dirs=3, files_per_dir=4)
    gone = root / "d00" / "s000" / "f000.dat"
    with Library.open(tmp_path / "lib") as library:
        location = library.add_location(root)

        async def main() -> None:
            async with library.jobs() as manager:
                handle = await manager.dispatch(IndexJob(location.id))
                assert "phasekit.index" in repr(handle)
                assert await handle.wait() is JobStatus.COMPLETED
                summary = handle.output()
                assert isinstance(summary, IndexSummary)  # typed: JobHandle[IndexSummary]
                assert summary.files == 3 * 4 + 2
                assert handle.status is JobStatus.COMPLETED
                assert handle.error is None
                assert handle.errors() == []
                assert [p.phase for p in handle.phases()][:3] == [
                    "discovery",
                    "processing",
                    "aggregation",
                ]
                progress = handle.progress
                assert progress is not None
                assert progress.percent == 100.0
                record = handle.record
                assert "state_blob" not in repr(record)
                assert record.to_dict()["conflict_key"] == f"location:{location.id}"

                # A non-critical error: a file that vanished while validated.
                gone.unlink()
                check = await manager.dispatch(ValidateJob(location.id, mode="integrity"))
                assert await check.wait() is JobStatus.COMPLETED
                report = check.output()
                assert report is not None
                assert report.issues >= 1

        anyio.run(main)


def test_non_critical_errors_come_as_records(tmp_path):
    root = tmp_path / "tree"
    make_tree(root, dirs=2, files_per_dir=3)

    async def main() -> list[ErrorRecord]:
        async with JobManager(tmp_path / "jobs.db") as manager:
            handle = await manager.dispatch(
                CountJob(n=10, effects_db=str(tmp_path / "fx.db"), soft_error_every=5)
            )
            assert await handle.wait() is JobStatus.COMPLETED_WITH_ERRORS
            return handle.errors()

    errors = anyio.run(main)
    assert errors
    assert all(isinstance(e, ErrorRecord) for e in errors)
    assert errors[0].to_dict().keys() == {"message", "path", "errno"}


def test_jobs_check_their_input_when_made(tmp_path):
    root = tmp_path / "tree"
    root.mkdir()
    with Library.open(tmp_path / "lib") as library:
        location = library.add_location(root)
        bad = [
            lambda: IndexJob(location.id, mode="everything"),
            lambda: IndexJob(location),  # type: ignore[arg-type]
            lambda: IndexJob("1"),  # type: ignore[arg-type]
            lambda: IndexJob(True),  # type: ignore[arg-type]
            lambda: IndexJob(location.id, threads=0),
            lambda: IndexJob(location.id, batch_size=0),
            lambda: IndexJob(location.id, checkpoint_every_s=0),
            lambda: ValidateJob(location.id, mode="thorough"),
            lambda: ValidateJob(location.id, page=0),
            lambda: DupesJob(location_id=location.id, mode="bytes"),  # type: ignore[arg-type]
            lambda: DupesJob(location_id=location.id, threads=0),
            lambda: DupesJob(),
        ]
        for make in bad:
            with pytest.raises(InvalidInputError) as info:
                make()
            assert isinstance(info.value, ValueError)
        with pytest.raises(InvalidInputError, match=r"pass location\.id"):
            IndexJob(location)  # type: ignore[arg-type]


def test_nested_locations_are_refused_unless_allowed(tmp_path):
    outer = tmp_path / "photos"
    inner = outer / "2024"
    inner.mkdir(parents=True)
    alias = tmp_path / "alias"
    alias.symlink_to(outer)
    with Library.open(tmp_path / "lib") as library:
        library.add_location(outer)
        with pytest.raises(LocationOverlapError, match="inside location"):
            library.add_location(inner)
        with pytest.raises(LocationOverlapError, match="under another name"):
            library.add_location(alias)
        with pytest.raises(LocationOverlapError, match="contains location"):
            library.add_location(tmp_path)
        assert library.add_location(inner, allow_nested=True).path == str(inner)
    refused = cli("index", str(tmp_path), library=tmp_path / "lib")
    assert refused.returncode == 2
    assert "contains location" in refused.stderr


def test_control_of_unknown_and_finished_jobs_is_typed(tmp_path):
    async def main() -> None:
        async with JobManager(tmp_path / "jobs.db") as manager:
            for act in (manager.pause, manager.resume, manager.cancel):
                with pytest.raises(JobNotFound, match="no job with id 'nope'"):
                    await act("nope")
            with pytest.raises(JobNotFound):
                manager.handle("nope")
            handle = await manager.dispatch(CountJob(n=3, effects_db=str(tmp_path / "fx.db")))
            assert await handle.wait() is JobStatus.COMPLETED
            for act in (handle.pause, handle.resume, handle.cancel):
                with pytest.raises(JobStateError, match="is completed: nothing to"):
                    await act()
        # After the manager closed, its handles say so.
        with pytest.raises(ManagerClosed):
            _ = handle.status
        with pytest.raises(ManagerClosed):
            await manager.dispatch(CountJob(n=1, effects_db=str(tmp_path / "fx.db")))

    anyio.run(main)

    async def not_started() -> None:
        manager = JobManager(tmp_path / "jobs.db")
        with pytest.raises(ManagerClosed, match="not open"):
            await manager.dispatch(CountJob(n=1, effects_db=str(tmp_path / "fx.db")))
        manager.store.close()

    anyio.run(not_started)


def test_an_error_in_the_block_is_not_wrapped_in_an_exception_group(tmp_path):
    async def main() -> None:
        async with JobManager(tmp_path / "jobs.db"):
            raise KeyError("the application's own")

    with pytest.raises(KeyError, match="the application's own"):
        anyio.run(main)


def test_a_damaged_jobs_db_never_blocks_the_library_and_is_repaired(tmp_path):
    root = tmp_path / "tree"
    make_tree(root, dirs=2, files_per_dir=3)
    lib = tmp_path / "lib"
    assert cli("index", str(root), library=lib).returncode == 0
    (lib / "jobs.db").write_bytes(b"this is not a database" * 100)
    for suffix in ("-wal", "-shm"):
        (lib / f"jobs.db{suffix}").unlink(missing_ok=True)

    # The entries stay readable; the jobs say what is wrong and what to do.
    assert cli("ls", str(root), library=lib).returncode == 0
    with Library.open(lib) as library:
        assert library.entry_count(library.location(str(root))) > 0
        with pytest.raises(JobStoreError, match="phasekit jobs repair") as info:
            library.jobs()
        assert isinstance(info.value, PhasekitError)
    listed = cli("jobs", library=lib)
    assert listed.returncode == 2
    assert "phasekit jobs repair" in listed.stderr
    assert "Traceback" not in listed.stderr

    repaired = cli("jobs", "repair", library=lib)
    assert repaired.returncode == 0, repaired.stderr
    assert "moved it to" in repaired.stdout
    assert "untouched" in repaired.stdout
    assert list(lib.glob("jobs.db.damaged-*"))
    again = cli("jobs", "repair", library=lib)
    assert "no damage found" in again.stdout
    assert cli("index", str(root), library=lib).returncode == 0


def test_cancel_is_recorded_as_cancelled_and_the_next_index_completes(tmp_path):
    root = tmp_path / "tree"
    make_tree(root, dirs=80, files_per_dir=40)
    with Library.open(tmp_path / "lib") as library:
        location = library.add_location(root)

        async def first() -> JobStatus:
            async with library.jobs() as manager:
                handle = await manager.dispatch(
                    IndexJob(location.id, batch_size=10, checkpoint_every_s=0.001, threads=1)
                )
                async for update in handle.updates():
                    if update.status is JobStatus.RUNNING and update.progress is not None:
                        await handle.cancel()
                        break
                status = await handle.wait()
                phases = handle.phases()
                if status is JobStatus.CANCELLED:
                    assert PhaseStatus.CANCELLED in {p.status for p in phases}
                    assert PhaseStatus.FAILED not in {p.status for p in phases}
                return status

        status = anyio.run(first)
        if status is JobStatus.CANCELLED:
            # A cancelled first index leaves its location unfinished ...
            assert library.location(location.id).indexed_at is None
        summary = anyio.run(_index, library, location.id)
        # ... and the next index completes it.
        assert library.location(location.id).indexed_at is not None
        assert summary.file_count == 80 * 40 + 2


async def _index(library: Library, location_id: int) -> IndexSummary:
    async with library.jobs() as manager:
        handle = await manager.dispatch(IndexJob(location_id))
        assert await handle.wait() is JobStatus.COMPLETED
        summary = handle.output()
        assert summary is not None
        return summary


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_a_new_library_is_readable_by_its_owner_only(tmp_path):
    root = tmp_path / "tree"
    make_tree(root, dirs=2, files_per_dir=20)
    (root / "d00" / "copy").write_bytes((root / "d00" / "same_a").read_bytes())
    lib = tmp_path / "data" / "phasekit"  # neither folder exists yet
    assert cli("index", str(root), library=lib).returncode == 0
    assert cli("dupes", str(root), "--walk", library=lib).returncode == 0
    assert _mode(tmp_path / "data") == 0o700
    assert _mode(lib) == 0o700
    for name in ("library.db", "jobs.db"):
        assert _mode(lib / name) == 0o600, name
    for extra in [*lib.glob("*-wal"), *lib.glob("*-shm")]:
        assert _mode(extra) == 0o600, extra
    assert _mode(lib / "jobs.db.owners") == 0o700
    assert _mode(lib / "scratch") == 0o700
    # A folder the user made keeps its mode.
    mine = tmp_path / "mine"
    mine.mkdir(mode=0o750)
    os.chmod(mine, 0o750)
    assert cli("index", str(root), library=mine).returncode == 0
    assert _mode(mine) == 0o750
    assert _mode(mine / "library.db") == 0o600
    # Another user cannot read them (root reads everything: ask nobody).
    code = f"""
import json
try:
    open({str(lib / "library.db")!r}, "rb").read(1)
    print(json.dumps("read"))
except PermissionError:
    print(json.dumps("refused"))
"""
    os.chmod(tmp_path, 0o755)
    assert run_as_nobody(code) == "refused"


def test_cli_says_when_there_is_nothing_and_help_has_no_markup(tmp_path):
    lib = tmp_path / "lib"
    lib.mkdir()
    empty = cli("jobs", library=lib)
    assert empty.returncode == 0
    assert "no jobs" in empty.stderr
    make_tree(tmp_path / "tree", dirs=1, files_per_dir=2)
    assert cli("index", str(tmp_path / "tree"), library=lib).returncode == 0
    none_open = cli("jobs", library=lib)
    assert "no unfinished jobs" in none_open.stderr
    commands = ["index", "ls", "dupes", "validate", "jobs", "resume", "scan"]
    for args in [["--help"], *([c, "--help"] for c in commands)]:
        shown = subprocess.run(
            [sys.executable, "-m", "phasekit", *args],
            capture_output=True,
            text=True,
            env=subprocess_env(),
            check=True,
        )
        assert "``" not in shown.stdout, args
        assert ":class:" not in shown.stdout, args


def test_resume_shows_the_same_summary_as_the_command(tmp_path):
    root = tmp_path / "tree"
    make_tree(root, dirs=60, files_per_dir=40)
    lib = tmp_path / "lib"
    with JobStore(lib / "jobs.db") as store, Library.open(lib) as library:
        location = library.add_location(root)
        store.create_job("phasekit.index", IndexJob(location.id).to_state())
    resumed = cli("resume", library=lib)
    assert resumed.returncode == 0, resumed.stderr
    direct = cli("index", str(root), library=lib)
    assert direct.returncode == 0, direct.stderr
    # The same summary line: "<root>: N files, M dirs, ... bytes (content; ...".
    head = f"{root}: {60 * 40 + 2:,} files, 66 dirs"
    assert resumed.stdout.startswith(head), resumed.stdout
    assert direct.stdout.startswith(head), direct.stdout


def test_wrong_types_are_refused_not_guessed(tmp_path):
    root = tmp_path / "tree"
    root.mkdir()
    alias = tmp_path / "alias"
    alias.symlink_to(root)
    with Library.open(tmp_path / "lib") as library:
        for make in (
            lambda: DupesJob(paths="/data/photos"),  # type: ignore[arg-type]
            lambda: DupesJob(paths=[str(root)], extensions="jpg"),  # type: ignore[arg-type]
            lambda: library.add_location(42),  # type: ignore[arg-type]
            lambda: library.location(None),  # type: ignore[arg-type]
        ):
            with pytest.raises(InvalidInputError):
                make()
        location = library.add_location(alias)
        # Found by its real path too.
        assert library.location(root).id == location.id

        async def main() -> None:
            async with library.jobs() as manager:
                with pytest.raises(InvalidInputError, match="takes a job"):
                    await manager.dispatch("index")  # type: ignore[arg-type]
                with pytest.raises(JobNotFound):
                    await manager.dispatch(IndexJob(location.id), after="nope")
                with pytest.raises(InvalidInputError, match="status must be one of"):
                    manager.jobs(status="bogus")  # type: ignore[arg-type]

        anyio.run(main)


def test_asking_again_for_a_paused_job_resumes_it(tmp_path):
    root = tmp_path / "tree"
    make_tree(root, dirs=4, files_per_dir=4)
    with Library.open(tmp_path / "lib") as library:
        location = library.add_location(root)

        async def main() -> tuple[str, str, JobStatus]:
            async with library.jobs() as manager:
                first = await manager.dispatch(IndexJob(location.id), first_at=1e12)
                await manager.pause(first.id)
                # Not identical (first_at): a new job; pause that one instead.
                paused = await manager.dispatch(IndexJob(location.id, batch_size=7))
                await paused.pause()
                assert await paused.wait() is JobStatus.PAUSED
                again = await manager.dispatch(IndexJob(location.id, batch_size=7))
                await manager.cancel(first.id)
                return paused.id, again.id, await again.wait()

        paused, again, status = anyio.run(main)
    assert again == paused
    assert status is JobStatus.COMPLETED


def test_events_numbers_only_grow_for_a_slow_reader(tmp_path):
    async def main() -> list[JobEvent]:
        async with JobManager(tmp_path / "jobs.db", max_concurrency=2) as manager:  # noqa: SIM117 (events() needs an open manager)
            async with manager.events() as stream:  # listens from here on
                jobs = [
                    CountJob(n=200, effects_db=str(tmp_path / f"{i}.db"), delay_s=0.002)
                    for i in range(3)
                ]
                handles = [await manager.dispatch(job) for job in jobs]
                for handle in handles:
                    await handle.wait()  # nobody reads meanwhile
                seen: list[JobEvent] = []
                ended = 0
                async for event in stream:
                    seen.append(event)
                    if event.kind == "status" and event.status.finished:
                        ended += 1
                        if ended == len(handles):
                            break
                return seen

    seen = anyio.run(main)
    seqs = [e.seq for e in seen]
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == len(seqs)
    # Each job's progress waited as its newest value only.
    assert sum(e.kind == "progress" for e in seen) <= 3


def test_a_closed_library_runs_no_jobs_and_loses_none(tmp_path):
    root = tmp_path / "tree"
    make_tree(root, dirs=100, files_per_dir=40)
    library = Library.open(tmp_path / "lib")
    location = library.add_location(root)

    async def main() -> JobStatus:
        async with library.jobs() as manager:
            handle = await manager.dispatch(
                IndexJob(location.id, batch_size=10, checkpoint_every_s=0.001, threads=1)
            )
            async for update in handle.updates():
                if update.progress is not None:
                    library.close()  # under the running job
                    break
            with anyio.move_on_after(5):
                while handle.status is JobStatus.RUNNING:
                    await anyio.sleep(0.01)
            return handle.status

    status = anyio.run(main)
    assert status in (JobStatus.QUEUED, JobStatus.COMPLETED)  # never failed
    with pytest.raises(LibraryClosed):
        library.jobs()
    with Library.open(tmp_path / "lib") as again:
        summary = anyio.run(_index, again, location.id)
        assert summary.file_count == 100 * 40 + 2


#: A process that imports only phasekit.library, and runs an index that
#: fails (its root is gone): prints the job's status on stdout.
FAILING_INDEX = """
import sys
import anyio
from phasekit.library import Library
from phasekit.indexing import IndexJob

async def main(location_id):
    async with library.jobs() as manager:
        handle = await manager.dispatch(IndexJob(location_id))
        print((await handle.wait()).value, flush=True)

with Library.open(sys.argv[1]) as library:
    location = library.add_location(sys.argv[2])
    import shutil
    shutil.rmtree(sys.argv[2])
    anyio.run(main, location.id)
"""


def test_a_failing_job_prints_nothing_unless_the_application_configures_logging(tmp_path):
    root = tmp_path / "tree"
    make_tree(root, dirs=2, files_per_dir=2)
    proc = subprocess.run(
        [sys.executable, "-c", FAILING_INDEX, str(tmp_path / "lib"), str(root)],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "failed"
    assert proc.stderr == ""  # no last-resort handler printing the job's failure


def test_an_output_handed_over_in_process_equals_the_one_stored(tmp_path):
    """The first output() of a job that completed while its handle waited is
    the object the job returned; every later one is read from jobs.db. The
    two are equal, for every built-in job (odd names included)."""
    root = tmp_path / "tree"
    make_tree(root, dirs=3, files_per_dir=4)
    for name in (b"caf\xe9.jpg", b"caf\xe9-copy.jpg", b"new\nline.jpg"):
        (root / os.fsdecode(name)).write_bytes(b"same bytes" * 50)
    with Library.open(tmp_path / "lib") as library:
        location = library.add_location(root)

        async def main() -> None:
            async with library.jobs() as manager:
                jobs = [
                    IndexJob(location.id),
                    DupesJob(location_id=location.id),
                    DupesJob(paths=[str(root)]),
                    ValidateJob(location.id, mode="integrity"),
                ]
                for job in jobs:
                    handle = await manager.dispatch(job)
                    assert await handle.wait() is JobStatus.COMPLETED
                    handed = handle.output()
                    stored = handle.output()
                    assert handed is not stored  # the second came from jobs.db
                    assert type(handed) is type(stored)
                    # Equal but for the seconds measured: the same fields.
                    assert {**vars_of(handed), "seconds": 0} == {**vars_of(stored), "seconds": 0}

        anyio.run(main)


@dataclasses.dataclass(frozen=True)
class Made:
    n: int
    names: list[str]


#: Every output MakesOutput returned, in this process.
MADE: list[Made] = []


@job("test.makes_output")
class MakesOutput(Job[Made]):
    output_type: ClassVar[type[Any] | None] = Made

    def run(self, ctx: Any) -> Made:
        made = Made(len(MADE), [os.fsdecode(b"caf\xe9")])
        MADE.append(made)
        return made


def test_a_job_that_completed_while_watched_hands_over_its_very_output(tmp_path):
    async def main() -> None:
        async with JobManager(tmp_path / "jobs.db") as manager:
            handle = await manager.dispatch(MakesOutput())
            assert await handle.wait() is JobStatus.COMPLETED
            assert handle.output() is MADE[-1]  # no round trip through jobs.db
            assert handle.output() == MADE[-1]  # then read back, equal
            # Nobody waited for this one: nothing is kept for it.
            unwatched = await manager.dispatch(MakesOutput())
            while unwatched.status is not JobStatus.COMPLETED:
                await anyio.sleep(0.01)
            assert manager._outputs == {}
            assert unwatched.output() == MADE[-1]

    anyio.run(main)


def vars_of(value: object) -> dict[str, object]:
    assert dataclasses.is_dataclass(value)
    return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}


def test_records_give_the_json_shapes_the_command_line_prints(tmp_path):
    """to_dict() of the public records is what the CLI's --json prints, odd
    names included: an application or a web server reuses the same shapes."""
    import json

    root = tmp_path / "tree"
    make_tree(root, dirs=2, files_per_dir=3)
    for name in (b"caf\xe9.jpg", b"caf\xe9-copy.jpg", b"new\nline.jpg"):
        (root / os.fsdecode(name)).write_bytes(b"same bytes" * 50)
    lib = tmp_path / "lib"
    assert cli("index", str(root), library=lib).returncode == 0
    dupes = cli("dupes", str(root), "--json", library=lib)
    history = cli("jobs", "history", "--json", library=lib)
    listing = cli("ls", str(root), "--json", library=lib)
    with Library.open(lib) as library:
        location = library.location(str(root))
        entries = [json.loads(json.dumps(e.to_dict())) for e in library.entries(location)]
        assert [json.loads(line) for line in listing.stdout.splitlines()] == entries
        assert any(e["path"].endswith("caf\udce9.jpg") for e in entries)

        async def main() -> None:
            async with library.jobs() as manager:
                handle = await manager.dispatch(DupesJob(location_id=location.id))
                await handle.wait()
                summary = handle.output()
                assert summary is not None
                shape = json.loads(json.dumps(summary.to_dict()))
                groups = [json.loads(line) for line in dupes.stdout.splitlines()]
                assert shape["groups"] == groups
                assert shape["mode"] == "full"
                assert {"paths", "copies", "wasted", "size", "key"} <= set(groups[0])
                records = manager.store.history()
                assert [json.loads(line) for line in history.stdout.splitlines()] == [
                    h.to_dict() for h in records if h.id != handle.id
                ]

        anyio.run(main)
