"""Typed wrappers over the Rust extension ``phasekit._core``.

The extension returns plain tuples and lists (cheap to build across the
boundary); this module turns them into the dataclasses of :mod:`phasekit._types`
and validates arguments with clear messages. Every function here has a twin
of the same signature in :mod:`phasekit._reference`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Self, TypeVar

from . import _core
from ._closing import Closing
from ._core import CancelToken
from ._defaults import DUPLICATE_MODES, DuplicateMode
from ._types import (
    DuplicateGroup,
    DuplicateReport,
    DuplicateStats,
    FsError,
    HashResult,
    StrPath,
    WalkBatch,
)

#: Files read at once by default (cas_ids, checksums, hashing walks, the
#: duplicate finder, validation). A read of a file not in the page cache waits
#: on the device, not on a core, so this is sized for storage latency rather
#: than for the cores: a cold content index ran 2.1x (60,000 files) and 2.6x
#: (200,000) faster with 16 reads in flight than with 2 (benches/cold.py).
#: Warm runs take the same time either way. ``PHASEKIT_READ_THREADS`` changes
#: it for a process (read once); a ``threads`` argument means that many
#: readers. A hashing walk's walking threads read their directories' files
#: too, beside these readers (up to 8 + 16 reads at once by default).
READ_THREADS: int = _core.READ_THREADS


def read_threads() -> int:
    """Files read at once when no ``threads`` is given: ``PHASEKIT_READ_THREADS``
    when set, else :data:`READ_THREADS`. :class:`ValueError` when the variable
    is set to anything but a whole number of at least 1."""
    return _core.read_threads()


T = TypeVar("T")


def _roots(roots: StrPath | Iterable[StrPath]) -> list[StrPath]:
    """Accept one path or many."""
    if isinstance(roots, str | bytes | os.PathLike):
        return [roots]
    out = list(roots)
    if not out:
        raise ValueError("no roots given: pass at least one path")
    return out


def _check_positive(name: str, value: int | None) -> None:
    if value is not None and not 1 <= value <= 2**32 - 1:
        raise ValueError(f"{name} must be between 1 and 2**32 - 1, got {value}")


def _skip_list(skip: Iterable[str]) -> list[str]:
    """Skip patterns, checked: shell wildcards ``*``, ``?``, ``[seq]``, ``[!seq]``
    matched against the name's bytes (``?`` is one byte). Forms whose meaning
    differs between glob dialects are refused rather than guessed."""
    patterns = [skip] if isinstance(skip, str) else list(skip)
    for pattern in patterns:
        if "{" in pattern or "}" in pattern:
            raise ValueError(
                f"skip pattern {pattern!r}: braces are not supported; "
                "give each alternative as its own pattern"
            )
        if "[^" in pattern:
            raise ValueError(f"skip pattern {pattern!r}: write [!...] to negate a set")
        if pattern.count("[") != pattern.count("]"):
            raise ValueError(f"skip pattern {pattern!r}: unbalanced [ ]")
    return patterns


class Walker(Closing):
    """An iterator of :class:`WalkBatch` over one walk; see :func:`walk`.

    Use it as a context manager (or call :meth:`close`) to stop its worker
    threads early. :meth:`state` may be taken between batches and passed to
    ``walk(..., resume=state)`` to continue later, in this or another process.
    """

    __slots__ = ("_inner",)

    def __init__(self, inner: _core.Walker) -> None:
        self._inner = inner

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> WalkBatch:
        raw = next(self._inner)
        paths, kinds, sizes, mtimes, ctimes, inodes, devices, modes, nlinks, errors, cas, ck = raw
        return WalkBatch(
            paths=paths,
            kinds=kinds,
            sizes=sizes,
            mtimes_ns=mtimes,
            ctimes_ns=ctimes,
            inodes=inodes,
            devices=devices,
            modes=modes,
            nlinks=nlinks,
            errors=[FsError(p, e, m) for p, e, m in errors],
            cas_ids=cas,
            checksums=ck,
        )

    def state(self) -> bytes:
        """The frontier (msgpack): directories not yet fully yielded."""
        return self._inner.state()

    @property
    def finished(self) -> bool:
        """True once every entry has been yielded."""
        return self._inner.finished

    def close(self) -> None:
        """Stop the worker threads; iteration then ends."""
        self._inner.close()


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
    """Walk directory trees in parallel, yielding batches of entries with stat data.

    Roots that are directories are walked, not yielded; other roots are yielded
    as single entries; missing roots become errors. Entries are ``lstat``-ed
    (with ``follow_symlinks``, links are reported as their targets and walked,
    and a link back to an ancestor is an error, not a loop). ``max_depth=1``
    yields only a root's children. ``hidden=False`` skips names starting with
    ``.``. ``skip`` holds shell-style name patterns (``*``, ``?``, ``[seq]``,
    ``[!seq]``, matched against the name's bytes, so ``?`` is one byte); a
    matching entry is neither yielded nor entered.

    Problems with single paths (unreadable directories, vanished files) are
    reported in each batch's ``errors`` and never stop the walk. The GIL is
    released while directories are read. Setting ``cancel`` ends the walk at a
    batch boundary with :class:`phasekit.CancelledError`; the state taken then
    resumes it exactly. ``resume`` continues from :meth:`Walker.state` (give
    the same options; ``roots`` is then ignored).
    """
    _check_positive("batch_size", batch_size)
    _check_positive("threads", threads)
    _check_positive("max_depth", max_depth)
    root_list = [] if resume is not None else _roots(roots)
    inner = _core.walk(
        root_list,
        follow_symlinks=follow_symlinks,
        max_depth=max_depth,
        hidden=hidden,
        skip=_skip_list(skip),
        batch_size=batch_size,
        threads=threads,
        cancel=cancel,
        resume=resume,
        cas_ids=cas_ids,
        checksums=checksums,
    )
    return Walker(inner)


def cas_id(path: StrPath) -> str | None:
    """Content id of one file (16 hex digits), ``None`` if it is empty.

    Raises ``OSError`` (with errno and filename) if the file cannot be read, is
    not a regular file (FIFOs, sockets and devices are never opened) or
    changes size while being read.
    """
    return _core.cas_id(path)


def checksum(path: StrPath) -> str:
    """Full-content BLAKE3 of one file (64 hex digits), streamed."""
    return _core.checksum(path)


def _hash_result(raw: tuple[list[str | None], list[tuple[int, str, int, str]]]) -> HashResult:
    values, errors = raw
    return HashResult(values, {i: FsError(p, e, m) for i, p, e, m in errors})


def cas_ids(
    paths: Iterable[StrPath], *, threads: int | None = None, cancel: CancelToken | None = None
) -> HashResult:
    """Content ids of many files, hashed in parallel without the GIL:
    ``threads`` files read at once (None: :data:`READ_THREADS`)."""
    _check_positive("threads", threads)
    return _hash_result(_core.cas_ids(paths, threads=threads, cancel=cancel))


def checksums(
    paths: Iterable[StrPath], *, threads: int | None = None, cancel: CancelToken | None = None
) -> HashResult:
    """Full BLAKE3 checksums of many files, in parallel without the GIL:
    ``threads`` files read at once (None: :data:`READ_THREADS`)."""
    _check_positive("threads", threads)
    return _hash_result(_core.checksums(paths, threads=threads, cancel=cancel))


def chunks(seq: Sequence[T], size: int, *, balanced: bool = False) -> list[Sequence[T]]:
    """Split a sliceable sequence (list, tuple, numpy array, ...) into slices.

    Every slice has at most ``size`` items. By default all but the last are
    full; with ``balanced=True`` the slices are as few and as even as possible
    (lengths differ by at most one), which is how an over-long item list is
    split into several jobs.
    """
    _check_positive("size", size)
    result: list[Sequence[T]] = _core.chunks(seq, size, balanced=balanced)
    return result


def iter_chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Lazily batch any iterable (a generator, a cursor) into lists of ``size``."""
    _check_positive("size", size)
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _check_size_range(min_size: int, max_size: int | None) -> None:
    if min_size < 0 or (max_size is not None and max_size < min_size):
        raise ValueError(f"bad size range: min_size={min_size}, max_size={max_size}")


def _check_mode(mode: str) -> None:
    if mode not in DUPLICATE_MODES:
        raise ValueError(f"unknown duplicate mode {mode!r}; expected one of {DUPLICATE_MODES}")


def _group(raw: tuple[str, int, list[list[str]]]) -> DuplicateGroup:
    key, size, copies = raw
    return DuplicateGroup(key, size, tuple(tuple(c) for c in copies))


def duplicate_report(mode: DuplicateMode, raw: tuple[Any, Any, Any, Any]) -> DuplicateReport:
    """A :class:`DuplicateReport` from the extension's raw tuple."""
    groups, links, errors, stats = raw
    return DuplicateReport(
        mode=mode,
        groups=[_group(g) for g in groups],
        links=[_group(g) for g in links],
        errors=[FsError(p, e, m) for p, e, m in errors],
        stats=DuplicateStats(*stats),
    )


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
    """Walk ``roots`` and group duplicate regular files.

    Staged like the fastest tools: group by size, then cas_id only inside
    same-size groups, then (``full``) a full BLAKE3 only for files over 100 KiB
    inside same-cas_id groups. Modes: ``size``, ``name_size``, ``content``
    (same cas_id), ``full`` (byte-exact). Empty files are skipped unless
    ``min_size=0``. Hard links to one file are one copy, not waste.
    """
    _check_mode(mode)
    _check_positive("threads", threads)
    _check_size_range(min_size, max_size)
    raw = _core.find_duplicates(
        _roots(roots),
        mode=mode,
        min_size=min_size,
        max_size=max_size,
        follow_symlinks=follow_symlinks,
        max_depth=max_depth,
        hidden=hidden,
        skip=_skip_list(skip),
        threads=threads,
        cancel=cancel,
    )
    return duplicate_report(mode, raw)


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
    """Like :func:`find_duplicates` over files already known (e.g. a library's).

    Each file is hashed only if it is still the listed one (same device and
    inode, not a symlink); otherwise it is reported as an error.
    """
    _check_mode(mode)
    _check_positive("threads", threads)
    _check_size_range(min_size, max_size)
    if any(int(s) < 0 for s in sizes):
        raise ValueError("sizes must not be negative")
    raw = _core.group_duplicates(
        paths,
        [int(s) for s in sizes],
        [int(d) for d in devices],
        [int(i) for i in inodes],
        mode=mode,
        min_size=min_size,
        max_size=max_size,
        threads=threads,
        cancel=cancel,
    )
    return duplicate_report(mode, raw)
