"""What a request handler works with: the library, its job store and the
server's access rules, and the lookups that keep a tenant to its own jobs."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from starlette.requests import Request

from ._http import ApiError

if TYPE_CHECKING:
    from ..jobs import JobBackend, JobRecord, TaskRecord
    from ..library import Library
    from ._auth import Access, Principal


@dataclass(frozen=True, slots=True)
class Dashboard:
    """One server's library, job store and access rules (``app.state.dashboard``)."""

    library: Library
    #: The library's job store (jobs.db or PostgreSQL): every read and
    #: action goes through it, so the jobs of any process show and obey.
    store: JobBackend
    access: Access
    #: Set when the server stops: the event streams end (see _sse.py).
    stopping: threading.Event = field(default_factory=threading.Event)

    def close(self) -> None:
        """Close the job store and the library (the server stops)."""
        self.stopping.set()
        try:
            self.store.close()
        finally:
            self.library.close()


def dashboard(request: Request) -> Dashboard:
    """The dashboard of the app serving ``request``."""
    found = request.app.state.dashboard
    assert isinstance(found, Dashboard)
    return found


def own_job(store: JobBackend, principal: Principal, job_id: str) -> JobRecord:
    """The job ``job_id`` if ``principal`` may see it; 404 otherwise, worded
    the same for an id never used and for another tenant's job (a tenant
    learns nothing of another's)."""
    from ..errors import JobNotFound

    if "\x00" in job_id:
        # No id holds one, and PostgreSQL's store cannot be asked for it.
        raise ApiError(404, f"no job with id {job_id!r}")
    try:
        record = store.get_job(job_id)
    except JobNotFound:
        record = None
    if record is None or (principal.tenant is not None and record.tenant != principal.tenant):
        raise ApiError(404, f"no job with id {job_id!r}")
    return record


def own_task(store: JobBackend, principal: Principal, task_id: str) -> TaskRecord:
    """The task ``task_id`` if ``principal`` may see it; 404 otherwise."""
    from ..errors import TaskNotFound

    if "\x00" in task_id:  # as for a job's id (see own_job)
        raise ApiError(404, f"no task with id {task_id!r}")
    try:
        record = store.task(task_id)
    except TaskNotFound:
        record = None
    if record is None or (principal.tenant is not None and record.tenant != principal.tenant):
        raise ApiError(404, f"no task with id {task_id!r}")
    return record
