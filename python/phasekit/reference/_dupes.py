"""Twins of the duplicate pipeline: size, then first bytes, then cas_id, then full hash."""

from __future__ import annotations

import os
import stat as stat_mod
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from .._core import CancelledError, CancelToken
from .._defaults import DuplicateMode
from .._native import (
    _check_mode,
    _check_size_range,
)
from .._types import (
    DuplicateGroup,
    DuplicateReport,
    DuplicateStats,
    FsError,
    Kind,
    StrPath,
)
from ._content import (
    _hash_fd,
)
from ._paths import (
    SMALL_FILE_MAX,
    _call_at,
    _error,
    _stat,
)
from ._walk import (
    walk,
)

# --- duplicates ---------------------------------------------------------------------

#: Twins of the Rust finder's prefix stage (``rust/core/src/dupes/finder.rs``):
#: in size groups of files over ``PREFIX_FROM`` bytes, the first ``PREFIX_LEN``
#: bytes are hashed first, and only files sharing them are hashed further.
PREFIX_LEN = 4096
PREFIX_FROM = 2 * PREFIX_LEN


def _name(path: bytes) -> bytes:
    return path.rsplit(b"/", 1)[-1]


def _groups_of(
    buckets: dict[Any, list[list[bytes]]],
    key: Callable[[Any], str],
    size_of: Callable[[list[bytes]], int],
) -> tuple[list[DuplicateGroup], list[list[bytes]]]:
    groups, singles = [], []
    for k, inodes in buckets.items():
        if len(inodes) > 1:
            groups.append(_make_group(key(k), size_of(inodes[0]), inodes))
        else:
            singles.extend(inodes)
    return groups, singles


def _make_group(key: str, size: int, inodes: list[list[bytes]]) -> DuplicateGroup:
    copies = sorted(sorted(paths) for paths in inodes)
    return DuplicateGroup(key, size, tuple(tuple(os.fsdecode(p) for p in c) for c in copies))


def group_duplicates(
    paths: Sequence[StrPath],
    sizes: Sequence[int],
    devices: Sequence[int],
    inodes: Sequence[int],
    *,
    mode: DuplicateMode = "full",
    min_size: int = 1,
    max_size: int | None = None,
    threads: int | None = None,
    cancel: CancelToken | None = None,
) -> DuplicateReport:
    """Twin of :func:`phasekit.fs.group_duplicates`."""
    _check_mode(mode)
    _check_size_range(min_size, max_size)
    if any(int(s) < 0 for s in sizes):
        raise ValueError("sizes must not be negative")
    if not len(paths) == len(sizes) == len(devices) == len(inodes):
        raise ValueError("paths, sizes, devices and inodes must have the same length")
    by_inode: dict[tuple[int, int], list[bytes]] = {}
    size_of_inode: dict[tuple[int, int], int] = {}
    for p, s, d, i in zip(paths, sizes, devices, inodes, strict=True):
        s = int(s)
        if s < min_size or (max_size is not None and s > max_size):
            continue
        ident = (int(d), int(i))
        by_inode.setdefault(ident, []).append(os.fsencode(p))
        size_of_inode[ident] = s
    size_by_first: dict[bytes, int] = {v[0]: size_of_inode[k] for k, v in by_inode.items()}
    ident_of: dict[bytes, tuple[int, int]] = {v[0]: k for k, v in by_inode.items()}

    def size_of(inode_paths: list[bytes]) -> int:
        return size_by_first[inode_paths[0]]

    errors: list[FsError] = []
    # files, size_candidates, partial_hashed, full_hashed, prefix_hashed
    stats = [len(paths), 0, 0, 0, 0]
    groups: list[DuplicateGroup] = []
    singles: list[list[bytes]] = []
    if mode == "name_size":
        by_key: dict[tuple[bytes, int], list[list[bytes]]] = {}
        for inode_paths in by_inode.values():
            size = size_of(inode_paths)
            for name in sorted({_name(p) for p in inode_paths}):
                sub = [p for p in inode_paths if _name(p) == name]
                size_by_first[sub[0]] = size
                ident_of[sub[0]] = ident_of[inode_paths[0]]
                by_key.setdefault((name, size), []).append(sub)
        groups, singles = _groups_of(by_key, lambda k: os.fsdecode(k[0]), size_of)
    else:
        by_size: dict[int, list[list[bytes]]] = {}
        for inode_paths in by_inode.values():
            by_size.setdefault(size_of(inode_paths), []).append(inode_paths)
        candidates = [ip for b in by_size.values() if len(b) > 1 for ip in b]
        singles = [ip for b in by_size.values() if len(b) == 1 for ip in b]
        stats[1] = sum(len(ip) for ip in candidates)
        if mode == "size":
            groups, _ = _groups_of({s: b for s, b in by_size.items() if len(b) > 1}, str, size_of)
        else:
            candidates = []
            for size, bucket in by_size.items():
                if len(bucket) < 2:
                    continue
                if size <= PREFIX_FROM:
                    candidates.extend(bucket)
                    continue
                by_prefix = _prefix_buckets(bucket, ident_of, errors, cancel)
                stats[4] += sum(len(b) for b in by_prefix.values())
                for same_head in by_prefix.values():
                    (candidates if len(same_head) > 1 else singles).extend(same_head)
            stats[2] = len(candidates)
            by_digest = _hash_buckets(candidates, ident_of, False, errors, cancel)
            need_full: list[list[bytes]] = []
            for digest, bucket in by_digest.items():
                if len(bucket) < 2:
                    singles.extend(bucket)
                elif mode == "full" and size_of(bucket[0]) > SMALL_FILE_MAX:
                    need_full.extend(bucket)
                else:
                    key = digest.hex() if mode == "full" else digest[:8].hex()
                    groups.append(_make_group(key, size_of(bucket[0]), bucket))
            stats[3] = len(need_full)
            full, more_singles = _groups_of(
                _hash_buckets(need_full, ident_of, True, errors, cancel), bytes.hex, size_of
            )
            groups += full
            singles += more_singles
    groups.sort(key=lambda g: (-g.size, g.copies))
    links = sorted(
        (_make_group(str(size_of(s)), size_of(s), [s]) for s in singles if len(s) > 1),
        key=lambda g: g.copies,
    )
    return DuplicateReport(mode, groups, links, errors, DuplicateStats(*stats))


def _open_listed(path: bytes, ident: tuple[int, int]) -> tuple[int, os.stat_result]:
    """Twin of the Rust ``open_listed``: only the listed regular file, no symlink."""

    def changed(mode: int) -> OSError:
        kind = (
            "different file"
            if stat_mod.S_ISREG(mode)
            else "directory"
            if stat_mod.S_ISDIR(mode)
            else "symlink"
            if stat_mod.S_ISLNK(mode)
            else "special file"
        )
        return OSError(
            0,
            f"file changed while being read: it is not the file that was listed (now a {kind})",
            os.fsdecode(path),
        )

    before = _stat(path, False)
    if not stat_mod.S_ISREG(before.st_mode):
        raise changed(before.st_mode)
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC | os.O_NOFOLLOW
    fd = _call_at(path, lambda n, d: os.open(n, flags, dir_fd=d))
    st = os.fstat(fd)
    if not stat_mod.S_ISREG(st.st_mode) or (st.st_dev, st.st_ino) != ident:
        os.close(fd)
        raise changed(st.st_mode)
    return fd, st


def _hash_listed(
    path: bytes, ident: tuple[int, int], want_cas: bool, want_checksum: bool
) -> tuple[bytes | None, bytes | None]:
    fd, st = _open_listed(path, ident)
    try:
        return _hash_fd(fd, st, want_cas, want_checksum, path)
    finally:
        os.close(fd)


def _listed_error(path: bytes, exc: OSError) -> FsError:
    """A listed file's error: an OS error, or our own (errno 0) "changed"."""
    return _error(path, exc) if exc.errno else FsError(os.fsdecode(path), 0, str(exc.strerror))


def _prefix_buckets(
    inodes: list[list[bytes]],
    ident_of: dict[bytes, tuple[int, int]],
    errors: list[FsError],
    cancel: CancelToken | None,
) -> dict[bytes, list[list[bytes]]]:
    import blake3

    buckets: dict[bytes, list[list[bytes]]] = {}
    for inode_paths in inodes:
        if cancel is not None and cancel.cancelled:
            raise CancelledError("cancelled")
        path = inode_paths[0]
        try:
            fd, _ = _open_listed(path, ident_of[path])
            try:
                head = os.pread(fd, PREFIX_LEN, 0)
            finally:
                os.close(fd)
            if len(head) < PREFIX_LEN:
                raise OSError(0, f"file changed while being read: shorter than {PREFIX_LEN} bytes")
        except OSError as exc:
            errors.append(_listed_error(path, exc))
            continue
        buckets.setdefault(blake3.blake3(head).digest(), []).append(inode_paths)
    return buckets


def _hash_buckets(
    inodes: list[list[bytes]],
    ident_of: dict[bytes, tuple[int, int]],
    full: bool,
    errors: list[FsError],
    cancel: CancelToken | None,
) -> dict[bytes, list[list[bytes]]]:
    buckets: dict[bytes, list[list[bytes]]] = {}
    for inode_paths in inodes:
        if cancel is not None and cancel.cancelled:
            raise CancelledError("cancelled")
        try:
            cas, whole = _hash_listed(inode_paths[0], ident_of[inode_paths[0]], not full, full)
            digest = whole if full else cas
        except OSError as exc:
            errors.append(_listed_error(inode_paths[0], exc))
            continue
        if digest is None:  # empty: the digest of the size prefix alone, as in Rust
            import blake3

            digest = blake3.blake3((0).to_bytes(8, "little")).digest()
        buckets.setdefault(digest, []).append(inode_paths)
    return buckets


def find_duplicates(
    roots: StrPath | Iterable[StrPath],
    *,
    mode: DuplicateMode = "full",
    min_size: int = 1,
    max_size: int | None = None,
    follow_symlinks: bool = False,
    max_depth: int | None = None,
    hidden: bool = True,
    skip: Iterable[str] = (),
    threads: int | None = None,
    cancel: CancelToken | None = None,
) -> DuplicateReport:
    """Twin of :func:`phasekit.fs.find_duplicates`: walk, then group."""
    _check_mode(mode)
    paths: list[str] = []
    sizes: list[int] = []
    devices: list[int] = []
    inodes: list[int] = []
    walk_errors: list[FsError] = []
    for batch in walk(
        roots,
        follow_symlinks=follow_symlinks,
        max_depth=max_depth,
        hidden=hidden,
        skip=skip,
        batch_size=4096,
        cancel=cancel,
    ):
        walk_errors += batch.errors
        for i in np.flatnonzero(batch.kinds == Kind.FILE):
            paths.append(batch.paths[i])
            sizes.append(int(batch.sizes[i]))
            devices.append(int(batch.devices[i]))
            inodes.append(int(batch.inodes[i]))
    report = group_duplicates(
        paths,
        sizes,
        devices,
        inodes,
        mode=mode,
        min_size=min_size,
        max_size=max_size,
        cancel=cancel,
    )
    return DuplicateReport(
        report.mode, report.groups, report.links, walk_errors + report.errors, report.stats
    )
