"""Pure-Python twins of :mod:`phasekit.fs`: same signatures, same results.

They are the test oracle (the Rust path must agree with them on any tree) and
the benchmark baseline (what a careful Python user would write by hand:
``os.scandir``/``os.lstat`` relative to directory handles, the ``blake3``
package, one thread). The walk state format is shared, so either side can
resume a walk the other started. Needs the ``blake3`` package for hashing.
"""

from __future__ import annotations

import bisect
import errno as errno_mod
import fnmatch
import os
import stat as stat_mod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Self, TypeVar

import msgpack
import numpy as np

from ._core import CancelledError, CancelToken, InvalidStateError
from ._native import (
    _check_mode,
    _check_positive,
    _check_size_range,
    _roots,
    _skip_list,
    iter_chunks,
)
from ._types import (
    DuplicateGroup,
    DuplicateMode,
    DuplicateReport,
    DuplicateStats,
    FsError,
    HashResult,
    Kind,
    StrPath,
    WalkBatch,
)

__all__ = [
    "cas_id",
    "cas_ids",
    "checksum",
    "checksums",
    "chunks",
    "find_duplicates",
    "group_duplicates",
    "iter_chunks",
    "walk",
]

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


# --- walk ----------------------------------------------------------------------


@dataclass
class _Task:
    path: bytes
    depth: int
    #: Name of the last entry yielded before a resume: continue after it.
    after: bytes | None = None
    ancestors: tuple[tuple[int, int], ...] = ()
    #: (device, inode) the directory had when listed; checked when opened.
    expect: tuple[int, int] | None = None


@dataclass
class _Item:
    name: bytes
    st: os.stat_result | None
    error: tuple[int, str] | None = None
    descend: bool = False
    hashes: tuple[bytes | None, bytes | None] = (None, None)


@dataclass
class _Options:
    follow_symlinks: bool
    max_depth: int | None
    hidden: bool
    skip: list[str]
    batch_size: int
    cas_ids: bool = False
    checksums: bool = False


@dataclass
class _Columns:
    want_cas: bool
    want_checksum: bool
    paths: list[str] = field(default_factory=list)
    stats: list[os.stat_result] = field(default_factory=list)
    errors: list[FsError] = field(default_factory=list)
    cas: list[str | None] = field(default_factory=list)
    checksums: list[str | None] = field(default_factory=list)

    def add(
        self, path: bytes, st: os.stat_result, hashes: tuple[bytes | None, bytes | None]
    ) -> None:
        self.paths.append(os.fsdecode(path))
        self.stats.append(st)
        if self.want_cas:
            self.cas.append(None if hashes[0] is None else hashes[0][:8].hex())
        if self.want_checksum:
            self.checksums.append(None if hashes[1] is None else hashes[1].hex())

    def batch(self) -> WalkBatch:
        s = self.stats
        return WalkBatch(
            paths=self.paths,
            kinds=np.array([_kind(x.st_mode) for x in s], dtype=np.uint8),
            sizes=np.array([x.st_size for x in s], dtype=np.uint64),
            mtimes_ns=np.array([_clamp_ns(x.st_mtime_ns) for x in s], dtype=np.int64),
            ctimes_ns=np.array([_clamp_ns(x.st_ctime_ns) for x in s], dtype=np.int64),
            inodes=np.array([x.st_ino for x in s], dtype=np.uint64),
            devices=np.array([x.st_dev for x in s], dtype=np.uint64),
            modes=np.array([x.st_mode for x in s], dtype=np.uint32),
            nlinks=np.array([x.st_nlink for x in s], dtype=np.uint64),
            errors=self.errors,
            cas_ids=self.cas if self.want_cas else None,
            checksums=self.checksums if self.want_checksum else None,
        )


def _skipped(name: bytes, patterns: list[str]) -> bool:
    # Byte semantics, as in Rust: latin-1 maps each byte to one character.
    text = name.decode("latin-1")
    return any(fnmatch.fnmatchcase(text, p.encode().decode("latin-1")) for p in patterns)


def _read_listing(task: _Task, opts: _Options) -> tuple[list[_Item], FsError | None]:
    follow_dir = opts.follow_symlinks or task.depth == 1
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | (0 if follow_dir else os.O_NOFOLLOW)
    try:
        fd = _call_at(task.path, lambda n, d: os.open(n, flags, dir_fd=d))
    except OSError as exc:
        return [], _error(task.path, exc)
    if task.expect is not None:
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) != task.expect:
            os.close(fd)
            message = (
                "directory changed since the walk was interrupted "
                "(replaced, or now a symlink); not entered"
            )
            return [], FsError(os.fsdecode(task.path), 0, message)
    try:
        names = sorted(
            name
            for name in map(os.fsencode, os.listdir(fd))
            if (opts.hidden or not name.startswith(b".")) and not _skipped(name, opts.skip)
        )
        depth_ok = opts.max_depth is None or task.depth < opts.max_depth
        return [_stat_item(fd, name, task, opts, depth_ok) for name in names], None
    finally:
        os.close(fd)


def _stat_item(fd: int, name: bytes, task: _Task, opts: _Options, depth_ok: bool) -> _Item:
    try:
        item = _Item(name, os.stat(name, dir_fd=fd, follow_symlinks=False))
    except OSError as exc:
        err = _error(name, exc)
        return _Item(name, None, (err.errno, err.message))
    assert item.st is not None
    if opts.follow_symlinks and stat_mod.S_ISLNK(item.st.st_mode):
        try:
            target = os.stat(name, dir_fd=fd)
        except OSError as exc:
            err = _error(name, exc, "broken symlink: ")
            item.error = (err.errno, err.message)
        else:
            if (
                stat_mod.S_ISDIR(target.st_mode)
                and (target.st_dev, target.st_ino) in task.ancestors
            ):
                msg = "symlink loop: points to an ancestor directory; not followed"
                item.error = (errno_mod.ELOOP, msg)
            else:
                item.st = target
    item.descend = depth_ok and item.st is not None and stat_mod.S_ISDIR(item.st.st_mode)
    if (opts.cas_ids or opts.checksums) and stat_mod.S_ISREG(item.st.st_mode):
        try:
            item.hashes = _hash_at(fd, name, item.st, opts)
        except OSError as exc:
            err = _error(name, exc) if exc.errno else FsError("", 0, str(exc.strerror))
            item.error = (err.errno, err.message)
    return item


def _hash_at(
    dir_fd: int, name: bytes, expected: os.stat_result, opts: _Options
) -> tuple[bytes | None, bytes | None]:
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
    if not opts.follow_symlinks:
        flags |= os.O_NOFOLLOW
    fd = os.open(name, flags, dir_fd=dir_fd)
    try:
        st = os.fstat(fd)
        if not stat_mod.S_ISREG(st.st_mode):
            raise OSError(errno_mod.EINVAL, "not a regular file")
        if (st.st_dev, st.st_ino) != (expected.st_dev, expected.st_ino):
            raise _changed(name, "replaced after it was listed")
        return _hash_fd(fd, st, opts.cas_ids, opts.checksums, name)
    finally:
        os.close(fd)


class Walker:
    """Single-threaded twin of :class:`phasekit.fs.Walker` (same state format)."""

    def __init__(
        self, tasks: list[_Task], files: list[bytes], opts: _Options, cancel: CancelToken | None
    ) -> None:
        self._opts = opts
        self._cancel = cancel
        self._files = files
        self._stack = list(reversed(tasks))
        self._frontier: dict[bytes, _Task] = {t.path: t for t in tasks}
        self._current: tuple[_Task, list[_Item], int] | None = None
        self._finished = False

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> WalkBatch:
        if self._finished:
            raise StopIteration
        if self._cancel is not None and self._cancel.cancelled:
            raise CancelledError("cancelled")
        out = _Columns(self._opts.cas_ids, self._opts.checksums)
        while len(out.paths) < self._opts.batch_size:
            if self._files:
                self._root_file(self._files.pop(0), out)
            elif self._current is not None:
                self._hand_out(out)
            elif self._stack:
                task = self._stack.pop()
                items, error = _read_listing(task, self._opts)
                if error is not None:
                    out.errors.append(error)
                start = (
                    0
                    if task.after is None
                    else bisect.bisect_right([it.name for it in items], task.after)
                )
                children = [self._child(task, it) for it in items[start:] if it.descend]
                self._stack.extend(reversed(children))
                self._current = (task, items, start)
            else:
                self._finished = True
                break
        if self._finished and not out.paths and not out.errors:
            raise StopIteration
        return out.batch()

    def _root_file(self, path: bytes, out: _Columns) -> None:
        try:
            st = _stat(path, True)
        except OSError as exc:
            out.errors.append(_error(path, exc))
            try:
                st = _stat(path, False)
            except OSError:
                return
        hashes: tuple[bytes | None, bytes | None] = (None, None)
        if (self._opts.cas_ids or self._opts.checksums) and stat_mod.S_ISREG(st.st_mode):
            try:
                hashes = _hash_path(path, self._opts.cas_ids, self._opts.checksums)
            except OSError as exc:
                out.errors.append(
                    _error(path, exc)
                    if exc.errno
                    else FsError(os.fsdecode(path), 0, str(exc.strerror))
                )
        out.add(path, st, hashes)

    def _child(self, task: _Task, item: _Item) -> _Task:
        assert item.st is not None
        ancestors = (
            (*task.ancestors, (item.st.st_dev, item.st.st_ino))
            if self._opts.follow_symlinks
            else ()
        )
        return _Task(
            _join(task.path, item.name),
            task.depth + 1,
            None,
            ancestors,
            (item.st.st_dev, item.st.st_ino),
        )

    def _hand_out(self, out: _Columns) -> None:
        assert self._current is not None
        task, items, cursor = self._current
        while cursor < len(items) and len(out.paths) < self._opts.batch_size:
            item = items[cursor]
            cursor += 1
            path = _join(task.path, item.name)
            if item.error is not None:
                out.errors.append(FsError(os.fsdecode(path), *item.error))
            if item.st is None:
                continue
            if item.descend:
                child = self._child(task, item)
                self._frontier[child.path] = child
            out.add(path, item.st, item.hashes)
        if cursor >= len(items):
            self._frontier.pop(task.path, None)
            self._current = None
        else:
            self._current = (task, items, cursor)

    def state(self) -> bytes:
        current = self._current
        dirs = []
        for path, task in sorted(self._frontier.items()):
            after = task.after
            if current is not None and current[0].path == path and current[2] > 0:
                after = current[1][current[2] - 1].name
            entry: dict[str, Any] = {
                "p": path,
                "d": task.depth,
                "a": [list(a) for a in task.ancestors],
            }
            if after is not None:
                entry["n"] = after
            if task.expect is not None:
                entry["i"] = list(task.expect)
            dirs.append(entry)
        state = {"v": STATE_VERSION, "dirs": dirs, "files": list(self._files)}
        packed: bytes = msgpack.packb(state, use_bin_type=True)
        return packed

    @property
    def finished(self) -> bool:
        return self._finished

    def close(self) -> None:
        self._stack.clear()
        self._current = None
        self._files.clear()
        self._finished = True

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _distinct_roots(roots: list[bytes]) -> list[bytes]:
    """Twin of the Rust ``distinct_roots``: trimmed, no repeats, none nested."""
    trimmed: list[bytes] = []
    for root in roots:
        if not root:
            raise ValueError("a root path is empty")
        root = root.rstrip(b"/") or b"/"
        if root not in trimmed:
            trimmed.append(root)

    def inside(inner: bytes, outer: bytes) -> bool:
        return (
            inner != outer
            and inner.startswith(outer)
            and (outer.endswith(b"/") or inner[len(outer) : len(outer) + 1] == b"/")
        )

    return [r for r in trimmed if not any(inside(r, o) for o in trimmed)]


def _decode_state(state: bytes) -> tuple[list[_Task], list[bytes]]:
    try:
        data = msgpack.unpackb(state, raw=False)
        if not isinstance(data, dict) or data.get("v") != STATE_VERSION:
            raise ValueError(
                f"unsupported state version {data.get('v') if isinstance(data, dict) else data!r}"
            )
        tasks = [
            _Task(
                bytes(d["p"]),
                int(d["d"]),
                None if d.get("n") is None else bytes(d["n"]),
                tuple((int(a), int(b)) for a, b in d.get("a", ())),
                None if d.get("i") is None else (int(d["i"][0]), int(d["i"][1])),
            )
            for d in data["dirs"]
        ]
        files = [bytes(f) for f in data.get("files", [])]
    except (
        ValueError,
        KeyError,
        TypeError,
        msgpack.ExtraData,
        msgpack.FormatError,
        msgpack.StackError,
    ) as exc:
        raise InvalidStateError(f"invalid walk state: cannot decode: {exc}") from exc
    if any(t.depth < 1 or not t.path for t in tasks):
        raise InvalidStateError("invalid walk state: a directory has an empty path or depth 0")
    return tasks, files


def walk(
    roots: StrPath | Iterable[StrPath],
    *,
    follow_symlinks: bool = False,
    max_depth: int | None = None,
    hidden: bool = True,
    skip: Iterable[str] = (),
    batch_size: int = 1000,
    threads: int | None = None,
    cancel: CancelToken | None = None,
    resume: bytes | None = None,
    cas_ids: bool = False,
    checksums: bool = False,
) -> Walker:
    """Twin of :func:`phasekit.fs.walk` (``threads`` is accepted and ignored)."""
    _check_positive("batch_size", batch_size)
    _check_positive("threads", threads)
    _check_positive("max_depth", max_depth)
    skip_list = _skip_list(skip)
    opts = _Options(follow_symlinks, max_depth, hidden, skip_list, batch_size, cas_ids, checksums)
    if resume is not None:
        tasks, files = _decode_state(resume)
        return Walker(tasks, files, opts, cancel)
    tasks, files = [], []
    seen_dirs: set[tuple[int, int]] = set()
    for raw in _distinct_roots([os.fsencode(r) for r in _roots(roots)]):
        try:
            st = _stat(raw, True)
        except OSError:
            files.append(raw)
            continue
        if stat_mod.S_ISDIR(st.st_mode):
            if (st.st_dev, st.st_ino) in seen_dirs:
                continue
            seen_dirs.add((st.st_dev, st.st_ino))
            ancestors = ((st.st_dev, st.st_ino),) if follow_symlinks else ()
            tasks.append(_Task(raw, 1, None, ancestors, (st.st_dev, st.st_ino)))
        else:
            files.append(raw)
    return Walker(tasks, files, opts, cancel)


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


# --- duplicates ---------------------------------------------------------------------


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
    stats = [len(paths), 0, 0, 0]
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
            errors.append(
                _error(inode_paths[0], exc)
                if exc.errno
                else FsError(os.fsdecode(inode_paths[0]), 0, str(exc.strerror))
            )
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
