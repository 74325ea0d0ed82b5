"""Non-UTF-8 names through every built-in job: in progress, outputs, errors,
checkpoints and phase history, in jobs.db, and across a kill and resume
(docs/ARCHITECTURE.md, invariant 3: paths are bytes)."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

import phasekit
from jobs_fixture import listening, subprocess_env
from phasekit import fs
from phasekit._types import Kind
from phasekit.dupes import DupesJob, DupesSummary
from phasekit.errors import InvalidInputError
from phasekit.indexing import IndexJob, IndexProgress, IndexSummary
from phasekit.jobs import JobEvent, JobStatus, JobStore
from phasekit.library import Entry, Library
from phasekit.validation import ValidateJob, issues
from test_indexing import cli, kill_while_running

from conftest import pattern, run_as_nobody

#: Names that are not UTF-8: one sorting first, one in the middle, one last.
FIRST = b"\x01first-\xe9.jpg"
MIDDLE = b"caf\xe9.jpg"
LAST = b"\xff\xfelast.bin"
#: A directory whose name is not UTF-8, and a chain deeper than PATH_MAX.
ODD_DIR = b"sub-\xff"
DEEP_PART = b"d" * 200


def build_bytes_tree(root: Path) -> dict[str, bytes]:
    """A tree whose odd names (not UTF-8, a newline, beyond PATH_MAX) come
    first, last, and inside duplicate groups; returns notable paths."""
    base = os.fsencode(root)
    os.makedirs(base)
    os.mkdir(base + b"/" + ODD_DIR)
    files: dict[bytes, bytes] = {
        FIRST: pattern(700, 1),
        MIDDLE: pattern(900, 2),
        LAST: pattern(1100, 3),
        # A duplicate group of small files (cas_id covers them whole) ...
        b"dup-\xe9-1.bin": pattern(3000, 4),
        ODD_DIR + b"/dup-\xe9-2.bin": pattern(3000, 4),
        b"line\nbreak-dup.bin": pattern(3000, 4),
        # ... and one of large files (a full hash confirms them).
        b"big-\xfe-a.bin": pattern(200_000, 5),
        ODD_DIR + b"/big-\xfe-b.bin": pattern(200_000, 5),
    }
    for name, data in files.items():
        with open(base + b"/" + name, "wb") as f:
            f.write(data)
    for i in range(120):  # enough entries for many batches
        with open(base + b"/" + ODD_DIR + b"/plain-%03d.txt" % i, "wb") as f:
            f.write(pattern(50 + i, 6))
    # Deeper than PATH_MAX, with a duplicate at the bottom.
    fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY)
    deep = base
    try:
        for _ in range(22):
            os.mkdir(DEEP_PART, dir_fd=fd)
            nxt = os.open(DEEP_PART, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = nxt
            deep += b"/" + DEEP_PART
        leaf = os.open(b"deep-\xe9.bin", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
        os.write(leaf, pattern(3000, 4))
        os.close(leaf)
    finally:
        os.close(fd)
    return {
        "first": base + b"/" + FIRST,
        "middle": base + b"/" + MIDDLE,
        "last": base + b"/" + LAST,
        "deep": deep + b"/deep-\xe9.bin",
    }


def odd(path: str) -> bool:
    """A str path carrying bytes that are not UTF-8 (surrogate escapes)."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


@pytest.fixture
def tree(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, bytes]]]:
    base = Path(tempfile.mkdtemp(prefix="phasekit-bytes-"))
    base.chmod(0o755)  # world-traversable: a test runs as nobody
    root = base / "tree"
    notable = build_bytes_tree(root)
    yield root, notable
    subprocess.run(["rm", "-rf", str(base)], check=False)  # deeper than PATH_MAX


def all_paths(root: Path) -> set[str]:
    """Every path under ``root`` (fsdecoded), walked relative to directory
    handles by the Rust walker's pure-Python twin's rules: here os.fwalk."""
    out = set()
    for top, dirs, files, _ in os.fwalk(os.fsencode(root)):
        for name in dirs + files:
            out.add(os.fsdecode(top + b"/" + name))
    return out


async def run(library: Library, job: Any, backend_events: list[JobEvent]) -> tuple[Any, JobStatus]:
    """Dispatch ``job``, keep every event the manager emits, wait for it;
    returns its output and status."""
    async with library.jobs() as manager:
        async with listening(manager) as events:
            handle = await manager.dispatch(job)
            status = await handle.wait()
            # What the handle reads back from jobs.db decodes exactly.
            progress = handle.progress
            output = handle.output()
            record = handle.record
            phases = handle.phases()
        backend_events.extend(events)
        checkpoint = manager.store.load_checkpoint(handle.id)
    assert record.error is None, record.error
    assert progress is not None
    assert progress.percent == 100.0
    assert output is not None
    assert phases
    assert all(p.error is None for p in phases)
    del checkpoint  # decoded without error (a finished job keeps its last one)
    return output, status


@pytest.mark.parametrize("mode", ["shallow", "content", "deep"])
@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_index_dupes_validate_round_trip_odd_names(tree, tmp_path, mode, backend):
    root, notable = tree
    events: list[JobEvent] = []
    with Library.open(tmp_path / "lib") as library:
        location = library.add_location(root, mode=mode)
        # One entry per batch, a checkpoint after each: every path, odd ones
        # included, goes through the progress and the checkpoints.
        job = IndexJob(location.id, batch_size=1, checkpoint_every_s=0.000_001)
        summary, status = anyio.run(run, library, job, events, backend=backend)
        assert status is JobStatus.COMPLETED
        assert isinstance(summary, IndexSummary)
        assert {e.path for e in library.entries(location)} - {str(root)} == all_paths(root)
        seen = {
            e.progress.data.current_path
            for e in events
            # The index's (a deep one's thumbnail child reports too).
            if e.kind == "progress"
            and e.progress is not None
            and isinstance(e.progress.data, IndexProgress)
        }
        odd_seen = {p for p in seen if odd(p)}
        assert odd_seen, "no progress carried an odd path"
        on_disk = {os.fsencode(p) for p in all_paths(root)}
        for path in odd_seen:
            assert os.fsencode(path) in on_disk, path  # its exact bytes
        assert library.entry(location, os.fsdecode(notable["deep"])) is not None

        # Duplicates over the location, then over the walked paths.
        expected = fs.find_duplicates(root, mode="full")
        assert any(odd(p) for g in expected.groups for p in g.paths)
        for dupes in (
            DupesJob(location_id=location.id, mode="full", page_files=1),
            DupesJob(paths=[str(root)], mode="full", page_files=1),
        ):
            found, status = anyio.run(run, library, dupes, events, backend=backend)
            assert status is JobStatus.COMPLETED
            assert isinstance(found, DupesSummary)
            assert [g.paths for g in found.groups] == [g.paths for g in expected.groups]

        # Validation: an edited file with an odd name is reported exactly.
        with open(notable["middle"], "ab") as f:
            f.write(b"more")
        report, status = anyio.run(
            run, library, ValidateJob(location.id, mode="basic", page=1), events, backend=backend
        )
        assert status is JobStatus.COMPLETED
        assert report is not None
        reported = {i.path for i in issues(library, report)}
        assert os.fsdecode(notable["middle"]) in reported
        assert any(os.fsencode(p) == notable["middle"] for p in reported)


def test_failure_message_and_phase_history_keep_odd_paths(tmp_path):
    """A job's error text (a column of its own in jobs.db) and its phase
    history carry a non-UTF-8 root exactly."""
    root = os.fsencode(tmp_path) + b"/gone-\xe9"
    os.mkdir(root)
    with Library.open(tmp_path / "lib") as library:
        location = library.add_location(root)
        os.rmdir(root)

        async def main() -> tuple[str | None, str | None]:
            async with library.jobs() as manager:
                handle = await manager.dispatch(IndexJob(location.id))
                assert await handle.wait() is JobStatus.FAILED
                return handle.error, handle.phases()[0].error

        error, phase_error = anyio.run(main)
    assert error is not None
    assert os.fsdecode(root) in error
    assert phase_error is not None
    assert os.fsdecode(root) in phase_error
    with JobStore(tmp_path / "lib" / "jobs.db") as store:
        (history,) = store.history()
        assert history.error == error


_AS_NOBODY = """
import json, os, sys
import anyio
from phasekit.indexing import IndexJob
from phasekit.library import Library

async def main(library, location):
    async with library.jobs() as manager:
        handle = await manager.dispatch(IndexJob(location.id, batch_size=1))
        status = await handle.wait()
        return status.value, [e.to_dict() for e in handle.errors()]

with Library.open(sys.argv[1]) as library:
    location = library.add_location(sys.argv[2])
    status, errors = anyio.run(main, library, location)
print(json.dumps({"status": status, "errors": errors}))
"""


def test_unreadable_odd_names_are_recorded_exactly_as_nobody(tree, tmp_path):
    root, _ = tree
    locked = os.fsencode(root) + b"/locked-\xe9"
    os.mkdir(locked)
    with open(locked + b"/inside", "wb") as f:
        f.write(b"x")
    os.chmod(locked, 0)
    lib = Path(tempfile.mkdtemp(prefix="phasekit-lib-"))
    shutil.chown(lib, "nobody", "nogroup")
    try:
        paths = [str(Path(phasekit.__file__).parents[1])]
        code = (
            f"import sys; sys.argv = ['x', {str(lib)!r}, {str(root)!r}]; "
            f"sys.path[:0] = {paths!r}\n" + _AS_NOBODY
        )
        out = run_as_nobody(code)
    finally:
        os.chmod(locked, 0o755)
        shutil.rmtree(lib, ignore_errors=True)
    assert isinstance(out, dict)
    assert out["status"] == "completed_with_errors"
    paths = [e["path"] for e in out["errors"]]
    assert os.fsdecode(locked) in paths, paths


def kill_landed(args: list[str], library: Path, delays: list[float]) -> bool:
    """Kill ``phasekit ARGS`` at each delay in turn until a kill leaves its
    job unfinished (a job that ended first is simply run again)."""
    return any(kill_while_running(args, library, delay) for delay in delays)


def test_kill_and_resume_with_odd_names_equals_a_clean_run(tmp_path):
    root = tmp_path / "tree"
    build_bytes_tree(root)
    # Enough files, odd names too, that a job checkpointing after every one
    # is still running when it is killed; every third one a duplicate.
    bulk = os.fsencode(root) + b"/bulk-\xff"
    os.mkdir(bulk)
    for i in range(1500):
        name = b"%d-\xe9.bin" % i if i % 7 else b"%d-new\nline.bin" % i
        Path(os.fsdecode(bulk + b"/" + name)).write_bytes(pattern(100 + i % 500, i % 500))
    with Library.open(tmp_path / "clean") as library:
        location = library.add_location(root)
        library.index(location)
        clean = {(e.path, e.size, e.cas_id) for e in library.entries(location)}
    expected = [g.paths for g in fs.find_duplicates(root, mode="full").groups]
    rng = random.Random(11)
    for trial in range(3):
        lib = tmp_path / f"lib{trial}"
        args = ["index", str(root), "--batch-size", "1", "--checkpoint-every", "0.000001",
                "--threads", "1", "--json"]  # fmt: skip
        # A first index that completed is not run again: the next try is a
        # first index too, in a new library.
        tries = [lib.with_name(f"lib{trial}-{n}") for n in range(5)]
        landed = next(
            (t for t in tries if kill_while_running(args, t, rng.uniform(0.0, 0.15))), None
        )
        assert landed is not None, "every index finished before it could be killed"
        lib = landed
        done = cli("resume", "--json", library=lib)
        assert done.returncode == 0, done.stderr
        listing = cli("ls", str(root), "--json", library=lib)
        rows = [json.loads(line) for line in listing.stdout.splitlines()]
        assert {(r["path"], r["size"], r["cas_id"]) for r in rows} == clean
        # The duplicate search, killed and resumed, finds the same groups.
        args = ["dupes", str(root), "--walk", "--json", "--page-files", "1", "--threads", "1"]
        delays = [rng.uniform(0.0, 0.1) for _ in range(5)]
        assert kill_landed(args, lib, delays), "every search finished before it was killed"
        resumed = cli("resume", "--json", library=lib)
        assert resumed.returncode == 0, resumed.stderr
        groups = [tuple(json.loads(x)["paths"]) for x in resumed.stdout.splitlines()]
        assert groups == expected


def test_ls_and_dupes_print_odd_names_as_their_bytes(tree, tmp_path):
    root, notable = tree
    lib = tmp_path / "lib"
    assert cli("index", str(root), library=lib).returncode == 0
    proc = subprocess.run(
        [sys.executable, "-m", "phasekit", "--library", str(lib), "ls", str(root)],
        capture_output=True,
        env={**subprocess_env(), "PYTHONIOENCODING": "utf-8"},
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert notable["middle"] in proc.stdout  # the name's own bytes
    dupes = subprocess.run(
        [sys.executable, "-m", "phasekit", "--library", str(lib), "dupes", str(root)],
        capture_output=True,
        env={**subprocess_env(), "PYTHONIOENCODING": "utf-8"},
        check=False,
    )
    assert dupes.returncode == 0, dupes.stderr
    assert os.fsencode(root) + b"/dup-\xe9-1.bin" in dupes.stdout


def test_ls_lines_are_what_python_would_write(tree, tmp_path):
    """``phasekit ls`` and ``ls --json`` (lines made in the Rust core) equal,
    byte for byte, what Python writes for each Entry: ``json.dumps(entry.
    to_dict())``, and kind, size and the path's bytes."""
    root, _notable = tree
    lib = tmp_path / "lib"
    assert cli("index", str(root), "--mode", "content", library=lib).returncode == 0
    with Library.open(lib) as library:
        location = library.location(str(root))
        entries = list(library.entries(location, page=7))
        # Made in the core, they equal those made from the rows in Python.
        rows = library._db.entries(location.id, 0, 10**6)
        assert entries == [Entry._from_row(os.fsencode(location.path), r) for r in rows]
        assert all(type(e) is Entry and type(e.kind) is Kind for e in entries)
    assert any(odd(e.path) for e in entries)
    want_json = b"".join(json.dumps(e.to_dict()).encode() + b"\n" for e in entries)
    want_text = b"".join(
        f"{e.kind.name.lower():7} "
        f"{e.agg_size if e.agg_size is not None else e.size:>14,}  ".encode()
        + os.fsencode(e.path)
        + b"\n"
        for e in entries
    )
    for args, want in ((["--json"], want_json), ([], want_text)):
        proc = subprocess.run(
            [sys.executable, "-m", "phasekit", "--library", str(lib), "ls", str(root), *args],
            capture_output=True,
            env=subprocess_env(),
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout == want
    with Library.open(lib) as library:
        pages = list(library.entries_lines(str(root), page=3))
        assert len(pages) == -(-len(entries) // 3)
        assert b"".join(pages) == want_json
        with pytest.raises(InvalidInputError):
            next(library.entries_lines(str(root), "xml"))  # type: ignore[arg-type]
