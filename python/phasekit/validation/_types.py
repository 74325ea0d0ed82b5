"""Validation's value types: categories, severities (decided here, in one
table), issues, progress and the summary a validation job outputs."""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass, field
from typing import Any

from .._defaults import VALIDATION_MODES, ValidationMode
from .._json import json_ready


def _mode(text: str) -> ValidationMode:
    if text not in VALIDATION_MODES:
        raise ValueError(
            f"validation mode must be one of {', '.join(VALIDATION_MODES)}, not {text!r}"
        )
    return text


class Category(enum.StrEnum):
    """What is wrong with an indexed entry (values are stable)."""

    #: The path no longer exists (or a directory above it is gone).
    MISSING = "missing"
    #: It exists but cannot be stat'ed or read (permissions, I/O error).
    UNREADABLE = "unreadable"
    #: A file is now a directory, a symlink, ... or the other way round.
    KIND_CHANGED = "kind_changed"
    #: A file indexed with content is now empty (instead of size_changed).
    EMPTY = "empty"
    SIZE_CHANGED = "size_changed"
    #: The mtime differs (or the file changed while it was validated).
    MODIFIED = "modified"
    #: Permission bits (setuid, setgid and sticky included) differ.
    PERMISSIONS_CHANGED = "permissions_changed"
    #: Another file (inode) now has the name.
    REPLACED = "replaced"
    #: Same size and mtime, different content: silent corruption.
    CONTENT_CHANGED = "content_changed"
    #: Not UTF-8, a control character (newline, tab), a leading or trailing
    #: space, or a leading '-'.
    PROBLEMATIC_NAME = "problematic_name"
    #: A name over :data:`NAME_MAX_PORTABLE` bytes.
    NAME_TOO_LONG = "name_too_long"
    #: More than :data:`DEPTH_MAX` levels below the location's root.
    PATH_TOO_DEEP = "path_too_deep"
    #: An absolute path over :data:`PATH_MAX_BYTES` bytes.
    PATH_TOO_LONG = "path_too_long"


class Severity(enum.StrEnum):
    """How bad an issue is, from :attr:`INFO` to :attr:`CRITICAL`."""

    INFO = "info"
    WARNING = "warning"
    ERROR = "error"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """0 (info) to 3 (critical), for sorting."""
        return _RANKS[self]


_RANKS = {s: i for i, s in enumerate(Severity)}

#: The severity of each category: the one place where it is decided.
#: Rot is critical; a vanished or unreadable file (or one that is a different
#: kind of thing, or lost its content) is an error; an edit the index has not
#: seen yet is a warning, and so is a name that breaks tools; a name or path
#: that is merely long or deep, or a file swapped for another with the same
#: size and mtime, is information.
SEVERITY: dict[Category, Severity] = {
    Category.CONTENT_CHANGED: Severity.CRITICAL,
    Category.MISSING: Severity.ERROR,
    Category.UNREADABLE: Severity.ERROR,
    Category.KIND_CHANGED: Severity.ERROR,
    Category.EMPTY: Severity.ERROR,
    Category.SIZE_CHANGED: Severity.WARNING,
    Category.MODIFIED: Severity.WARNING,
    Category.PERMISSIONS_CHANGED: Severity.WARNING,
    Category.PROBLEMATIC_NAME: Severity.WARNING,
    Category.REPLACED: Severity.INFO,
    Category.NAME_TOO_LONG: Severity.INFO,
    Category.PATH_TOO_DEEP: Severity.INFO,
    Category.PATH_TOO_LONG: Severity.INFO,
}

#: Thresholds of the name checks (the Rust core uses the same).
NAME_MAX_PORTABLE = 143
PATH_MAX_BYTES = 4095
DEPTH_MAX = 32


@dataclass(frozen=True, slots=True)
class Issue:
    """One thing wrong with one indexed entry."""

    #: Absolute path (``os.fsdecode``; ``os.fsencode`` gives the exact bytes).
    path: str
    category: Category
    #: What was expected and what was found, e.g. ``size 1000 -> 4 bytes``.
    detail: str
    entry_id: int

    @property
    def severity(self) -> Severity:
        return SEVERITY[self.category]

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "category": self.category.value,
            "severity": self.severity.value,
            "detail": self.detail,
            "entry_id": self.entry_id,
        }


@dataclass
class ValidateProgress:
    """A validation job's structured progress (``JobProgress.data``)."""

    phase: str
    current_path: str
    #: Entries checked so far (named like the indexer's count, which generic
    #: progress displays show).
    files: int
    total: int
    #: Bytes read to recompute content identities.
    bytes: int
    #: Issues of severity error or critical so far.
    errors: int
    issues: int
    #: Entries per second.
    rate: float


#: An issue as the job's output stores it: ``(path bytes, category, detail,
#: entry id)``. Paths stay bytes there: job state is msgpack, whose strings
#: must be valid UTF-8, and a POSIX name need not be.
IssueRow = tuple[bytes, str, str, int]


@dataclass
class ValidationSummary:
    """A validation job's output. Every issue of the run can be read with
    :func:`phasekit.validation.issues` (``run_id`` is the job's id) until the
    location is validated again; :attr:`samples` holds the most severe few."""

    run_id: str
    location_id: int
    path: str
    mode: ValidationMode
    #: Entries checked, files whose content was read and the bytes read.
    checked: int
    hashed: int
    bytes: int
    #: Checksums stored (complete mode, where the index had none).
    checksums_stored: int
    #: Files whose content could not be compared: the index has no cas_id
    #: (it was made in shallow mode).
    unverified: int
    issues: int
    by_severity: dict[str, int] = field(default_factory=dict)
    by_category: dict[str, int] = field(default_factory=dict)
    #: The most severe issues as stored (see :attr:`samples`).
    sample_rows: list[IssueRow] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """The summary as JSON-ready values (``phasekit validate --json``
        prints these, without ``sample_rows``, after every issue)."""
        return json_ready(self)  # type: ignore[no-any-return]

    @classmethod
    def from_mapping(cls, value: dict[str, Any]) -> ValidationSummary:
        """A summary read back from jobs.db: msgpack keeps no tuples, so the
        sample rows come back as lists and are made tuples again."""
        rows = [tuple(row) for row in value.get("sample_rows") or []]
        return cls(**{**value, "sample_rows": rows})

    @property
    def samples(self) -> list[Issue]:
        """The most severe issues (at most ``SAMPLES_KEPT``), most severe first."""
        return [Issue(os.fsdecode(p), Category(c), d, e) for p, c, d, e in self.sample_rows]

    @property
    def worst(self) -> Severity | None:
        """The highest severity found, None when nothing was."""
        found = [Severity(s) for s, n in self.by_severity.items() if n]
        return max(found, key=lambda s: s.rank) if found else None
