"""phasekit delete PATH... [--permanent | --secure [--passes N]] [--force] [--cross-filesystems].

Deletes files and folders as a resumable job: to the freedesktop trash of
their filesystem by default (restorable by a file manager), for good with
--permanent, overwritten first with --secure (with a warning of what that
cannot reach). Never follows a symlink out of its target; refuses /, the
home folder, a location root and the library's folder unless --force.

Exit status: 0 done, 1 done with per-file errors, 2 could not run, 130 paused.
"""

from __future__ import annotations

import argparse
import os

from ._common import positive_int
from ._exits import EXIT_FAILED as EXIT_FAILED_JOB

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..jobs import JobStatus
    from ..library import Library
    from ._report import Options, StoppedJob

JOB_NAME = "phasekit.delete"
EXIT_DONE, EXIT_ERRORS, EXIT_FAILED = 0, 1, 2

NAME = "delete"
HELP = "delete files and folders: to the trash, or for good with --permanent"
DESCRIPTION: str | None = None
EPILOG: str | None = "exit status: 0 done, 1 done with per-file errors, 2 could not run, 130 paused"


def arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="+", type=os.fsencode, metavar="PATH")
    how = p.add_mutually_exclusive_group()
    how.add_argument("--permanent", action="store_true", help="remove for good (not to the trash)")
    how.add_argument("--secure", action="store_true",
                     help="overwrite each file's data, then remove it for good (cannot reach "
                     "copies kept by copy-on-write filesystems, SSDs or snapshots)")  # fmt: skip
    p.add_argument("--passes", type=positive_int, default=1,
                   help="with --secure: overwrite passes (default 1)")  # fmt: skip
    p.add_argument("--force", action="store_true",
                   help="allow /, the home folder, a location root or the library's "
                   "folder")  # fmt: skip
    p.add_argument("--cross-filesystems", action="store_true",
                   help="with --permanent or --secure: also enter other mounts inside "
                   "the tree")  # fmt: skip
    p.add_argument("--json", action="store_true", help="the summary as one JSON object")
    p.add_argument("--threads", type=positive_int, default=None, help="worker threads")


def run(args: argparse.Namespace) -> int:
    import sys

    from ..fileops import SECURE_CAVEAT, DeleteJob
    from ..library import Library
    from ._one import dispatch_and_report
    from ._report import Options

    if args.passes != 1 and not args.secure:
        print("phasekit delete: --passes goes with --secure", file=sys.stderr)
        return EXIT_FAILED
    if args.secure:
        print(f"phasekit delete: warning: {SECURE_CAVEAT}", file=sys.stderr)
    job = DeleteJob(
        paths=[os.fsdecode(p) for p in args.paths],
        mode="secure" if args.secure else "permanent" if args.permanent else "trash",
        passes=args.passes,
        force=args.force,
        cross_filesystems=args.cross_filesystems,
        threads=args.threads,
    )
    with Library.open(args.library) as library:
        return dispatch_and_report(library, job, Options(json=args.json), {JOB_NAME: report})


def report(library: Library, handle: StoppedJob, status: JobStatus, options: Options) -> int:
    """What a delete did."""
    import json

    from ..fileops import DeleteSummary
    from ._report import finished_output, print_errors

    summary = finished_output(handle, status, DeleteSummary)
    if isinstance(summary, int):
        # A job that failed (refused before anything was done) "could not
        # run"; a stop (disk full, pause) keeps its own status.
        return EXIT_FAILED if summary == EXIT_FAILED_JOB else summary
    if options.json:
        print(json.dumps({"job_id": handle.id, **summary.to_dict()}))
    elif summary.mode == "trash":
        print(f"moved {len(summary.trashed):,} items to the trash in {summary.seconds:.1f} s")
    else:
        done = "overwrote and removed" if summary.mode == "secure" else "removed"
        print(f"{done} {summary.files:,} files and {summary.dirs:,} folders "
              f"in {summary.seconds:.1f} s")  # fmt: skip
    print_errors(handle, summary.errors, "entries not deleted", options.max_errors)
    return EXIT_ERRORS if summary.errors else EXIT_DONE
