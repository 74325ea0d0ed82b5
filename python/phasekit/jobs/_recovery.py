"""Jobs left running by processes that died resume from their checkpoint.

One rule for every runner of a jobs.db (a manager opening and then every
RECOVER_EVERY_S, a direct run before and while it waits): a job marked
running by an owner whose lease is gone (its process died, or its heartbeat
is older than the staleness it declared) is queued again, only if it is
still that owner's (another runner may have taken it meanwhile); jobs of
live owners are left alone. A stalled owner that goes on later finds its
writes to those jobs refused (lease epochs: see JobBackend).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ..errors import InvalidInputError
from ._model import JobStatus

if TYPE_CHECKING:
    from ._backend import JobBackend, OwnerLease

#: How often a runner looks for jobs of processes that died (seconds).
RECOVER_EVERY_S = 1.0
#: How long a live runner may go without a heartbeat before the others take
#: it for dead (seconds), by default: long enough that a loaded machine never
#: loses a worker by accident; a process that died is known at once.
STALE_AFTER_S = 30.0


def check_stale_after(stale_after_s: float) -> float:
    """``stale_after_s`` as a float, or InvalidInputError."""
    if isinstance(stale_after_s, bool) or not isinstance(stale_after_s, int | float):
        raise InvalidInputError(f"stale_after_s must be a number, got {stale_after_s!r}")
    if not 0.1 <= stale_after_s <= 86_400:
        raise InvalidInputError(
            f"stale_after_s must be between 0.1 and 86400 seconds, got {stale_after_s!r}"
        )
    return float(stale_after_s)


def default_stale_after() -> float:
    """The staleness of this process's runners when none is given:
    ``$PHASEKIT_STALE_AFTER_S`` if set (InvalidInputError if it is not a
    number of seconds within the limits), else :data:`STALE_AFTER_S`."""
    from .._layout import STALE_AFTER_ENV

    text = os.environ.get(STALE_AFTER_ENV)
    if text is None:
        return STALE_AFTER_S
    try:
        value = float(text)
    except ValueError:
        raise InvalidInputError(f"{STALE_AFTER_ENV}={text!r}: not a number of seconds") from None
    return check_stale_after(value)


def recover_dead(backend: JobBackend, lease: OwnerLease) -> list[str]:
    """Queue again the jobs of dead owners; the ids queued again. A job
    someone asked to pause or cancel while its owner was dead or stalled
    (the request it never saw) is paused or cancelled instead."""
    alive: dict[str | None, bool] = {}
    recovered = []
    for job_id, owner in backend.running_owners():
        if owner not in alive:
            alive[owner] = lease.alive(owner)
        if alive[owner]:
            continue
        request = backend.stop_request(job_id)
        target = {"pause": JobStatus.PAUSED, "cancel": JobStatus.CANCELLED}.get(
            request or "", JobStatus.QUEUED
        )
        if (
            backend.move(job_id, target, only_from=(JobStatus.RUNNING,), owner=owner)
            and target is JobStatus.QUEUED
        ):
            recovered.append(job_id)
    return recovered
