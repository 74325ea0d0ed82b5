"""Shared constants and path helpers of the twins: long paths piecewise, stat, errors, kinds."""

from __future__ import annotations

import errno as errno_mod
import os
import stat as stat_mod
from collections.abc import Callable
from typing import TypeVar

from .._types import (
    FsError,
    Kind,
)

T = TypeVar("T")
STATE_VERSION = 1
SMALL_FILE_MAX = 100 * 1024
_HEADER = 8 * 1024
_SAMPLE = 10 * 1024
_STREAM_BUFFER = 256 * 1024
#: Paths this long are opened piecewise, as the Rust side does.
_SHORT_PATH = 1000
_O_SEARCH = getattr(os, "O_PATH", os.O_RDONLY) | os.O_DIRECTORY | os.O_CLOEXEC


# --- paths -------------------------------------------------------------------


def _open_long_dir(path: bytes) -> int:
    fd = os.open(b"/" if path.startswith(b"/") else b".", _O_SEARCH)
    try:
        rest = path.lstrip(b"/")
        while rest:
            if len(rest) < _SHORT_PATH:
                piece, rest = rest, b""
            else:
                cut = rest.rfind(b"/", 0, _SHORT_PATH)
                if cut <= 0:
                    raise OSError(errno_mod.ENAMETOOLONG, os.strerror(errno_mod.ENAMETOOLONG))
                piece, rest = rest[:cut], rest[cut:].lstrip(b"/")
            nxt = os.open(piece, _O_SEARCH, dir_fd=fd)
            os.close(fd)
            fd = nxt
    except BaseException:
        os.close(fd)
        raise
    return fd


def _call_at(path: bytes, fn: Callable[[bytes, int | None], T]) -> T:
    """``fn(name, dir_fd)`` with ``name`` beneath ``dir_fd`` naming ``path``."""
    if len(path) < _SHORT_PATH:
        return fn(path, None)
    trimmed = path.rstrip(b"/") or b"/"
    parent, _, name = trimmed.rpartition(b"/")
    fd = _open_long_dir(parent)
    try:
        return fn(name, fd)
    finally:
        os.close(fd)


def _stat(path: bytes, follow: bool) -> os.stat_result:
    return _call_at(path, lambda n, d: os.stat(n, dir_fd=d, follow_symlinks=follow))


def _error(path: bytes, exc: OSError, prefix: str = "") -> FsError:
    code = exc.errno or 0
    text = os.strerror(code) if code else str(exc)
    return FsError(os.fsdecode(path), code, prefix + text)


def _clamp_ns(ns: int) -> int:
    """Times outside int64 nanoseconds (before 1678, after 2262) saturate, as in Rust."""
    return max(-(2**63), min(ns, 2**63 - 1))


def _kind(mode: int) -> Kind:
    if stat_mod.S_ISREG(mode):
        return Kind.FILE
    if stat_mod.S_ISDIR(mode):
        return Kind.DIR
    if stat_mod.S_ISLNK(mode):
        return Kind.SYMLINK
    return Kind.OTHER


def _join(directory: bytes, name: bytes) -> bytes:
    return directory + name if directory.endswith(b"/") else directory + b"/" + name
