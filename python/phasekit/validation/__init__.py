"""Validation: which indexed files changed, vanished or rotted.

Run :class:`ValidateJob` through a library's job manager, so it can be
paused, cancelled and resumed after a crash; then read its
:class:`ValidationSummary` and, for every issue, :func:`issues`::

    async with library.jobs() as manager:
        handle = await manager.dispatch(ValidateJob(location.id, mode="integrity"))
        await handle.wait()
    summary = handle.output()
    for issue in issues(library, summary):
        print(issue.severity, issue.category, issue.path, issue.detail)

Modes: ``basic`` compares each entry's kind, size, mtime and permissions
with the index; ``integrity`` also recomputes the cas_id of every file whose
size and mtime are unchanged (a mismatch is rot: ``content_changed``,
critical); ``complete`` compares full checksums (stored on the first run where
the index has none), the only mode that sees a byte cas_id does not sample.
"""

from __future__ import annotations

from .._defaults import VALIDATION_MODES, ValidationMode
from ._job import (
    SAMPLES_KEPT,
    VALIDATE_PAGE,
    ValidateJob,
    issues,
    most_severe,
    run_issues,
    severity_counts,
)
from ._types import (
    DEPTH_MAX,
    NAME_MAX_PORTABLE,
    PATH_MAX_BYTES,
    SEVERITY,
    Category,
    Issue,
    Severity,
    ValidateProgress,
    ValidationSummary,
)

__all__ = [
    "DEPTH_MAX",
    "NAME_MAX_PORTABLE",
    "PATH_MAX_BYTES",
    "SAMPLES_KEPT",
    "SEVERITY",
    "VALIDATE_PAGE",
    "VALIDATION_MODES",
    "Category",
    "Issue",
    "Severity",
    "ValidateJob",
    "ValidateProgress",
    "ValidationMode",
    "ValidationSummary",
    "issues",
    "most_severe",
    "run_issues",
    "severity_counts",
]
