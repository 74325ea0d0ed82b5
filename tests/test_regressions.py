"""Regression tests for defects found in review (each failed before its fix)."""

from __future__ import annotations

import json
import os

import pytest

import phasekit
from phasekit import cli, fs, reference

from conftest import collect, pattern

IMPLS = [pytest.param(fs, id="rust"), pytest.param(reference, id="python")]


@pytest.mark.parametrize("impl", IMPLS)
def test_resume_continues_after_the_last_name_when_the_directory_changed(tmp_path, impl):
    for name in "bcdefg":
        (tmp_path / name).write_bytes(b"")
    walker = impl.walk(tmp_path, batch_size=2)
    seen = list(next(walker).paths)  # b, c
    state = walker.state()
    walker.close()
    (tmp_path / "b").unlink()  # an entry already yielded disappears
    (tmp_path / "a").write_bytes(b"")  # and new ones sort before the cursor
    (tmp_path / "aa").write_bytes(b"")
    for batch in impl.walk([], resume=state, batch_size=2):
        seen += batch.paths
    assert [os.path.basename(p) for p in seen] == ["b", "c", "d", "e", "f", "g"]


def test_cancel_then_reset_never_looks_like_the_end(tmp_path):
    """Workers that saw a cancel stop early; resetting the token afterwards
    must not turn the early stop into a silently truncated 'end'."""
    import time

    blob = pattern(32 * 1024, 1)
    for d in range(40):
        (tmp_path / f"d{d}").mkdir()
        for f in range(40):
            (tmp_path / f"d{d}" / f"f{f}").write_bytes(blob)
    expected = sorted(collect(fs.walk(tmp_path)).entries)
    token = phasekit.CancelToken()
    walker = fs.walk(tmp_path, batch_size=50, cancel=token, checksums=True)
    seen = list(next(walker).paths)
    token.cancel()
    time.sleep(0.2)  # let the workers see it and stop
    token.reset()
    try:
        for batch in walker:
            seen += batch.paths
    except phasekit.CancelledError:
        assert not walker.finished
        for batch in fs.walk([], resume=walker.state(), checksums=True):
            seen += batch.paths
    assert len(seen) == len(set(seen))
    assert sorted(seen) == expected


def test_times_beyond_int64_nanoseconds_saturate(tmp_path):
    path = tmp_path / "future"
    path.write_bytes(b"x")
    try:
        os.utime(path, ns=(10**19, 10**19))  # year 2286
    except (OSError, OverflowError):
        pytest.skip("this filesystem cannot store a year-2286 mtime")
    rust = collect(fs.walk(tmp_path)).entries[str(path)]
    twin = collect(reference.walk(tmp_path)).entries[str(path)]
    assert rust.mtime_ns == twin.mtime_ns == 2**63 - 1


@pytest.mark.parametrize("impl", IMPLS)
def test_duplicate_and_nested_roots_yield_each_entry_once(tmp_path, impl):
    (tmp_path / "sub").mkdir()
    for name in ("a", "sub/b", "sub/c"):
        (tmp_path / name).write_bytes(b"")
    result = collect(impl.walk([tmp_path, tmp_path, f"{tmp_path}/", tmp_path / "sub"]))
    assert len(result.paths_in_order) == len(result.entries) == 4
    walker = impl.walk([tmp_path, tmp_path / "sub"], batch_size=1)
    seen = list(next(walker).paths)
    for batch in impl.walk([], resume=walker.state(), batch_size=1):
        seen += batch.paths
    assert sorted(seen) == sorted(result.entries)


@pytest.mark.parametrize("impl", IMPLS)
def test_listed_file_swapped_for_a_symlink_is_not_hashed(tmp_path, impl):
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(b"same")
    b.write_bytes(b"same")
    listed = [(str(p), os.stat(p)) for p in (a, b)]
    b.unlink()
    os.symlink(a, b)  # deleting "duplicate" a would now destroy the only copy
    report = impl.group_duplicates(
        [p for p, _ in listed],
        [s.st_size for _, s in listed],
        [s.st_dev for _, s in listed],
        [s.st_ino for _, s in listed],
        mode="content",
    )
    assert report.groups == []
    assert [(e.path, "not the file that was listed" in e.message) for e in report.errors] == [
        (str(b), True)
    ]


def test_scan_confirms_large_duplicates_byte_for_byte(tmp_path, capsys):
    data = bytearray(pattern(1024 * 1024, 3))
    (tmp_path / "a").write_bytes(data)
    data[8 * 1024 + 10 * 1024 + 7] ^= 1  # a byte cas_id does not sample
    (tmp_path / "b").write_bytes(data)
    assert fs.cas_id(tmp_path / "a") == fs.cas_id(tmp_path / "b")
    assert cli.main(["scan", str(tmp_path), "--hash", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["duplicate_groups"], out["wasted_bytes"]) == (0, 0)


def test_name_keys_round_trip_non_utf8_names(tmp_path):
    for d in ("x", "y"):
        (tmp_path / d).mkdir()
        with open(os.fsencode(tmp_path / d) + b"/caf\xe9.jpg", "wb") as f:
            f.write(b"1234")
    rust = fs.find_duplicates(tmp_path, mode="name_size")
    assert rust.groups == reference.find_duplicates(tmp_path, mode="name_size").groups
    assert os.fsencode(rust.groups[0].key) == b"caf\xe9.jpg"


def test_bad_sizes_are_value_errors(tmp_path):
    for impl in (fs, reference):
        with pytest.raises(ValueError, match="size"):
            impl.group_duplicates([str(tmp_path)], [-1], [0], [0])
        with pytest.raises(ValueError, match="size range"):
            impl.group_duplicates([], [], [], [], min_size=5, max_size=1)
    with pytest.raises(ValueError, match="max_depth"):
        fs.walk(tmp_path, max_depth=2**40)


@pytest.mark.parametrize("impl", IMPLS)
def test_resume_refuses_a_directory_swapped_for_a_symlink(tmp_path, impl):
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "b" / "f").write_bytes(b"mine")
    (outside / "b").mkdir(parents=True)
    (outside / "b" / "SECRET").write_bytes(b"not yours")
    walker = impl.walk(root, batch_size=1)
    assert [os.path.basename(p) for p in next(walker).paths] == ["a"]
    assert [os.path.basename(p) for p in next(walker).paths] == ["b"]
    state = walker.state()  # root/a/b is in the frontier, unread
    walker.close()
    (root / "a").rename(tmp_path / "moved")
    os.symlink(outside, root / "a")
    result = collect(impl.walk([], resume=state))
    assert not any("SECRET" in p for p in result.entries)
    assert [(e.path, "directory changed" in e.message) for e in result.errors] == [
        (str(root / "a" / "b"), True)
    ]


@pytest.mark.parametrize("impl", IMPLS)
def test_skip_patterns_match_bytes_the_same_way(tmp_path, impl):
    for name in ("é.txt", "e.txt", "b.txt", "[x", "ab.log"):
        (tmp_path / name).write_bytes(b"")
    for patterns, kept in (
        (["?.txt"], {"é.txt", "[x", "ab.log"}),  # ? is one byte; é is two
        (["??.txt"], {"e.txt", "b.txt", "[x", "ab.log"}),
        (["[!b].txt"], {"é.txt", "b.txt", "[x", "ab.log"}),
        (["*.log", "[eb].txt"], {"é.txt", "[x"}),
    ):
        names = {os.path.basename(p) for p in collect(impl.walk(tmp_path, skip=patterns)).entries}
        assert names == kept, patterns
    for bad in ("[^b].txt", "[x", "{a,b}"):
        with pytest.raises(ValueError, match="skip pattern"):
            impl.walk(tmp_path, skip=[bad])
