"""``phasekit ls PATH``: list a location's indexed entries."""

from __future__ import annotations

import argparse
import os
import sys

from ._common import library_name
from ._exits import EXIT_OK

#: The command's name, its line in ``phasekit --help``, and its ``--help``
#: text (see phasekit/cli/__init__.py).
NAME = "ls"
HELP = "list a location's indexed entries"
DESCRIPTION: str | None = None
EPILOG: str | None = None


def arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", type=os.fsencode, metavar="PATH")
    p.add_argument("--json", action="store_true", help="one JSON object per entry")


def run(args: argparse.Namespace) -> int:
    from ..errors import InvalidInputError
    from ..library import Library

    # Only reads: a library in PostgreSQL need not load the job store's client.
    with Library._open(args.library, run_jobs=False) as library:
        root = os.path.abspath(os.fsdecode(args.path))
        try:
            location = library.location(root)
        except KeyError:
            raise InvalidInputError(
                f"{root} is not a location of {library_name(library)}; index it first "
                f"(phasekit index {root})"
            ) from None
        # Bytes straight from the core, a page at a time (text: the path's
        # own bytes, a non-UTF-8 name as it is on disk).
        sys.stdout.flush()
        for lines in library.entries_lines(location, "json" if args.json else "text"):
            sys.stdout.buffer.write(lines)
    return EXIT_OK
