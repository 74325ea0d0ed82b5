"""The walker: same answer as the pure-Python twin, nasty names, errors, resume."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import msgpack
import numpy as np
import pytest

import phasekit
from phasekit import fs, reference
from phasekit.fs import Kind

from conftest import BAD_NAME, LONG_NAME, NEWLINE_NAME, collect, run_as_nobody

IMPLS = [pytest.param(fs, id="rust"), pytest.param(reference, id="python")]


def test_rust_and_twin_agree_on_the_nasty_tree(nasty):
    root, _ = nasty
    rust = collect(fs.walk(root, batch_size=7))
    twin = collect(reference.walk(root, batch_size=7))
    assert rust.entries == twin.entries
    assert sorted(map(str, rust.errors)) == sorted(map(str, twin.errors))
    assert len(rust.paths_in_order) == len(rust.entries), "an entry was yielded twice"


def test_entries_match_lstat(nasty):
    root, _notable = nasty
    result = collect(fs.walk(root))
    for path, entry in result.entries.items():
        if len(os.fsencode(path)) > 1000:
            continue  # checked in test_path_longer_than_path_max
        st = os.lstat(path)
        assert (entry.size, entry.mtime_ns, entry.inode, entry.device, entry.mode, entry.nlink) == (
            st.st_size,
            st.st_mtime_ns,
            st.st_ino,
            st.st_dev,
            st.st_mode,
            st.st_nlink,
        ), path


def test_nasty_names_round_trip(nasty):
    root, notable = nasty
    result = collect(fs.walk(root))
    paths = {os.fsencode(p) for p in result.entries}
    assert notable["bad"] in paths
    assert os.fsencode(root / NEWLINE_NAME) in paths
    assert os.fsencode(root / LONG_NAME) in paths
    bad = os.fsdecode(notable["bad"])
    assert os.fsencode(bad).endswith(BAD_NAME)
    with open(bad, "rb") as f:  # the decoded str opens the same file
        assert f.read() == b"non-utf8 name"


def test_kinds_and_special_files(nasty):
    root, _notable = nasty
    entries = collect(fs.walk(root)).entries
    assert entries[str(root / "plain.txt")].kind == Kind.FILE
    assert entries[str(root / "sub")].kind == Kind.DIR
    assert entries[str(root / "loop")].kind == Kind.SYMLINK
    assert entries[str(root / "dangling")].kind == Kind.SYMLINK
    assert entries[str(root / "sublink")].kind == Kind.SYMLINK
    assert entries[str(root / "fifo")].kind == Kind.OTHER
    assert entries[str(root / "sparse")].size == 8 * 1024 * 1024
    a, b = entries[str(root / "hl_a")], entries[str(root / "sub" / "hl_b")]
    assert (a.inode, a.device, a.nlink) == (b.inode, b.device, 2)
    # Symlinks are not followed by default: nothing below "sublink".
    assert not any(p.startswith(str(root / "sublink") + "/") for p in entries)


def test_path_longer_than_path_max(nasty):
    root, notable = nasty
    entries = collect(fs.walk(root)).entries
    deep = os.fsdecode(notable["deep"])
    assert len(notable["deep"]) > 4096
    assert entries[deep].size == len(b"deep data")
    assert fs.checksum(deep) == reference.checksum(deep)


@pytest.mark.parametrize("impl", IMPLS)
def test_follow_symlinks_reports_loops_and_dangling_links(nasty, impl):
    root, _ = nasty
    result = collect(impl.walk(root, follow_symlinks=True))
    errs = result.error_paths()
    assert errs[str(root / "sub" / "inner" / "up")] == errno.ELOOP
    assert errs[str(root / "loop")] == errno.ELOOP
    assert errs[str(root / "dangling")] == errno.ENOENT
    # The good link is walked into and reported as its target.
    assert result.entries[str(root / "sublink")].kind == Kind.DIR
    assert str(root / "sublink" / "inner" / "a.txt") in result.entries


def test_follow_symlinks_agree(nasty):
    root, _ = nasty
    rust = collect(fs.walk(root, follow_symlinks=True, batch_size=5))
    twin = collect(reference.walk(root, follow_symlinks=True, batch_size=5))
    assert rust.entries == twin.entries
    assert sorted(map(str, rust.errors)) == sorted(map(str, twin.errors))


@pytest.mark.parametrize("impl", IMPLS)
def test_options_depth_hidden_skip(nasty, impl):
    root, _ = nasty
    top = collect(impl.walk(root, max_depth=1)).entries
    assert all(Path(p).parent == root for p in top)
    assert str(root / "sub") in top
    no_hidden = collect(impl.walk(root, hidden=False)).entries
    assert not any("/." in p for p in no_hidden)
    assert str(root / "sub" / ".hidden") in collect(impl.walk(root)).entries
    skipped = collect(impl.walk(root, skip=["sub", "*.txt", "empty[0-9]"])).entries
    assert not any(p.endswith(".txt") or "/sub/" in p or p.endswith("/sub") for p in skipped)
    assert str(root / "empty1") not in skipped
    assert str(root / "hl_a") in skipped


def test_options_agree(nasty):
    root, _ = nasty
    for kwargs in ({"max_depth": 2}, {"hidden": False}, {"skip": ["[!p]*.txt", "d*"]}):
        assert (
            collect(fs.walk(root, **kwargs)).entries
            == collect(reference.walk(root, **kwargs)).entries
        )


def test_bad_arguments_raise_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="batch_size"):
        fs.walk(tmp_path, batch_size=0)
    with pytest.raises(ValueError, match="max_depth"):
        fs.walk(tmp_path, max_depth=0)
    with pytest.raises(ValueError, match="braces"):
        fs.walk(tmp_path, skip=["{a,b}"])
    with pytest.raises(ValueError, match="no roots"):
        fs.walk([])
    with pytest.raises(TypeError, match="path"):
        fs.walk([3.5])  # type: ignore[list-item]


def test_missing_root_and_file_root(tmp_path):
    (tmp_path / "f").write_bytes(b"abc")
    for impl in (fs, reference):
        result = collect(impl.walk([tmp_path / "missing", tmp_path / "f"]))
        assert list(result.entries) == [str(tmp_path / "f")]
        assert result.error_paths() == {str(tmp_path / "missing"): errno.ENOENT}


def test_unreadable_directory_as_non_root(nasty):
    root, notable = nasty
    code = f"""
import json, phasekit.fs as fs, phasekit.reference as ref
out = {{}}
for name, impl in (("rust", fs), ("python", ref)):
    paths, errors = [], []
    for b in impl.walk({str(root)!r}):
        paths += b.paths
        errors += [(e.path, e.errno) for e in b.errors]
    out[name] = {{"paths": sorted(paths), "errors": sorted(errors)}}
try:
    fs.cas_id({str(root / "noread")!r})
except PermissionError as e:
    out["cas_errno"] = e.errno
print(json.dumps(out))
"""
    out = run_as_nobody(code)
    assert isinstance(out, dict)
    assert out["rust"] == out["python"]
    locked = os.fsdecode(notable["locked"])
    assert [locked, errno.EACCES] in out["rust"]["errors"]
    assert locked in out["rust"]["paths"]  # the directory itself is listed
    assert str(root / "plain.txt") in out["rust"]["paths"]  # and the walk went on
    assert out["cas_errno"] == errno.EACCES


def _walk_in_steps(start_impl, resume_impl, root, stop_after, batch_size):
    walker = start_impl.walk(root, batch_size=batch_size)
    seen = []
    for _ in range(stop_after):
        batch = next(walker, None)
        if batch is None:
            break
        seen += batch.paths
    state = walker.state()
    walker.close()
    for batch in resume_impl.walk([], resume=state, batch_size=batch_size + 2):
        seen += batch.paths
    return seen, state


@pytest.mark.parametrize(
    ("start", "resume"),
    [(fs, fs), (reference, reference), (fs, reference), (reference, fs)],
    ids=["rust-rust", "py-py", "rust-py", "py-rust"],
)
def test_resume_at_every_batch_boundary_is_exact(nasty, start, resume):
    root, _ = nasty
    expected = sorted(collect(fs.walk(root)).entries)
    total_batches = collect(fs.walk(root, batch_size=4)).batches
    for stop_after in range(total_batches + 1):
        seen, _ = _walk_in_steps(start, resume, root, stop_after, 4)
        assert len(seen) == len(set(seen)), f"duplicates after stopping at batch {stop_after}"
        assert sorted(seen) == expected, f"lost entries after stopping at batch {stop_after}"


def test_state_holds_the_frontier_not_the_files(tmp_path):
    for d in range(30):
        sub = tmp_path / f"d{d:02}"
        sub.mkdir()
        for f in range(100):
            (sub / f"f{f:03}").write_bytes(b"")
    walker = fs.walk(tmp_path, batch_size=50)
    sizes = []
    for _ in walker:
        state = msgpack.unpackb(walker.state())
        sizes.append(len(walker.state()))
        assert state["v"] == 1
        assert all(isinstance(d.get("n", b""), bytes) for d in state["dirs"])
    # 3,030 entries walked, yet the state never holds more than the frontier.
    assert max(sizes) < 30 * 120
    assert msgpack.unpackb(walker.state())["dirs"] == []


def test_corrupt_state_is_a_clear_error():
    for bad in (b"", b"\xc1garbage", msgpack.packb({"v": 99, "dirs": []})):
        with pytest.raises(phasekit.InvalidStateError):
            list(fs.walk([], resume=bad))
        with pytest.raises(phasekit.InvalidStateError):
            list(reference.walk([], resume=bad))


def _drain_until_cancelled(walker) -> list[str]:
    """Entries gathered before the cancel are still handed out, then it raises."""
    seen: list[str] = []
    try:
        for batch in walker:
            seen += batch.paths
    except phasekit.CancelledError:
        return seen
    pytest.fail("the walk ended without raising CancelledError")


def test_cancel_stops_at_a_batch_boundary_and_resumes(tmp_path):
    for d in range(20):
        (tmp_path / f"d{d}").mkdir()
        for f in range(50):
            (tmp_path / f"d{d}" / f"f{f}").write_bytes(b"x")
    token = phasekit.CancelToken()
    walker = fs.walk(tmp_path, batch_size=100, cancel=token)
    seen = list(next(walker).paths)
    token.cancel()
    seen += _drain_until_cancelled(walker)
    token.reset()
    for batch in fs.walk([], resume=walker.state(), cancel=token):
        seen += batch.paths
    assert sorted(seen) == sorted(collect(fs.walk(tmp_path)).entries)
    assert len(seen) == 20 * 51


def _other_thread_ran_during(call) -> bool:
    """True if a Python thread executed while ``call`` was inside Rust.

    A spinner thread records timestamps; if the call held the GIL, none could
    fall strictly inside the call's middle half.
    """
    import threading
    import time

    stamps: list[float] = []
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            stamps.append(time.perf_counter())

    thread = threading.Thread(target=spin)
    thread.start()
    try:
        time.sleep(0.01)
        start = time.perf_counter()
        call()
        end = time.perf_counter()
    finally:
        stop.set()
        thread.join()
    quarter = (end - start) / 4
    return any(start + quarter < t < end - quarter for t in stamps)


def test_long_calls_release_the_gil(tmp_path):
    for d in range(60):
        (tmp_path / f"d{d}").mkdir()
        for f in range(300):
            (tmp_path / f"d{d}" / f"f{f}").write_bytes(b"")
    big = tmp_path / "big"
    with open(big, "wb") as f:
        f.truncate(64 * 1024 * 1024)
    # One __next__ call that walks the whole tree, and one hashing call.
    assert _other_thread_ran_during(lambda: next(fs.walk(tmp_path, batch_size=10**7)))
    assert _other_thread_ran_during(lambda: fs.checksums([big] * 8))
    # The twin holds the GIL in its loop only between bytecodes, so it is not
    # a fair counter-example; the test's own power is shown by a pure-GIL call:
    assert not _other_thread_ran_during(lambda: sum(range(3 * 10**7)))


def test_columns_have_numpy_dtypes(nasty):
    root, _ = nasty
    batch = next(fs.walk(root))
    assert batch.kinds.dtype == np.uint8
    assert batch.sizes.dtype == np.uint64
    assert batch.mtimes_ns.dtype == np.int64
    assert batch.inodes.dtype == np.uint64
    assert batch.modes.dtype == np.uint32
    assert len(batch) == len(batch.kinds) == len(batch.sizes)
    assert batch.files().sum() == int((batch.kinds == Kind.FILE).sum())


def _hashed_walk(impl, root, **kwargs):
    out = {}
    errors = []
    for batch in impl.walk(root, cas_ids=True, checksums=True, **kwargs):
        assert batch.cas_ids is not None
        assert batch.checksums is not None
        assert len(batch.cas_ids) == len(batch.checksums) == len(batch.paths)
        errors += [(e.path, e.errno) for e in batch.errors]
        for i, path in enumerate(batch.paths):
            out[path] = (int(batch.kinds[i]), batch.cas_ids[i], batch.checksums[i])
    return out, sorted(errors)


def test_walk_hashes_files_while_walking(nasty):
    root, notable = nasty
    rust, rust_errors = _hashed_walk(fs, root)
    twin, twin_errors = _hashed_walk(reference, root)
    assert rust == twin
    assert rust_errors == twin_errors
    for path, (kind, cas, checksum) in rust.items():
        if kind == Kind.FILE:
            assert cas == fs.cas_id(path)
            assert checksum == fs.checksum(path)
        else:
            assert (cas, checksum) == (None, None), path
    assert rust[os.fsdecode(notable["deep"])][1] == fs.cas_id(os.fsdecode(notable["deep"]))


def test_walk_hashes_big_directories_in_parallel(tmp_path):
    for i in range(700):  # over the size at which a listing is split up
        (tmp_path / f"f{i:04}").write_bytes(b"%d" % (i % 50) * (i + 1))
    rust, errors = _hashed_walk(fs, tmp_path)
    assert not errors
    assert rust == _hashed_walk(reference, tmp_path)[0]
    assert {r[1] for r in rust.values()} == {fs.cas_id(p) for p in rust}


def test_walk_without_hashing_has_no_hash_columns(tmp_path):
    (tmp_path / "f").write_bytes(b"x")
    batch = next(fs.walk(tmp_path))
    assert batch.cas_ids is None
    assert batch.checksums is None
    root_file = next(fs.walk(tmp_path / "f", cas_ids=True))
    assert root_file.cas_ids == [fs.cas_id(tmp_path / "f")]
