"""The indexer job and its CLI: exact resume after SIGKILL, re-index after
edits, the nasty tree, Ctrl-C."""

from __future__ import annotations

import errno
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio

import phasekit
from jobs_fixture import subprocess_env
from phasekit.indexing import IndexJob
from phasekit.jobs import JobStatus, JobStore
from phasekit.library import Library
from phasekit.reference import IndexedEntry, scan_tree

from conftest import run_as_nobody


def make_tree(root: Path, dirs: int, files_per_dir: int, seed: int = 1) -> None:
    rng = random.Random(seed)
    for d in range(dirs):
        sub = root / f"d{d // 10:02d}" / f"s{d:03d}"
        sub.mkdir(parents=True, exist_ok=True)
        for f in range(files_per_dir):
            size = rng.choice([0, 1, 50, 4000, 120_000]) if f % 7 == 0 else rng.randint(1, 300)
            (sub / f"f{f:03d}.dat").write_bytes(rng.randbytes(size))
    (root / "d00" / "same_a").write_bytes(b"twin content")
    (root / "d00" / "same_b").write_bytes(b"twin content")


def indexed(library: Library, root: Path) -> dict[str, IndexedEntry]:
    kinds = {0: "file", 1: "dir", 2: "symlink", 3: "other"}
    return {
        e.path: IndexedEntry(kinds[int(e.kind)], e.size, e.mtime_ns, e.inode, e.cas_id)
        for e in library.entries(library.location(str(root)))
    }


def cli(*args: str, library: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "phasekit", "--library", str(library), *args],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=120,
        check=False,
    )


async def index(library: Library, root: Path, mode: str = "content") -> IndexJob:
    try:
        location = library.location(str(root))
    except KeyError:
        location = library.add_location(str(root), mode=mode)
    job = IndexJob(location.id, batch_size=50)
    async with library.jobs() as manager:
        handle = await manager.dispatch(job)
        assert await handle.wait() is JobStatus.COMPLETED, manager.store.get_job(handle.id).error
        return handle.output()  # type: ignore[no-any-return]


def wait_until_running(jobs_db: Path, proc: subprocess.Popen[bytes]) -> None:
    """Until the index job runs (read through the job store, from this process)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if jobs_db.exists():
            with JobStore(jobs_db) as store:
                if store.list_jobs(JobStatus.RUNNING):
                    return
        time.sleep(0.005)


def unfinished_jobs(jobs_db: Path) -> int:
    """How many jobs in ``jobs_db`` have not reached an end."""
    with JobStore(jobs_db) as store:
        return sum(not record.status.finished for record in store.list_jobs())


def kill_while_running(args: list[str], library: Path, delay: float) -> bool:
    """Run ``phasekit --library LIBRARY ARGS``; SIGKILL it ``delay`` seconds
    after its job starts running. True only if the kill left a job unfinished:
    a process still alive may already have ended its job (it was exiting)."""
    with subprocess.Popen(
        [sys.executable, "-m", "phasekit", "--library", str(library), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=subprocess_env(),
    ) as proc:
        wait_until_running(library / "jobs.db", proc)
        time.sleep(delay)
        killed = proc.poll() is None
        if killed:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    return killed and unfinished_jobs(library / "jobs.db") > 0


def test_sigkill_at_random_moments_then_resume_equals_a_clean_index(tmp_path):
    root = tmp_path / "tree"
    make_tree(root, dirs=120, files_per_dir=60)
    expected = scan_tree(root, cas_ids=True)
    rng = random.Random(5)
    kills = 0
    for trial in range(4):
        lib = tmp_path / f"lib{trial}"
        for _ in range(2):
            args = ["index", str(root), "--mode", "content", "--batch-size", "10",
                    "--checkpoint-every", "0.001", "--threads", "1", "--json"]  # fmt: skip
            kills += kill_while_running(args, lib, rng.uniform(0.0, 0.08))
        done = cli("resume", "--json", library=lib)
        assert done.returncode == 0, done.stderr
        if done.stdout.strip():
            # A first index resumed: everything it wrote is new, also what
            # the resumed run found written before the kill.
            summary = json.loads(done.stdout.splitlines()[-1])
            if summary["new"]:
                assert (summary["new"], summary["unchanged"]) == (len(expected), 0), summary
                files = sum(1 for e in expected.values() if e.kind == "file" and e.size)
                assert summary["hashed"] == files, summary
        listing = cli("ls", str(root), "--json", library=lib)
        assert listing.returncode == 0, listing.stderr
        rows = [json.loads(line) for line in listing.stdout.splitlines()]
        got = {
            r["path"]: IndexedEntry(r["kind"], r["size"], r["mtime_ns"], r["inode"], r["cas_id"])
            for r in rows
        }
        assert got == expected
    assert kills >= 3, "the index finished before it could be killed: make the tree bigger"


def test_a_first_index_killed_before_its_first_checkpoint_resumes_as_a_first_index(tmp_path):
    # The kill comes after the first batches are in library.db but before
    # the first walk checkpoint: the resumed run must still know the
    # location was new (every entry counted new, files hashed while walked,
    # none left for the content step), not take those rows for an old index.
    root = tmp_path / "tree"
    make_tree(root, dirs=120, files_per_dir=60)
    expected = scan_tree(root, cas_ids=True)
    lib = tmp_path / "lib"
    args = ["index", str(root), "--mode", "content", "--batch-size", "10", "--threads", "1",
            "--checkpoint-every", "3600", "--json"]  # fmt: skip
    with subprocess.Popen(
        [sys.executable, "-m", "phasekit", "--library", str(lib), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=subprocess_env(),
    ) as proc:
        deadline = time.monotonic() + 60
        written = 0
        while written == 0 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.002)
            try:
                conn = sqlite3.connect(f"file:{lib / 'library.db'}?mode=ro", uri=True, timeout=30)
                try:
                    written = conn.execute("SELECT COUNT(*) FROM entries").fetchone()[0]
                finally:
                    conn.close()
            except sqlite3.OperationalError:
                written = 0  # not created yet
        assert proc.poll() is None, "the index ended before any batch was seen"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert 0 < written < len(expected)
    done = cli("resume", "--json", library=lib)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.splitlines()[-1])
    assert summary["status"] == "completed", summary
    assert (summary["new"], summary["unchanged"]) == (len(expected), 0), summary
    # Every non-empty file hashed (while walked, in one run or the other).
    files = sum(1 for e in expected.values() if e.kind == "file" and e.size)
    assert summary["hashed"] == files, summary
    listing = cli("ls", str(root), "--json", library=lib)
    rows = [json.loads(line) for line in listing.stdout.splitlines()]
    got = {
        r["path"]: IndexedEntry(r["kind"], r["size"], r["mtime_ns"], r["inode"], r["cas_id"])
        for r in rows
    }
    assert got == expected


async def _reindex_after_edits(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    make_tree(root, dirs=20, files_per_dir=15)
    with Library.open(tmp_path / "lib") as library:
        first = await index(library, root)
        tree = scan_tree(root)
        assert first.new == len(tree)
        # A new location is hashed while walked: every non-empty file.
        assert first.hashed == sum(1 for e in tree.values() if e.kind == "file" and e.size)
        # Edits: add, modify, move, delete a file, delete a subtree.
        (root / "d00" / "added.txt").write_bytes(b"new file")
        (root / "d00" / "s000" / "f001.dat").write_bytes(b"changed and longer than before!")
        os.rename(root / "d01" / "s010" / "f002.dat", root / "d00" / "moved.dat")
        (root / "d00" / "s001" / "f003.dat").unlink()
        shutil.rmtree(root / "d01" / "s011")
        again = await index(library, root)
        assert again.moved == 1
        assert again.deleted >= 16  # the subtree (15 files + dir) and the file
        assert again.hashed == 2  # the added and the modified file, not the moved one
        reindexed = indexed(library, root)
        location = library.location(str(root))
        totals = (location.total_size, location.file_count)
    with Library.open(tmp_path / "fresh") as fresh:
        await index(fresh, root)
        assert indexed(fresh, root) == reindexed
        floc = fresh.location(str(root))
        assert (floc.total_size, floc.file_count) == totals
        dirs = {e.path: (e.agg_size, e.file_count) for e in fresh.entries(floc) if e.kind == 1}
    with Library.open(tmp_path / "lib") as library:
        loc = library.location(str(root))
        assert {e.path: (e.agg_size, e.file_count) for e in library.entries(loc)
                if e.kind == 1} == dirs  # fmt: skip
    assert reindexed == scan_tree(root, cas_ids=True)


def test_reindex_after_edits_equals_a_fresh_index(tmp_path):
    anyio.run(_reindex_after_edits, tmp_path)


def test_nasty_tree_indexes_with_non_critical_errors(nasty, tmp_path):
    root, notable = nasty
    # As an unprivileged user (root reads everything), into a library it can write.
    lib = Path(tempfile.mkdtemp(prefix="phasekit-lib-"))
    lib.chmod(0o777)
    paths = [str(Path(__file__).parent), str(Path(phasekit.__file__).parents[1])]
    argv = ["--library", str(lib), "index", str(root), "--mode", "deep", "--json"]
    code = f"import sys; sys.path[:0] = {paths!r}; from phasekit.cli import main; main({argv!r})"
    summary = run_as_nobody(code)
    assert isinstance(summary, dict)
    assert summary["status"] == "completed_with_errors"
    errors = {e["path"]: e["errno"] for e in summary["error_samples"]}
    assert errors[os.fsdecode(notable["locked"])] == errno.EACCES
    assert errors[str(root / "noread")] == errno.EACCES  # deep mode reads every file
    listing = cli("ls", str(root), "--json", library=lib)
    shutil.rmtree(lib, ignore_errors=True)
    rows = {r["path"]: r for r in map(json.loads, listing.stdout.splitlines())}
    assert rows[os.fsdecode(notable["bad"])]["kind"] == "file"  # non-UTF-8 name round-trips
    assert rows[os.fsdecode(notable["fifo"])]["kind"] == "other"
    assert rows[os.fsdecode(notable["fifo"])]["cas_id"] is None  # never opened
    assert rows[str(root / "dangling")]["kind"] == "symlink"
    assert rows[str(root / "hl_a")]["cas_id"] == rows[str(root / "sub" / "hl_b")]["cas_id"]


def phasekit_process(lib: Path, *args: str) -> subprocess.Popen[str]:
    """``phasekit --library LIB ARGS`` started in a new process, its output piped."""
    return subprocess.Popen(
        [sys.executable, "-m", "phasekit", "--library", str(lib), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=subprocess_env(),
    )


def test_ctrl_c_pauses_and_resume_finishes(tmp_path):
    root = tmp_path / "tree"
    make_tree(root, dirs=150, files_per_dir=60)
    lib = tmp_path / "lib"
    args = ["index", str(root), "--batch-size", "50", "--checkpoint-every", "0.01"]
    with phasekit_process(lib, *args, "--threads", "1") as proc:
        wait_until_running(lib / "jobs.db", proc)
        time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0, "the index finished before Ctrl-C arrived: make the tree bigger"
    assert proc.returncode == 130, err
    assert "phasekit resume" in err
    jobs = cli("jobs", "--json", library=lib)
    (paused,) = [json.loads(line) for line in jobs.stdout.splitlines()]
    assert paused["status"] == "paused"
    done = cli("resume", paused["id"], library=lib)
    assert done.returncode == 0, done.stderr
    listing = cli("ls", str(root), "--json", library=lib)
    assert len(listing.stdout.splitlines()) == len(scan_tree(root))


def test_a_second_ctrl_c_quits_at_once_even_inside_a_long_native_call(tmp_path):
    """The command's job runs in a worker thread, so the main one hears each
    Ctrl-C while the job is inside one long Rust call (the checksum of a
    64 GB sparse file): the second press quits at once, and the job is left
    for the next run to resume."""
    root = tmp_path / "tree"
    root.mkdir()
    with open(root / "huge.bin", "wb") as f:
        f.truncate(64 << 30)  # sparse: no disk space, a minute of hashing
    lib = tmp_path / "lib"
    with phasekit_process(lib, "index", str(root), "--mode", "deep", "--threads", "1") as proc:
        wait_until_running(lib / "jobs.db", proc)
        time.sleep(0.3)  # inside the walk's batch call, hashing the file
        proc.send_signal(signal.SIGINT)
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=600)
    assert "pausing at the next safe point" in err
    assert "stopped; the job resumes from its last checkpoint" in err  # the second press
    assert proc.returncode == 130, err
    # Left running by a process that is gone: the next manager resumes it.
    assert "interrupted" in cli("jobs", library=lib).stdout


def test_cli_errors_are_clear(tmp_path):
    lib = tmp_path / "lib"
    missing = cli("index", str(tmp_path / "nope"), library=lib)
    assert missing.returncode == 2
    assert "is not a directory" in missing.stderr
    unknown = cli("ls", str(tmp_path), library=lib)
    assert unknown.returncode == 2
    assert "is not a location" in unknown.stderr
    (tmp_path / "t").mkdir()
    assert cli("index", str(tmp_path / "t"), library=lib).returncode == 0
    nojob = cli("jobs", "show", "feedface", library=lib)
    assert nojob.returncode == 2
    assert "no job with id 'feedface'" in nojob.stderr


def test_ephemeral_and_one_level(tmp_path):
    root = tmp_path / "tree"
    make_tree(root, dirs=3, files_per_dir=4)
    lib = tmp_path / "lib"
    eph = cli("index", str(root), "--ephemeral", "--json", library=lib)
    assert eph.returncode == 0, eph.stderr
    summary = json.loads(eph.stdout)
    expected = scan_tree(root)
    assert summary["files"] + summary["dirs"] == len(expected)
    assert not (lib / "library.db").exists()  # nothing written to the library
    one = cli("index", str(root), "--one-level", "--json", library=lib)
    assert one.returncode == 0, one.stderr
    listing = cli("ls", str(root), "--json", library=lib)
    paths = {json.loads(line)["path"] for line in listing.stdout.splitlines()}
    assert paths == {str(p) for p in root.iterdir()}


async def _missing_root_and_interrupted_reindex(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    make_tree(root, dirs=2, files_per_dir=3)
    with Library.open(tmp_path / "lib") as library:
        await index(library, root)
        before = indexed(library, root)
        # An earlier run wrote a new file's entry, then stopped before the
        # sweep and the sums: this run finds it "unchanged", yet the sums
        # must include it.
        (root / "d00" / "late.bin").write_bytes(b"x" * 5000)
        with library.scan(library.location(str(root))) as scan:
            for _ in scan:
                pass
        await index(library, root)
        location = library.location(str(root))
        expected = sum(e.size for e in scan_tree(root).values() if e.kind == "file")
        assert location.total_size == expected
        # A missing root fails the job and leaves the index alone.
        os.rename(root, tmp_path / "moved-away")
        async with library.jobs() as manager:
            handle = await manager.dispatch(IndexJob(location.id))
            assert await handle.wait() is JobStatus.FAILED
            assert "is missing or not a directory" in (manager.store.get_job(handle.id).error or "")
        os.rename(tmp_path / "moved-away", root)
        assert len(indexed(library, root)) == len(before) + 1


def test_missing_root_and_interrupted_reindex(tmp_path):
    anyio.run(_missing_root_and_interrupted_reindex, tmp_path)


def test_two_libraries_handles_write_at_once(tmp_path):
    """Two connections to one library.db indexing two locations at once:
    writes take the lock up front, so neither fails with "database is locked"."""
    import threading

    roots = [tmp_path / "a", tmp_path / "b"]
    for k, root in enumerate(roots):
        make_tree(root, dirs=30, files_per_dir=40, seed=k)
    with Library.open(tmp_path / "lib") as setup:
        ids = [setup.add_location(str(r), mode="shallow").id for r in roots]
    failures: list[BaseException] = []

    def scan(location_id: int) -> None:
        try:
            with Library.open(tmp_path / "lib") as lib, lib.scan(location_id, batch_size=50) as s:
                for _ in s:
                    pass
                s.sweep()
        except BaseException as exc:  # reported below
            failures.append(exc)

    threads = [threading.Thread(target=scan, args=(i,)) for i in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    with Library.open(tmp_path / "lib") as lib:
        for root, location_id in zip(roots, ids, strict=True):
            assert lib.entry_count(location_id) == len(scan_tree(root))
