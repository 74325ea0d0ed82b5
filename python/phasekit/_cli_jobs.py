"""``phasekit jobs [list|show|pause|resume|cancel|history]``.

These read and write jobs.db directly, without starting a manager, so they
never run a job themselves and can be used while another process runs jobs
(a running job is paused or cancelled through a request it sees at its next
safe point).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from ._cli_run import plain
from .jobs import JobRecord, JobStatus, JobStore, phase_history
from .library import default_library_path


def _store(args: argparse.Namespace) -> JobStore:
    folder = Path(args.library) if args.library else default_library_path()
    if not (folder / "jobs.db").exists():
        raise ValueError(f"no jobs in {folder} (no jobs.db yet)")
    return JobStore(folder / "jobs.db")


def _row(store: JobStore, r: JobRecord) -> dict[str, Any]:
    status, progress = store.status_and_progress(r.id)
    return {
        "id": r.id,
        "name": r.name,
        "status": status.value,
        "priority": r.priority,
        "parent_id": r.parent_id,
        "created_at": r.created_at,
        "updated_at": r.updated_at,
        "percent": None if progress is None else progress.percent,
        "phase": None if progress is None or progress.phase is None else progress.phase.name,
        "error": r.error,
    }


def cmd_jobs(args: argparse.Namespace) -> int:
    with _store(args) as store:
        action = args.action
        if action == "list":
            rows = [_row(store, r) for r in store.list_jobs()]
            if not args.all:
                rows = [r for r in rows if not JobStatus(r["status"]).finished]
            for row in rows:
                if args.json:
                    print(json.dumps(row))
                else:
                    pct = "" if row["percent"] is None else f" {row['percent']:.0f}%"
                    phase = f" [{row['phase']}]" if row["phase"] else ""
                    print(f"{row['id']}  {row['name']:<20} {row['status']:<22}{pct}{phase}")
            return 0
        if action == "history":
            for h in store.history(limit=args.limit):
                entry = {
                    "id": h.id,
                    "name": h.name,
                    "status": h.status.value,
                    "started_at": h.started_at,
                    "finished_at": h.finished_at,
                    "error": h.error,
                    "errors": h.error_count,
                    "warnings": h.warning_count,
                }
                if args.json:
                    print(json.dumps(entry))
                else:
                    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(h.finished_at))
                    print(f"{when}  {h.id}  {h.name:<20} {h.status.value}")
            return 0
        if not args.job:
            raise ValueError(f"phasekit jobs {action} needs a JOB id")
        record = store.get_job(args.job)  # KeyError: unknown id
        if action == "show":
            out = _row(store, record)
            out["input"] = record.input()
            out.update(plain(store.outcome(record.id)))
            out["phases"] = plain(phase_history(store, record.id))
            if args.json:
                print(json.dumps(out, default=str))
            else:
                for key, value in out.items():
                    print(f"{key}: {value}")
            return 0
        return _control(store, record, action)


def _control(store: JobStore, record: JobRecord, action: str) -> int:
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
        print(f"{record.id}: queued; `phasekit resume` runs it")
    elif action == "cancel":
        for job_id in [record.id, *store.descendants(record.id)]:
            idle = (JobStatus.QUEUED, JobStatus.PAUSED)
            if not store.move(job_id, JobStatus.CANCELLED, only_from=idle):
                store.request_stop(job_id, "cancel")  # running (no-op if finished)
        print(f"{record.id}: cancelled")
    return 0
