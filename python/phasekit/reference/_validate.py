"""Twin of the validation core: the same checks, one entry at a time, with
``os.lstat`` and the ``blake3`` package. It takes the entries as
:meth:`phasekit.library.Library.entries` gives them (library.db is never
opened from Python) and writes nothing: checksums complete mode would store
are returned instead."""

from __future__ import annotations

import errno as errno_mod
import os
import stat as stat_mod
from collections.abc import Iterable
from dataclasses import dataclass, field

from .._defaults import ValidationMode
from .._types import Kind, StrPath
from ..library import Entry
from ..validation._types import (
    DEPTH_MAX,
    NAME_MAX_PORTABLE,
    PATH_MAX_BYTES,
    Category,
    _mode,
)
from ._content import _hash_fd
from ._paths import _call_at, _kind, _stat

_GONE = (errno_mod.ENOENT, errno_mod.ENOTDIR)
_KIND_NAMES = {0: "file", 1: "directory", 2: "symlink"}
_SAMPLED_BYTES = 56 * 1024
_SMALL_FILE_MAX = 100 * 1024


@dataclass
class ValidationResult:
    """What :func:`validate_entries` found."""

    #: ``(absolute path, category, detail, entry id)`` in entry order.
    issues: list[tuple[str, Category, str, int]] = field(default_factory=list)
    checked: int = 0
    hashed: int = 0
    bytes: int = 0
    unverified: int = 0
    #: Entry id to the checksum complete mode would store.
    checksums: dict[int, str] = field(default_factory=dict)


def _format_ns(ns: int) -> str:
    return f"{ns // 1_000_000_000}.{ns % 1_000_000_000:09d}"


def _kind_name(kind: int) -> str:
    return _KIND_NAMES.get(kind, "special file")


def name_issues(rel: bytes, abs_len: int) -> list[tuple[Category, str]]:
    """Twin of the core's name checks."""
    out: list[tuple[Category, str]] = []
    name = rel.rpartition(b"/")[2]
    why: list[str] = []
    try:
        name.decode("utf-8")
    except UnicodeDecodeError:
        why.append("not valid UTF-8")
    if b"\n" in name:
        why.append("contains a newline")
    control = next((b for b in name if (b < 0x20 and b != 0x0A) or b == 0x7F), None)
    if control is not None:
        why.append(f"contains the control character 0x{control:02x}")
    if name.startswith(b" "):
        why.append("starts with a space")
    if len(name) > 1 and name.endswith(b" "):
        why.append("ends with a space")
    if name.startswith(b"-"):
        why.append("starts with '-' (read as an option by command-line tools)")
    if why:
        out.append((Category.PROBLEMATIC_NAME, "; ".join(why)))
    if len(name) > NAME_MAX_PORTABLE:
        out.append(
            (Category.NAME_TOO_LONG, f"name is {len(name)} bytes (over {NAME_MAX_PORTABLE})")
        )
    depth = sum(1 for part in rel.split(b"/") if part)
    if depth > DEPTH_MAX:
        out.append(
            (Category.PATH_TOO_DEEP, f"{depth} levels below the location (over {DEPTH_MAX})")
        )
    if abs_len > PATH_MAX_BYTES:
        out.append((Category.PATH_TOO_LONG, f"path is {abs_len} bytes (over {PATH_MAX_BYTES})"))
    return out


def _os_error_category(exc: OSError) -> Category:
    return Category.MISSING if exc.errno in _GONE else Category.UNREADABLE


def check_entry(root: bytes, entry: Entry, mode: ValidationMode) -> ValidationResult:
    """Check one entry of the location whose root (bytes, ending in ``/``) is ``root``."""
    out = ValidationResult(checked=1)
    path = os.fsencode(entry.path)
    rel = path[len(root) :]
    found = name_issues(rel, len(path))
    try:
        st = _stat(path, False)
    except OSError as exc:
        found.append((_os_error_category(exc), os.strerror(exc.errno or 0)))
        out.issues = [(entry.path, c, d, entry.id) for c, d in found]
        return out
    kind = _kind(st.st_mode)
    if kind != entry.kind:
        detail = f"was a {_kind_name(entry.kind)}, now a {_kind_name(kind)}"
        found.append((Category.KIND_CHANGED, detail))
    else:
        _compare(path, entry, st, kind, mode, found, out)
    out.issues = [(entry.path, c, d, entry.id) for c, d in found]
    return out


def _compare(
    path: bytes,
    entry: Entry,
    st: os.stat_result,
    kind: Kind,
    mode: ValidationMode,
    found: list[tuple[Category, str]],
    out: ValidationResult,
) -> None:
    was, now = entry.mode & 0o7777, stat_mod.S_IMODE(st.st_mode)
    if was != now:
        found.append((Category.PERMISSIONS_CHANGED, f"mode {was:04o} -> {now:04o}"))
    if kind not in (Kind.FILE, Kind.SYMLINK):
        return
    size_same = st.st_size == entry.size
    if not size_same:
        if kind == Kind.FILE and st.st_size == 0 and entry.size > 0:
            found.append((Category.EMPTY, f"was {entry.size} bytes, now empty"))
        else:
            found.append((Category.SIZE_CHANGED, f"size {entry.size} -> {st.st_size} bytes"))
    mtime_same = st.st_mtime_ns == entry.mtime_ns
    if not mtime_same:
        detail = f"mtime {_format_ns(entry.mtime_ns)} -> {_format_ns(st.st_mtime_ns)}"
        found.append((Category.MODIFIED, detail))
    if st.st_ino != entry.inode:
        found.append((Category.REPLACED, f"inode {entry.inode} -> {st.st_ino}"))
    if mode != "basic" and kind == Kind.FILE and size_same and mtime_same:
        _compare_content(path, entry, st, mode, found, out)


def _compare_content(
    path: bytes,
    entry: Entry,
    st: os.stat_result,
    mode: ValidationMode,
    found: list[tuple[Category, str]],
    out: ValidationResult,
) -> None:
    # Empty files have neither a cas_id nor a checksum.
    want_cas = entry.cas_id is not None and st.st_size > 0
    want_sum = mode == "complete" and st.st_size > 0
    if not (want_cas or want_sum):
        out.unverified += st.st_size > 0
        return
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC | os.O_NOFOLLOW
    try:
        fd = _call_at(path, lambda n, d: os.open(n, flags, dir_fd=d))
    except OSError as exc:
        category = Category.MODIFIED if exc.errno == errno_mod.ELOOP else _os_error_category(exc)
        found.append((category, os.strerror(exc.errno or 0)))
        return
    try:
        now = os.fstat(fd)
        if (
            not stat_mod.S_ISREG(now.st_mode)
            or (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino)
            or (now.st_size, now.st_mtime_ns) != (st.st_size, st.st_mtime_ns)
        ):
            found.append((Category.MODIFIED, "changed while being validated"))
            return
        try:
            cas, full = _hash_fd(fd, now, want_cas, want_sum, path)
        except OSError as exc:
            category = Category.MODIFIED if not exc.errno else Category.UNREADABLE
            found.append((category, str(exc.strerror)))
            return
    finally:
        os.close(fd)
    out.hashed += 1
    size = st.st_size
    out.bytes += size if want_sum or size <= _SMALL_FILE_MAX else _SAMPLED_BYTES
    cas_hex = None if cas is None else cas[:8].hex()
    if entry.cas_id is not None and cas_hex is not None and entry.cas_id != cas_hex:
        found.append((Category.CONTENT_CHANGED, f"cas_id {entry.cas_id} -> {cas_hex}"))
        return
    if full is not None:
        sum_hex = full.hex()
        if entry.checksum is None:
            out.checksums[entry.id] = sum_hex
        elif entry.checksum != sum_hex:
            found.append((Category.CONTENT_CHANGED, f"checksum {entry.checksum} -> {sum_hex}"))


def validate_entries(
    root: StrPath, entries: Iterable[Entry], mode: ValidationMode = "basic"
) -> ValidationResult:
    """Twin of a validation run over ``entries`` of the location rooted at
    ``root`` (one thread; nothing is written)."""
    _mode(mode)
    base = os.fsencode(os.path.abspath(os.fspath(root)))
    if not base.endswith(b"/"):
        base += b"/"
    total = ValidationResult()
    for entry in entries:
        one = check_entry(base, entry, mode)
        total.issues += one.issues
        total.checked += 1
        total.hashed += one.hashed
        total.bytes += one.bytes
        total.unverified += one.unverified
        total.checksums.update(one.checksums)
    return total
