"""``phasekit ls PATH``: list a location's indexed entries."""

from __future__ import annotations

import argparse
import os
import sys

from ._exits import EXIT_OK

# typing.TYPE_CHECKING without importing typing (see phasekit/cli/__init__.py).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ..library import Entry

_KINDS = {0: "file", 1: "dir", 2: "symlink", 3: "other"}


#: The command's name, its line in ``phasekit --help``, and its ``--help``
#: text (see phasekit/cli/__init__.py).
NAME = "ls"
HELP = "list a location's indexed entries"
DESCRIPTION: str | None = None
EPILOG: str | None = None


def arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", type=os.fsencode, metavar="PATH")
    p.add_argument("--json", action="store_true", help="one JSON object per entry")


def entry_json(entry: Entry) -> dict[str, Any]:
    return {
        "path": entry.path,
        "kind": _KINDS.get(int(entry.kind), "other"),
        "size": entry.size,
        "mtime_ns": entry.mtime_ns,
        "ctime_ns": entry.ctime_ns,
        "inode": entry.inode,
        "device": entry.device,
        "mode": entry.mode,
        "cas_id": entry.cas_id,
        "checksum": entry.checksum,
        "agg_size": entry.agg_size,
        "file_count": entry.file_count,
        "id": entry.id,
        "parent_id": entry.parent_id,
    }


def run(args: argparse.Namespace) -> int:
    import json

    from ..errors import InvalidInputError
    from ..library import Library

    with Library.open(args.library) as library:
        root = os.path.abspath(os.fsdecode(args.path))
        try:
            location = library.location(root)
        except KeyError:
            raise InvalidInputError(
                f"{root} is not a location of {library.path}; index it first "
                f"(phasekit index {root})"
            ) from None
        out = sys.stdout
        for entry in library.entries(location):
            if args.json:
                out.write(json.dumps(entry_json(entry)) + "\n")
            else:
                kind = _KINDS.get(int(entry.kind), "other")
                size = entry.agg_size if entry.agg_size is not None else entry.size
                out.write(f"{kind:7} {size:>14,}  {entry.path}\n")
    return EXIT_OK
