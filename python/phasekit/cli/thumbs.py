"""phasekit thumbs PATH [--variant NAME:SIZE[:QUALITY]]... [--save-variants] [--regenerate]
[--json].

Makes the WebP thumbnails of every image of an indexed location, one set
per content, in the library folder (``sidecars/``), and removes those of
contents the library no longer has. Resumable (Ctrl-C pauses; phasekit
resume goes on).

Exit status: 0 done, 1 done with images that could not be read, 2 could not
run, 75 stopped (disk full), 130 paused.
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
    from ..thumbs import ThumbsSummary
    from ._report import Options, StoppedJob

JOB_NAME = "phasekit.thumbs"
EXIT_DONE, EXIT_ERRORS, EXIT_FAILED = 0, 1, 2

NAME = "thumbs"
HELP = "make WebP thumbnails of a location's images (once per content)"
DESCRIPTION: str | None = None
EPILOG: str | None = (
    "exit status: 0 done, 1 done with unreadable images, 2 could not run, "
    "75 stopped (disk full), 130 paused"
)


def _variant(text: str) -> dict[str, object]:
    parts = text.split(":")
    if len(parts) not in (2, 3) or not all(p.isdigit() for p in parts[1:]):
        raise argparse.ArgumentTypeError(f"NAME:SIZE[:QUALITY], not {text!r}")
    out: dict[str, object] = {"name": parts[0], "size": int(parts[1])}
    if len(parts) == 3:
        out["quality"] = int(parts[2])
    return out


def arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", type=os.fsencode, metavar="PATH", help="an indexed location")
    p.add_argument("--variant", type=_variant, action="append", default=None,
                   metavar="NAME:SIZE[:QUALITY]",
                   help="a variant to make (repeatable; default: the library's, "
                   "grid:256:75, grid@2x:512:78, detail:1024:82 unless saved)")  # fmt: skip
    p.add_argument("--save-variants", action="store_true",
                   help="store the --variant list as the library's (later runs and "
                   "deep indexes make them; files of other variants are removed)")  # fmt: skip
    p.add_argument("--regenerate", action="store_true", help="make them again even if whole")
    p.add_argument("--json", action="store_true", help="the summary as one JSON object")
    p.add_argument("--threads", type=positive_int, default=None, help="images made at once")


def run(args: argparse.Namespace) -> int:
    import sys

    from ..errors import InvalidInputError
    from ..library import Library
    from ..thumbs import ThumbsJob
    from ._one import dispatch_and_report
    from ._report import Options
    from .validate import _location

    root = os.path.abspath(os.fsdecode(args.path))
    with Library.open(args.library) as library:
        try:
            location = _location(library, root)
            variants = args.variant
            if args.save_variants:
                if not variants:
                    raise InvalidInputError("--save-variants needs the --variant list to save")
                library.set_thumbnail_variants(variants)
                variants = None  # the library's: other variants' files are removed
            job = ThumbsJob(
                location.id,
                variants=variants,
                regenerate=args.regenerate,
                threads=args.threads,
            )
        except InvalidInputError as exc:
            print(f"phasekit thumbs: {exc}", file=sys.stderr)
            return EXIT_FAILED
        return dispatch_and_report(library, job, Options(json=args.json), {JOB_NAME: report})


def outcome(handle: StoppedJob, status: JobStatus) -> tuple[int, ThumbsSummary | None]:
    """A thumbnail job's exit status and summary (None unless it finished;
    why it stopped is said on stderr)."""
    from ..thumbs import ThumbsSummary
    from ._report import finished_output

    summary = finished_output(handle, status, ThumbsSummary)
    if isinstance(summary, int):
        return (EXIT_FAILED if summary == EXIT_FAILED_JOB else summary), None
    return (EXIT_ERRORS if summary.errors else EXIT_DONE), summary


def report(library: Library, handle: StoppedJob, status: JobStatus, options: Options) -> int:
    """What a thumbnail job did."""
    import json

    from ._report import print_errors

    code, summary = outcome(handle, status)
    if summary is None:
        return code
    if options.json:
        print(json.dumps({"job_id": handle.id, **summary.to_dict()}))
    else:
        print(f"{summary.images:,} images ({summary.contents:,} contents): made "
              f"{summary.made:,} ({summary.variants_made:,} variants), removed "
              f"{summary.removed:,} gone{_dropped(summary.variants_removed)}, "
              f"in {summary.seconds:.1f} s")  # fmt: skip
    print_errors(handle, summary.errors, "images not made", options.max_errors)
    return code


def _dropped(count: int) -> str:
    return f" and {count:,} files of variants no longer listed" if count else ""
