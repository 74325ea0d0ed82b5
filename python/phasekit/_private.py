"""Folders and files only their owner can read.

A library is an index of every file name, size and content hash of a
user's disks. Following the XDG Base Directory specification, folders
phasekit creates are 0700 and its files (databases, sidecars, scratch) 0600;
a folder that already exists keeps the mode its owner gave it.
"""

from __future__ import annotations

import os
from pathlib import Path

#: Modes of what phasekit creates (before the umask, which can only narrow them).
DIR_MODE = 0o700
FILE_MODE = 0o600


def make_private_dir(path: Path) -> None:
    """Create ``path`` and any missing parents, 0700 each; existing folders
    are left as they are."""
    missing: list[Path] = []
    current = path
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=DIR_MODE)
        except FileExistsError:
            continue  # made by another process meanwhile: keep its mode
        # mkdir's mode is filtered by the umask, which only takes bits away;
        # one that took the owner's own would leave a folder we cannot use.
        os.chmod(folder, DIR_MODE)


def create_private_file(path: Path) -> None:
    """Create ``path`` empty and 0600 if it does not exist (SQLite then gives
    its -wal and -shm files the same mode); an existing file is untouched."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
    except FileExistsError:
        return
    os.close(fd)
