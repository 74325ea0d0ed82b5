"""The dupes job's progress and output."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from .._defaults import DuplicateMode
from .._json import json_ready
from .._types import DuplicateGroup


@dataclass
class DupesProgress:
    """The dupes job's structured progress (``JobProgress.data``)."""

    phase: str
    #: Files found so far (collect), or considered (later phases).
    files: int
    #: Files in size groups of two or more (known after grouping).
    candidates: int
    #: Files hashed so far by this search, and their bytes.
    hashed: int
    bytes_hashed: int
    errors: int
    #: Files per second in the current phase.
    rate: float


def _group(value: Any) -> DuplicateGroup:
    if isinstance(value, DuplicateGroup):
        return value
    return DuplicateGroup(
        key=value["key"],
        size=value["size"],
        copies=tuple(tuple(copy) for copy in value["copies"]),
    )


@dataclass
class DupesSummary:
    """The dupes job's output: every duplicate group, largest files first."""

    mode: DuplicateMode
    #: What was searched: a location's root, or the paths walked.
    roots: list[str]
    #: The library location searched (None: paths walked on the spot).
    location_id: int | None
    groups: list[DuplicateGroup]
    #: Files with several hard links and no other copy: not waste.
    links: list[DuplicateGroup]
    #: Bytes that keeping one copy of each group would free.
    wasted: int
    #: Regular files looked at (before the size and extension filters).
    files: int
    #: Files in size groups of two or more.
    size_candidates: int
    #: Digests computed by this search (all its runs), and digests it found
    #: already known (stored in the library, or computed before a resume).
    hashed: int
    reused: int
    #: Non-critical errors (unreadable or vanished files, directories).
    errors: int
    seconds: float

    @property
    def duplicates(self) -> int:
        """Files that are extra copies: for each group, all copies but one."""
        return sum(len(g.copies) - 1 for g in self.groups)

    def to_dict(self) -> dict[str, Any]:
        """The summary as JSON-ready values, each group as
        :meth:`DuplicateGroup.to_dict` gives it (``phasekit dupes --json``
        prints the groups so)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("groups", "links"):
                out[f.name] = [g.to_dict() for g in value]
            else:
                out[f.name] = json_ready(value)
        return out

    @classmethod
    def from_mapping(cls, value: dict[str, Any]) -> DupesSummary:
        """Rebuild a summary stored as a mapping (the job's stored output)."""
        fields = dict(value)
        fields["groups"] = [_group(g) for g in fields["groups"]]
        fields["links"] = [_group(g) for g in fields["links"]]
        return cls(**fields)
