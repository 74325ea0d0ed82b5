"""The validation job: collect → validate → complete.

- **collect** checks that the location is there and was indexed, and forgets
  the issues an earlier validation of it recorded (a location keeps the
  issues of its latest validation only).
- **validate** checks the location's entries a page at a time in the Rust
  core (in parallel, the GIL released): each page's issues are upserted into
  library.db's ``validation_issues`` keyed by (this job's id, entry,
  category), in the page's one transaction, and the checkpoint is the id of
  the last entry checked. A resumed run that checks a page again rewrites
  the same rows: nothing is lost or counted twice (docs/ARCHITECTURE.md, invariants 1
  and 2: the checkpoint holds the frontier, the issues live in the library).
- **complete** counts the issues by category and severity and keeps the most
  severe few as samples for the job's output; :func:`issues` reads them all.
"""

from __future__ import annotations

import contextlib
import heapq
import os
import time
from collections.abc import Iterable, Iterator
from typing import Any, ClassVar

from .._defaults import ValidationMode
from .._pacing import Pager
from ..errors import InvalidInputError
from ..jobs import FatalError, Phase, PhaseContext, PhasedJob, PhaseResult, Phases, job, transient
from ..library import Library, Location
from ..library._jobs import check_count, check_id, library_of, location_key, location_of
from ._types import (
    SEVERITY,
    Category,
    Issue,
    Severity,
    ValidateProgress,
    ValidationSummary,
    _mode,
)

#: Entries checked per page (one transaction and one checkpoint each): ~0.1 s
#: of work on two cores, so a pause waits about that long; fewer, larger
#: pages keep the threads busy longer between page ends.
VALIDATE_PAGE = 16000
#: Issues kept in the job's output (the most severe first); all are counted.
SAMPLES_KEPT = 100
#: Issues read from library.db per call.
_READ_PAGE = 1000


def _root(location: Location) -> bytes:
    root = os.fsencode(location.path)
    return root if root.endswith(b"/") else root + b"/"


def issues(library: Library, summary: ValidationSummary) -> Iterator[Issue]:
    """Every issue a validation run recorded, in entry order (available until
    the location is validated again or removed)."""
    return run_issues(library, summary.location_id, summary.run_id)


def run_issues(library: Library, location_id: int, run_id: str) -> Iterator[Issue]:
    """Every issue that validation run ``run_id`` recorded for a location's
    entries, in entry order (a run id names the issues of a
    :class:`ValidateJob`, or of a maintenance job's re-validation)."""
    root = _root(library.location(location_id))
    after: tuple[int, str] = (0, "")
    while rows := library.validation_issues(run_id, after=after, limit=_READ_PAGE):
        for row in rows:
            yield Issue(os.fsdecode(root + row.path), Category(row.category), row.detail,
                        row.entry_id)  # fmt: skip
        after = (rows[-1].entry_id, rows[-1].category)


def severity_counts(by_category: dict[str, int]) -> dict[str, int]:
    """Issue counts by severity (every severity present, most severe first)."""
    out = dict.fromkeys((s.value for s in reversed(Severity)), 0)
    for category, n in by_category.items():
        out[SEVERITY[Category(category)].value] += n
    return out


def most_severe(found: Iterable[Issue], keep: int) -> list[Issue]:
    """The ``keep`` most severe issues, then in entry order, most severe
    first: a bounded heap over the stream, so memory does not grow with the
    issues found."""
    worst: list[tuple[int, int, str, Issue]] = []
    for issue in found:
        key = (issue.severity.rank, -issue.entry_id, issue.category.value, issue)
        if len(worst) < keep:
            heapq.heappush(worst, key)
        elif key[:3] > worst[0][:3]:
            heapq.heapreplace(worst, key)
    return [k[3] for k in sorted(worst, key=lambda k: k[:3], reverse=True)]


_SERIOUS = (Severity.ERROR, Severity.CRITICAL)


@job("phasekit.validate")
class ValidateJob(PhasedJob[ValidationSummary]):
    """Validate one indexed location of the job's library (``ctx.library``)
    against the disk: ``basic`` (metadata), ``integrity`` (+ cas_ids) or
    ``complete`` (+ full checksums, stored where the index has none).
    ``threads``: files checked at once (None: 16, or ``PHASEKIT_READ_THREADS``;
    see :func:`phasekit.fs.read_threads`)."""

    progress_type: ClassVar[type[Any] | None] = ValidateProgress
    output_type: ClassVar[type[Any] | None] = ValidationSummary

    location_id: int
    mode: ValidationMode = "basic"
    threads: int | None = None
    page: int = VALIDATE_PAGE
    _library: Library | None = transient(default=None)

    def __post_init__(self) -> None:
        check_id("location_id", self.location_id)
        try:
            _mode(self.mode)
        except ValueError as exc:
            raise InvalidInputError(str(exc)) from exc
        check_count("threads", self.threads, optional=True)
        check_count("page", self.page)

    def conflict_key(self) -> str:
        """Never beside an index of the same location (it would see the
        index half-written and report entries as missing or changed)."""
        return location_key(self.location_id)

    # --- helpers ---------------------------------------------------------------

    def _lib(self, ctx: PhaseContext) -> Library:
        self._library = library_of(ctx, "validation")
        return self._library

    def _location(self, ctx: PhaseContext) -> Location:
        return location_of(self._lib(ctx), self.location_id)

    # --- phases ----------------------------------------------------------------

    def phases(self) -> Phases:
        return [
            Phase("collect", self.collect, weight=0.5),
            Phase("validate", self.validate, initial_state=lambda: {"after": 0}, weight=20),
            Phase("complete", self.complete, weight=0.5),
        ]

    def collect(self, ctx: PhaseContext) -> PhaseResult:
        try:
            _mode(self.mode)
        except ValueError as exc:
            raise FatalError(str(exc)) from exc
        if self.page < 1:
            raise FatalError(f"page must be at least 1, got {self.page}")
        library, location = self._lib(ctx), self._location(ctx)
        if location.indexed_at is None:
            raise FatalError(
                f"location {location.id} ({location.path}) has not been indexed yet: "
                f"index it first (phasekit index {location.path})"
            )
        if not os.path.isdir(location.path):
            # Every entry would be "missing": say what is more likely.
            raise FatalError(
                f"location {location.id}: {location.path} is missing or not a directory "
                "(renamed, or its drive unmounted?); nothing was validated"
            )
        if self.mode != "basic" and location.mode == "shallow":
            ctx.warn(
                f"{location.path} was indexed in shallow mode: there are no cas_ids to "
                "compare file contents with (index it with --mode content)"
            )
        library.clear_validation(location)
        ctx.shared.update(
            started=time.time(),
            total=library.entry_count(location),
            checked=0,
            hashed=0,
            bytes=0,
            stored=0,
            unverified=0,
            issues=0,
            errors=0,
        )
        return None

    def validate(self, ctx: PhaseContext) -> PhaseResult:
        library, location = self._lib(ctx), self._location(ctx)
        s = ctx.shared
        started, checked_here = time.monotonic(), 0
        # Pages of ~0.2 s, at most ``page`` entries (a cold disk checks far
        # fewer in that time than a warm cache).
        pager = Pager(min(self.page, 2048), least=1, most=self.page)
        while True:
            began = time.monotonic()
            last, looked, hashed, nbytes, stored, unverified, found = library.validate_page(
                location,
                ctx.id,
                after_id=ctx.state["after"],
                limit=pager.size,
                mode=self.mode,
                threads=self.threads,
            )
            pager.measured(looked, time.monotonic() - began)
            if looked == 0:
                break
            checked_here += looked
            s["checked"] += looked
            s["hashed"] += hashed
            s["bytes"] += nbytes
            s["stored"] += stored
            s["unverified"] += unverified
            s["issues"] += sum(found.values())
            s["errors"] += sum(n for c, n in found.items() if SEVERITY[Category(c)] in _SERIOUS)
            ctx.add_items(looked, nbytes=nbytes)
            ctx.progress(
                done=s["checked"],
                total=max(s["total"], s["checked"]),
                message=location.path,
                data=ValidateProgress(
                    phase=ctx.phase,
                    current_path=location.path,
                    files=s["checked"],
                    total=s["total"],
                    bytes=s["bytes"],
                    errors=s["errors"],
                    issues=s["issues"],
                    rate=checked_here / max(time.monotonic() - started, 1e-9),
                ),
            )
            ctx.checkpoint({"after": last})
        return None

    def complete(self, ctx: PhaseContext) -> PhaseResult:
        library = self._lib(ctx)
        by_category = library.validation_counts(ctx.id)
        samples = most_severe(run_issues(library, self.location_id, ctx.id), SAMPLES_KEPT)
        ctx.shared.update(
            run_id=ctx.id,
            by_category=by_category,
            issues=sum(by_category.values()),
            sample_rows=[
                (os.fsencode(i.path), i.category.value, i.detail, i.entry_id) for i in samples
            ],
            seconds=time.time() - ctx.shared["started"],
        )
        return None

    def _summary(self, shared: dict[str, Any], run_id: str) -> ValidationSummary:
        path = ""
        if self._library is not None and not self._library.closed:
            # Removed since: the summary stands without its path.
            with contextlib.suppress(KeyError):
                path = self._library.location(self.location_id).path
        by_category: dict[str, int] = dict(shared.get("by_category") or {})
        return ValidationSummary(
            run_id=shared.get("run_id", run_id),
            location_id=self.location_id,
            path=path,
            mode=_mode(self.mode),
            checked=shared.get("checked", 0),
            hashed=shared.get("hashed", 0),
            bytes=shared.get("bytes", 0),
            checksums_stored=shared.get("stored", 0),
            unverified=shared.get("unverified", 0),
            issues=shared.get("issues", 0),
            by_severity=severity_counts(by_category),
            by_category=by_category,
            sample_rows=[tuple(r) for r in shared.get("sample_rows") or []],
            seconds=shared.get("seconds", 0.0),
        )

    def output(self, shared: dict[str, Any]) -> ValidationSummary:
        return self._summary(shared, shared.get("run_id", ""))
