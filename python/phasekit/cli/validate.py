"""phasekit validate PATH [--mode basic|integrity|complete] [--json].

Validates an indexed location against the disk through the job system
(Ctrl-C pauses; phasekit resume goes on). The report groups issues by
severity and category; --json prints one JSON object per issue
("type": "issue") and then one summary object ("type": "summary").

Exit status: 0 when nothing of severity error or critical was found (info
and warnings may have been), 1 when something was, 2 when the validation
could not run (PATH is not an indexed location, the job failed), 75 when it
stopped on a full disk, 130 when it was paused.
"""

from __future__ import annotations

import argparse
import os
import sys

from .._defaults import VALIDATION_MODES
from ._common import count, library_name, positive_int
from ._exits import EXIT_FAILED as EXIT_FAILED_JOB

# typing.TYPE_CHECKING without importing typing (see phasekit/cli/__init__.py).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..jobs import JobStatus
    from ..library import Library, Location
    from ..validation import ValidationSummary
    from ._report import Options, StoppedJob

#: The job type this command runs and reports (phasekit.validation.ValidateJob).
JOB_NAME = "phasekit.validate"

#: Exit statuses (see the module's docstring).
EXIT_CLEAN, EXIT_ISSUES, EXIT_FAILED = 0, 1, 2


#: The command's name, its line in ``phasekit --help``, and its ``--help``
#: text (see phasekit/cli/__init__.py).
NAME = "validate"
HELP = "check an indexed location for changed, missing or rotted files"
DESCRIPTION: str | None = None
EPILOG: str | None = (
    "exit status: 0 nothing of severity error or critical found, 1 found, "
    "2 could not validate, 75 stopped (disk full), 130 paused"
)


def arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", type=os.fsencode, metavar="PATH")
    p.add_argument("--mode", choices=VALIDATION_MODES, default="basic",
                   help="basic: metadata (default); integrity: + cas_ids; complete: + full "
                   "checksums (stored on the first run)")  # fmt: skip
    p.add_argument("--json", action="store_true", help="one JSON object per issue, then a summary")
    p.add_argument(
        "--threads",
        type=positive_int,
        default=None,
        help="N threads check files (default: 16 at once: PHASEKIT_READ_THREADS)",
    )
    p.add_argument("--limit", type=count, default=20, metavar="N",
                   help="paths shown per category in the report (default 20)")  # fmt: skip


def _location(library: Library, root: str) -> Location:
    """The indexed location at ``root``, or an error that says what to do."""
    from ..errors import InvalidInputError

    try:
        location = library.location(root)
    except KeyError:
        inside = [loc for loc in library.locations() if root.startswith(loc.path.rstrip("/") + "/")]
        hint = (
            f"; it is inside location {inside[0].path}: validate that"
            if inside
            else f"; index it first (phasekit index {root})"
        )
        raise InvalidInputError(
            f"{root} is not a location of {library_name(library)}{hint}"
        ) from None
    if location.indexed_at is None:
        raise InvalidInputError(
            f"{root} has not been indexed yet; index it first (phasekit index {root})"
        )
    return location


def run(args: argparse.Namespace) -> int:
    from ..library import Library
    from ..validation import ValidateJob
    from ._one import dispatch_and_report
    from ._report import Options

    root = os.path.abspath(os.fsdecode(args.path))
    with Library.open(args.library) as library:
        location = _location(library, root)
        job = ValidateJob(location.id, mode=args.mode, threads=args.threads)
        options = Options(json=args.json, limit=args.limit)
        return dispatch_and_report(library, job, options, {JOB_NAME: report})


def report(library: Library, handle: StoppedJob, status: JobStatus, options: Options) -> int:
    """The issues a validation found."""
    import json

    from ..validation import Severity, ValidationSummary, issues
    from ._report import report_stop

    stopped = report_stop(handle, status)
    summary = handle.output() if status.finished else None
    if stopped is not None:
        return EXIT_FAILED if stopped == EXIT_FAILED_JOB else stopped
    if not isinstance(summary, ValidationSummary):
        print(f"phasekit: validation {status.value}: no result", file=sys.stderr)
        return EXIT_FAILED
    if options.json:
        out = sys.stdout
        for issue in issues(library, summary):
            out.write(json.dumps({"type": "issue", **issue.to_json()}) + "\n")
        body = summary.to_dict()
        body.pop("sample_rows", None)  # every issue was printed above
        out.write(json.dumps({"type": "summary", "job_id": handle.id, **body}) + "\n")
    else:
        _report(library, summary, options.limit)
    serious = summary.by_severity.get(Severity.ERROR, 0) + summary.by_severity.get(
        Severity.CRITICAL, 0
    )
    return EXIT_ISSUES if serious else EXIT_CLEAN


def _report(library: Library, summary: ValidationSummary, limit: int) -> None:
    """Issues grouped by severity (most severe first) and category, counted."""
    from itertools import groupby

    from ..validation import Issue, issues

    s = summary
    content = {"basic": "", "integrity": f", {s.hashed:,} cas_ids recomputed",
               "complete": f", {s.hashed:,} files read in full"}[s.mode]  # fmt: skip
    print(f"{s.path}: {s.checked:,} entries checked ({s.mode}{content}) in {s.seconds:.2f} s")
    if s.checksums_stored:
        print(f"  {s.checksums_stored:,} checksums stored for later validations")
    if s.unverified:
        print(f"  {s.unverified:,} files not compared: the index has no cas_id for them "
              "(index with --mode content)")  # fmt: skip
    if not s.issues:
        print("no issues found")
        return
    # Grouping needs every issue of a kind together: sort (bounded by the
    # issues found, which the report shows anyway).
    found = sorted(
        issues(library, summary), key=lambda i: (-i.severity.rank, i.category.value, i.entry_id)
    )
    for severity, by_severity in groupby(found, key=lambda i: i.severity):
        group = list(by_severity)
        print(f"\n{severity.value.upper()} ({len(group):,})")
        for category, by_category in groupby(group, key=lambda i: i.category):
            items: list[Issue] = list(by_category)
            print(f"  {category.value.replace('_', ' ')} ({len(items):,})")
            for issue in items[:limit]:
                print(f"    {issue.path!r}: {issue.detail}" if _odd(issue.path)
                      else f"    {issue.path}: {issue.detail}")  # fmt: skip
            if len(items) > limit:
                print(f"    ... and {len(items) - limit:,} more (--limit, or --json for all)")
    counts = ", ".join(f"{n:,} {sev}" for sev, n in s.by_severity.items() if n)
    print(f"\n{s.issues:,} issues: {counts}")


def _odd(path: str) -> bool:
    """A path that would garble a line of output (newline, control characters)."""
    return not path.isprintable()
