"""What the maintenance job removes from disk: thumbnail sidecars of
contents gone, and temporary files that nothing will use again.

The temporary names phasekit writes, and who could still be writing them:

- ``sidecars/<2 hex>/<cas_id>/.<variant>.webp.<pid>.<random>.tmp``: a
  thumbnail being written (``thumbs/_sidecars.py``), renamed within
  milliseconds of its creation;
- ``scratch/<copy|move>-<job>.plan`` (and ``.tmp`` while it is saved), and
  ``scratch/dupes-<job>.digests``: a copy's plan, a duplicate search's
  digests, which its job needs until it ends (a paused copy cannot resume
  without its plan, however old);
- ``.pk<job>-<n>.pktmp`` in a copy's destination folders (fileops'
  ``transfer.rs``): a file being copied where the filesystem has no unnamed
  files, or replaced; a resumed copy reuses it.

So a file is removed only when (1) the job named in it is not unfinished
(finished, or forgotten by jobs.db): no run of it will write or read it
again; and (2) nothing has written it for ``grace_s`` seconds (its mtime),
which a writer in flight moves forward with every write: a sidecar's write
lasts milliseconds, a copy writes each file in chunks of at most 64 MiB, so
a file untouched for the grace period (a day by default) is no write in
flight, even on a slow disk or from a worker on a host whose processes this
one cannot see. A sidecar's temporary file names no job: the age alone
decides.
"""

from __future__ import annotations

import os
import re
import stat
import time
from collections.abc import Callable
from pathlib import Path

from .. import fs
from .._core import CopyPlan
from ..errors import PhasekitError
from ..fileops._copy import SCRATCH_DIR

#: A scratch file of a job: ``<kind>-<job id>.<extension>``.
SCRATCH_NAME = re.compile(r"^[a-z]+-([0-9a-f]{32})\.[a-z]+$")
#: A plan of a copy or a move (its temporary files lie in its targets).
PLAN_NAME = re.compile(r"^(?:copy|move)-([0-9a-f]{32})\.plan$")


def older_than(grace_s: float, now: float | None = None) -> Callable[[Path], bool]:
    """A test of a file: nothing has written it for ``grace_s`` seconds."""
    cutoff = (time.time() if now is None else now) - grace_s

    def stale(path: Path) -> bool:
        try:
            return os.lstat(path).st_mtime < cutoff
        except OSError:
            return False  # gone meanwhile: nothing to remove

    return stale


def scratch_files(library_dir: Path, after: str) -> list[Path]:
    """The library's scratch files named after ``after``, by name."""
    folder = library_dir / SCRATCH_DIR
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.name > after and SCRATCH_NAME.match(p.name))


def job_of(path: Path) -> str:
    """The id of the job a scratch file belongs to."""
    match = SCRATCH_NAME.match(path.name)
    if match is None:
        raise ValueError(f"not a scratch file: {path}")
    return match.group(1)


def copy_temps(plan_path: Path, job_id: str, stale: Callable[[Path], bool]) -> tuple[int, int]:
    """Remove the temporary files a copy (or move) whose plan is at
    ``plan_path`` left in its destinations: names ``.pk<job_id>-<n>.pktmp``
    (no other job's), under each target folder and beside each target,
    untouched for the grace period. Returns ``(removed, kept)``."""
    try:
        targets = CopyPlan.load(plan_path).targets()
    except (OSError, PhasekitError, ValueError):
        return 0, 0  # unreadable: nothing to go by (the plan itself still goes)
    pattern = re.compile(rb"^\.pk" + job_id.encode() + rb"-[0-9]+\.pktmp$")
    found: set[bytes] = set()
    for target in targets:
        raw = os.fsencode(target)
        # A file copied to a name of its own had its temporary name beside it.
        parent = os.path.dirname(raw) or b"."
        try:
            names: list[bytes] = os.listdir(parent)
        except OSError:
            names = []
        found.update(os.path.join(parent, n) for n in names if pattern.match(n))
        if os.path.isdir(raw) and not os.path.islink(raw):
            for batch in fs.walk(raw, hidden=True):
                for i, path in enumerate(batch.paths):
                    name = os.path.basename(os.fsencode(path))
                    if pattern.match(name) and stat.S_ISREG(int(batch.modes[i])):
                        found.add(os.fsencode(path))
    removed = kept = 0
    for temp in sorted(found):
        if not stale(Path(os.fsdecode(temp))):
            kept += 1
            continue
        try:
            os.unlink(temp)
            removed += 1
        except FileNotFoundError:
            pass
    return removed, kept
