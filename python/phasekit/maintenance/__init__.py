"""Maintenance: one scheduled job that keeps a whole library in shape.

:class:`MaintenanceJob` optimizes library.db and jobs.db (a VACUUM only when
much is free and it is quick), prunes old job history and events, removes
the thumbnails of contents the library no longer has and the temporary
files that nothing will use again, and re-validates the library's stalest
entries; its :class:`MaintenanceSummary` counts what each step did. It runs
one at a time per library (conflict key ``global:maintenance``), and is
scheduled once however many workers share the library::

    with Library.open(path) as library:
        library.schedule_maintenance(every_s=86400)   # what `phasekit worker` does
        run = library.run(MaintenanceJob())           # or now, here
        print(run.output())
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from ._job import (
    CONFLICT_KEY,
    JOB_NAME,
    KEEP_EVENTS,
    REVALIDATE,
    REVALIDATE_PAGE,
    TEMP_GRACE_S,
    MaintenanceJob,
)
from ._revalidate import CURSOR_SETTING, revalidation_issues_of
from ._types import DatabaseReport, MaintenanceProgress, MaintenanceSummary

if TYPE_CHECKING:
    from ..library import Library
    from ..validation import Issue

#: How often a worker schedules it by default (seconds: daily).
DEFAULT_EVERY_S = 86400.0


def revalidation_issues(library: Library, summary: MaintenanceSummary) -> Iterator[Issue]:
    """Every issue a maintenance run's re-validation recorded (available
    until the location is validated in full, or removed)."""
    return revalidation_issues_of(library, list(summary.runs))


__all__ = [
    "CONFLICT_KEY",
    "CURSOR_SETTING",
    "DEFAULT_EVERY_S",
    "JOB_NAME",
    "KEEP_EVENTS",
    "REVALIDATE",
    "REVALIDATE_PAGE",
    "TEMP_GRACE_S",
    "DatabaseReport",
    "MaintenanceJob",
    "MaintenanceProgress",
    "MaintenanceSummary",
    "revalidation_issues",
]
