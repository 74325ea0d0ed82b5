"""Twins of cas_id, checksum, their batch forms and chunks."""

from __future__ import annotations

import errno as errno_mod
import os
import stat as stat_mod
from collections.abc import Callable, Iterable, Sequence

from .._core import CancelledError, CancelToken
from .._native import (
    _check_positive,
)
from .._types import (
    FsError,
    HashResult,
    StrPath,
)
from ._paths import (
    _HEADER,
    _SAMPLE,
    _STREAM_BUFFER,
    SMALL_FILE_MAX,
    T,
    _call_at,
    _error,
    _stat,
)

# --- content ---------------------------------------------------------------------


def _open_regular(path: bytes) -> tuple[int, os.stat_result]:
    try:
        return _open_regular_unchecked(path)
    except OSError as exc:
        # Report the whole path as str, as the Rust side does (os.stat on a
        # bytes or dir_fd-relative name would name only part of it).
        if exc.errno and exc.filename != os.fsdecode(path):
            raise OSError(exc.errno, exc.strerror, os.fsdecode(path)) from None
        raise


def _open_regular_unchecked(path: bytes) -> tuple[int, os.stat_result]:
    st = _stat(path, True)
    if not stat_mod.S_ISREG(st.st_mode):
        if stat_mod.S_ISDIR(st.st_mode):
            raise OSError(errno_mod.EISDIR, os.strerror(errno_mod.EISDIR), os.fsdecode(path))
        raise OSError(
            errno_mod.EINVAL,
            "not a regular file (FIFO, socket or device): not opened",
            os.fsdecode(path),
        )
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
    fd = _call_at(path, lambda n, d: os.open(n, flags, dir_fd=d))
    st = os.fstat(fd)
    if not stat_mod.S_ISREG(st.st_mode):
        os.close(fd)
        raise OSError(errno_mod.EINVAL, "not a regular file", os.fsdecode(path))
    return fd, st


def _changed(path: bytes, detail: str) -> OSError:
    return OSError(0, f"file changed while being read: {detail}", os.fsdecode(path))


def _read_exact(fd: int, length: int, offset: int, path: bytes) -> bytes:
    data = os.pread(fd, length, offset)
    if len(data) != length:
        raise _changed(path, "shorter than expected")
    return data


def _read_whole(fd: int, size: int, path: bytes) -> bytes:
    data = b""
    while len(data) <= size:
        chunk = os.read(fd, size + 1 - len(data))
        if not chunk:
            break
        data += chunk
    if len(data) != size:
        raise _changed(path, f"size was {size}, read {len(data)}")
    return data


def _hash_fd(
    fd: int, st: os.stat_result, want_cas: bool, want_checksum: bool, path: bytes
) -> tuple[bytes | None, bytes | None]:
    """Twin of the Rust ``hash_file``: (cas digest, checksum digest)."""
    import blake3

    size = st.st_size
    cas: bytes | None = None
    full: bytes | None = None
    if size == 0 and not want_checksum:
        return None, None
    if size <= SMALL_FILE_MAX:
        data = _read_whole(fd, size, path)
        if want_cas and size > 0:
            cas = blake3.blake3(size.to_bytes(8, "little") + data).digest()
        if want_checksum:
            full = blake3.blake3(data).digest()
        return cas, full
    if want_cas:
        hasher = blake3.blake3(size.to_bytes(8, "little"))
        jump = (size - 2 * _HEADER) // 4
        hasher.update(_read_exact(fd, _HEADER, 0, path))
        for i in range(4):
            hasher.update(_read_exact(fd, _SAMPLE, _HEADER + i * jump, path))
        hasher.update(_read_exact(fd, _HEADER, size - _HEADER, path))
        after = os.fstat(fd)
        if after.st_size != size or after.st_mtime_ns != st.st_mtime_ns:
            raise _changed(path, f"size {size} -> {after.st_size}")
        cas = hasher.digest()
    if want_checksum:
        hasher = blake3.blake3()
        total = 0
        while chunk := os.read(fd, _STREAM_BUFFER):
            total += len(chunk)
            if total > size:
                break
            hasher.update(chunk)
        if total != size:
            raise _changed(path, f"size was {size}, read {total}")
        after = os.fstat(fd)
        if (after.st_size, after.st_mtime_ns, after.st_ctime_ns) != (
            size,
            st.st_mtime_ns,
            st.st_ctime_ns,
        ):
            raise _changed(path, "modified during the read")
        full = hasher.digest()
    return cas, full


def _hash_path(
    path: bytes, want_cas: bool, want_checksum: bool
) -> tuple[bytes | None, bytes | None]:
    fd, st = _open_regular(path)
    try:
        return _hash_fd(fd, st, want_cas, want_checksum, path)
    finally:
        os.close(fd)


def _cas_digest(path: bytes) -> bytes | None:
    return _hash_path(path, True, False)[0]


def _full_digest(path: bytes) -> bytes:
    digest = _hash_path(path, False, True)[1]
    assert digest is not None
    return digest


def cas_id(path: StrPath) -> str | None:
    """Twin of :func:`phasekit.fs.cas_id`."""
    digest = _cas_digest(os.fsencode(path))
    return None if digest is None else digest[:8].hex()


def checksum(path: StrPath) -> str:
    """Twin of :func:`phasekit.fs.checksum`."""
    return _full_digest(os.fsencode(path)).hex()


def _hash_many(
    paths: Iterable[StrPath], fn: Callable[[StrPath], str | None], cancel: CancelToken | None
) -> HashResult:
    values: list[str | None] = []
    errors: dict[int, FsError] = {}
    for i, path in enumerate(paths):
        if cancel is not None and cancel.cancelled:
            raise CancelledError("cancelled")
        try:
            values.append(fn(path))
        except OSError as exc:
            values.append(None)
            errors[i] = (
                _error(os.fsencode(path), exc)
                if exc.errno
                else FsError(os.fsdecode(path), 0, str(exc.strerror))
            )
    return HashResult(values, errors)


def cas_ids(
    paths: Iterable[StrPath], *, threads: int | None = None, cancel: CancelToken | None = None
) -> HashResult:
    """Twin of :func:`phasekit.fs.cas_ids` (one thread)."""
    return _hash_many(paths, cas_id, cancel)


def checksums(
    paths: Iterable[StrPath], *, threads: int | None = None, cancel: CancelToken | None = None
) -> HashResult:
    """Twin of :func:`phasekit.fs.checksums` (one thread)."""
    return _hash_many(paths, checksum, cancel)


def chunks(seq: Sequence[T], size: int, *, balanced: bool = False) -> list[Sequence[T]]:
    """Twin of :func:`phasekit.fs.chunks`."""
    _check_positive("size", size)
    n = len(seq)
    if not balanced:
        return [seq[i : i + size] for i in range(0, n, size)]
    count = -(-n // size)
    if count == 0:
        return []
    base, extra = divmod(n, count)
    out, start = [], 0
    for i in range(count):
        length = base + (1 if i < extra else 0)
        out.append(seq[start : start + length])
        start += length
    return out
