"""The JSON shapes of the job store's records, as ``phasekit jobs``,
``phasekit tasks`` and ``phasekit events`` print them with ``--json`` and
the web dashboard serves them under ``/api/``: one definition, so a script
written against either reads the other.

Paths inside these values are ``os.fsdecode`` strings (see
:func:`phasekit._json.json_ready`): a name that is not UTF-8 keeps its
surrogate escapes, which ``json.dumps`` writes as ``\\udcXX``. Loads no job
system at import: the command line's start-up pays only for what it uses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .jobs import JobBackend, JobProgress, JobRecord, JobStatus, TaskRecord, WorkerRecord


def job_row(store: JobBackend, record: JobRecord) -> dict[str, Any]:
    """The record's own JSON shape, with its status and progress as of now
    (a listing's line: ``phasekit jobs --json``)."""
    status, progress = store.status_and_progress(record.id)
    return _row(record, status, progress)


def _row(record: JobRecord, status: JobStatus, progress: JobProgress | None) -> dict[str, Any]:
    return {
        **record.to_dict(),
        "status": status.value,
        "percent": None if progress is None else progress.percent,
        "phase": None if progress is None or progress.phase is None else progress.phase.name,
    }


def job_rows(
    store: JobBackend, records: list[JobRecord], *, finished: bool
) -> list[dict[str, Any]]:
    """The listing of ``records`` (:func:`job_row` each, their statuses and
    progress read together), without the finished ones unless ``finished``
    and without those gone meanwhile; each says whether it is
    ``interrupted``: marked running while no live process runs it (killed:
    the next manager to open the library resumes it)."""
    now = store.statuses_and_progress([r.id for r in records])
    rows = [_row(r, *now[r.id]) for r in records if r.id in now]
    if not finished:
        rows = [row for row in rows if not now[row["id"]][0].finished]
    if not any(row["status"] == "running" for row in rows):
        for row in rows:
            row["interrupted"] = False
        return rows
    owners = dict(store.running_owners())
    alive = set(store.live_owners())
    for row in rows:
        row["interrupted"] = row["status"] == "running" and owners.get(row["id"]) not in alive
    return rows


def waiting_note(record: JobRecord) -> str | None:
    """Why an unfinished job may not be running: its type is unknown here."""
    from .jobs import default_registry

    if record.status.finished or default_registry.knows(record.name):
        return None
    return (
        f"no module known to this program defines job type {record.name!r}: the job "
        "waits (it is never failed for it) for a program that registers that type"
    )


def job_detail(store: JobBackend, record: JobRecord, *, debug: bool = False) -> dict[str, Any]:
    """One job whole (``phasekit jobs show --json``): its row, input,
    output, warnings, errors, metrics, phases with their history, why it
    waits, and with ``debug`` the traceback of its last failure. Write it
    with ``json.dumps(..., default=str)``: an input may hold values JSON
    has no type for."""
    from ._json import json_ready
    from .jobs import phase_history

    out = job_row(store, record)
    out["input"] = record.input()
    out.update(json_ready(store.outcome(record.id)))
    out["phases"] = json_ready(phase_history(store, record.id))
    note = waiting_note(record)
    if note is not None:
        out["waiting"] = note
    if debug:
        out["traceback"] = store.traceback(record.id)
    return out


def worker_rows(
    store: JobBackend, tenant: str | None, workers: list[WorkerRecord] | None = None
) -> list[dict[str, Any]]:
    """The library's workers (``phasekit jobs workers --json``), each with
    whether it is ``alive``. The workers are the library's, whoever's jobs
    they run; of their jobs, only ``tenant``'s are named (None: every
    tenant's)."""
    from .jobs import JobStatus

    listed = store.workers() if workers is None else workers
    alive = set(store.live_owners())
    mine = {r.id for r in store.list_jobs(JobStatus.RUNNING, tenant=tenant)}
    rows = []
    for w in listed:
        row = {**w.to_dict(), "alive": w.id in alive}
        row["jobs"] = [job_id for job_id in w.jobs if job_id in mine]
        rows.append(row)
    return rows


def task_dict(record: TaskRecord, *, jobs: bool) -> dict[str, Any]:
    """A task (``phasekit tasks show --json``); without ``jobs``, as a
    listing's line (``phasekit tasks list --json``)."""
    out = record.to_dict()
    if not jobs:
        out.pop("jobs")
    return out
