"""Hard links count once per inode within a location, like ``du``: directory
sizes and file counts and the location's totals count each (device, inode)
once, in the directory of its first name in byte order, however the walk
wrote the names, whether the sums come from the scan or from the library
(a resumed index), and after links are added or removed."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import anyio

from phasekit.indexing import IndexJob, IndexSummary
from phasekit.jobs import JobStatus
from phasekit.library import Library

#: Sums by directory path relative to the root (bytes; b"" is the location).
Sums = dict[bytes, tuple[int, int]]

CAFE = b"caf\xe9.jpg"  # not UTF-8
NEWLINE = b"line\nbreak.txt"


def _write(path: bytes, size: int, fill: bytes = b"x") -> None:
    with open(path, "wb") as f:
        f.write(fill * size)


def make_tree(base: Path) -> Path:
    """A location with every kind of link, and a folder outside it."""
    root = os.fsencode(base / "tree")
    outside = os.fsencode(base / "outside")
    for d in (b"", b"a", b"a-b", b"b", b"c", b"c/deep"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    os.makedirs(outside)
    j = os.path.join
    # Two names in one directory.
    _write(j(root, b"a/photo.jpg"), 1000)
    os.link(j(root, b"a/photo.jpg"), j(root, b"a/photo-link.jpg"))
    # A non-UTF-8 name linked from another directory, and from a directory
    # that sorts before it by bytes only ("a-b/" < "a/", '-' < '/').
    _write(j(root, b"a/" + CAFE), 2000)
    os.link(j(root, b"a/" + CAFE), j(root, b"b/" + CAFE))
    os.link(j(root, b"a/" + CAFE), j(root, b"a-b/zzz.jpg"))
    # A name with a newline, linked deeper down.
    _write(j(root, b"b/" + NEWLINE), 300)
    os.link(j(root, b"b/" + NEWLINE), j(root, b"c/deep/z.txt"))
    # A file whose other name is outside the location: it counts once.
    _write(j(root, b"c/outside-linked.bin"), 400)
    os.link(j(root, b"c/outside-linked.bin"), j(outside, b"ext.bin"))
    # Plain files, one of them empty, and a symlink (never counted).
    _write(j(root, b"c/solo.txt"), 50)
    _write(j(root, b"plain"), 7)
    _write(j(root, b"c/deep/empty"), 0)
    os.symlink(b"plain", j(root, b"link-to-plain"))
    return base / "tree"


def du_like(root: Path) -> Sums:
    """What the sums must be, from os.lstat: each (st_dev, st_ino) once, in
    the directory of its smallest relative path (bytes)."""
    top = os.fsencode(root)
    first: dict[tuple[int, int], tuple[bytes, int]] = {}
    dirs = [b""]
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, top)
            st = os.lstat(path)
            if stat.S_ISDIR(st.st_mode):
                dirs.append(rel)
            elif stat.S_ISREG(st.st_mode):
                key = (st.st_dev, st.st_ino)
                if key not in first or rel < first[key][0]:
                    first[key] = (rel, st.st_size)
    out: Sums = {}
    for d in dirs:
        prefix = d + b"/" if d else b""
        sizes = [size for rel, size in first.values() if rel.startswith(prefix)]
        out[d] = (sum(sizes), len(sizes))
    return out


def stored(lib: Library, root: Path) -> Sums:
    """The library's sums: every directory's, and the location's under b""."""
    loc = lib.location(root)
    cut = len(os.fsencode(loc.path)) + 1
    out: Sums = {
        os.fsencode(e.path)[cut:]: (e.agg_size or 0, e.file_count or 0)
        for e in lib.entries(loc)
        if e.kind == 1
    }
    out[b""] = (loc.total_size or 0, loc.file_count or 0)
    return out


def edit(root: Path) -> None:
    """A link added to a file indexed with one name; a link removed."""
    top = os.fsencode(root)
    os.link(os.path.join(top, b"c/solo.txt"), os.path.join(top, b"a/solo-again.txt"))
    os.unlink(os.path.join(top, b"a/photo-link.jpg"))


def check(lib: Library, root: Path) -> None:
    expected = du_like(root)
    assert stored(lib, root) == expected
    # The library's own pass (used after a resume) agrees with the scan's.
    assert lib.aggregate(root) == expected[b""]
    assert stored(lib, root) == expected


def test_links_count_once_through_the_library(tmp_path: Path) -> None:
    root = make_tree(tmp_path)
    expected = du_like(root)
    # 1000 + 2000 + 300 + 400 + 50 + 7 + 0, seven files for eleven names.
    assert expected[b""] == (3757, 7)
    assert expected[b"a-b"] == (2000, 1)  # the first name of café.jpg
    assert expected[b"a"] == (1000, 1)
    with Library.open(tmp_path / "lib") as lib:
        loc = lib.add_location(root, mode="shallow")
        stats, errors = lib.index(loc)
        assert errors == []
        assert stats.files == 11  # names walked
        check(lib, root)
        edit(root)
        lib.index(loc)
        after = du_like(root)
        assert after[b""] == (3757, 7)
        # photo.jpg has one name left; solo.txt's first name is now in a/.
        assert after[b"a"] == (1000 + 50, 2)
        assert after[b"c"] == (400 + 0, 2)
        check(lib, root)
        # The link gone again: back where it was.
        os.unlink(os.fsencode(root / "a") + b"/solo-again.txt")
        lib.index(loc)
        check(lib, root)


def test_a_resumed_scan_sums_like_an_uninterrupted_one(tmp_path: Path) -> None:
    root = make_tree(tmp_path)
    expected = du_like(root)
    with Library.open(tmp_path / "whole") as lib:
        loc = lib.add_location(root, mode="shallow")
        with lib.scan(loc, batch_size=2) as scan:
            states = [step.state for step in scan]  # how many batches
            scan.sweep()
            assert scan.aggregate() == expected[b""]
        assert stored(lib, root) == expected
    assert len(states) > 3
    for cut in range(len(states) - 1):
        with Library.open(tmp_path / f"resumed{cut}") as lib:
            loc = lib.add_location(root, mode="shallow")
            with lib.scan(loc, batch_size=2) as scan:
                for _ in range(cut + 1):
                    step = scan.step()
                    assert step is not None
                # Stopped here: the names written so far are not seen again.
                state = step.state
            with lib.scan(loc, batch_size=2, resume=state) as scan:
                for _ in scan:
                    pass
                scan.sweep()
                assert scan.aggregate() == expected[b""]
            assert stored(lib, root) == expected, cut


async def _index_job(lib: Library, root: Path) -> IndexSummary:
    loc = lib.location(root)
    async with lib.jobs() as manager:
        handle = await manager.dispatch(IndexJob(loc.id, batch_size=3))
        assert await handle.wait() is JobStatus.COMPLETED
        return handle.output()  # type: ignore[no-any-return]


def test_links_count_once_through_the_index_job(tmp_path: Path) -> None:
    root = make_tree(tmp_path)

    async def go() -> None:
        with Library.open(tmp_path / "lib") as lib:
            lib.add_location(root, mode="content")
            for change in (None, edit):
                if change is not None:
                    change(root)
                summary = await _index_job(lib, root)
                expected = du_like(root)
                assert (summary.total_size, summary.file_count) == expected[b""]
                assert stored(lib, root) == expected
                check(lib, root)

    anyio.run(go)
