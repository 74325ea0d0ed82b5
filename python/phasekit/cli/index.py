"""``phasekit index PATH``: index a tree into the library (resumable)."""

from __future__ import annotations

import argparse
import os

from .._defaults import CHECKPOINT_EVERY_S, INDEX_MODES
from ._common import count, positive_int, seconds
from ._exits import EXIT_OK

# typing.TYPE_CHECKING without importing typing (see phasekit/cli/__init__.py).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ..jobs import DirectRun, JobStatus
    from ..library import Library, Location
    from ._report import Options, StoppedJob

#: The job type this command runs and reports (phasekit.indexing.IndexJob).
JOB_NAME = "phasekit.index"


#: The command's name, its line in ``phasekit --help``, and its ``--help``
#: text (see phasekit/cli/__init__.py).
NAME = "index"
HELP = "index a tree into the library (resumable)"
DESCRIPTION: str | None = None
EPILOG: str | None = None


def arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", type=os.fsencode, metavar="PATH")
    p.add_argument("--mode", choices=INDEX_MODES, default=None,
                   help="shallow: metadata; content: + cas_ids (default for a new "
                   "location); deep: + full checksums")  # fmt: skip
    p.add_argument("--one-level", action="store_true", help="index PATH's children only")
    p.add_argument("--nested", action="store_true",
                   help="allow PATH inside (or around) another location")  # fmt: skip
    p.add_argument("--ephemeral", action="store_true",
                   help="index without a location; nothing is written")  # fmt: skip
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.add_argument(
        "--threads",
        type=positive_int,
        default=None,
        help="N threads walk the tree, reading their folders' files, and N more read beside "
        "them (default: 8 walk, or one per core if more, and 16 read: PHASEKIT_READ_THREADS)",
    )
    p.add_argument("--batch-size", type=positive_int, default=1000,
                   help="entries per batch and transaction (default 1000; PostgreSQL "
                   "writes the batches waiting together, up to 10,000)")  # fmt: skip
    p.add_argument("--checkpoint-every", type=seconds, default=CHECKPOINT_EVERY_S,
                   metavar="SECONDS", help="checkpoint at least this often (default "
                   f"{CHECKPOINT_EVERY_S:g})")  # fmt: skip
    p.add_argument("--max-errors", type=count, default=20, help="errors to print (default 20)")


def run(args: argparse.Namespace) -> int:
    from ..errors import InvalidInputError
    from ..indexing import IndexJob
    from ..jobs import JobStatus
    from ..library import Library
    from ._one import run_with_progress
    from ._report import Options

    root = os.path.abspath(os.fsdecode(args.path))
    if not os.path.isdir(root):
        raise InvalidInputError(f"{root} is not a directory")
    library = Library.in_memory() if args.ephemeral else Library.open(args.library)
    with library:
        try:
            location = library.location(root)
            if args.mode and args.mode != location.mode:
                location = library.set_mode(location, args.mode)
        except KeyError:
            location = _add(library, root, args)
        job = IndexJob(
            location.id,
            threads=args.threads,
            batch_size=args.batch_size,
            checkpoint_every_s=args.checkpoint_every,
        )
        options = Options(json=args.json, max_errors=args.max_errors)
        run = run_with_progress(library, job, resumable=not args.ephemeral)
        thumbnails = None
        if (
            location.mode == "deep"
            and not args.ephemeral
            and run.status in (JobStatus.COMPLETED, JobStatus.COMPLETED_WITH_ERRORS)
        ):
            # The thumbnail job a deep index queued as its child: run here
            # (joined by its conflict key), so the command leaves nothing
            # queued; made anew if the index ran elsewhere.
            from ..thumbs import ThumbsJob

            thumbnails = run_with_progress(library, ThumbsJob(location.id, threads=args.threads))
        return report(library, run, run.status, options, thumbnails=thumbnails)


def _add(library: Library, root: str, args: argparse.Namespace) -> Location:
    """Add ``root`` as a location; if another process added it since this one
    looked (two indexes of a new location at once), that location."""
    from ..errors import InvalidInputError

    try:
        return library.add_location(
            root,
            mode=args.mode or "content",
            recursive=not args.one_level,
            allow_nested=args.nested,
        )
    except InvalidInputError as refused:
        try:
            return library.location(root)
        except KeyError:
            raise refused from None  # not added by anyone: the refusal stands


def report(
    library: Library,
    handle: StoppedJob,
    status: JobStatus,
    options: Options,
    *,
    thumbnails: DirectRun[Any] | None = None,
) -> int:
    """The summary of an index, and of the ``thumbnails`` job a deep index
    ran after it (in JSON, under ``"thumbnails"``)."""
    import json

    from ..indexing import IndexSummary
    from . import thumbs
    from ._report import print_errors, report_stop

    stopped = report_stop(handle, status)
    summary = handle.output() if status.finished else None
    after = EXIT_OK
    if options.json:
        out: dict[str, Any] = {"job_id": handle.id, "status": status.value}
        if isinstance(summary, IndexSummary):
            out.update(summary.to_dict())
        out["error"] = handle.error
        out["error_samples"] = [e.to_dict() for e in handle.errors()[:20]]
        if thumbnails is not None:
            after, made = thumbs.outcome(thumbnails, thumbnails.status)
            out["thumbnails"] = {
                "job_id": thumbnails.id,
                "status": thumbnails.status.value,
                **(made.to_dict() if made is not None else {}),
                "error": thumbnails.error,
                "error_samples": [e.to_dict() for e in thumbnails.errors()[:20]],
            }
        print(json.dumps(out))
    elif isinstance(summary, IndexSummary):
        s = summary
        print(
            f"{s.path}: {s.files:,} files, {s.dirs:,} dirs, {s.total_size:,} bytes "
            f"({s.mode}; {s.new:,} new, {s.modified:,} modified, {s.moved:,} moved, "
            f"{s.deleted:,} deleted, {s.unchanged:,} unchanged; {s.hashed:,} hashed) "
            f"in {s.seconds:.2f} s"
        )
        print_errors(handle, s.errors, "entries could not be read", options.max_errors)
        if thumbnails is not None:
            after = thumbs.report(library, thumbnails, thumbnails.status, options)
    if after == thumbs.EXIT_ERRORS:
        after = EXIT_OK  # unreadable images, like unreadable entries: listed, not a failure
    return after if stopped is None else stopped
