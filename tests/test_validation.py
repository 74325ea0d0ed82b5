"""Validation: planted faults are found by the modes that can see them, an
untouched tree reports nothing, the twin agrees, resume is exact, the CLI."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio
import pytest

import phasekit
from jobs_fixture import subprocess_env
from phasekit.errors import InvalidInputError
from phasekit.indexing import IndexJob
from phasekit.jobs import JobStatus, JobStore
from phasekit.library import Library
from phasekit.reference import validate_entries
from phasekit.validation import (
    SEVERITY,
    Category,
    Severity,
    ValidateJob,
    ValidationSummary,
    issues,
)
from test_indexing import cli

from conftest import run_as_nobody

MIB = 1024 * 1024
Found = set[tuple[str, str, str]]


def make_tree(root: Path, dirs: int = 6, files_per_dir: int = 8, seed: int = 3) -> None:
    rng = random.Random(seed)
    for d in range(dirs):
        sub = root / f"d{d}"
        sub.mkdir(parents=True)
        for f in range(files_per_dir):
            size = 5000 if f == 0 else rng.choice([1, 90, 5000, 150_000])
            (sub / f"f{f}.dat").write_bytes(rng.randbytes(size))
    (root / "big.bin").write_bytes(rng.randbytes(3 * MIB))
    (root / "empty").write_bytes(b"")
    os.symlink("big.bin", root / "link")


async def _index(library: Library, root: Path, mode: str = "content") -> int:
    location = library.add_location(str(root), mode=mode)  # type: ignore[arg-type]
    async with library.jobs() as manager:
        handle = await manager.dispatch(IndexJob(location.id))
        assert await handle.wait() is JobStatus.COMPLETED
    return location.id


async def _validate(library: Library, location_id: int, mode: str, **kw) -> ValidationSummary:
    async with library.jobs() as manager:
        handle = await manager.dispatch(ValidateJob(location_id, mode=mode, **kw))
        status = await handle.wait()
        assert status is JobStatus.COMPLETED, manager.store.get_job(handle.id).error
        return handle.output()  # type: ignore[no-any-return]


def found(library: Library, summary: ValidationSummary) -> Found:
    return {(i.path, i.category.value, i.detail) for i in issues(library, summary)}


def twin(library: Library, location_id: int, mode: str) -> Found:
    location = library.location(location_id)
    result = validate_entries(location.path, list(library.entries(location)), mode)  # type: ignore[arg-type]
    return {(p, c.value, d) for p, c, d, _ in result.issues}


def flip_middle_byte(path: Path) -> None:
    """Flip a byte near the middle that cas_id's samples never read (one
    10 KiB sample starts right at the middle), and put the mtime back."""
    st = path.stat()
    with open(path, "r+b") as f:
        f.seek(st.st_size // 2 + 50_000)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0xFF]))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def categories(items: Found) -> set[tuple[str, str]]:
    return {(p, c) for p, c, _ in items}


async def _planted_faults(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    make_tree(root)
    with Library.open(tmp_path / "lib") as library:
        loc = await _index(library, root)
        # Untouched: nothing in any mode, and the twin agrees.
        for mode in ("basic", "integrity", "complete"):
            assert twin(library, loc, mode) == set()
            clean = await _validate(library, loc, mode)
            assert (clean.issues, found(library, clean)) == (0, set()), mode
        # The first complete run stored them (an empty file has none).
        files = sum(1 for e in library.entries(loc) if e.kind == 0 and e.size)
        assert clean.checksums_stored == files
        again = await _validate(library, loc, "complete")
        assert (again.issues, again.checksums_stored, again.hashed) == (0, 0, files)

        flip_middle_byte(root / "big.bin")
        os.truncate(root / "d1" / "f0.dat", 2500)
        (root / "d2" / "f3.dat").unlink()
        (root / "d3" / "f4.dat").chmod(0o600)
        metadata = {
            (str(root / "d1" / "f0.dat"), "size_changed"),
            (str(root / "d1" / "f0.dat"), "modified"),
            (str(root / "d2" / "f3.dat"), "missing"),
            (str(root / "d3" / "f4.dat"), "permissions_changed"),
        }
        by_mode = {"basic": metadata, "integrity": metadata,
                   "complete": metadata | {(str(root / "big.bin"), "content_changed")}}  # fmt: skip
        for mode, expected in by_mode.items():
            summary = await _validate(library, loc, mode)
            got = found(library, summary)
            assert categories(got) == expected, mode
            assert got == twin(library, loc, mode), mode  # details too
            assert summary.issues == len(expected)
        rot = next(i for i in summary.samples if i.category is Category.CONTENT_CHANGED)
        assert rot.severity is Severity.CRITICAL
        assert summary.samples[0] == rot  # the most severe first
        assert summary.by_severity == {"critical": 1, "error": 1, "warning": 3, "info": 0}


def test_planted_faults_and_an_untouched_tree(tmp_path):
    anyio.run(_planted_faults, tmp_path)


async def _small_rot_and_kinds(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    make_tree(root, dirs=2, files_per_dir=3)
    with Library.open(tmp_path / "lib") as library:
        loc = await _index(library, root)
        small = root / "d0" / "f0.dat"
        st = small.stat()
        small.write_bytes(bytes(b ^ 1 for b in small.read_bytes()))  # same size
        os.utime(small, ns=(st.st_atime_ns, st.st_mtime_ns))
        (root / "link").unlink()
        (root / "link").mkdir()
        (root / "d1" / "f1.dat").write_bytes(b"")
        integrity = await _validate(library, loc, "integrity")
        expected = {
            (str(small), "content_changed"),
            (str(root / "link"), "kind_changed"),
            (str(root / "d1" / "f1.dat"), "empty"),
            (str(root / "d1" / "f1.dat"), "modified"),
        }
        assert categories(found(library, integrity)) == expected
        assert found(library, integrity) == twin(library, loc, "integrity")
        basic = await _validate(library, loc, "basic")
        assert categories(found(library, basic)) == expected - {(str(small), "content_changed")}
        # A location keeps only its latest validation's issues.
        assert list(issues(library, integrity)) == []


def test_small_file_rot_kind_change_and_emptied_file(tmp_path):
    anyio.run(_small_rot_and_kinds, tmp_path)


def test_every_category_has_a_severity():
    assert set(SEVERITY) == set(Category)


def test_nasty_names_are_reported_and_the_twin_agrees(nasty, tmp_path):
    root, notable = nasty

    async def go() -> None:
        with Library.open(tmp_path / "lib") as library:
            loc = await _index(library, root)
            summary = await _validate(library, loc, "integrity")
            got = found(library, summary)
            assert got == twin(library, loc, "integrity")
            cats = categories(got)
            assert (os.fsdecode(notable["bad"]), "problematic_name") in cats
            assert (str(root / "line\nbreak.txt"), "problematic_name") in cats
            assert (str(root / ("n" * 251 + ".txt")), "name_too_long") in cats
            assert (os.fsdecode(notable["deep"]), "path_too_long") in cats
            # Names only: the tree is untouched (root reads every file).
            assert {c for _, c in cats} == {"problematic_name", "name_too_long", "path_too_long"}

    anyio.run(go)


def test_unreadable_files_as_an_unprivileged_user():
    base = Path(tempfile.mkdtemp(prefix="phasekit-validate-"))
    base.chmod(0o777)
    paths = [str(Path(__file__).parent), str(Path(phasekit.__file__).parents[1])]
    code = f"""
import sys; sys.path[:0] = {paths!r}
import json, os, anyio
from pathlib import Path
from phasekit.library import Library
from test_validation import _index, _validate, issues
base = Path({str(base)!r})
root = base / "tree"
(root / "locked").mkdir(parents=True)
(root / "secret.txt").write_bytes(b"secret")
(root / "locked" / "inner.txt").write_bytes(b"inner")
async def go():
    with Library.open(base / "lib") as library:
        loc = await _index(library, root)
        (root / "secret.txt").chmod(0)
        (root / "locked").chmod(0)
        try:
            summary = await _validate(library, loc, "integrity")
            print(json.dumps(sorted([os.path.relpath(i.path, root), i.category.value]
                                    for i in issues(library, summary))))
        finally:
            (root / "locked").chmod(0o755)
anyio.run(go)
"""
    try:
        got = run_as_nobody(code)
    finally:
        subprocess.run(["rm", "-rf", str(base)], check=False)
    assert got == [
        ["locked", "permissions_changed"],
        ["locked/inner.txt", "unreadable"],
        ["secret.txt", "permissions_changed"],
        ["secret.txt", "unreadable"],
    ]


async def _pause_and_resume(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    make_tree(root, dirs=40, files_per_dir=40)
    with Library.open(tmp_path / "lib") as library:
        loc = await _index(library, root)
        await _validate(library, loc, "complete")  # stores the checksums
        (root / "d5" / "f5.dat").unlink()
        (root / "d9" / "f9.dat").chmod(0o600)
        flip_middle_byte(root / "big.bin")
        whole = await _validate(library, loc, "complete", page=3)
        want = found(library, whole)  # before the next run replaces them
        assert {c for _, c, _ in want} == {"missing", "permissions_changed", "content_changed"}
        async with library.jobs() as manager:
            job = ValidateJob(loc, mode="complete", page=2, threads=1)
            handle = await manager.dispatch(job)
            async for update in handle.updates():
                progress = update.progress
                if progress is not None and progress.done:
                    break
            await handle.pause()
            assert await handle.wait() is JobStatus.PAUSED
            progress = manager.store.progress(handle.id)
            assert progress is not None
            assert progress.done is not None
            assert progress.done < whole.checked
            await handle.resume()
            assert await handle.wait() is JobStatus.COMPLETED
            resumed: ValidationSummary = handle.output()
        assert found(library, resumed) == want
        for name in ("checked", "issues", "by_category", "by_severity", "hashed"):
            assert getattr(resumed, name) == getattr(whole, name), name


def test_pause_mid_validation_then_resume_equals_an_uninterrupted_run(tmp_path):
    anyio.run(_pause_and_resume, tmp_path)


_RUN_VALIDATE = """
import sys, anyio
from phasekit.library import Library
from phasekit.validation import ValidateJob
async def go():
    with Library.open(sys.argv[1]) as library:
        async with library.jobs() as manager:
            handle = await manager.dispatch(ValidateJob(1, mode="complete", page=2, threads=1))
            await handle.wait()
anyio.run(go)
"""


def _running(jobs_db: Path) -> bool:
    """Whether the validation job runs (read through the job store)."""
    if not jobs_db.exists():
        return False
    with JobStore(jobs_db) as store:
        return bool(store.list_jobs(JobStatus.RUNNING))


def test_sigkill_mid_validation_then_resume_gives_the_same_output(tmp_path):
    root = tmp_path / "tree"
    make_tree(root, dirs=40, files_per_dir=40)
    lib = tmp_path / "lib"
    assert cli("index", str(root), library=lib).returncode == 0
    (root / "d7" / "f7.dat").unlink()
    flip_middle_byte(root / "big.bin")
    expected = cli("validate", str(root), "--mode", "complete", "--json", library=lib)
    assert expected.returncode == 1, expected.stderr
    rng = random.Random(11)
    kills = 0
    for _ in range(4):
        with subprocess.Popen(
            [sys.executable, "-c", _RUN_VALIDATE, str(lib)], env=subprocess_env()
        ) as proc:
            deadline = time.monotonic() + 60
            while not _running(lib / "jobs.db") and proc.poll() is None:
                assert time.monotonic() < deadline
                time.sleep(0.005)
            time.sleep(rng.uniform(0.02, 0.2))
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        if not _running(lib / "jobs.db"):
            continue  # it finished before the kill (maybe while closing): nothing to resume
        kills += 1
        # `resume` reports the validation as `validate --json` does: the
        # issues, then the summary, and the same exit status.
        done = cli("resume", "--json", library=lib)
        assert done.returncode == expected.returncode, done.stderr
        lines = [json.loads(x) for x in done.stdout.splitlines()]
        want = [json.loads(x) for x in expected.stdout.splitlines()]
        summary, want_summary = lines[-1], want[-1]
        assert summary["type"] == "summary"
        for name in ("checked", "issues", "by_category", "hashed", "bytes"):
            assert summary[name] == want_summary[name], name
        assert lines[:-1] == want[:-1]
        with Library.open(lib) as library, JobStore(lib / "jobs.db") as store:
            output = store.outcome(summary["job_id"])["output"]
            stored = ValidationSummary(**output)
            got = [i.to_json() for i in issues(library, stored)]
        assert got == [{k: v for k, v in w.items() if k != "type"} for w in want[:-1]]
    assert kills >= 2, "the validation finished before it could be killed: make the tree bigger"


def test_cli_json_report_and_exit_status(tmp_path):
    root = tmp_path / "tree"
    make_tree(root, dirs=2, files_per_dir=2)
    lib = tmp_path / "lib"
    assert cli("index", str(root), library=lib).returncode == 0
    clean = cli("validate", str(root), "--json", library=lib)
    assert clean.returncode == 0, clean.stderr
    (summary,) = map(json.loads, clean.stdout.splitlines())
    assert (summary["type"], summary["issues"], summary["mode"]) == ("summary", 0, "basic")
    (root / "d0" / "f0.dat").chmod(0o640)
    warned = cli("validate", str(root), "--mode", "integrity", library=lib)
    assert warned.returncode == 0, warned.stderr  # warnings only
    assert "WARNING (1)" in warned.stdout
    assert "permissions changed (1)" in warned.stdout
    (root / "d1" / "f1.dat").unlink()
    bad = cli("validate", str(root), "--json", library=lib)
    assert bad.returncode == 1
    *rows, last = map(json.loads, bad.stdout.splitlines())
    assert {(r["type"], r["path"], r["category"], r["severity"]) for r in rows} == {
        ("issue", str(root / "d0" / "f0.dat"), "permissions_changed", "warning"),
        ("issue", str(root / "d1" / "f1.dat"), "missing", "error"),
    }
    assert last["by_severity"] == {"critical": 0, "error": 1, "warning": 1, "info": 0}


def test_cli_refuses_what_is_not_an_indexed_location(tmp_path):
    root = tmp_path / "tree"
    make_tree(root, dirs=1, files_per_dir=1)
    lib = tmp_path / "lib"
    unknown = cli("validate", str(root), library=lib)
    assert unknown.returncode == 2
    assert f"phasekit index {root}" in unknown.stderr
    assert cli("index", str(root), library=lib).returncode == 0
    inside = cli("validate", str(root / "d0"), library=lib)
    assert inside.returncode == 2
    assert f"inside location {root}" in inside.stderr
    mode = cli("validate", str(root), "--mode", "everything", library=lib)
    assert mode.returncode == 2
    with Library.open(lib) as library:
        library.add_location(tmp_path, allow_nested=True)  # added, never indexed
    never = cli("validate", str(tmp_path), library=lib)
    assert never.returncode == 2
    assert "has not been indexed yet" in never.stderr


async def _missing_root(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    make_tree(root, dirs=1, files_per_dir=1)
    with Library.open(tmp_path / "lib") as library:
        loc = await _index(library, root)
        root.rename(tmp_path / "moved")
        async with library.jobs() as manager:
            handle = await manager.dispatch(ValidateJob(loc, mode="basic"))
            assert await handle.wait() is JobStatus.FAILED
            assert "missing or not a directory" in (manager.store.get_job(handle.id).error or "")
        # A bad mode is refused when the job is made, before anything is queued.
        with pytest.raises(InvalidInputError, match="validation mode"):
            ValidateJob(loc, mode="thorough")


def test_missing_root_and_bad_mode_fail_the_job_clearly(tmp_path):
    anyio.run(_missing_root, tmp_path)


def test_a_version_1_library_is_upgraded(tmp_path):
    folder = tmp_path / "lib"
    root = tmp_path / "tree"
    make_tree(root, dirs=1, files_per_dir=2)
    with Library.open(folder) as library:
        anyio.run(_index, library, root)
    # Make it a version 1 file from another process: library.db is never
    # opened by Python's sqlite3 and the Rust SQLite in one process.
    code = (
        "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
        "c.execute('DROP TABLE validation_issues'); c.execute('DROP TRIGGER entries_cas_changed'); "
        "c.execute('DROP TRIGGER entries_cas_deleted'); "
        "c.execute('ALTER TABLE locations DROP COLUMN content_linked'); "
        "c.execute('DROP TABLE lost_links'); "
        "c.execute('PRAGMA user_version = 1'); "
        "c.commit(); c.close()"
    )
    subprocess.run([sys.executable, "-c", code, str(folder / "library.db")], check=True)
    with Library.open(folder) as library:
        assert library._db.schema_version() == 6
        loc = library.locations()[0].id
        (root / "d0" / "f0.dat").unlink()
        summary = anyio.run(_validate, library, loc, "basic")
        assert summary.by_category == {"missing": 1}


@pytest.mark.parametrize("mode", ["integrity", "complete"])
def test_a_shallow_index_leaves_contents_unverified(tmp_path, mode):
    root = tmp_path / "tree"
    make_tree(root, dirs=1, files_per_dir=3)

    async def go() -> None:
        with Library.open(tmp_path / "lib") as library:
            loc = await _index(library, root, mode="shallow")
            summary = await _validate(library, loc, mode)
            files = [e for e in library.entries(loc) if e.kind == 0 and e.size]
            if mode == "integrity":
                assert (summary.unverified, summary.hashed) == (len(files), 0)
            else:  # complete mode has checksums to store instead
                assert summary.checksums_stored == len(files)  # not the empty file
            assert summary.issues == 0

    anyio.run(go)


async def _fifo_in_place_of_a_file(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    make_tree(root, dirs=1, files_per_dir=2)
    with Library.open(tmp_path / "lib") as library:
        loc = await _index(library, root)
        target = root / "d0" / "f0.dat"
        target.unlink()
        os.mkfifo(target)
        # A writer waits in open() until a reader opens the FIFO: if the
        # validation opened it, this open would return.
        writer_done = anyio.Event()

        def write_open() -> None:
            fd = os.open(target, os.O_WRONLY)
            os.close(fd)

        async def writer() -> None:
            await anyio.to_thread.run_sync(write_open, abandon_on_cancel=True)
            writer_done.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(writer)
            await anyio.sleep(0.1)  # the writer is waiting
            summary = await _validate(library, loc, "complete")
            await anyio.sleep(0.1)
            assert not writer_done.is_set(), "the FIFO was opened"
            # Release the writer.
            os.close(os.open(target, os.O_RDONLY | os.O_NONBLOCK))
            with anyio.fail_after(10):
                await writer_done.wait()
        assert (str(target), "kind_changed") in categories(found(library, summary))


def test_a_fifo_in_place_of_an_indexed_file_is_never_opened(tmp_path):
    anyio.run(_fifo_in_place_of_a_file, tmp_path)


async def _faults_across_chunks(tmp_path: Path) -> None:
    # More entries than one chunk of a page (2,048 rows): issues must land
    # on the entries they belong to, whichever chunk checked them.
    root = tmp_path / "tree"
    for d in range(2):
        (root / f"d{d}").mkdir(parents=True)
        for f in range(1100):
            (root / f"d{d}" / f"f{f:04}").write_bytes(f"{d}/{f}".encode())
    with Library.open(tmp_path / "lib") as library:
        loc = await _index(library, root)
        (root / "d0/f0005").write_bytes(b"longer than before")
        (root / "d1/f1000").unlink()
        os.chmod(root / "d1/f0999", 0o600)
        summary = await _validate(library, loc, "integrity")
        assert categories(found(library, summary)) == {
            (str(root / "d0/f0005"), "size_changed"),
            (str(root / "d0/f0005"), "modified"),
            (str(root / "d1/f1000"), "missing"),
            (str(root / "d1/f0999"), "permissions_changed"),
        }
        assert found(library, summary) == twin(library, loc, "integrity")
        assert summary.checked == library.entry_count(loc) == 2202


def test_faults_are_reported_on_their_own_entries_across_chunks(tmp_path):
    anyio.run(_faults_across_chunks, tmp_path)
