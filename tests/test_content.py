"""cas_id and checksum: bit-exact with the definition, safe on special files."""

from __future__ import annotations

import errno
import os
import threading

import blake3
import pytest

import phasekit
from phasekit import fs, reference

from conftest import KIB, pattern

IMPLS = [pytest.param(fs, id="rust"), pytest.param(reference, id="python")]


def cas_id_by_definition(data: bytes) -> str | None:
    """docs/ARCHITECTURE.md's definition, written out independently of both implementations."""
    size = len(data)
    if size == 0:
        return None
    h = blake3.blake3(size.to_bytes(8, "little"))
    if size <= 100 * KIB:
        h.update(data)
    else:
        h.update(data[: 8 * KIB])
        jump = (size - 16 * KIB) // 4
        for i in range(4):
            start = 8 * KIB + i * jump
            h.update(data[start : start + 10 * KIB])
        h.update(data[size - 8 * KIB :])
    return h.hexdigest()[:16]


SIZES = [
    1,
    100,
    16 * KIB,
    100 * KIB - 1,
    100 * KIB,
    100 * KIB + 1,
    16 * KIB * 10 + 3,
    5 * 1024 * KIB + 7,
]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("size", SIZES)
def test_cas_id_and_checksum_match_definition(tmp_path, impl, size):
    data = pattern(size, size % 97)
    path = tmp_path / "f"
    path.write_bytes(data)
    assert impl.cas_id(path) == cas_id_by_definition(data)
    assert impl.checksum(path) == blake3.blake3(data).hexdigest()


def test_known_cas_id_value(tmp_path):
    # Pinned value: changes to the algorithm must be deliberate.
    path = tmp_path / "hello"
    path.write_bytes(b"hello world")
    expected = blake3.blake3((11).to_bytes(8, "little") + b"hello world").hexdigest()[:16]
    assert fs.cas_id(path) == expected


@pytest.mark.parametrize("impl", IMPLS)
def test_empty_file_has_no_cas_id(tmp_path, impl):
    (tmp_path / "e").write_bytes(b"")
    assert impl.cas_id(tmp_path / "e") is None
    assert impl.checksum(tmp_path / "e") == blake3.blake3(b"").hexdigest()


def test_unsampled_byte_changes_checksum_not_cas_id(tmp_path):
    size = 1024 * KIB
    data = bytearray(pattern(size, 9))
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(data)
    data[8 * KIB + 10 * KIB + 5] ^= 0xFF  # between the first and second sample
    b.write_bytes(data)
    assert fs.cas_id(a) == fs.cas_id(b)
    assert fs.checksum(a) != fs.checksum(b)


def test_sparse_file(nasty):
    root, _ = nasty
    path = root / "sparse"
    assert fs.cas_id(path) == reference.cas_id(path)
    assert fs.checksum(path) == reference.checksum(path)
    with open(path, "rb") as f:
        assert fs.checksum(path) == blake3.blake3(f.read()).hexdigest()


@pytest.mark.parametrize("impl", IMPLS)
def test_fifo_is_never_opened(nasty, impl):
    _root, notable = nasty
    result: list[BaseException] = []

    def attempt() -> None:
        try:
            impl.cas_id(os.fsdecode(notable["fifo"]))
        except OSError as exc:
            result.append(exc)

    # Opening a FIFO for reading would block forever: run in a thread and
    # fail (rather than hang) if it does not come back.
    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    thread.join(timeout=10)
    assert not thread.is_alive(), "cas_id blocked on a FIFO"
    assert isinstance(result[0], OSError)
    assert result[0].errno == errno.EINVAL
    assert "not a regular file" in str(result[0])


@pytest.mark.parametrize("impl", IMPLS)
def test_errors_carry_errno_and_path(tmp_path, impl):
    with pytest.raises(FileNotFoundError) as info:
        impl.cas_id(tmp_path / "missing")
    assert info.value.filename == str(tmp_path / "missing")
    with pytest.raises(IsADirectoryError):
        impl.checksum(tmp_path)


@pytest.mark.parametrize("impl", IMPLS)
def test_file_whose_size_lies_is_reported_as_changed(impl):
    # sysfs files claim 4096 bytes and hold fewer: exactly what a file that
    # shrinks while being read looks like.
    path = "/sys/kernel/mm/transparent_hugepage/enabled"
    if not os.path.exists(path):
        pytest.skip("no sysfs file with a misleading size on this machine")
    with pytest.raises(OSError, match="changed while being read"):
        impl.cas_id(path)
    with pytest.raises(OSError, match="changed while being read"):
        impl.checksum(path)


def test_proc_file_that_grows_is_reported_for_checksum():
    # /proc files have size 0 but content: reading finds more than stat said.
    with pytest.raises(OSError, match="changed while being read"):
        fs.checksum("/proc/self/status")
    assert fs.cas_id("/proc/self/status") is None  # size 0: no id, nothing read


def test_batches_agree_with_twin_and_keep_order(nasty):
    root, notable = nasty
    paths = [
        root / "plain.txt",
        root / "missing",
        root / "exact100k",
        os.fsdecode(notable["bad"]),
        root / "empty1",
        root / "over100k",
        os.fsdecode(notable["fifo"]),
        root / "sub",
        os.fsdecode(notable["deep"]),
    ]
    for fn in ("cas_ids", "checksums"):
        rust = getattr(fs, fn)(paths, threads=2)
        twin = getattr(reference, fn)(paths)
        assert rust.values == twin.values, fn
        assert {i: (e.path, e.errno) for i, e in rust.errors.items()} == {
            i: (e.path, e.errno) for i, e in twin.errors.items()
        }
        assert set(rust.errors) == {1, 6, 7}
        assert rust.errors[1].errno == errno.ENOENT
    assert fs.cas_ids(paths).values[4] is None  # empty, not an error


def test_bytes_and_pathlike_paths(tmp_path):
    (tmp_path / "x").write_bytes(b"data")
    expected = fs.cas_id(str(tmp_path / "x"))
    assert fs.cas_id(os.fsencode(tmp_path / "x")) == expected
    assert fs.cas_ids([tmp_path / "x", os.fsencode(tmp_path / "x")]).values == [expected, expected]
    with pytest.raises(TypeError, match="single path"):
        fs.cas_ids(str(tmp_path / "x"))


def test_cancelled_batch_raises(tmp_path):
    (tmp_path / "x").write_bytes(b"data")
    token = phasekit.CancelToken()
    token.cancel()
    with pytest.raises(phasekit.CancelledError):
        fs.cas_ids([tmp_path / "x"] * 10, cancel=token)
    with pytest.raises(phasekit.CancelledError):
        reference.cas_ids([tmp_path / "x"] * 10, cancel=token)
    with pytest.raises(ValueError, match="threads"):
        fs.checksums([tmp_path / "x"], threads=0)


def test_checksum_streams_large_files(tmp_path):
    """A 2 GiB (sparse) file is hashed in fixed-size reads, never loaded whole."""
    import json
    import subprocess
    import sys

    big = tmp_path / "big"
    with open(big, "wb") as f:
        f.truncate(2 * 1024 * 1024 * 1024)
    code = f"""
import json, resource
from phasekit import fs
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
digest = fs.checksum({str(big)!r})
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({{"digest": digest, "grew_kb": after - before}}))
"""
    out = json.loads(
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout
    )
    hasher = blake3.blake3()
    zeros = bytes(1 << 20)
    for _ in range(2048):
        hasher.update(zeros)
    assert out["digest"] == hasher.hexdigest()
    assert out["grew_kb"] < 64 * 1024, "checksum held the file in memory"


def test_cancel_stops_inside_one_huge_file(tmp_path):
    """A cancel takes effect between reads of a file, not only between files.

    Hashing this 256 GiB sparse file whole would take well over 30 s; the
    bound below is a third of that, so only a stuck loop fails it.
    """
    import time

    huge = tmp_path / "huge"
    with open(huge, "wb") as f:
        f.truncate(256 * 1024**3)
    token = phasekit.CancelToken()
    threading.Timer(0.2, token.cancel).start()
    start = time.monotonic()
    with pytest.raises(phasekit.CancelledError):
        fs.checksums([huge], cancel=token)
    assert time.monotonic() - start < 10
