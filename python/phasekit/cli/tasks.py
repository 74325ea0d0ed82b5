"""``phasekit tasks [list|show|start|cancel]``: multi-step tasks.

``start FILE`` queues a task from its definition (a .json or .toml file: a
name and steps, each a job type and its params) for the library's workers;
``--location`` gives it a location (each step's ``location_id``), or
``--items-from`` a list of paths (each step's items: the entries scope).
Reads and writes jobs.db directly, like ``phasekit jobs``: it runs nothing.
"""

from __future__ import annotations

import argparse
import sys

from ._common import count, open_jobs, tenant_argument

# typing.TYPE_CHECKING without importing typing (see phasekit/cli/__init__.py).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..jobs import JobBackend, TaskRecord

ACTIONS = ("list", "show", "start", "cancel")

#: The command's name, its line in ``phasekit --help``, and its ``--help``
#: text (see phasekit/cli/__init__.py).
NAME = "tasks"
HELP = "start, list, show or cancel multi-step tasks"
DESCRIPTION = __doc__.splitlines()[0] if __doc__ else None
EPILOG = (
    "A step starts once every job of the step before completed; the first job "
    "that fails or is cancelled stops the task. `phasekit worker` runs them."
)


def arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", nargs="?", default="list", choices=ACTIONS,
                   help="list (default), show TASK, start FILE, cancel TASK")  # fmt: skip
    p.add_argument("target", nargs="?", default=None, metavar="TASK|FILE")
    p.add_argument("--location", default=None, metavar="PATH|ID",
                   help="start: the task's location (its steps' location_id)")  # fmt: skip
    p.add_argument("--items-from", default=None, metavar="FILE",
                   help="start: the task's items, one path per line ('-': stdin)")  # fmt: skip
    p.add_argument("-0", "--null", action="store_true",
                   help="--items-from is NUL-separated (names with newlines)")  # fmt: skip
    p.add_argument("--priority", type=int, default=0, help="start: the jobs' priority")
    p.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                   help="start: import MODULE first (it registers the steps' job types; "
                   "repeatable)")  # fmt: skip
    p.add_argument("--limit", type=count, default=100, help="list: tasks shown (default 100)")
    tenant_argument(p)
    p.add_argument("--json", action="store_true", help="JSON output")


def run(args: argparse.Namespace) -> int:
    from ..errors import InvalidInputError

    if args.action == "start":
        return _start(args)
    import contextlib

    opened = open_jobs(args, "tasks")
    if opened is None:
        return 0
    with contextlib.closing(opened) as store:
        if args.action == "list":
            return _list(store, args)
        if not args.target:
            raise InvalidInputError(f"phasekit tasks {args.action} needs a TASK id")
        record = _own(store, args.target, args.tenant)
        if args.action == "show":
            _print(record, args.json, jobs=True)
            return 0
        return _cancel(store, record)


def _own(store: JobBackend, task_id: str, tenant: str) -> TaskRecord:
    from ..errors import TaskNotFound

    record = store.task(task_id)
    if record.tenant != tenant:
        raise TaskNotFound(f"no task with id {task_id!r}")  # as if missing
    return record


def _start(args: argparse.Namespace) -> int:
    import os

    from ..errors import InvalidInputError
    from ..jobs import TaskDefinition
    from ..library import Library

    if not args.target:
        raise InvalidInputError("phasekit tasks start needs a definition FILE (.json or .toml)")
    import importlib

    for module in args.imports:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise InvalidInputError(f"--import {module}: {exc}") from exc
    definition = TaskDefinition.load(args.target)
    items = None
    if args.items_from is not None:
        if args.items_from == "-":
            data = sys.stdin.buffer.read()
        else:
            try:
                with open(args.items_from, "rb") as f:
                    data = f.read()
            except OSError as exc:
                raise InvalidInputError(f"--items-from {args.items_from}: {exc}") from exc
        sep = b"\0" if args.null else b"\n"
        items = [os.fsdecode(item) for item in data.split(sep) if item]
        if not items:
            raise InvalidInputError(f"--items-from {args.items_from}: no items")
    location: int | str | None = args.location
    if isinstance(location, str) and location.isdigit():
        location = int(location)
    with Library.open(args.library) as library:
        submission = library.start_task(
            definition,
            location=location,
            items=items,
            priority=args.priority,
            tenant=args.tenant,
        )
    if args.json:
        import json

        print(json.dumps(submission.to_dict()))
    else:
        split = " (split by the item limit)" if submission.split else ""
        print(f"{submission.task_id}  {definition.name}: {submission.job_count} jobs queued{split}")
    return 0


def _list(store: JobBackend, args: argparse.Namespace) -> int:
    records = store.tasks(tenant=args.tenant, limit=args.limit)
    if not records:
        print("phasekit: no tasks", file=sys.stderr)
    for record in records:
        _print(record, args.json, jobs=False)
    return 0


def _cancel(store: JobBackend, record: TaskRecord) -> int:
    from ..errors import JobStateError
    from ..jobs import JobStatus

    if record.finished:
        raise JobStateError(f"task {record.id} is {record.status}: nothing to cancel")
    for job in record.jobs:
        if job.status.finished:
            continue
        idle = (JobStatus.QUEUED, JobStatus.PAUSED)
        if not store.move(job.id, JobStatus.CANCELLED, only_from=idle):
            store.request_stop(job.id, "cancel")  # running: stops at its next safe point
    print(f"phasekit: task {record.id} cancelled", file=sys.stderr)
    return 0


def _print(record: TaskRecord, as_json: bool, *, jobs: bool) -> None:
    if as_json:
        import json

        from .._shapes import task_dict

        print(json.dumps(task_dict(record, jobs=jobs)))
        return
    print(
        f"{record.id}  {record.name:<20} {record.status:<10} step {record.step}/{record.steps}"
        f"  {record.percent:.0f}%  {record.scope or ''}"
    )
    if record.error:
        print(f"  {record.error}")
    if jobs:
        for job in record.jobs:
            pct = "" if job.percent is None else f" {job.percent:.0f}%"
            print(f"  step {job.step}  {job.id}  {job.name:<20} {job.status.value}{pct}")
