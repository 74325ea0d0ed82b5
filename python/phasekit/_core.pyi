"""Type stub for the Rust extension ``phasekit._core`` (see rust/py)."""

import os
from collections.abc import Iterable
from typing import Any, final

import numpy as np
import numpy.typing as npt

__all__ = [
    "CancelToken",
    "CancelledError",
    "InvalidStateError",
    "LibraryError",
    "PhasekitError",
    "Walker",
    "__version__",
    "cas_id",
    "cas_ids",
    "checksum",
    "checksums",
    "chunk_ranges",
    "chunks",
    "find_duplicates",
    "group_duplicates",
    "walk",
]

__version__: str

_Path = str | bytes | os.PathLike[str] | os.PathLike[bytes]
_Error = tuple[str, int, str]
_IndexedError = tuple[int, str, int, str]
_Group = tuple[str, int, list[list[str]]]
_Report = tuple[list[_Group], list[_Group], list[_Error], tuple[int, int, int, int]]
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
