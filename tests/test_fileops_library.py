"""Library entries follow copies, moves and deletes: what the job leaves in
library.db equals what a fresh index of the same folders finds, copies and
moved files keep their content identity (and its first-seen time) without
being hashed again, and deleted files lose their entries. Trees have
non-UTF-8 names, a newline, long names, links and a FIFO."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from phasekit.fileops import CopyJob, DeleteJob, MoveJob, TransferSummary
from phasekit.indexing import IndexJob
from phasekit.jobs import JobStatus
from phasekit.library import Library, Location
from test_fileops import odd_tree
from test_indexing import subprocess_env

from conftest import BAD_NAME, pattern

Rows = dict[bytes, tuple[object, ...]]


def rows(library: Library, location: Location) -> Rows:
    """Each entry by its path relative to the root: what an index says of it."""
    root = os.fsencode(location.path)
    return {
        os.fsencode(e.path)[len(root) + 1 :]: (
            e.kind,
            e.size,
            e.mtime_ns,
            e.cas_id,
            e.checksum,
            e.agg_size,
            e.file_count,
        )
        for e in library.entries(location)
    }


def fresh_index(tmp_path: Path, folder: Path, mode: str) -> Rows:
    """The entries a new library's index of ``folder`` holds."""
    scratch = Path(tmp_path / "fresh")
    shutil.rmtree(scratch, ignore_errors=True)
    with Library.open(scratch) as other:
        location = other.add_location(folder, mode=mode)  # type: ignore[arg-type]
        other.index(location)
        return rows(other, other.location(location.id))


def index(library: Library, folder: Path, mode: str = "deep") -> Location:
    location = library.add_location(folder, mode=mode)  # type: ignore[arg-type]
    run = library.run(IndexJob(location_id=location.id))
    assert run.status is JobStatus.COMPLETED
    return library.location(location.id)


def assert_matches_fresh(library: Library, location: Location, tmp_path: Path) -> None:
    """library.db equals a fresh index, and indexing again finds nothing to do."""
    location = library.location(location.id)
    assert rows(library, location) == fresh_index(tmp_path, Path(location.path), location.mode)
    again = library.run(IndexJob(location_id=location.id)).output()
    assert (again.new, again.modified, again.deleted, again.hashed) == (0, 0, 0, 0)


def first_seen(library: Library, location: Location) -> dict[str, float]:
    out = {}
    for entry in library.entries(location):
        if entry.cas_id is not None:
            identity = library.content_identity(entry.cas_id)
            assert identity is not None
            out[entry.cas_id] = identity.first_seen
    return out


def test_copy_into_a_location_carries_content(tmp_path):
    area = tmp_path / "area"
    odd_tree(area / "src")
    with Library.open(tmp_path / "lib") as library:
        location = index(library, area)
        seen = first_seen(library, location)
        run = library.run(CopyJob(sources=[area / "src"], dest=area / "copy\xff"))
        summary = run.output()
        assert isinstance(summary, TransferSummary)
        assert run.status is JobStatus.COMPLETED_WITH_ERRORS  # the FIFO
        # Every non-empty file of the copy took its source's identity.
        assert summary.carried == 5
        assert_matches_fresh(library, location, tmp_path)
        after = rows(library, library.location(location.id))
        src = {
            k[len(b"src/") :]: v
            for k, v in after.items()
            if k.startswith(b"src/") and not k.endswith(b"fifo")
        }
        at = os.fsencode("copy\xff/")
        copy = {k[len(at) :]: v for k, v in after.items() if k.startswith(at)}
        assert {k: v[3:5] for k, v in copy.items()} == {k: v[3:5] for k, v in src.items()}
        assert first_seen(library, location) == seen


def test_move_between_locations_across_filesystems_keeps_identity(tmp_path, small_disk):
    home = tmp_path / "home"
    odd_tree(home / "album")
    (home / "album" / "mid" / "fifo").unlink()  # not moved: it would stay
    (home / "stays.bin").write_bytes(pattern(3000, 9))
    other = small_disk / "other"
    other.mkdir()
    with Library.open(tmp_path / "lib") as library:
        source_loc = index(library, home)
        target_loc = index(library, other)
        before = rows(library, source_loc)
        seen = first_seen(library, source_loc)
        run = library.run(MoveJob(sources=[home / "album"], dest=other))
        summary = run.output()
        assert isinstance(summary, TransferSummary)
        assert summary.renamed == 0
        assert summary.carried == 5
        assert not (home / "album").exists()
        assert_matches_fresh(library, source_loc, tmp_path)
        assert_matches_fresh(library, target_loc, tmp_path)
        moved = rows(library, library.location(target_loc.id))
        for rel, row in before.items():
            if rel.startswith(b"album/") and row[0] == 0 and row[1]:
                assert moved[rel][3:5] == row[3:5], rel  # cas_id and checksum
        assert set(rows(library, library.location(source_loc.id))) == {b"stays.bin"}
        kept = first_seen(library, target_loc)
        assert kept
        assert all(seen[cas] == when for cas, when in kept.items())
        assert library.location(source_loc.id).file_count == 1


def test_move_within_a_location_by_the_cli(tmp_path):
    area = tmp_path / "area"
    odd_tree(area / "a")
    (area / "b").mkdir()
    with Library.open(tmp_path / "lib") as library:
        location = index(library, area)
        seen = first_seen(library, location)
        before = {k: v for k, v in rows(library, location).items() if k.startswith(b"a/")}
    done = subprocess.run(
        [sys.executable, "-m", "phasekit", "--library", tmp_path / "lib", "move",
         area / "a", os.fsencode(area / "b") + b"/n\n\xfe"],
        capture_output=True, env=subprocess_env(), timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    with Library.open(tmp_path / "lib") as library:
        after = rows(library, library.location(location.id))
        assert not any(k.startswith(b"a/") for k in after)
        prefix = b"b/n\n\xfe/"
        for rel, row in before.items():
            assert after[prefix + rel[2:]][3:5] == row[3:5]
        assert first_seen(library, location) == seen
        assert_matches_fresh(library, location, tmp_path)


@pytest.mark.parametrize("mode", ["permanent", "trash"])
def test_delete_inside_a_location_removes_its_entries(tmp_path, monkeypatch, mode):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    area = tmp_path / "area"
    odd_tree(area / "gone\xff")
    (area / BAD_NAME.decode("utf-8", "surrogateescape")).write_bytes(pattern(900, 1))
    with Library.open(tmp_path / "lib") as library:
        location = index(library, area)
        run = library.run(DeleteJob(paths=[area / "gone\xff"], mode=mode))
        assert run.status is JobStatus.COMPLETED
        assert set(rows(library, library.location(location.id))) == {BAD_NAME}
        assert library.location(location.id).file_count == 1
        assert_matches_fresh(library, location, tmp_path)


def test_a_location_root_is_not_moved(tmp_path):
    area = tmp_path / "area"
    (area / "photos").mkdir(parents=True)
    (area / "photos" / "x").write_bytes(b"x")
    with Library.open(tmp_path / "lib") as library:
        index(library, area / "photos")
        for source in (area / "photos", area):
            run = library.run(MoveJob(sources=[source], dest=tmp_path / "elsewhere"))
            assert run.status is JobStatus.FAILED
            assert "root of location" in (run.error or "")
    assert (area / "photos" / "x").read_bytes() == b"x"
    assert not (tmp_path / "elsewhere").exists()


def test_a_skipped_name_does_not_take_its_sources_identity(tmp_path):
    """Under --conflict skip, a file already at the target (never hashed,
    same size and mtime, other bytes) is not the copy: it keeps no cas_id."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "same\xff").write_bytes(b"A" * 5000)
    (src / "sub" / "new").write_bytes(pattern(7000, 3))
    (dst / "sub").mkdir(parents=True)
    (dst / "sub" / "same\xff").write_bytes(b"B" * 5000)
    stamp = os.stat(src / "sub" / "same\xff").st_mtime_ns
    os.utime(dst / "sub" / "same\xff", ns=(stamp, stamp))
    time.sleep(0.2)  # its ctime well before the job's start (CLOCK_SLACK_S)
    with Library.open(tmp_path / "lib") as library:
        index(library, src, mode="content")
        target = index(library, dst, mode="shallow")
        run = library.run(CopyJob(sources=[src / "sub"], dest=dst, conflict="skip"))
        assert run.status is JobStatus.COMPLETED
        after = rows(library, library.location(target.id))
        assert after[os.fsencode("sub/same\xff")][3] is None
        assert after[b"sub/new"][3] is not None


def test_nested_locations_both_follow(tmp_path):
    outer = tmp_path / "outer"
    inner = outer / "inner"
    odd_tree(inner / "gone")
    (inner / "kept").write_bytes(b"kept")
    with Library.open(tmp_path / "lib") as library:
        outer_loc = index(library, outer)
        inner_loc = library.add_location(inner, mode="deep", allow_nested=True)
        library.run(IndexJob(location_id=inner_loc.id))
        run = library.run(DeleteJob(paths=[inner / "gone"], mode="permanent"))
        assert run.status is JobStatus.COMPLETED
        assert set(rows(library, library.location(inner_loc.id))) == {b"kept"}
        assert set(rows(library, library.location(outer_loc.id))) == {b"inner", b"inner/kept"}


def test_forced_delete_of_a_location_root_completes_with_a_warning(tmp_path):
    area = tmp_path / "area"
    odd_tree(area)
    with Library.open(tmp_path / "lib") as library:
        location = index(library, area)
        count = library.entry_count(location)
        run = library.run(DeleteJob(paths=[area], mode="permanent", force=True))
        assert run.status is JobStatus.COMPLETED, run.error
        assert not area.exists()
        assert any("is gone; its entries were left" in w for w in run.warnings())
        assert library.entry_count(location) == count  # left for the user to decide


def test_modes_whatever_the_umask(tmp_path):
    """The umask at the time of the copy does not change the copies' modes."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_bytes(b"f")
    os.chmod(src / "f", 0o644)
    old = os.umask(0o077)
    try:
        with Library.open(tmp_path / "lib") as library:
            first = library.run(CopyJob(sources=[src], dest=tmp_path / "a"))
            os.umask(0o022)
            second = library.run(CopyJob(sources=[src], dest=tmp_path / "b"))
    finally:
        os.umask(old)
    assert first.status is second.status is JobStatus.COMPLETED
    assert os.stat(tmp_path / "a" / "f").st_mode & 0o777 == 0o644
    assert os.stat(tmp_path / "b" / "f").st_mode & 0o777 == 0o644
