"""phasekit dupes PATH...: duplicate files, as a resumable job.

A PATH that is a location of the library is searched through its index
(stored sizes and cas_ids; missing digests are computed and stored); other
paths, or any with --walk, are walked on the spot.
"""

from __future__ import annotations

import argparse
import os
import sys

from .._defaults import DUPLICATE_MODES, PAGE_FILES
from ._common import count, positive_int
from ._exits import EXIT_OK

# typing.TYPE_CHECKING without importing typing (see phasekit/cli/__init__.py).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ..dupes import DupesJob, DupesSummary
    from ..jobs import JobStatus
    from ..library import Library
    from ._report import Options, StoppedJob

#: The job type this command runs and reports (phasekit.dupes.DupesJob).
JOB_NAME = "phasekit.dupes"


#: The command's name, its line in ``phasekit --help``, and its ``--help``
#: text (see phasekit/cli/__init__.py).
NAME = "dupes"
HELP = "find duplicate files (resumable)"
DESCRIPTION: str | None = __doc__
EPILOG: str | None = None


def arguments(dupes: argparse.ArgumentParser) -> None:
    dupes.add_argument("paths", nargs="+", type=os.fsencode, metavar="PATH")
    dupes.add_argument("--mode", choices=DUPLICATE_MODES, default="full",
                       help="size; name_size; content (same cas_id); full (byte-exact, "
                       "the default)")  # fmt: skip
    dupes.add_argument("--min-size", type=count, default=1, metavar="BYTES",
                       help="smallest file considered (default 1: no empty files)")  # fmt: skip
    dupes.add_argument("--max-size", type=count, default=None, metavar="BYTES",
                       help="largest file considered")  # fmt: skip
    dupes.add_argument("--ext", action="append", default=[], metavar="EXT",
                       help="only files with this extension (repeatable)")  # fmt: skip
    dupes.add_argument("--no-hidden", dest="hidden", action="store_false",
                       help="skip files and folders whose name starts with a dot")  # fmt: skip
    dupes.add_argument("--walk", action="store_true",
                       help="walk PATH even if it is an indexed location")  # fmt: skip
    dupes.add_argument("--json", action="store_true",
                       help="one JSON object per duplicate group")  # fmt: skip
    dupes.add_argument(
        "--threads",
        type=positive_int,
        default=None,
        help="N threads walk and N read files (default: 8 walk, or one per core if more; "
        "16 files read at once: PHASEKIT_READ_THREADS)",
    )
    dupes.add_argument("--page-files", type=positive_int, default=PAGE_FILES, metavar="N",
                       help=f"files hashed between checkpoints (default {PAGE_FILES})")  # fmt: skip
    dupes.add_argument("--max-errors", type=count, default=20, help="errors to print (default 20)")


def _job(library: Library, args: argparse.Namespace) -> DupesJob:
    from ..dupes import DupesJob
    from ..errors import InvalidInputError

    roots = [os.path.abspath(os.fsdecode(p)) for p in args.paths]
    common: dict[str, Any] = {
        "mode": args.mode,
        "min_size": args.min_size,
        "max_size": args.max_size,
        "extensions": args.ext or None,
        "hidden": args.hidden,
        "threads": args.threads,
        "page_files": args.page_files,
    }
    if len(roots) == 1 and not args.walk:
        try:
            location = library.location(roots[0])
        except KeyError:
            pass
        else:
            return DupesJob(location_id=location.id, **common)
    for root in roots:
        if not os.path.lexists(root):
            raise InvalidInputError(f"{root} does not exist")
    return DupesJob(paths=roots, **common)


def run(args: argparse.Namespace) -> int:
    from ..library import Library
    from ._one import dispatch_and_report
    from ._report import Options

    with Library.open(args.library) as library:
        # Progress bars go to stderr, so --json output stays clean.
        options = Options(json=args.json, max_errors=args.max_errors)
        return dispatch_and_report(library, _job(library, args), options, {JOB_NAME: report})


def print_summary(summary: DupesSummary, *, as_json: bool) -> None:
    """The groups, then (as text) a summary line. Rendered whole and written
    at once: thousands of groups in one write, not one per line (an
    unbuffered stdout would make each line a system call)."""
    lines: list[str] = []
    if as_json:
        import json

        lines = [json.dumps(group.to_dict()) for group in summary.groups]
    else:
        for group in summary.groups:
            lines.append(f"{len(group.copies)} copies of {group.size:,} bytes ({group.key}):")
            for copy in group.copies:
                lines.append(f"  {copy[0]}")
                lines.extend(f"    = {link} (hard link)" for link in copy[1:])
        lines.append(
            f"{len(summary.groups):,} groups, {summary.duplicates:,} extra copies, "
            f"{summary.wasted:,} bytes wasted ({summary.mode}; {summary.files:,} files, "
            f"{summary.hashed:,} hashed, {summary.reused:,} digests reused) "
            f"in {summary.seconds:.2f} s"
        )
    if lines:
        sys.stdout.write("\n".join(lines) + "\n")


def report(library: Library, handle: StoppedJob, status: JobStatus, options: Options) -> int:
    """The duplicate groups a search found."""
    from ..dupes import DupesSummary
    from ._report import print_errors, report_stop

    stopped = report_stop(handle, status)
    summary = handle.output() if status.finished else None
    if isinstance(summary, DupesSummary):
        print_summary(summary, as_json=options.json)
        print_errors(handle, summary.errors, "files could not be read", options.max_errors)
    return EXIT_OK if stopped is None else stopped
