"""Pure-Python twins of :mod:`phasekit.fs`: same signatures, same results.

They are the test oracle (the Rust path must agree with them on any tree) and
the benchmark baseline (what a careful Python user would write by hand:
``os.scandir``/``os.lstat`` relative to directory handles, the ``blake3``
package, one thread). The walk state format is shared, so either side can
resume a walk the other started. Needs the ``blake3`` package for hashing.
"""

from __future__ import annotations

from .._native import iter_chunks
from ._content import cas_id, cas_ids, checksum, checksums, chunks
from ._dupes import find_duplicates, group_duplicates
from ._index import IndexedEntry, index_into_sqlite, scan_tree
from ._validate import ValidationResult, validate_entries
from ._walk import Walker, walk

__all__ = [
    "IndexedEntry",
    "ValidationResult",
    "Walker",
    "cas_id",
    "cas_ids",
    "checksum",
    "checksums",
    "chunks",
    "find_duplicates",
    "group_duplicates",
    "index_into_sqlite",
    "iter_chunks",
    "scan_tree",
    "validate_entries",
    "walk",
]
