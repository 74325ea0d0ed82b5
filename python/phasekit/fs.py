"""Filesystem primitives backed by the Rust core: walk, content ids, checksums,
batching and duplicate grouping.

Every function releases the GIL for its per-file work and reports problems
with single paths as :class:`FsError` values instead of stopping. The same
functions, in pure Python, live in :mod:`phasekit.reference` (the test oracle
and benchmark baseline).
"""

from __future__ import annotations

from ._core import CancelToken
from ._defaults import DuplicateMode
from ._native import (
    READ_THREADS,
    Walker,
    cas_id,
    cas_ids,
    checksum,
    checksums,
    chunks,
    find_duplicates,
    group_duplicates,
    iter_chunks,
    read_threads,
    walk,
)
from ._types import (
    DuplicateGroup,
    DuplicateReport,
    DuplicateStats,
    FsError,
    HashResult,
    Kind,
    StrPath,
    WalkBatch,
)

__all__ = [
    "READ_THREADS",
    "CancelToken",
    "DuplicateGroup",
    "DuplicateMode",
    "DuplicateReport",
    "DuplicateStats",
    "FsError",
    "HashResult",
    "Kind",
    "StrPath",
    "WalkBatch",
    "Walker",
    "cas_id",
    "cas_ids",
    "checksum",
    "checksums",
    "chunks",
    "find_duplicates",
    "group_duplicates",
    "iter_chunks",
    "read_threads",
    "walk",
]
