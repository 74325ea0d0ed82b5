"""The file operation jobs' progress and outputs."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Self

from .._json import json_ready


class _Record:
    """``to_dict()`` and ``from_mapping()`` for the summaries below."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values (paths as ``os.fsdecode`` strings)."""
        return {f.name: json_ready(getattr(self, f.name)) for f in fields(self)}  # type: ignore[arg-type]

    @classmethod
    def from_mapping(cls, data: dict[str, Any]) -> Self:
        """A summary from ``to_dict()``'s keys (others are ignored)."""
        names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass
class TransferProgress:
    """The copy and move jobs' structured progress (``JobProgress.data``)."""

    phase: str
    #: Entries planned, and done so far (files, folders, links).
    entries: int
    entries_done: int
    #: Bytes of file data to copy, and copied so far.
    bytes: int
    bytes_done: int
    errors: int
    #: Bytes per second in the transfer phase.
    rate: float


@dataclass
class TransferSummary(_Record):
    """What a copy or move did."""

    #: ``copy`` or ``move``.
    operation: str
    sources: list[str]
    #: Where each source went (its new path).
    targets: list[str]
    files: int
    dirs: int
    symlinks: int
    #: Hard links recreated as links (inside the copied set).
    links: int
    bytes: int
    #: Files whose data was shared by reflink (copy-on-write) instead of copied.
    reflinked: int
    #: Sources moved by one rename (same filesystem, free destination).
    renamed: int
    #: Entries left out: taken names under ``skip``, or blocked by a file.
    skipped: int
    #: Destination names that were taken when planned.
    conflicts: int
    verified: bool
    errors: int
    seconds: float
    #: Entries a resumed run found already in place (copied by the run a
    #: kill stopped after its last checkpoint); not counted above.
    already: int = 0
    #: Files placed in a location of the library that took their source's
    #: content identity (cas_id, checksum) instead of being hashed again.
    carried: int = 0


@dataclass
class DeleteProgress:
    """The delete job's structured progress."""

    phase: str
    #: Files (and links) and folders removed or trashed so far.
    files: int
    dirs: int
    errors: int
    rate: float


@dataclass
class DeleteSummary(_Record):
    """What a delete did."""

    #: ``trash``, ``permanent`` or ``secure``.
    mode: str
    paths: list[str]
    #: Paths moved to a trash (each restorable from its ``.trashinfo``).
    trashed: list[str]
    #: Files (and links) and folders removed for good.
    files: int
    dirs: int
    errors: int
    seconds: float
