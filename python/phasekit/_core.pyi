"""Type stub for the Rust extension ``phasekit._core`` (see rust/py)."""

import os
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar, final

import numpy as np
import numpy.typing as npt

_T = TypeVar("_T")

__all__ = [
    "READ_THREADS",
    "CancelToken",
    "CancelledError",
    "CopyPlan",
    "DupeFinder",
    "InvalidStateError",
    "LibraryDb",
    "LibraryError",
    "PhasekitError",
    "RemoveCounters",
    "Scan",
    "Walker",
    "__version__",
    "cas_id",
    "cas_ids",
    "checksum",
    "checksums",
    "chunk_ranges",
    "chunks",
    "clear_validation",
    "find_duplicates",
    "group_duplicates",
    "read_threads",
    "remove_tree",
    "rename_no_replace",
    "validate_page",
    "validation_counts",
    "validation_issues",
    "walk",
]

__version__: str
READ_THREADS: int

def read_threads() -> int: ...

_Path = str | bytes | os.PathLike[str] | os.PathLike[bytes]
_Error = tuple[str, int, str]
_IndexedError = tuple[int, str, int, str]
_Group = tuple[str, int, list[list[str]]]
_Report = tuple[list[_Group], list[_Group], list[_Error], tuple[int, int, int, int, int]]
_Batch = tuple[
    list[str],
    npt.NDArray[np.uint8],
    npt.NDArray[np.uint64],
    npt.NDArray[np.int64],
    npt.NDArray[np.int64],
    npt.NDArray[np.uint64],
    npt.NDArray[np.uint64],
    npt.NDArray[np.uint32],
    npt.NDArray[np.uint64],
    list[_Error],
    list[str | None] | None,
    list[str | None] | None,
]

_LocationRow = tuple[int, bytes, str, bool, float, float | None, int | None, int | None]
_EntryRow = tuple[
    int,  # id
    int,  # location_id
    bytes,  # path relative to the location's root
    int | None,  # parent_id
    str,  # name
    str | None,  # extension
    int,  # kind
    int,  # size
    int | None,  # agg_size
    int | None,  # file_count
    int,  # mtime_ns
    int,  # ctime_ns
    int,  # inode (signed 64-bit)
    int,  # device (signed 64-bit)
    int,  # mode
    str | None,  # cas_id
    str | None,  # checksum
    float,  # indexed_at
]
_ScanStats = tuple[int, int, int, int, int, int, int, int, int, int, int]

class PhasekitError(Exception): ...
class CancelledError(PhasekitError): ...
class InvalidStateError(PhasekitError): ...
class LibraryError(PhasekitError): ...

@final
class CancelToken:
    def __new__(cls) -> CancelToken: ...
    def cancel(self) -> None: ...
    def reset(self) -> None: ...
    @property
    def cancelled(self) -> bool: ...

@final
class Walker:
    def __iter__(self) -> Walker: ...
    def __next__(self) -> _Batch: ...
    def state(self) -> bytes: ...
    @property
    def finished(self) -> bool: ...
    def close(self) -> None: ...

def walk(
    roots: Iterable[_Path],
    *,
    follow_symlinks: bool = False,
    max_depth: int | None = None,
    hidden: bool = True,
    skip: list[str] = ...,
    batch_size: int = 1000,
    threads: int | None = None,
    cancel: CancelToken | None = None,
    resume: bytes | None = None,
    cas_ids: bool = False,
    checksums: bool = False,
) -> Walker: ...
def cas_id(path: _Path) -> str | None: ...
def checksum(path: _Path) -> str: ...
def cas_ids(
    paths: Iterable[_Path], *, threads: int | None = None, cancel: CancelToken | None = None
) -> tuple[list[str | None], list[_IndexedError]]: ...
def checksums(
    paths: Iterable[_Path], *, threads: int | None = None, cancel: CancelToken | None = None
) -> tuple[list[str | None], list[_IndexedError]]: ...
def chunks(seq: Any, size: int, *, balanced: bool = False) -> list[Any]: ...
def chunk_ranges(length: int, size: int, *, balanced: bool = False) -> list[tuple[int, int]]: ...
def find_duplicates(
    roots: Iterable[_Path],
    *,
    mode: str = "full",
    min_size: int = 1,
    max_size: int | None = None,
    follow_symlinks: bool = False,
    max_depth: int | None = None,
    hidden: bool = True,
    skip: list[str] = ...,
    threads: int | None = None,
    cancel: CancelToken | None = None,
) -> _Report: ...
def group_duplicates(
    paths: Iterable[_Path],
    sizes: list[int],
    devices: list[int],
    inodes: list[int],
    *,
    mode: str = "full",
    min_size: int = 1,
    max_size: int | None = None,
    threads: int | None = None,
    cancel: CancelToken | None = None,
) -> _Report: ...

@final
class LibraryDb:
    def __new__(cls, path: _Path) -> LibraryDb: ...
    @staticmethod
    def in_memory() -> LibraryDb: ...
    @staticmethod
    def postgres(
        url: str,
        jobs_schema: tuple[tuple[int, int], str, list[tuple[int, str]]] | None = None,
    ) -> LibraryDb: ...
    def close(self) -> None: ...
    @property
    def closed(self) -> bool: ...
    def schema_version(self) -> int: ...
    def add_location(
        self, path: _Path, mode: str = "content", recursive: bool = True
    ) -> _LocationRow: ...
    def locations(self) -> list[_LocationRow]: ...
    def location(self, id: int) -> _LocationRow: ...
    def location_by_path(self, path: _Path) -> _LocationRow | None: ...
    def set_location_mode(self, id: int, mode: str) -> None: ...
    def remove_location(self, id: int) -> int: ...
    def setting(self, key: str) -> str | None: ...
    def set_setting(self, key: str, value: str | None) -> None: ...
    def entries(
        self, location_id: int, after_id: int = 0, limit: int = 1000
    ) -> list[_EntryRow]: ...
    def entry_objects(
        self, location_id: int, after_id: int, limit: int, cls: type[_T], kinds: tuple[Any, ...]
    ) -> list[_T]: ...
    def entries_lines(
        self, location_id: int, after_id: int, limit: int, json: bool
    ) -> tuple[bytes, int, int]: ...
    def entry_at(self, location_id: int, rel_path: _Path) -> _EntryRow | None: ...
    def entries_by_cas_id(self, cas_id: str) -> list[_EntryRow]: ...
    def entry_count(self, location_id: int) -> int: ...
    def content_identity(self, cas_id: str) -> tuple[str, int, float] | None: ...
    def mark_indexed(self, location_id: int, at: float) -> None: ...
    def aggregate(self, location_id: int) -> tuple[int, int]: ...
    def count_missing(self, location_id: int, checksums: bool = False) -> int: ...
    def hash_missing(
        self,
        location_id: int,
        after_id: int = 0,
        limit: int = 1000,
        checksums: bool = False,
        threads: int | None = None,
        cancel: CancelToken | None = None,
    ) -> tuple[int, int, int, int, list[_Error]]: ...
    def carry_content(
        self,
        to_location: int,
        to_path: bytes,
        from_location: int,
        from_path: bytes,
        placed_since_ns: int,
    ) -> int: ...
    def link_identities(self, location_id: int, prune: bool = False) -> int: ...
    def defer_links(self, location_id: int) -> None: ...
    def links_pending(self) -> bool: ...

@final
class Scan:
    def __new__(
        cls,
        db: LibraryDb,
        location_id: int,
        *,
        fresh: bool = False,
        max_depth: int | None = None,
        hidden: bool = True,
        skip: list[str] = ...,
        batch_size: int = 1000,
        threads: int | None = None,
        cas_ids: bool = False,
        checksums: bool = False,
        resume: bytes | None = None,
        cancel: CancelToken | None = None,
        durable_steps: bool = True,
    ) -> Scan: ...
    def step(self) -> tuple[int, bytes, list[_Error], _ScanStats, str] | None: ...
    def flush(self) -> None: ...
    def sweep(self) -> _ScanStats: ...
    def aggregate(self) -> tuple[int, int]: ...
    @property
    def stats(self) -> _ScanStats: ...
    @property
    def started(self) -> float: ...
    @property
    def finished(self) -> bool: ...
    def close(self) -> None: ...

@final
class DupeFinder:
    def __new__(
        cls,
        mode: str,
        *,
        min_size: int = 1,
        max_size: int | None = None,
        extensions: list[str] = ...,
        threads: int | None = None,
        exact_cas: bool = True,
    ) -> DupeFinder: ...
    def walk(
        self,
        roots: Sequence[_Path],
        *,
        follow_symlinks: bool = False,
        hidden: bool = True,
        skip: list[str] = ...,
        threads: int | None = None,
    ) -> None: ...
    def walk_step(self, min_entries: int) -> tuple[bool, int, int, list[_Error]]: ...
    def add_location(self, db: LibraryDb, location_id: int, *, hidden: bool = True) -> int: ...
    def use_cache(self, path: _Path, committed: int) -> int: ...
    def group(self) -> int: ...
    @property
    def stage(self) -> str: ...
    def remaining(self) -> tuple[int, int]: ...
    def stats(self) -> tuple[int, int, int, int, int]: ...
    def hash_page(
        self, max_files: int, max_bytes: int, cancel: CancelToken | None = None
    ) -> tuple[int, int, list[_Error], int]: ...
    def report(self) -> _Report: ...

# validation (library.validate)
_ValidatePass = tuple[int, int, int, int, int, int, dict[str, int]]
_IssueRow = tuple[int, str, bytes, str]

def validate_page(
    db: LibraryDb,
    location_id: int,
    run_id: str,
    after_id: int = 0,
    limit: int = 2000,
    mode: str = "basic",
    threads: int | None = None,
    cancel: CancelToken | None = None,
) -> _ValidatePass: ...
def clear_validation(db: LibraryDb, location_id: int) -> int: ...
def validation_counts(db: LibraryDb, run_id: str) -> list[tuple[str, int]]: ...
def validation_issues(
    db: LibraryDb,
    run_id: str,
    after_entry: int = 0,
    after_category: str = "",
    limit: int = 1000,
) -> list[_IssueRow]: ...

@final
class CopyPlan:
    @staticmethod
    def make(
        sources: Iterable[_Path],
        targets: Iterable[_Path],
        conflict: str = "abort",
        cancel: CancelToken | None = None,
    ) -> tuple[CopyPlan, list[_Error]]: ...
    @staticmethod
    def load(path: _Path) -> CopyPlan: ...
    def save(self, path: _Path) -> None: ...
    def totals(self) -> tuple[int, int, int, int, int, int, int, int]: ...
    def conflicts(self) -> list[str]: ...
    def targets(self) -> list[str]: ...
    def transfer_page(
        self,
        start: int,
        max_items: int,
        max_bytes: int,
        *,
        tag: str,
        verify: bool = False,
        durable: bool = False,
        atime: bool = False,
        remove_sources: bool = False,
        resumed: bool = False,
        threads: int | None = None,
        cancel: CancelToken | None = None,
    ) -> tuple[int, int, int, int, int, int, int, int, list[_Error]]: ...
    def finish(
        self, *, remove_sources: bool = False, cancel: CancelToken | None = None
    ) -> list[_Error]: ...

@final
class RemoveCounters:
    def __new__(cls) -> RemoveCounters: ...
    def snapshot(self) -> tuple[int, int]: ...

def remove_tree(
    path: _Path,
    *,
    cross_filesystems: bool = False,
    threads: int | None = None,
    overwrite_passes: int = 0,
    counters: RemoveCounters | None = None,
    cancel: CancelToken | None = None,
) -> list[_Error]: ...
def rename_no_replace(source: _Path, target: _Path) -> None: ...
