"""phasekit copy SRC... DEST [--conflict abort|skip|overwrite|rename] [--verify].

Copies files and folders as a resumable job (Ctrl-C pauses; phasekit resume
goes on): into DEST when it is a folder, else (one source) to DEST itself.
Every file is written to a temporary name and renamed when complete; a name
that is taken stops the copy before anything is written unless --conflict
says what to do. Modes, mtimes, symlinks (as links) and hard links are kept.

Exit status: 0 done, 1 done with per-file errors, 2 could not run (a taken
name under --conflict abort, a missing source), 75 stopped (disk full), 130
paused.
"""

from __future__ import annotations

import argparse
import os
import sys

from ._common import positive_int
from ._exits import EXIT_FAILED as EXIT_FAILED_JOB

# typing.TYPE_CHECKING without importing typing (see phasekit/cli/__init__.py).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..jobs import JobStatus
    from ..library import Library
    from ._report import Options, StoppedJob

#: The job type this command runs and reports (phasekit.fileops.CopyJob).
JOB_NAME = "phasekit.copy"
EXIT_DONE, EXIT_ERRORS, EXIT_FAILED = 0, 1, 2

NAME = "copy"
HELP = "copy files and folders (resumable; never a half file under its final name)"
DESCRIPTION: str | None = None
EPILOG: str | None = (
    "exit status: 0 done, 1 done with per-file errors, 2 could not run, "
    "75 stopped (disk full), 130 paused"
)


def arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="+", type=os.fsencode, metavar="PATH",
                   help="the sources, then the destination")  # fmt: skip
    p.add_argument("--conflict", choices=("abort", "skip", "overwrite", "rename"),
                   default="abort",
                   help="when a name is taken (default abort: nothing is written)")  # fmt: skip
    p.add_argument("--verify", action=argparse.BooleanOptionalAction, default=None,
                   help="read every copy back and compare BLAKE3 digests (default: off "
                   "for copy, on for move)")  # fmt: skip
    p.add_argument("--durable", action=argparse.BooleanOptionalAction, default=None,
                   help="fsync every file and folder (default: off for copy, on for "
                   "move)")  # fmt: skip
    p.add_argument("--atime", action="store_true",
                   help="keep files' access times too (default: modes and mtimes)")  # fmt: skip
    p.add_argument("--json", action="store_true", help="the summary as one JSON object")
    p.add_argument("--threads", type=positive_int, default=None, help="worker threads")


def run(args: argparse.Namespace) -> int:
    return run_transfer(args, move=False)


def run_transfer(args: argparse.Namespace, *, move: bool) -> int:
    from ..library import Library
    from ._one import dispatch_and_report
    from ._report import Options

    if len(args.paths) < 2:
        print(f"phasekit {'move' if move else 'copy'}: give at least one source and a destination",
              file=sys.stderr)  # fmt: skip
        return EXIT_FAILED
    from ..fileops import CopyJob, MoveJob

    kind = MoveJob if move else CopyJob
    job = kind(
        sources=[os.fsdecode(p) for p in args.paths[:-1]],
        dest=os.fsdecode(args.paths[-1]),
        conflict=args.conflict,
        verify=args.verify,
        durable=args.durable,
        atime=args.atime,
        threads=args.threads,
    )
    with Library.open(args.library) as library:
        options = Options(json=args.json)
        return dispatch_and_report(library, job, options, {kind.job_name: report})


def report(library: Library, handle: StoppedJob, status: JobStatus, options: Options) -> int:
    """What a copy or move did."""
    import json

    from ..fileops import TransferSummary
    from ._common import human
    from ._report import finished_output, print_errors

    summary = finished_output(handle, status, TransferSummary)
    if isinstance(summary, int):
        # A job that failed (refused before anything was done) "could not
        # run"; a stop (disk full, pause) keeps its own status.
        return EXIT_FAILED if summary == EXIT_FAILED_JOB else summary
    if options.json:
        print(json.dumps({"job_id": handle.id, **summary.to_dict()}))
    else:
        verb = "moved" if summary.operation == "move" else "copied"
        parts = [f"{summary.files:,} files ({human(summary.bytes)})",
                 f"{summary.dirs:,} folders", f"{summary.symlinks:,} symlinks"]  # fmt: skip
        if summary.links:
            parts.append(f"{summary.links:,} hard links")
        if summary.renamed:
            parts.append(f"{summary.renamed:,} renamed whole")
        if summary.skipped:
            parts.append(f"{summary.skipped:,} skipped")
        if summary.already:
            parts.append(f"{summary.already:,} found done by the interrupted run")
        print(f"{verb} {', '.join(parts)} in {summary.seconds:.1f} s")
        print_errors(handle, summary.errors, "entries not copied", options.max_errors)
    return EXIT_ERRORS if summary.errors else EXIT_DONE
