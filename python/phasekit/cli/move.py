"""phasekit move SRC... DEST [--conflict ...] [--verify].

Moves files and folders as a resumable job: one rename each within a
filesystem when the destination name is free; across filesystems each file
is copied, synced, then its source removed, so an interruption never leaves
a file in neither place. Options and exit statuses as phasekit copy.
"""

from __future__ import annotations

import argparse

from . import copy

JOB_NAME = "phasekit.move"
NAME = "move"
HELP = "move files and folders (one rename within a filesystem; resumable across)"
DESCRIPTION: str | None = None
EPILOG: str | None = copy.EPILOG
arguments = copy.arguments
report = copy.report


def run(args: argparse.Namespace) -> int:
    return copy.run_transfer(args, move=True)
