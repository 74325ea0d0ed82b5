"""A moved file counts once, as moved (not also as new and deleted), in
``ScanStats`` and in the index job's summary; a file deleted while another
is created is no move."""

from __future__ import annotations

import os
from pathlib import Path

import anyio

from phasekit.indexing import IndexJob, IndexSummary
from phasekit.jobs import JobStatus
from phasekit.library import Library

CAFE = b"caf\xe9.jpg"  # not UTF-8


def make_tree(root: Path) -> bytes:
    top = os.fsencode(root)
    for d in (b"a", b"b", b"dir1", b"keep"):
        os.makedirs(os.path.join(top, d))
    files = {
        b"a/" + CAFE: b"a picture, as bytes",
        b"dir1/x": b"x" * 10,
        b"dir1/y": b"y" * 20,
        b"dir1/line\nbreak": b"z" * 30,
        b"gone.txt": b"deleted later",
        b"keep/still.txt": b"unchanged",
    }
    for rel, data in files.items():
        with open(os.path.join(top, rel), "wb") as f:
            f.write(data)
    return top


def edit(top: bytes) -> dict[str, int]:
    """Move a file and a directory of three files; delete a file and create
    another of the same size (its inode may well be the one just freed).
    Returns the counts the next index must report."""
    j = os.path.join
    os.rename(j(top, b"a/" + CAFE), j(top, b"b/moved-" + CAFE))
    os.rename(j(top, b"dir1"), j(top, b"dir2"))
    os.unlink(j(top, b"gone.txt"))
    with open(j(top, b"fresh.txt"), "wb") as f:
        f.write(b"created after")  # as long as gone.txt's content
    return {
        "moved": 4,  # the file and the three in the directory
        "new": 2,  # fresh.txt and dir2 (a directory is not move-detected)
        "deleted": 2,  # gone.txt and dir1
    }


def counts(stats: object) -> dict[str, int]:
    return {name: getattr(stats, name) for name in ("moved", "new", "deleted")}


def test_a_moved_file_counts_once_through_the_library(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    top = make_tree(root)
    with Library.open(tmp_path / "lib") as lib:
        loc = lib.add_location(root, mode="content")
        first, errors = lib.index(loc)
        assert errors == []
        cas = lib.entry(loc, os.fsdecode(b"a/" + CAFE))
        assert cas is not None
        assert cas.cas_id is not None
        expected = edit(top)
        again, errors = lib.index(loc)
        assert errors == []
        assert counts(again) == expected
        # The moved file kept its content identity; nothing was lost.
        moved = lib.entry(loc, os.fsdecode(b"b/moved-" + CAFE))
        assert moved is not None
        assert moved.cas_id == cas.cas_id
        assert lib.entry(loc, os.fsdecode(b"a/" + CAFE)) is None
        assert lib.entry(loc, "dir2/line\nbreak") is not None
        assert lib.entry(loc, "dir1") is None
        # Entries: as many as before (a file moved is not one more, nor one less).
        assert lib.entry_count(loc) == first.new
        # Nothing changed since: nothing to count.
        still, _ = lib.index(loc)
        assert counts(still) == {"moved": 0, "new": 0, "deleted": 0}


def test_a_moved_file_counts_once_in_the_job_summary(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    top = make_tree(root)

    async def index(lib: Library, location_id: int) -> IndexSummary:
        async with lib.jobs() as manager:
            handle = await manager.dispatch(IndexJob(location_id, batch_size=2))
            assert await handle.wait() is JobStatus.COMPLETED
            return handle.output()  # type: ignore[no-any-return]

    async def go() -> None:
        with Library.open(tmp_path / "lib") as lib:
            loc = lib.add_location(root, mode="content")
            first = await index(lib, loc.id)
            assert counts(first) == {"moved": 0, "new": 10, "deleted": 0}
            expected = edit(top)
            again = await index(lib, loc.id)
            assert counts(again) == expected
            assert again.files == 6
            assert lib.entry_count(loc) == 10

    anyio.run(go)
