"""phasekit jobs [list|show|pause|resume|cancel|history|repair].

These read and write jobs.db directly, without starting a manager, so they
never run a job themselves and can be used while another process runs jobs
(a running job is paused or cancelled through a request it sees at its next
safe point).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys

from .._layout import JOBS_ENV
from ._common import count, jobs_db, library_database, open_jobs, tenant_argument
from ._exits import EXIT_USAGE

# typing.TYPE_CHECKING without importing typing (see phasekit/cli/__init__.py).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..jobs import JobBackend, JobRecord

ACTIONS = ("list", "show", "pause", "resume", "cancel", "history", "workers", "repair")


#: The command's name, its line in ``phasekit --help``, and its ``--help``
#: text (see phasekit/cli/__init__.py).
NAME = "jobs"
HELP = "list, show, pause, resume or cancel jobs; history"
DESCRIPTION: str | None = None
EPILOG: str | None = None


def arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", nargs="?", default="list", choices=ACTIONS,
                   help="list (default), show JOB, pause JOB, resume JOB, cancel JOB, "
                   "history, workers (with their heartbeats and jobs), or repair "
                   "(move a damaged jobs.db aside)")  # fmt: skip
    p.add_argument("job", nargs="?", default=None, metavar="JOB")
    p.add_argument("--all", action="store_true", help="list finished jobs too")
    p.add_argument("--debug", action="store_true",
                   help="show: the traceback of a failure too")  # fmt: skip
    p.add_argument("--limit", type=count, default=100, help="history entries (default 100)")
    tenant_argument(p)
    p.add_argument("--scope", default=None, metavar="SCOPE",
                   help="list: only jobs of this scope (global, entries, location:ID)")  # fmt: skip
    p.add_argument("--task", default=None, metavar="TASK", help="list: only this task's jobs")
    p.add_argument("--json", action="store_true", help="JSON output")


def _store(args: argparse.Namespace) -> JobBackend | None:
    """The library's job store, or None (after saying so) if it has none."""
    return open_jobs(args)


def run(args: argparse.Namespace) -> int:
    from ..errors import InvalidInputError

    if args.action == "repair":
        return _repair(args)
    store = _store(args)
    if store is None:
        return 0
    with contextlib.closing(store):
        action = args.action
        if action == "list":
            return _list(store, args)
        if action == "history":
            return _history(store, args)
        if action == "workers":
            return _workers(store, args)
        if not args.job:
            raise InvalidInputError(f"phasekit jobs {action} needs a JOB id")
        record = store.get_job(args.job)  # JobNotFound: unknown id
        if record.tenant != args.tenant:
            from ..errors import JobNotFound

            # Worded as for a missing job: a tenant learns nothing of another's.
            raise JobNotFound(f"no job with id {args.job!r}")
        if action == "show":
            return _show(store, record, args)
        return _control(store, record, action)


def _list(store: JobBackend, args: argparse.Namespace) -> int:
    import json

    from .._shapes import job_rows
    from ..jobs._scope import check_scope

    scope = None if args.scope is None else check_scope(args.scope)
    # Without --all only the unfinished jobs are read: the cost of a listing
    # is what it shows, not the library's whole history.
    listed = store.list_jobs(
        tenant=args.tenant, scope=scope, task_id=args.task, unfinished=not args.all
    )
    # A job marked running whose process is gone (killed) is interrupted:
    # the next manager to open the library resumes it.
    rows = job_rows(store, listed, finished=args.all)
    if not rows:
        what = "jobs" if args.all else "unfinished jobs (--all lists finished ones too)"
        print(f"phasekit: no {what}", file=sys.stderr)
    for row in rows:
        if args.json:
            print(json.dumps(row))
        else:
            pct = "" if row["percent"] is None else f" {row['percent']:.0f}%"
            phase = f" [{row['phase']}]" if row["phase"] else ""
            note = "  (interrupted: phasekit resume goes on)" if row["interrupted"] else ""
            print(f"{row['id']}  {row['name']:<20} {row['status']:<22}{pct}{phase}{note}")
    return 0


def _workers(store: JobBackend, args: argparse.Namespace) -> int:
    import json
    import time

    from .._shapes import worker_rows

    workers = store.workers()
    if not workers:
        print("phasekit: no workers (none runs jobs of this library now)", file=sys.stderr)
    now = time.time()
    for w, row in zip(workers, worker_rows(store, args.tenant, workers), strict=True):
        if args.json:
            print(json.dumps(row))
        else:
            state = "alive" if row["alive"] else "stale or gone"
            print(f"{w.id}  {w.host}:{w.pid:<8} heartbeat {now - w.heartbeat_at:5.1f} s ago"
                  f"  {state:<13}  {len(w.jobs)} running")  # fmt: skip
    return 0


def _history(store: JobBackend, args: argparse.Namespace) -> int:
    import json
    import time

    entries = store.history(limit=args.limit, tenant=args.tenant)
    if not entries:
        print("phasekit: no finished jobs in the history", file=sys.stderr)
    for h in entries:
        if args.json:
            print(json.dumps(h.to_dict()))
        else:
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(h.finished_at))
            print(f"{when}  {h.id}  {h.name:<20} {h.status.value}")
    return 0


def _show(store: JobBackend, record: JobRecord, args: argparse.Namespace) -> int:
    import json

    from .._shapes import job_detail

    out = job_detail(store, record, debug=args.debug)
    if args.json:
        print(json.dumps(out, default=str))
        return 0
    trace = out.pop("traceback", None)
    for key, value in out.items():
        print(f"{key}: {value}")
    if args.debug:
        print("traceback:" if trace else "traceback: none recorded")
        if trace:
            print(trace.rstrip())
    return 0


def _control(store: JobBackend, record: JobRecord, action: str) -> int:
    from ..jobs import JobStatus

    if record.status.finished:
        print(f"{record.id} is {record.status.value}: nothing to {action}", file=sys.stderr)
        return 1
    # Compare-and-set moves: a manager in another process may claim the job
    # between our read and our write; then it is asked through jobs.db.
    if action == "pause":
        if store.move(record.id, JobStatus.PAUSED, only_from=(JobStatus.QUEUED,)):
            print(f"{record.id}: paused")
        elif store.request_stop(record.id, "pause"):
            print(f"{record.id}: asked to pause at its next safe point")
        else:
            status = store.get_job(record.id).status
            print(f"{record.id} is {status.value}: nothing to pause", file=sys.stderr)
            return 1
    elif action == "resume":
        if not store.move(record.id, JobStatus.QUEUED, only_from=(JobStatus.PAUSED,)):
            status = store.get_job(record.id).status
            print(f"{record.id} is {status.value}, not paused", file=sys.stderr)
            return 1
        alive = store.live_owners()
        runner = "a running worker takes it" if alive else "`phasekit resume` runs it"
        print(f"{record.id}: queued; {runner}")
    elif action == "cancel":
        for job_id in [record.id, *store.descendants(record.id)]:
            idle = (JobStatus.QUEUED, JobStatus.PAUSED)
            if not store.move(job_id, JobStatus.CANCELLED, only_from=idle):
                store.request_stop(job_id, "cancel")  # running (no-op if finished)
        print(f"{record.id}: cancelled")
    return 0


def _repair(args: argparse.Namespace) -> int:
    # Imported here: only this rarely used command needs it.
    from ..jobs.sqlite import repair

    if os.environ.get(JOBS_ENV) or library_database(args):
        print(
            "phasekit: repair mends a damaged jobs.db; the library's jobs are in"
            " PostgreSQL, whose own tools check it",
            file=sys.stderr,
        )
        return EXIT_USAGE
    path = jobs_db(args)
    report = repair(path)
    if not path.exists() and report.problem is None:
        print(f"phasekit: no jobs.db in {path.parent}: nothing to repair", file=sys.stderr)
        return 0
    if report.moved_to is None:
        print(f"{path}: no damage found; nothing was changed")
        return 0
    print(f"{path} was damaged: {report.problem}")
    print(f"moved it to {report.moved_to}; a fresh jobs.db is in place")
    print("the library's entries (library.db) are untouched")
    if report.lost is None:
        print("no job could be read from the damaged file: its jobs and their history are lost")
    else:
        unfinished = report.unfinished
        print(f"lost: {len(report.lost):,} jobs ({len(unfinished):,} unfinished)")
        for job_id, name, status in unfinished:
            print(f"  {job_id}  {name:<20} {status}  (dispatch it again)")
    return 0
