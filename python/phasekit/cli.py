"""The phasekit command line: resumable file jobs over a library of indexed folders.

phasekit index PATH indexes a tree into the library (resumable: Ctrl-C
pauses, phasekit resume goes on); phasekit ls PATH lists what was indexed;
phasekit dupes PATH finds duplicate files; phasekit validate PATH checks an
indexed tree against the disk; phasekit jobs lists and steers the library's
jobs. phasekit scan PATH [--hash] walks a tree without a library and prints
counts (with --hash, cas_ids and a duplicate summary). --json prints
machine-readable output.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from . import __version__, fs
from ._cli_args import count, positive_int, seconds
from ._cli_dupes import add_parser as add_dupes_parser
from ._cli_jobs import cmd_jobs
from ._cli_library import cmd_index, cmd_ls, cmd_resume
from ._cli_run import EXIT_STOPPED
from ._cli_validate import add_parser as add_validate_parser
from ._progress import Progress
from .errors import PhasekitError, StorageFullError
from .fs import FsError, Kind
from .indexing import CHECKPOINT_EVERY_S
from .library import INDEX_MODES, LIBRARY_ENV


@dataclass
class ScanSummary:
    roots: list[str]
    files: int = 0
    dirs: int = 0
    symlinks: int = 0
    other: int = 0
    bytes: int = 0
    errors: list[FsError] = field(default_factory=list)
    hashed: int = 0
    distinct: int = 0
    duplicate_groups: int = 0
    duplicate_copies: int = 0
    wasted_bytes: int = 0

    def to_json(self, hashed: bool) -> dict[str, object]:
        out: dict[str, object] = {
            "roots": self.roots,
            "files": self.files,
            "dirs": self.dirs,
            "symlinks": self.symlinks,
            "other": self.other,
            "bytes": self.bytes,
            "errors": len(self.errors),
        }
        if hashed:
            out |= {
                "hashed": self.hashed,
                "distinct_contents": self.distinct,
                "duplicate_groups": self.duplicate_groups,
                "duplicate_copies": self.duplicate_copies,
                "wasted_bytes": self.wasted_bytes,
            }
        return out


def _human(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.2f} {unit}"
        value /= 1000
    return f"{n} B"


@dataclass
class _Files:
    paths: list[str] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    ids: list[tuple[int, int]] = field(default_factory=list)
    cas_ids: list[str | None] = field(default_factory=list)


def _walk(args: argparse.Namespace, summary: ScanSummary, keep_files: bool) -> _Files:
    """Walk (hashing while walking with --hash) and count."""
    import numpy as np  # here: only this command needs it (start-up time)

    files = _Files()
    with Progress("scanning", unit=" entries") as bar:
        walker = fs.walk(
            args.paths,
            follow_symlinks=args.follow_symlinks,
            hidden=args.hidden,
            skip=args.skip,
            threads=args.threads,
            cas_ids=args.hash,
        )
        with walker:
            for batch in walker:
                kinds = batch.kinds
                is_file = kinds == Kind.FILE
                summary.files += int(is_file.sum())
                summary.dirs += int((kinds == Kind.DIR).sum())
                summary.symlinks += int((kinds == Kind.SYMLINK).sum())
                summary.other += int((kinds == Kind.OTHER).sum())
                summary.bytes += int(batch.sizes[is_file].sum())
                summary.errors += batch.errors
                if keep_files:
                    for i in np.flatnonzero(is_file):
                        files.paths.append(batch.paths[i])
                        files.sizes.append(int(batch.sizes[i]))
                        files.ids.append((int(batch.devices[i]), int(batch.inodes[i])))
                        files.cas_ids.append(batch.cas_ids[i] if batch.cas_ids else None)
                bar.update(len(batch), files=f"{summary.files:,}", size=_human(summary.bytes))
    return files


def _summarise_duplicates(files: _Files, summary: ScanSummary) -> None:
    """Duplicates confirmed byte for byte.

    Files with a shared cas_id are the only candidates (cas_id covers the
    size and, up to 100 KiB, every byte); larger ones are confirmed with a
    full hash, since cas_id only samples them.
    """
    summary.hashed = sum(v is not None for v in files.cas_ids)
    inodes_of: dict[str, set[tuple[int, int]]] = {}
    for cas, ident in zip(files.cas_ids, files.ids, strict=True):
        if cas is not None:
            inodes_of.setdefault(cas, set()).add(ident)
    summary.distinct = len(inodes_of)
    shared = {cas for cas, inodes in inodes_of.items() if len(inodes) > 1}
    picked = [i for i, cas in enumerate(files.cas_ids) if cas in shared]
    report = fs.group_duplicates(
        [files.paths[i] for i in picked],
        [files.sizes[i] for i in picked],
        [files.ids[i][0] for i in picked],
        [files.ids[i][1] for i in picked],
        mode="full",
    )
    summary.errors += report.errors
    summary.duplicate_groups = len(report.groups)
    summary.duplicate_copies = sum(len(g.copies) - 1 for g in report.groups)
    summary.wasted_bytes = report.wasted


def cmd_scan(args: argparse.Namespace) -> int:
    # A root that does not exist is reported with the other errors and the
    # rest is scanned; the exit status says so (as find's does).
    missing = [p for p in args.paths if not os.path.lexists(p)]
    summary = ScanSummary(roots=[os.fsdecode(p) for p in args.paths])
    files = _walk(args, summary, keep_files=args.hash or args.list)
    if args.hash:
        _summarise_duplicates(files, summary)
    if args.list:
        for path, size, cas in zip(files.paths, files.sizes, files.cas_ids, strict=True):
            if args.json:
                print(json.dumps({"path": path, "size": size, "cas_id": cas}))
            else:
                print(f"{cas or '-':16}  {size:>12}  {path}")
    for err in summary.errors[: args.max_errors]:
        print(f"phasekit: {err}", file=sys.stderr)
    if len(summary.errors) > args.max_errors:
        print(
            f"phasekit: ... and {len(summary.errors) - args.max_errors} more errors",
            file=sys.stderr,
        )
    if args.json:
        print(json.dumps(summary.to_json(args.hash)))
    else:
        s = summary
        print(
            f"{s.files:,} files, {s.dirs:,} dirs, {s.symlinks:,} symlinks, {s.other:,} other; "
            f"{_human(s.bytes)} ({s.bytes:,} bytes); {len(s.errors):,} errors"
        )
        if args.hash:
            print(
                f"hashed {s.hashed:,} files: {s.distinct:,} distinct contents; "
                f"{s.duplicate_groups:,} duplicate groups, {s.duplicate_copies:,} extra copies, "
                f"{_human(s.wasted_bytes)} wasted"
            )
    return 1 if missing else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="phasekit", description=__doc__.splitlines()[0] if __doc__ else None
    )
    parser.add_argument("--version", action="version", version=f"phasekit {__version__}")
    parser.add_argument(
        "--library",
        metavar="DIR",
        default=None,
        help=f"the library folder (default: ${LIBRARY_ENV}, else a per-user data folder)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _library_commands(sub)
    add_dupes_parser(sub)
    add_validate_parser(sub)
    scan = sub.add_parser(
        "scan", help="walk a tree; count files, dirs and bytes; --hash for cas_ids"
    )
    scan.add_argument("paths", nargs="+", type=os.fsencode, metavar="PATH")
    scan.add_argument(
        "--hash", action="store_true", help="compute cas_ids and summarise duplicates"
    )
    scan.add_argument("--list", action="store_true", help="print every file (with its cas_id)")
    scan.add_argument("--json", action="store_true", help="machine-readable output (JSON lines)")
    scan.add_argument("--follow-symlinks", action="store_true", help="walk into linked directories")
    scan.add_argument("--no-hidden", dest="hidden", action="store_false", help="skip dot-files")
    scan.add_argument(
        "--skip",
        action="append",
        default=[],
        metavar="PATTERN",
        help="skip names matching this shell pattern (repeatable)",
    )
    scan.add_argument(
        "--threads", type=positive_int, default=None, help="worker threads (default: cores)"
    )
    scan.add_argument("--max-errors", type=count, default=20, help="errors to print (default 20)")
    scan.set_defaults(func=cmd_scan)
    return parser


def _library_commands(sub: Any) -> None:
    index = sub.add_parser("index", help="index a tree into the library (resumable)")
    index.add_argument("path", type=os.fsencode, metavar="PATH")
    index.add_argument("--mode", choices=INDEX_MODES, default=None,
                       help="shallow: metadata; content: + cas_ids (default for a new "
                       "location); deep: + full checksums")  # fmt: skip
    index.add_argument("--one-level", action="store_true", help="index PATH's children only")
    index.add_argument("--nested", action="store_true",
                       help="allow PATH inside (or around) another location")  # fmt: skip
    index.add_argument("--ephemeral", action="store_true",
                       help="index without a location; nothing is written")  # fmt: skip
    index.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    index.add_argument("--threads", type=positive_int, default=None, help="worker threads")
    index.add_argument("--batch-size", type=positive_int, default=1000,
                       help="entries per batch and transaction (default 1000)")  # fmt: skip
    index.add_argument("--checkpoint-every", type=seconds, default=CHECKPOINT_EVERY_S,
                       metavar="SECONDS", help="checkpoint at least this often (default "
                       f"{CHECKPOINT_EVERY_S:g})")  # fmt: skip
    index.add_argument("--max-errors", type=count, default=20, help="errors to print (default 20)")
    index.set_defaults(func=cmd_index)

    ls = sub.add_parser("ls", help="list a location's indexed entries")
    ls.add_argument("path", type=os.fsencode, metavar="PATH")
    ls.add_argument("--json", action="store_true", help="one JSON object per entry")
    ls.set_defaults(func=cmd_ls)

    jobs = sub.add_parser("jobs", help="list, show, pause, resume or cancel jobs; history")
    jobs.add_argument("action", nargs="?", default="list",
                      choices=("list", "show", "pause", "resume", "cancel", "history", "repair"),
                      help="list (default), show JOB, pause JOB, resume JOB, cancel JOB, "
                      "history, or repair (move a damaged jobs.db aside)")  # fmt: skip
    jobs.add_argument("job", nargs="?", default=None, metavar="JOB")
    jobs.add_argument("--all", action="store_true", help="list finished jobs too")
    jobs.add_argument("--debug", action="store_true",
                      help="show: the traceback of a failure too")  # fmt: skip
    jobs.add_argument("--limit", type=count, default=100, help="history entries (default 100)")
    jobs.add_argument("--json", action="store_true", help="JSON output")
    jobs.set_defaults(func=cmd_jobs)

    resume = sub.add_parser("resume", help="resume a job, or every interrupted job")
    resume.add_argument("job", nargs="?", default=None, metavar="JOB")
    resume.add_argument("--json", action="store_true", help="JSON output")
    resume.set_defaults(func=cmd_resume)


def main(argv: Sequence[str] | None = None) -> int:
    _paths_as_bytes()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except KeyboardInterrupt:
        print("phasekit: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`phasekit ls ... | head`): not an error. Point
        # stdout at /dev/null so the interpreter's final flush stays quiet.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except StorageFullError as exc:
        # The job (if one ran) is left interrupted; the message says what to do.
        print(f"phasekit: error: {exc}", file=sys.stderr)
        return EXIT_STOPPED
    except (ValueError, OSError, PhasekitError) as exc:
        print(f"phasekit: error: {exc}", file=sys.stderr)
        return 2
    except KeyError as exc:
        print(f"phasekit: error: {exc.args[0] if exc.args else exc}", file=sys.stderr)
        return 2
    return code


def _paths_as_bytes() -> None:
    """Print paths as their exact bytes: a name that is not UTF-8 reaches
    Python with surrogate escapes (os.fsdecode), which a strict stdout would
    refuse; written back with the same handler, it comes out as it is on disk
    (as ls and find print it). JSON output escapes such characters itself."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None and getattr(stream, "errors", None) == "strict":
            reconfigure(errors="surrogateescape")


if __name__ == "__main__":
    sys.exit(main())
