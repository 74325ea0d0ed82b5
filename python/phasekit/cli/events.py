"""``phasekit events``: the library's event log, every status and progress
change of every job, by whichever process made it; ``--follow`` keeps
printing them as they happen (resume with ``--after`` the last id seen).

Reads jobs.db directly, like ``phasekit jobs``: it never runs a job.
"""

from __future__ import annotations

import argparse
import sys

from ._common import count, open_jobs, tenant_argument

# typing.TYPE_CHECKING without importing typing (see phasekit/cli/__init__.py).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..jobs import JobBackend, JobEvent

#: The command's name, its line in ``phasekit --help``, and its ``--help``
#: text (see phasekit/cli/__init__.py).
NAME = "events"
HELP = "the job event log; --follow prints changes as they happen"
DESCRIPTION = __doc__.splitlines()[0] if __doc__ else None
EPILOG = (
    "Each event has an id (its 'seq'); ids only grow, in the order the changes "
    "were stored. A reader that stops and runs again with --after LAST_ID misses nothing."
)


def arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--follow", "-f", action="store_true",
                   help="keep printing new events until interrupted")  # fmt: skip
    p.add_argument("--after", type=count, default=None, metavar="ID",
                   help="start after event ID (default: the oldest kept; "
                   "with --follow, from now)")  # fmt: skip
    tenant_argument(p, "only this tenant's jobs' events (default: every tenant's)", None)
    p.add_argument("--json", action="store_true", help="one JSON object per line")


def run(args: argparse.Namespace) -> int:
    import contextlib

    opened = open_jobs(args, "jobs")
    if opened is None:
        return 0
    with contextlib.closing(opened) as store:
        if not args.follow:
            after = args.after or 0
            while True:
                events = store.events(after=after, limit=1000, tenant=args.tenant)
                for event in events:
                    _print(event, args.json)
                    after = event.seq
                if len(events) < 1000:
                    return 0
        import anyio

        return anyio.run(_follow, store, args)


async def _follow(store: JobBackend, args: argparse.Namespace) -> int:
    import signal

    import anyio

    from ..jobs import follow_events

    async with anyio.create_task_group() as tg:

        async def stop_on_signal() -> None:
            with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async for _ in signals:
                    tg.cancel_scope.cancel()
                    return

        tg.start_soon(stop_on_signal)
        async for event in follow_events(store, after=args.after, tenant=args.tenant):
            _print(event, args.json)
    return 0


def _print(event: JobEvent, as_json: bool) -> None:
    if as_json:
        import json

        line = json.dumps(event.to_dict())
    else:
        import time

        when = time.strftime("%H:%M:%S", time.localtime(event.at))
        percent = event.progress.percent if event.progress is not None else None
        shown = "" if percent is None or event.kind == "status" else f" {percent:.0f}%"
        line = (
            f"{event.seq:>8}  {when}  {event.job_id}  {event.name:<20} {event.status.value}{shown}"
        )
    # Flushed per line: a reader at the other end of a pipe sees each event
    # as it happens.
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
