"""Value types shared by the Rust-backed functions and their pure-Python twins."""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeAlias

from ._defaults import DuplicateMode

if TYPE_CHECKING:
    # Annotations only: numpy is imported when the extension first builds an
    # array, so commands that never walk (jobs, dupes, ls) start faster.
    import numpy as np
    import numpy.typing as npt

#: Anything that names a file: ``str`` (encoded with ``os.fsencode``), ``bytes``
#: or an ``os.PathLike``.
StrPath: TypeAlias = "str | bytes | os.PathLike[str] | os.PathLike[bytes]"


class Kind(enum.IntEnum):
    """Entry kinds, as stored in :attr:`WalkBatch.kinds`."""

    FILE = 0
    DIR = 1
    SYMLINK = 2
    #: FIFOs, sockets and devices: listed, never opened for reading.
    OTHER = 3


@dataclass(frozen=True, slots=True)
class FsError:
    """A non-fatal problem with one path; the work went on without it.

    ``errno`` is the OS error number, or 0 when the problem is not an OS error
    (for example a file that changed size while it was being read).
    """

    path: str
    errno: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message} (errno {self.errno})"


@dataclass(frozen=True, slots=True)
class WalkBatch:
    """A batch of walked entries in columns; row ``i`` of every column is one entry.

    ``paths`` are ``os.fsdecode`` strings: ``os.fsencode(path)`` gives the exact
    bytes of the name, whatever its encoding.
    """

    paths: list[str]
    kinds: npt.NDArray[np.uint8]
    sizes: npt.NDArray[np.uint64]
    mtimes_ns: npt.NDArray[np.int64]
    ctimes_ns: npt.NDArray[np.int64]
    inodes: npt.NDArray[np.uint64]
    devices: npt.NDArray[np.uint64]
    modes: npt.NDArray[np.uint32]
    nlinks: npt.NDArray[np.uint64]
    errors: list[FsError] = field(default_factory=list)
    #: With ``walk(..., cas_ids=True)``: each entry's cas_id (None for
    #: non-files, empty files and files that could not be read).
    cas_ids: list[str | None] | None = None
    #: With ``walk(..., checksums=True)``: each regular file's full BLAKE3.
    checksums: list[str | None] | None = None

    def __len__(self) -> int:
        return len(self.paths)

    def files(self) -> npt.NDArray[np.bool_]:
        """Boolean mask of the regular files in this batch."""
        mask: npt.NDArray[np.bool_] = self.kinds == Kind.FILE
        return mask


@dataclass(frozen=True, slots=True)
class HashResult:
    """Results of hashing many paths: ``values[i]`` belongs to ``paths[i]``.

    ``values[i]`` is ``None`` for an empty file's cas_id and for a path that
    failed; ``errors`` maps the index of every failed path to its error.
    """

    values: list[str | None]
    errors: dict[int, FsError]

    def __len__(self) -> int:
        return len(self.values)


@dataclass(frozen=True, slots=True)
class DuplicateGroup:
    """Files with the same key.

    ``copies`` holds one tuple per distinct file (device and inode); a tuple
    with several paths lists hard links to that one file, which take no extra
    space. ``key`` is the size (``size`` mode), the name (``name_size``), the
    cas_id (``content``) or a 64-hex-digit digest of the exact bytes (``full``).
    """

    key: str
    size: int
    copies: tuple[tuple[str, ...], ...]

    @property
    def paths(self) -> tuple[str, ...]:
        """Every path in the group, hard links included, sorted."""
        return tuple(sorted(p for copy in self.copies for p in copy))

    @property
    def wasted(self) -> int:
        """Bytes freed by keeping one copy: ``size * (copies - 1)``."""
        return self.size * max(len(self.copies) - 1, 0)

    def to_dict(self) -> dict[str, object]:
        """The group as JSON-ready values (``phasekit dupes --json`` prints
        these): ``size``, ``key``, ``paths``, ``copies`` (one list per
        distinct file: several paths are hard links to it) and ``wasted``."""
        return {
            "size": self.size,
            "key": self.key,
            "paths": list(self.paths),
            "copies": [list(copy) for copy in self.copies],
            "wasted": self.wasted,
        }


@dataclass(frozen=True, slots=True)
class DuplicateStats:
    """How much work each stage of the pipeline did."""

    files: int
    size_candidates: int
    #: Files whose cas_id digest was computed (of those that still shared
    #: a size, and for larger files their first 4 KiB too).
    partial_hashed: int
    #: Files over 100 KiB whose whole content was hashed (``full`` mode).
    full_hashed: int
    #: Files over 8 KiB whose first 4 KiB were hashed to split size groups
    #: (searches of walked trees; most same-size files differ there).
    prefix_hashed: int = 0


@dataclass(frozen=True, slots=True)
class DuplicateReport:
    """Duplicate groups (largest files first), hard-link sets, and errors."""

    mode: DuplicateMode
    groups: list[DuplicateGroup]
    #: Files with several hard links that have no other copy: not waste.
    links: list[DuplicateGroup]
    errors: list[FsError]
    stats: DuplicateStats

    @property
    def wasted(self) -> int:
        """Total bytes that removing the extra copies would free."""
        return sum(g.wasted for g in self.groups)
