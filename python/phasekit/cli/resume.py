"""``phasekit resume [JOB]``: go on with a job, or with every interrupted,
paused or queued one, in this process."""

from __future__ import annotations

import argparse
import sys

from . import copy, delete, dupes, index, move, thumbs, validate
from ._common import tenant_argument

# typing.TYPE_CHECKING without importing typing (see phasekit/cli/__init__.py).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..library import Library
    from ._report import Reporter

#: The commands whose job types ``resume`` reports as they would.
_REPORTING = (index, dupes, validate, copy, move, delete, thumbs)


#: The command's name, its line in ``phasekit --help``, and its ``--help``
#: text (see phasekit/cli/__init__.py).
NAME = "resume"
HELP = "resume a job, or every interrupted job"
DESCRIPTION: str | None = None
EPILOG: str | None = None


def arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("job", nargs="?", default=None, metavar="JOB")
    tenant_argument(p)
    p.add_argument("--json", action="store_true", help="JSON output")


def run(args: argparse.Namespace) -> int:
    import anyio

    from ..library import Library

    with Library.open(args.library) as library:
        return anyio.run(_resume, library, args)


def reporters() -> dict[str, Reporter]:
    """Each job type's report, as the command that starts it prints it."""
    return {command.JOB_NAME: command.report for command in _REPORTING}


async def _resume(library: Library, args: argparse.Namespace) -> int:
    import time

    from ..jobs import JobStatus, default_registry
    from ._report import Options
    from ._run import run_and_report

    # Jobs other packages declare are known before the manager looks at the
    # queue: a job this process could run is never left waiting.
    default_registry.load_entry_points()
    async with library.jobs(max_concurrency=1, tenant=args.tenant) as manager:
        # Opening the manager already queued the jobs a dead process left running.
        if args.job:
            targets = [manager.handle(args.job)]
        else:
            now = time.time()
            records = manager.jobs()
            done = (JobStatus.COMPLETED, JobStatus.COMPLETED_WITH_ERRORS)
            completed = {r.id for r in records if r.status in done}
            targets = [
                manager.handle(r.id)
                for r in records
                if r.status in (JobStatus.PAUSED, JobStatus.QUEUED)
                and (r.next_run_at is None or r.next_run_at <= now)
                # A child runs with (and is shown by) its parent; the child
                # of a completed one (a deep index's thumbnails) is a job of
                # its own.
                and (r.parent_id is None or r.parent_id in completed)
            ]
        waiting = [h for h in targets if not default_registry.knows(h.record.name)]
        for handle in waiting:
            print(f"phasekit: job {handle.id} ({handle.record.name}) waits for a program "
                  "that knows its type; it stays queued", file=sys.stderr)  # fmt: skip
        targets = [h for h in targets if h not in waiting]
        if not targets:
            if not waiting:
                print("phasekit: no interrupted jobs", file=sys.stderr)
            return 0
        for handle in targets:
            if handle.status is JobStatus.PAUSED:
                await handle.resume()
        return await run_and_report(library, targets, Options(json=args.json), reporters())
