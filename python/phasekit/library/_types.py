"""Rows of library.db as frozen dataclasses."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .._defaults import INDEX_MODES, IndexMode
from .._types import FsError, Kind
from ..errors import InvalidInputError

if TYPE_CHECKING:
    from .._core import _EntryRow, _LocationRow

_U64 = 2**64 - 1


def _mode(text: str) -> IndexMode:
    if text not in INDEX_MODES:
        raise InvalidInputError(f"index mode must be one of {', '.join(INDEX_MODES)}, not {text!r}")
    return text


def _join(root: bytes, rel: bytes) -> str:
    """Absolute ``os.fsdecode`` path of ``rel`` under ``root`` (both bytes)."""
    if not rel:
        return os.fsdecode(root)
    sep = b"" if root.endswith(b"/") else b"/"
    return os.fsdecode(root + sep + rel)


@dataclass(frozen=True, slots=True)
class Location:
    """A folder tree the library indexes."""

    id: int
    #: Absolute root (``os.fsdecode`` string; ``os.fsencode`` gives its bytes).
    path: str
    mode: IndexMode
    #: False: only the root's direct children are indexed.
    recursive: bool
    created_at: float
    #: When an index of it last finished (unix seconds), None if never.
    indexed_at: float | None
    total_size: int | None
    file_count: int | None

    @classmethod
    def _from_row(cls, row: _LocationRow) -> Location:
        id_, path, mode, recursive, created, indexed, total, files = row
        return cls(id_, os.fsdecode(path), _mode(mode), recursive, created, indexed, total, files)


@dataclass(frozen=True, slots=True)
class Entry:
    """One indexed file, directory, symlink or other entry."""

    id: int
    location_id: int
    #: Absolute path (``os.fsdecode``: non-UTF-8 names round-trip via ``os.fsencode``).
    path: str
    parent_id: int | None
    #: File name for display (invalid UTF-8 replaced).
    name: str
    #: Lower-case extension of a file, None for others and names without one.
    extension: str | None
    kind: Kind
    size: int
    #: Directories, after aggregation: bytes and regular files beneath.
    agg_size: int | None
    file_count: int | None
    mtime_ns: int
    ctime_ns: int
    inode: int
    device: int
    mode: int
    cas_id: str | None
    checksum: str | None
    indexed_at: float

    def to_dict(self) -> dict[str, object]:
        """The entry as JSON-ready values (``phasekit ls --json`` prints
        these): its fields but ``name``, ``extension``, ``location_id`` and
        ``indexed_at``, with ``kind`` by name (``file``, ``dir``, ``symlink``,
        ``other``). ``path`` keeps a non-UTF-8 name's surrogate escapes, which
        ``json.dumps`` writes as ``\\udcXX``."""
        return {
            "path": self.path,
            "kind": self.kind.name.lower(),
            "size": self.size,
            "mtime_ns": self.mtime_ns,
            "ctime_ns": self.ctime_ns,
            "inode": self.inode,
            "device": self.device,
            "mode": self.mode,
            "cas_id": self.cas_id,
            "checksum": self.checksum,
            "agg_size": self.agg_size,
            "file_count": self.file_count,
            "id": self.id,
            "parent_id": self.parent_id,
        }

    @classmethod
    def _from_row(cls, root: bytes, row: _EntryRow) -> Entry:
        (id_, loc, rel, parent, name, ext, kind, size, agg, count,
         mtime, ctime, inode, device, mode, cas, checksum, indexed) = row  # fmt: skip
        return cls(
            id=id_,
            location_id=loc,
            path=_join(root, rel),
            parent_id=parent,
            name=name,
            extension=ext,
            kind=Kind(kind),
            size=size,
            agg_size=agg,
            file_count=count,
            mtime_ns=mtime,
            ctime_ns=ctime,
            # Stored as SQLite's signed integers, bit for bit.
            inode=inode & _U64,
            device=device & _U64,
            mode=mode,
            cas_id=cas,
            checksum=checksum,
            indexed_at=indexed,
        )


@dataclass(frozen=True, slots=True)
class ContentIdentity:
    """A distinct content (by cas_id) seen in the library."""

    cas_id: str
    size: int
    first_seen: float


@dataclass(frozen=True, slots=True)
class ScanStats:
    """Counts of one scan."""

    files: int = 0
    dirs: int = 0
    symlinks: int = 0
    other: int = 0
    bytes: int = 0
    #: Entries inserted; after the sweep, less the files found moved.
    new: int = 0
    modified: int = 0
    unchanged: int = 0
    #: Files found under a new path (same device, inode, size and mtime, the
    #: old path gone): counted once, here, neither as new nor as deleted.
    moved: int = 0
    #: Entries the sweep removed because they are gone from disk.
    deleted: int = 0
    #: Files hashed while walked (a fresh scan with cas_ids or checksums).
    hashed: int = 0


@dataclass(frozen=True, slots=True)
class HashPass:
    """What one :meth:`Library.hash_missing` call did."""

    #: The highest entry id looked at: the next call's ``after_id``.
    last_id: int
    looked_at: int
    hashed: int
    bytes: int
    errors: list[FsError]


@dataclass(frozen=True, slots=True)
class ScanStep:
    """One written batch: checkpoint :attr:`state` to resume right after it."""

    entries: int
    state: bytes
    errors: list[FsError]
    stats: ScanStats
    #: The batch's last path (``os.fsdecode``): where the walk is.
    last_path: str = ""
