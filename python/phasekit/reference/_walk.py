"""Twin of the walker: single-threaded, same batches, same resume state."""

from __future__ import annotations

import bisect
import errno as errno_mod
import fnmatch
import os
import stat as stat_mod
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Self

import msgpack
import numpy as np

from .._core import CancelledError, CancelToken, InvalidStateError
from .._native import (
    _check_positive,
    _roots,
    _skip_list,
)
from .._types import (
    FsError,
    StrPath,
    WalkBatch,
)
from ._content import (
    _changed,
    _hash_fd,
    _hash_path,
)
from ._paths import (
    STATE_VERSION,
    _call_at,
    _clamp_ns,
    _error,
    _join,
    _kind,
    _stat,
)

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
