"""Checks on the paths a file operation job is given (its roots)."""

from __future__ import annotations

import os

from ..jobs import FatalError

#: The longest path the kernel takes in one piece (PATH_MAX, with its NUL).
PATH_MAX = 4096


def inside(path: str, folder: str) -> bool:
    """``path`` is ``folder`` or lies beneath it (by name, not resolved)."""
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def check_root_length(path: str, what: str) -> None:
    """A job's own roots go through the kernel whole (the paths beneath
    them do not: the Rust core resolves those relative to folder handles).
    A root of PATH_MAX bytes or more fails with a clear message instead of
    "does not exist"."""
    size = len(os.fsencode(path))
    if size >= PATH_MAX:
        raise FatalError(
            f"{what} {path[:60]}... is {size:,} bytes long, more than the kernel takes in "
            f"one path ({PATH_MAX - 1:,}); give a folder above it instead"
        )
