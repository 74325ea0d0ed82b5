"""``phasekit worker``: run the library's queued jobs until told to stop.

Any number of workers, in any number of processes, share one library: each
claims the next runnable job atomically (priority, then age), within its
concurrency and per-type limits and the jobs' conflict keys, and keeps a
heartbeat in jobs.db. A worker that dies (killed) has its jobs resumed from
their checkpoints by the others at once; one that stalls (stopped, cut off)
once its heartbeat is older than ``--stale-after``, and when it goes on its
late writes to those jobs are refused (lease epochs). SIGTERM or Ctrl-C
stops a worker gracefully: its running jobs pause at their next safe point
and go back to the queue for the other workers; a second one stops it at
once (the others resume its jobs from their checkpoints).
"""

from __future__ import annotations

import argparse
import sys

from ._common import positive_int, seconds, seconds_or_zero, tenant_name
from ._exits import EXIT_STOPPED

# typing.TYPE_CHECKING without importing typing (see phasekit/cli/__init__.py).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..library import Library

#: The command's name, its line in ``phasekit --help``, and its ``--help``
#: text (see phasekit/cli/__init__.py).
NAME = "worker"
HELP = "run queued jobs until stopped (several workers may share a library)"
DESCRIPTION = __doc__.splitlines()[0] if __doc__ else None
EPILOG = (
    "Job types of other packages are known through their entry points "
    "(group 'phasekit.jobs') or --import. A job whose type this worker does "
    "not know, or that --types leaves out, stays queued for another worker."
)


def _type_limit(text: str) -> tuple[str, int]:
    name, sep, number = text.rpartition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected TYPE=N, not {text!r}")
    return name, positive_int(number)


def _tenant_limit(text: str) -> tuple[str, int]:
    name, sep, number = text.rpartition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=N, not {text!r}")
    return tenant_name(name), positive_int(number)


def arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--concurrency", type=positive_int, default=2,
                   help="jobs run at once (default 2)")  # fmt: skip
    p.add_argument("--types", nargs="+", metavar="TYPE", default=None,
                   help="run only jobs of these types (default: every type known)")  # fmt: skip
    p.add_argument("--limit", action="append", type=_type_limit, default=[],
                   metavar="TYPE=N", help="at most N jobs of TYPE at once (repeats)")  # fmt: skip
    p.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                   help="import MODULE first (it registers job types; repeatable)")  # fmt: skip
    p.add_argument("--tenant", dest="tenants", action="append", type=tenant_name, default=None,
                   metavar="NAME", help="run only this tenant's jobs (repeatable; default: "
                   "every tenant's)")  # fmt: skip
    p.add_argument("--tenant-limit", action="append", type=_tenant_limit, default=[],
                   metavar="NAME=N", help="at most N jobs of tenant NAME at once "
                   "(repeats)")  # fmt: skip
    p.add_argument("--stale-after", type=seconds, default=None, metavar="SECONDS",
                   help="others take this worker for dead after this long without a "
                   "heartbeat (default $PHASEKIT_STALE_AFTER_S, else 30)")  # fmt: skip
    p.add_argument("--maintenance-every", type=seconds_or_zero, default=86400.0,
                   metavar="SECONDS", help="make sure the library's maintenance is "
                   "scheduled this often (default daily; 0: leave it unscheduled); "
                   "scheduled once however many workers start")  # fmt: skip


def run(args: argparse.Namespace) -> int:
    import importlib

    import anyio

    from ..errors import InvalidInputError
    from ..library import Library

    for module in args.imports:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise InvalidInputError(f"--import {module}: {exc}") from exc
    with Library.open(args.library) as library:
        if args.maintenance_every:
            # Every worker asks; the library keeps one schedule (an existing
            # one is kept as it is).
            library.schedule_maintenance(every_s=args.maintenance_every)
        return anyio.run(_work, library, args)


async def _work(library: Library, args: argparse.Namespace) -> int:
    import logging
    import os
    import signal

    import anyio

    # A worker is a service: what the job system logs (a job given up, a
    # failure with its traceback) is its output, on stderr.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("phasekit: %(levelname)s %(name)s: %(message)s"))
    logging.getLogger("phasekit").addHandler(handler)
    logging.getLogger("phasekit").setLevel(logging.WARNING)

    from ..jobs import default_registry

    default_registry.load_entry_points()
    options = {
        "max_concurrency": args.concurrency,
        "limits": dict(args.limit),
        "types": args.types,
        "stale_after_s": args.stale_after,
        "worker_info": {"command": "worker", "types": args.types, "tenants": args.tenants},
        # A shared worker runs every tenant's jobs unless told whose.
        "tenants": "*" if args.tenants is None else args.tenants,
        "tenant_limits": dict(args.tenant_limit),
    }
    async with library.jobs(**options) as manager:
        worker = manager.worker_id
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            print(f"phasekit: worker {worker} running jobs of {library.path}",
                  file=sys.stderr)  # fmt: skip
            async for signum in signals:
                name = signal.Signals(signum).name
                print(f"phasekit: worker {worker}: {name}, handing its jobs back",
                      file=sys.stderr)  # fmt: skip
                break

        def at_once(signum: int, _frame: object) -> None:
            # A second signal while the jobs stop: leave now. What runs is
            # left marked running by this process, and the other workers
            # resume it from its checkpoint as soon as the process is gone.
            name = signal.Signals(signum).name
            print(f"phasekit: worker {worker}: {name} again, stopping now", file=sys.stderr)
            os._exit(EXIT_STOPPED)

        signal.signal(signal.SIGTERM, at_once)
        signal.signal(signal.SIGINT, at_once)
        # Leaving the block pauses the running jobs at their next safe point
        # and queues them again for the other workers.
    return 0
