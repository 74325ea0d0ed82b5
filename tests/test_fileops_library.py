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
