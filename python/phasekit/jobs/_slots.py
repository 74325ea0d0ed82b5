"""Which jobs run in a manager and which start next.

Shared by the manager's event loop (its scheduler) and its worker threads:
a worker that finishes a job claims the next ready one itself and runs it in
the same thread, so a busy queue costs no event-loop round trip and no new
thread hop per job. Every method takes the lock; claiming re-checks each job's
status in jobs.db, so a stale candidate is skipped, never run twice.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from ._context import JobControl
from ._definition import JobRegistry
from ._model import JobStatus, RunStart

if TYPE_CHECKING:
    from ._backend import JobBackend

#: Queued jobs read per page.
READY_PAGE = 32
#: A page of candidates older than this is read again (another process may
#: have queued a job that comes first).
CANDIDATES_TTL_S = 0.05


class Claimed(NamedTuple):
    """A job a pick claimed: it counts as running from now on."""

    job_id: str
    name: str
    control: JobControl
    #: What its run starts from, as the claim read it (its lease epoch
    #: that claim's: see JobStore.claim_runs and finish_and_claim).
    start: RunStart | None


class Slots:
    """The running jobs of one manager, and the concurrency limits."""

    def __init__(
        self,
        store: JobBackend,
        max_concurrency: int,
        limits: dict[str, int],
        registry: JobRegistry,
        types: list[str] | None = None,
        tenants: list[str] | None = None,
        tenant_limits: dict[str, int] | None = None,
    ) -> None:
        self.store = store
        self.registry = registry
        #: The tenants whose jobs this manager runs (None: every tenant's),
        #: and the most jobs of one tenant it runs at once.
        self.tenants = None if tenants is None else sorted(set(tenants))
        self.tenant_limits = dict(tenant_limits or {})
        #: The tenant of each job running here.
        self._tenant_of: dict[str, str] = {}
        #: The job types this manager runs (None: every type it knows); the
        #: others are left out of the pages read, like unknown types.
        self._types = None if types is None else frozenset(types)
        self._unwanted: set[str] = set()
        #: Job types found in the queue that no module of this process knows
        #: (as of the registry's version): left queued for a process that
        #: knows them, and left out of the pages read.
        self._unknown: set[str] = set()
        self._unknown_version = registry.version
        #: Stamped on the jobs claimed (see OwnerLease in _backend); set when the manager opens.
        self.owner: str | None = None
        self.max_concurrency = max_concurrency
        self.limits = limits
        # Guards everything below: the scheduler (event loop thread) and the
        # workers (their own threads) pick and release concurrently.
        self._lock = threading.Lock()
        self._running: dict[str, tuple[str, JobControl]] = {}
        #: Ready jobs read but not started yet, in dispatch order.
        self._candidates: list[tuple[str, str, int, str]] | None = None
        self._read_at = -math.inf
        self._closing = False
        #: Says whether to start nothing (the manager's library was closed):
        #: queued jobs then wait for another manager.
        self.stopped: Callable[[], bool] | None = None
        # What was queued here since the candidates were read, under a lock
        # of its own (held for a few operations, never during a write): the
        # highest priority dispatched, and whether something else may come
        # first whatever its priority (a resumed job). The kept candidates
        # stay the head of the queue while neither can overtake them.
        self._queued_lock = threading.Lock()
        self._queued_max = -math.inf
        self._queued_other = False

    def running(self) -> dict[str, JobControl]:
        with self._lock:
            return {job_id: control for job_id, (_, control) in self._running.items()}

    def stop(self, job_id: str, how: str) -> bool:
        """Pause (``how="pause"``) or cancel a job wherever it is: running
        here, at its next safe point; running in another process, through a
        request in jobs.db; queued (or paused, for cancel), at once. Under
        the lock, so a worker cannot claim the job in between. True if the
        job was queued or paused and is stopped now."""
        with self._lock:
            entry = self._running.get(job_id)
            if entry is not None:
                control = entry[1]
                if how == "cancel":
                    control.cancel()
                else:
                    control.pause()
                return False
            # Compare-and-set: another process may claim the job meanwhile.
            idle = (JobStatus.QUEUED,) if how == "pause" else (JobStatus.QUEUED, JobStatus.PAUSED)
            target = JobStatus.PAUSED if how == "pause" else JobStatus.CANCELLED
            if self.store.move(job_id, target, only_from=idle):
                return True
            if self.store.get_job(job_id).status is JobStatus.RUNNING:
                self.store.request_stop(job_id, how)  # running in another process
            return False

    def release(self, job_id: str) -> None:
        with self._lock:
            self._running.pop(job_id, None)
            self._tenant_of.pop(job_id, None)

    def tenant_of(self, job_id: str) -> str | None:
        """The tenant of a job running here (None: not running here). A
        single dict read: atomic under the GIL, no lock needed."""
        return self._tenant_of.get(job_id)

    def invalidate(self, priority: int | None = None) -> None:
        """Something was queued here (a new job of ``priority``, or None for
        anything else): the next pick reads the queue again if it may come
        before the kept candidates. A new job of a priority no higher than
        the last candidate's comes after them all (it is the newest), so a
        busy queue fed by dispatches is not read again for every job.

        Without the slots lock on purpose: dispatch calls it for every job,
        and workers hold that lock while they write, which would stall the
        event loop.
        """
        with self._queued_lock:
            if priority is None:
                self._queued_other = True
            elif priority > self._queued_max:
                self._queued_max = priority

    def maybe_free(self) -> bool:
        """A hint, without the lock: could a slot be free? (False: certainly
        not, unless a waiting parent frees one; the next poll sees that.)"""
        return len(self._running) < self.max_concurrency or any(
            control.waiting for _, control in list(self._running.values())
        )

    def close(self) -> None:
        """Start nothing more (the manager is shutting down)."""
        with self._lock:
            self._closing = True

    def pick(self, most: int | None = None) -> list[Claimed]:
        """Claim up to ``most`` ready jobs (default: every free slot) within
        the limits; they count as running from now on."""
        with self._lock:
            return self._pick(most, None)

    def finish_and_pick(self, job_id: str, status: JobStatus, end: dict[str, Any]) -> list[Claimed]:
        """A worker is done with ``job_id``: record its end (``end``: the
        keyword arguments of ``JobStore.finish``) and claim the next ready
        job, in one transaction; returns what it claimed (at most one)."""
        with self._lock:
            # The job keeps its slot until the next one is claimed: the
            # scheduler, seeing no free slot meanwhile, does not wait for
            # this lock only to find none.
            try:
                if self._closing:
                    self.store.finish(job_id, status, **end)
                    return []
                return self._pick(1, (job_id, status, end))
            finally:
                self._running.pop(job_id, None)
                self._tenant_of.pop(job_id, None)

    def _pick(
        self, most: int | None, finishing: tuple[str, JobStatus, dict[str, Any]] | None
    ) -> list[Claimed]:
        """Under the lock: choose and claim (with ``finishing`` recorded in
        the first claim's transaction; recorded alone if nothing is chosen)."""
        if self._closing or (self.stopped is not None and self.stopped()):
            if finishing is not None:
                done_id, status, end = finishing
                self.store.finish(done_id, status, **end)
            return []
        # A parent waiting for its children holds no slot, nor does the job
        # being finished.
        finishing_id = None if finishing is None else finishing[0]
        active = [
            name
            for job_id, (name, control) in self._running.items()
            if not control.waiting and job_id != finishing_id
        ]
        active_tenants = [
            self._tenant_of.get(job_id, "")
            for job_id, (_, control) in self._running.items()
            if not control.waiting and job_id != finishing_id
        ]
        goal = min(self.max_concurrency, len(active) + (most or self.max_concurrency))
        started: list[Claimed] = []
        offset = 0
        while len(active) < goal:
            excluded = len(self._unknown) + len(self._unwanted)
            page, full = self._page(offset)
            picked: list[tuple[str, str]] = []
            picked_tenants: list[str] = []
            rest: list[tuple[str, str, int, str]] = []
            for i, candidate in enumerate(page):
                if len(active) + len(picked) >= goal:
                    rest += page[i:]  # every slot is taken: the rest waits as it is
                    break
                job_id, name, _, tenant = candidate
                if self._types is not None and name not in self._types:
                    self._unwanted.add(name)  # for another manager: not read again
                    continue
                if name not in self.registry and not self._known(name):
                    continue  # never failed here: it waits for a process that knows it
                limit = self.limits.get(name)
                tenant_limit = self.tenant_limits.get(tenant)
                if (
                    job_id in self._running
                    or (
                        limit is not None
                        and active.count(name) + sum(1 for _, n in picked if n == name) >= limit
                    )
                    or (
                        tenant_limit is not None
                        and active_tenants.count(tenant) + picked_tenants.count(tenant)
                        >= tenant_limit
                    )
                ):
                    rest.append(candidate)
                else:
                    picked.append((job_id, name))
                    picked_tenants.append(tenant)
            # Kept only from the first page: a later page's rest would be
            # served as the head of the queue.
            self._candidates = (rest or None) if offset == 0 else None
            names = dict(picked)
            tenants_of = {job_id: t for (job_id, _), t in zip(picked, picked_tenants, strict=True)}
            ids = [job_id for job_id, _ in picked]
            claimed: list[tuple[str, RunStart | None]]
            if finishing is not None:
                done_id, status, end = finishing
                starts = self.store.finish_and_claim(done_id, status, end, ids, self.owner or "")
                claimed = [(start.record.id, start) for start in starts]
                finishing = None
            else:
                starts = self.store.claim_runs(ids, self.owner)
                claimed = [(start.record.id, start) for start in starts]
            for job_id, start in claimed:
                control = JobControl()
                self._running[job_id] = (names[job_id], control)
                self._tenant_of[job_id] = tenants_of[job_id]
                started.append(Claimed(job_id, names[job_id], control, start))
                active.append(names[job_id])
                active_tenants.append(tenants_of[job_id])
            if len(claimed) < len(picked):
                # Some were claimed elsewhere, stopped, or their conflict key
                # was taken meanwhile: the kept page is stale.
                self._candidates = None
            if picked and len(active) < goal:
                continue  # some were claimed elsewhere meanwhile: look again
            if len(self._unknown) + len(self._unwanted) > excluded:
                # Types this manager leaves to others were met: the next read
                # leaves them out, so it starts again from the head of the
                # queue (an offset past them would skip the oldest jobs).
                offset = 0
                continue
            if not full:
                break
            offset += READY_PAGE
        if finishing is not None:  # nothing was ready: record the end alone
            done_id, status, end = finishing
            self.store.finish(done_id, status, **end)
        return started

    def _known(self, name: str) -> bool:
        """Whether this process can run jobs of type ``name`` (built-in jobs
        and entry points are loaded on the first miss)."""
        if self.registry.version != self._unknown_version:
            self._unknown.clear()  # something was registered: look again
            self._unknown_version = self.registry.version
        if name in self._unknown:
            return False
        if self.registry.knows(name):
            return True
        self._unknown.add(name)
        self._unknown_version = self.registry.version
        self._candidates = None  # read again without it
        return False

    def _page(self, offset: int) -> tuple[list[tuple[str, str, int, str]], bool]:
        """Candidates: the kept page if fresh, else a page read from jobs.db."""
        kept = self._candidates
        if kept is not None and not offset and time.monotonic() - self._read_at <= CANDIDATES_TTL_S:
            with self._queued_lock:
                current = not self._queued_other and self._queued_max <= kept[-1][2]
            if current:
                return kept, False
        # Reset before the read: what is queued from now on is looked at again.
        with self._queued_lock:
            self._queued_max, self._queued_other = -math.inf, False
        if self.registry.version != self._unknown_version:
            self._unknown.clear()
            self._unknown_version = self.registry.version
        excluded = sorted(self._unknown | self._unwanted)
        page = self.store.ready(
            limit=READY_PAGE, offset=offset, exclude=excluded, tenants=self.tenants
        )
        self._read_at = time.monotonic()
        return page, len(page) == READY_PAGE
