"""The maintenance job's progress and output: counts per step."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from .._json import json_ready
from ..validation import Category, Issue, Severity

#: A re-validation issue as the output stores it: ``(path bytes, category,
#: detail, entry id)`` (bytes: job state is msgpack, whose strings must be
#: UTF-8, and a POSIX name need not be).
IssueRow = tuple[bytes, str, str, int]


@dataclass
class MaintenanceProgress:
    """What a running maintenance job reports (``JobProgress.data``)."""

    #: The step (phase) under way: optimize, prune, sidecars, temps, revalidate.
    step: str
    done: int
    #: None while the step does not know how much there is.
    total: int | None
    #: What it is at (a database, a folder, a location).
    message: str


@dataclass
class DatabaseReport:
    """One database optimized."""

    #: ``library.db`` or ``jobs.db``.
    name: str
    bytes_before: int
    bytes_after: int
    #: Pages, and free pages, before.
    pages: int
    free_pages: int
    #: ``none``, ``full``, ``incremental``, or ``skipped: ...`` saying why.
    vacuum: str
    seconds: float


@dataclass
class MaintenanceSummary:
    """What a maintenance job did, step by step."""

    #: optimize: each database, as found and left.
    databases: list[DatabaseReport] = field(default_factory=list)
    #: prune: history rows and finished jobs older than the setting, and
    #: events beyond the newest kept.
    history_pruned: int = 0
    jobs_pruned: int = 0
    events_pruned: int = 0
    #: sidecars: thumbnail sets of contents the library no longer has.
    sidecars_removed: int = 0
    #: temps: temporary files removed: thumbnails' half-written files,
    #: plans and digest caches of finished or forgotten jobs, the
    #: temporary names of interrupted copies (``.pk<job>-<n>.pktmp``).
    sidecar_temps_removed: int = 0
    scratch_removed: int = 0
    copy_temps_removed: int = 0
    #: Temporary files left in place: a job that may still use them is
    #: unfinished, or they are younger than the grace period.
    temps_kept: int = 0
    #: revalidate: entries checked again, and what they showed.
    revalidated: int = 0
    issues: int = 0
    by_severity: dict[str, int] = field(default_factory=dict)
    by_category: dict[str, int] = field(default_factory=dict)
    #: The most severe issues found (see :attr:`samples`).
    sample_rows: list[IssueRow] = field(default_factory=list)
    #: ``(location id, validation run id)`` of each location re-validated:
    #: :func:`~phasekit.maintenance.revalidation_issues` reads every issue.
    runs: list[tuple[int, str]] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """The summary as JSON-ready values (``phasekit maintenance --json``)."""
        return json_ready(self)  # type: ignore[no-any-return]

    @classmethod
    def from_mapping(cls, value: dict[str, Any]) -> MaintenanceSummary:
        """A summary read back from jobs.db (msgpack keeps neither
        dataclasses nor tuples)."""
        databases = [
            d if isinstance(d, DatabaseReport) else DatabaseReport(**d)
            for d in value.get("databases") or []
        ]
        rows = [tuple(r) for r in value.get("sample_rows") or []]
        runs = [tuple(r) for r in value.get("runs") or []]
        return cls(**{**value, "databases": databases, "sample_rows": rows, "runs": runs})

    @property
    def samples(self) -> list[Issue]:
        """The most severe issues the re-validation found, most severe first."""
        return [Issue(os.fsdecode(p), Category(c), d, e) for p, c, d, e in self.sample_rows]

    @property
    def worst(self) -> Severity | None:
        """The highest severity the re-validation found, None when nothing was."""
        found = [Severity(s) for s, n in self.by_severity.items() if n]
        return max(found, key=lambda s: s.rank) if found else None
