"""The thumbnail job's progress and output."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from .._json import json_ready


@dataclass
class ThumbsProgress:
    """What a running thumbnail job reports (``JobProgress.data``)."""

    phase: str
    #: Images (contents) to make in this run, and made or failed so far.
    images: int
    done: int
    errors: int
    #: Images made per second.
    rate: float


@dataclass
class ThumbsSummary:
    """What a thumbnail job did."""

    location_id: int
    #: Image files of the location, and distinct contents among them.
    images: int
    contents: int
    #: Contents whose missing variants were made, and the variants written.
    made: int
    variants_made: int
    #: Images left out: no content identity yet (index in content mode).
    unidentified: int
    #: Sidecar sets removed: their content is gone from the library.
    removed: int
    errors: int
    seconds: float
    #: Files of variants the library no longer lists, removed.
    variants_removed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {f.name: json_ready(getattr(self, f.name)) for f in fields(self)}
