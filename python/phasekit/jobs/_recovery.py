"""Jobs left running by processes that died resume from their checkpoint.

One rule for every runner of a jobs.db (a manager opening and then every
RECOVER_EVERY_S, a direct run before and while it waits): a job marked
running by an owner whose lease is gone is queued again, only if it is
still that owner's (another runner may have taken it meanwhile); jobs of
live owners are left alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._model import JobStatus

if TYPE_CHECKING:
    from ._backend import JobBackend, OwnerLease

#: How often a runner looks for jobs of processes that died (seconds).
RECOVER_EVERY_S = 1.0


def recover_dead(backend: JobBackend, lease: OwnerLease) -> list[str]:
    """Queue again the jobs of dead owners; the ids queued again."""
    alive: dict[str | None, bool] = {}
    recovered = []
    for job_id, owner in backend.running_owners():
        if owner not in alive:
            alive[owner] = lease.alive(owner)
        if not alive[owner] and backend.move(
            job_id, JobStatus.QUEUED, only_from=(JobStatus.RUNNING,), owner=owner
        ):
            recovered.append(job_id)
    return recovered
