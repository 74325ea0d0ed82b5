"""Duplicate grouping: modes, hard links, empty files, and the same answer as jdupes."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import phasekit
from phasekit import fs, reference

from conftest import KIB, pattern

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benches"))
from jdupes_groups import inode_groups, jdupes_groups

IMPLS = [pytest.param(fs, id="rust"), pytest.param(reference, id="python")]


def build_planted(root: Path) -> None:
    """Planted duplicates and the traps around them."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "a").mkdir()
    (root / "b" / "c").mkdir(parents=True)
    for i in range(6):  # small duplicate groups of 2-4 copies
        data = pattern(1000 + i * 37, i)
        for copy in range(2 + i % 3):
            (root / ("a" if copy % 2 else "b/c") / f"dup{i}-{copy}.bin").write_bytes(data)
    big = pattern(600 * KIB, 42)
    (root / "a" / "big1").write_bytes(big)
    (root / "b" / "big2").write_bytes(big)
    # Same size, one byte differs where cas_id does not sample it.
    twin = bytearray(big)
    twin[8 * KIB + 10 * KIB + 100] ^= 1
    (root / "b" / "c" / "big-unsampled").write_bytes(bytes(twin))
    # Same size, different content (inside the samples).
    other = bytearray(big)
    other[0] ^= 1
    (root / "a" / "big-other").write_bytes(bytes(other))
    # Hard links: a linked pair plus a real copy, and a linked pair alone.
    (root / "a" / "linked").write_bytes(pattern(3000, 77))
    os.link(root / "a" / "linked", root / "b" / "linked-too")
    (root / "b" / "c" / "linked-copy").write_bytes(pattern(3000, 77))
    (root / "a" / "lonely").write_bytes(pattern(2500, 78))
    os.link(root / "a" / "lonely", root / "b" / "lonely-link")
    # Empty files and same-size strangers.
    (root / "a" / "empty").write_bytes(b"")
    (root / "b" / "empty").write_bytes(b"")
    (root / "a" / "same-size-1").write_bytes(b"x" * 4321)
    (root / "b" / "same-size-2").write_bytes(b"y" * 4321)


@pytest.fixture
def planted(tmp_path: Path) -> Path:
    build_planted(tmp_path / "tree")
    return tmp_path / "tree"


def by_inode(report: fs.DuplicateReport) -> set[frozenset[tuple[int, int]]]:
    return inode_groups(group.paths for group in report.groups)


@pytest.mark.parametrize("impl", IMPLS)
def test_full_mode_equals_jdupes(planted, impl):
    report = impl.find_duplicates(str(planted), mode="full")
    assert by_inode(report) == inode_groups(jdupes_groups(str(planted)))


def test_content_groups_unsampled_difference_full_separates(planted):
    content = fs.find_duplicates(planted, mode="content")
    full = fs.find_duplicates(planted, mode="full")
    unsampled = str(planted / "b" / "c" / "big-unsampled")
    big_content = next(g for g in content.groups if str(planted / "a" / "big1") in g.paths)
    big_full = next(g for g in full.groups if str(planted / "a" / "big1") in g.paths)
    assert unsampled in big_content.paths
    assert unsampled not in big_full.paths
    assert len(big_full.copies) == 2
    assert big_content.key == fs.cas_id(unsampled)
    assert big_full.key == fs.checksum(planted / "a" / "big1")
    assert full.stats.full_hashed == 3  # only the three same-cas_id big files


def test_hard_links_are_links_not_waste(planted):
    report = fs.find_duplicates(planted, mode="full")
    linked = next(g for g in report.groups if str(planted / "a" / "linked") in g.paths)
    assert linked.copies == (
        (str(planted / "a" / "linked"), str(planted / "b" / "linked-too")),
        (str(planted / "b" / "c" / "linked-copy"),),
    )
    assert linked.wasted == 3000
    assert [g.paths for g in report.links] == [
        (str(planted / "a" / "lonely"), str(planted / "b" / "lonely-link"))
    ]
    assert not any(str(planted / "a" / "lonely") in g.paths for g in report.groups)


def test_empty_files_skipped_by_default(planted):
    assert not any(g.size == 0 for g in fs.find_duplicates(planted).groups)
    with_empty = fs.find_duplicates(planted, min_size=0, mode="full")
    empty = [g for g in with_empty.groups if g.size == 0]
    assert len(empty) == 1
    assert len(empty[0].copies) == 2


@pytest.mark.parametrize("mode", ["size", "name_size", "content", "full"])
def test_modes_agree_with_twin(planted, mode):
    rust = fs.find_duplicates(planted, mode=mode)
    twin = reference.find_duplicates(planted, mode=mode)
    assert rust.groups == twin.groups
    assert rust.links == twin.links
    assert rust.stats == twin.stats
    assert rust.wasted == twin.wasted


def test_first_bytes_split_size_groups_and_only_filter(tmp_path):
    """Files over 8 KiB that share a size are told apart by their first 4 KiB
    before anything else is read; files that differ only beyond them are
    still hashed (and kept apart), and the groups are what jdupes finds."""
    root = tmp_path / "tree"
    root.mkdir()
    base = pattern(20 * KIB, 5)

    def flipped(at: int) -> bytes:
        data = bytearray(base)
        data[at] ^= 1
        return bytes(data)

    (root / "copy-1").write_bytes(base)
    (root / "copy-2").write_bytes(base)
    (root / "first-byte").write_bytes(flipped(0))
    (root / "last-prefix-byte").write_bytes(flipped(4095))
    (root / "after-prefix").write_bytes(flipped(4096))
    (root / "after-prefix-copy").write_bytes(flipped(4096))
    (root / "far").write_bytes(flipped(15_000))
    # 8 KiB exactly: read whole at once, no prefix stage.
    (root / "eight-1").write_bytes(pattern(8 * KIB, 6))
    (root / "eight-2").write_bytes(pattern(8 * KIB, 6))
    (root / "eight-3").write_bytes(pattern(8 * KIB, 7))
    for mode in ("content", "full"):
        rust = fs.find_duplicates(root, mode=mode)
        twin = reference.find_duplicates(root, mode=mode)
        assert [g.paths for g in rust.groups] == [
            (str(root / "after-prefix"), str(root / "after-prefix-copy")),
            (str(root / "copy-1"), str(root / "copy-2")),
            (str(root / "eight-1"), str(root / "eight-2")),
        ]
        assert by_inode(rust) == inode_groups(jdupes_groups(str(root)))
        assert rust.stats == twin.stats
        assert rust.groups == twin.groups
        # Seven 20 KiB files had their first 4 KiB read; the two whose first
        # 4 KiB are their own were read no further.
        assert rust.stats.prefix_hashed == 7
        assert rust.stats.partial_hashed == 5 + 3


def test_size_and_name_modes(planted):
    sizes = fs.find_duplicates(planted, mode="size")
    strangers = next(g for g in sizes.groups if g.size == 4321)
    assert strangers.key == "4321"
    assert len(strangers.copies) == 2
    names = fs.find_duplicates(planted, mode="name_size", min_size=0)
    assert [g.key for g in names.groups] == ["empty"]


def test_size_filters(planted):
    report = fs.find_duplicates(planted, min_size=100 * KIB)
    assert {g.size for g in report.groups} == {600 * KIB}
    report = fs.find_duplicates(planted, max_size=2000)
    assert all(g.size <= 2000 for g in report.groups)
    with pytest.raises(ValueError, match="size range"):
        fs.find_duplicates(planted, min_size=10, max_size=5)
    with pytest.raises(ValueError, match="mode"):
        fs.find_duplicates(planted, mode="fuzzy")  # type: ignore[arg-type]


def test_group_duplicates_over_known_files(planted):
    paths, sizes, devs, inos = [], [], [], []
    for batch in fs.walk(planted):
        for i in batch.files().nonzero()[0]:
            paths.append(batch.paths[i])
            sizes.append(int(batch.sizes[i]))
            devs.append(int(batch.devices[i]))
            inos.append(int(batch.inodes[i]))
    grouped = fs.group_duplicates(paths, sizes, devs, inos, mode="full")
    assert grouped.groups == fs.find_duplicates(planted, mode="full").groups
    with pytest.raises(ValueError, match="same length"):
        fs.group_duplicates(paths, sizes[:-1], devs, inos)


def test_vanished_file_is_an_error_not_a_failure(planted):
    paths = [str(planted / "a" / "dup0-1.bin"), str(planted / "b/c/dup0-0.bin"), "/nonexistent/x"]
    st = [os.stat(p) for p in paths[:2]]
    report = fs.group_duplicates(
        paths,
        [s.st_size for s in st] + [st[0].st_size],
        [s.st_dev for s in st] + [1],
        [s.st_ino for s in st] + [1],
        mode="content",
    )
    assert len(report.groups) == 1
    assert [e.path for e in report.errors] == ["/nonexistent/x"]


def test_cancelled(planted):
    token = phasekit.CancelToken()
    token.cancel()
    with pytest.raises(phasekit.CancelledError):
        fs.find_duplicates(planted, cancel=token)


_BIG = pattern(150 * KIB, 11)
#: Same size and cas_id as _BIG, one unsampled byte different: only full mode separates them.
_BIG_TWIN = _BIG[: 30 * KIB] + bytes([_BIG[30 * KIB] ^ 1]) + _BIG[30 * KIB + 1 :]
contents = st.sampled_from(
    [b"", b"a", b"b", b"ab", b"ba", b"x" * 5000, b"y" * 5000, _BIG, _BIG_TWIN]
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(contents, st.booleans()), min_size=1, max_size=14))
def test_groups_are_exact_content_classes(files):
    """On any file set: groups = sets of distinct inodes with equal bytes."""
    base = Path(tempfile.mkdtemp(prefix="phasekit-hyp-"))
    try:
        expected: dict[bytes, set[tuple[int, int]]] = defaultdict(set)
        for i, (data, link_previous) in enumerate(files):
            path = base / f"d{i % 3}" / f"f{i}"
            path.parent.mkdir(exist_ok=True)
            if link_previous and i > 0:
                os.link(base / f"d{(i - 1) % 3}" / f"f{i - 1}", path)
            else:
                path.write_bytes(data)
            st_ = os.stat(path)
            if st_.st_size:
                expected[path.read_bytes()].add((st_.st_dev, st_.st_ino))
        want = {frozenset(v) for v in expected.values() if len(v) > 1}
        for mode in ("content", "full"):
            rust = fs.find_duplicates(base, mode=mode)
            if mode == "full":
                assert by_inode(rust) == want
            else:  # content: one cas_id per group, every shared cas_id grouped
                for group in rust.groups:
                    assert len({reference.cas_id(p) for p in group.paths}) == 1
            assert rust.groups == reference.find_duplicates(base, mode=mode).groups
            for group in rust.groups:
                assert group.wasted == group.size * (len(group.copies) - 1)
    finally:
        shutil.rmtree(base)
