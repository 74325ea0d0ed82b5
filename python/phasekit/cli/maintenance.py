"""phasekit maintenance [--revalidate N] [--mode MODE] [--keep-history SECONDS]
[--temp-grace SECONDS] [--json].

Runs the library's maintenance once, now, here: optimizes library.db and
jobs.db, prunes old job history and events, removes orphaned thumbnails and
leftover temporary files, and re-validates the library's stalest entries
(phasekit.maintenance.MaintenanceJob; workers run it on a schedule, see
phasekit worker --maintenance-every). Resumable (Ctrl-C pauses; phasekit
resume goes on); one that runs elsewhere is waited for. --json prints one
JSON object per issue the re-validation found ("type": "issue"), then the
summary ("type": "summary").

Exit status: 0 done, 1 done and the re-validation found something of
severity error or critical, 2 could not run, 75 stopped (disk full), 130
paused.
"""

from __future__ import annotations

import argparse
import sys

from .._defaults import VALIDATION_MODES
from ._common import count, positive_int, seconds_or_zero
from ._exits import EXIT_FAILED as EXIT_FAILED_JOB

# typing.TYPE_CHECKING without importing typing (see phasekit/cli/__init__.py).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..jobs import JobStatus
    from ..library import Library
    from ..maintenance import MaintenanceSummary
    from ._report import Options, StoppedJob

#: The job type this command runs and reports.
JOB_NAME = "phasekit.maintenance"
EXIT_DONE, EXIT_ISSUES, EXIT_FAILED = 0, 1, 2

NAME = "maintenance"
HELP = "optimize, prune and tidy the library, re-validate its stalest entries (once, now)"
DESCRIPTION: str | None = None
EPILOG: str | None = (
    "exit status: 0 done, 1 the re-validation found errors, 2 could not run, "
    "75 stopped (disk full), 130 paused"
)


def arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--revalidate", type=count, default=None, metavar="N",
                   help="entries re-validated (default 1000; 0: none)")  # fmt: skip
    p.add_argument("--mode", choices=VALIDATION_MODES, default="integrity",
                   help="how they are checked (default integrity: cas_ids recomputed)")  # fmt: skip
    p.add_argument("--keep-history", type=seconds_or_zero, default=None, metavar="SECONDS",
                   help="finished jobs kept (default 30 days)")  # fmt: skip
    p.add_argument("--temp-grace", type=seconds_or_zero, default=None, metavar="SECONDS",
                   help="temporary files left untouched this long are leftovers "
                   "(default one day)")  # fmt: skip
    p.add_argument("--threads", type=positive_int, default=None,
                   help="files read at once (default 16: PHASEKIT_READ_THREADS)")  # fmt: skip
    p.add_argument("--json", action="store_true",
                   help="one JSON object per issue found, then the summary")  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from ..library import Library
    from ..maintenance import MaintenanceJob
    from ._one import dispatch_and_report
    from ._report import Options

    settings: dict[str, object] = {"validate_mode": args.mode, "threads": args.threads}
    for field, value in (
        ("revalidate", args.revalidate),
        ("keep_history_s", args.keep_history),
        ("temp_grace_s", args.temp_grace),
    ):
        if value is not None:
            settings[field] = value
    job = MaintenanceJob(**settings)  # type: ignore[arg-type]
    with Library.open(args.library) as library:
        return dispatch_and_report(library, job, Options(json=args.json), {JOB_NAME: report})


def report(library: Library, handle: StoppedJob, status: JobStatus, options: Options) -> int:
    """What each step did, and the issues the re-validation found."""
    import json

    from ..maintenance import MaintenanceSummary, revalidation_issues
    from ..validation import Severity
    from ._report import report_stop

    stopped = report_stop(handle, status)
    if stopped is not None:
        return EXIT_FAILED if stopped == EXIT_FAILED_JOB else stopped
    summary = handle.output()
    if not isinstance(summary, MaintenanceSummary):
        print(f"phasekit: maintenance {status.value}: no result", file=sys.stderr)
        return EXIT_FAILED
    if options.json:
        out = sys.stdout
        for issue in revalidation_issues(library, summary):
            out.write(json.dumps({"type": "issue", **issue.to_json()}) + "\n")
        body = summary.to_dict()
        body.pop("sample_rows", None)  # every issue was printed above
        out.write(json.dumps({"type": "summary", "job_id": handle.id, **body}) + "\n")
    else:
        _report(summary)
        for error in handle.errors()[:20]:
            print(f"  error: {error.message}", file=sys.stderr)
    serious = summary.by_severity.get(Severity.ERROR, 0) + summary.by_severity.get(
        Severity.CRITICAL, 0
    )
    return EXIT_ISSUES if serious else EXIT_DONE


def _report(s: MaintenanceSummary) -> None:
    from ._common import human

    for db in s.databases:
        print(f"{db.name}: {human(db.bytes_before)} -> {human(db.bytes_after)} ({db.free_pages:,}"
              f" of {db.pages:,} pages were free; vacuum: {db.vacuum})")  # fmt: skip
    print(f"history: {s.jobs_pruned:,} finished jobs and {s.history_pruned:,} history rows "
          f"pruned, {s.events_pruned:,} events")  # fmt: skip
    print(f"thumbnails: {s.sidecars_removed:,} sets of contents gone removed, "
          f"{s.sidecar_temps_removed:,} temporary files")  # fmt: skip
    print(f"temporary files: {s.scratch_removed:,} scratch files and {s.copy_temps_removed:,} "
          f"copies' temporary files removed, {s.temps_kept:,} kept (in use or recent)")  # fmt: skip
    counts = ", ".join(f"{n:,} {sev}" for sev, n in s.by_severity.items() if n)
    print(f"re-validated: {s.revalidated:,} entries, {s.issues:,} issues"
          + (f" ({counts})" if counts else ""))  # fmt: skip
    for issue in s.samples[:20]:
        shown = repr(issue.path) if not issue.path.isprintable() else issue.path
        print(f"  {issue.severity.value} {issue.category.value}: {shown}: {issue.detail}")
    print(f"in {s.seconds:.2f} s")
