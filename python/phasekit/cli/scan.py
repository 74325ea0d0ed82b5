"""``phasekit scan PATH...``: walk trees without a library and count files,
dirs and bytes; with ``--hash``, cas_ids and a summary of duplicates."""

from __future__ import annotations

import argparse
import os

from ._common import count, positive_int

# typing.TYPE_CHECKING without importing typing (see phasekit/cli/__init__.py).
TYPE_CHECKING = False
if TYPE_CHECKING:
    pass


#: The command's name, its line in ``phasekit --help``, and its ``--help``
#: text (see phasekit/cli/__init__.py).
NAME = "scan"
HELP = "walk a tree; count files, dirs and bytes; --hash for cas_ids"
DESCRIPTION: str | None = None
EPILOG: str | None = None


def arguments(scan: argparse.ArgumentParser) -> None:
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
        "--threads",
        type=positive_int,
        default=None,
        help="N threads walk, hashing their folders' files with --hash, and N more hash beside "
        "them (default: 8 walk, or one per core if more, and 16 hash: PHASEKIT_READ_THREADS)",
    )
    scan.add_argument("--max-errors", type=count, default=20, help="errors to print (default 20)")


def run(args: argparse.Namespace) -> int:
    from ._scan import scan

    return scan(args)
