"""Which jobs run in a manager and which start next.

Shared by the manager's event loop (its scheduler) and its worker threads:
a worker that finishes a job claims the next ready one itself and runs it in
the same thread, so a busy queue costs no event-loop round trip and no new
thread hop per job. Every method takes the lock; claiming re-checks each job's
status in jobs.db, so a stale candidate is skipped, never run twice.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from ._codec import encode
from ._context import JobControl
from ._definition import JobRegistry
from ._model import JobStatus, RunStart

if TYPE_CHECKING:
    from ._backend import JobBackend

log = logging.getLogger("phasekit.jobs")

#: Queued jobs read per page.
READY_PAGE = 32
#: A page of candidates older than this is read again (another process may
#: have queued a job that comes first).
CANDIDATES_TTL_S = 0.05


#: A run's end kept for a group write: ``(job_id, name, status, end)``.
Ended = tuple[str, str, JobStatus, dict[str, Any]]
#: Ends written apart from a run's own call, or not written and why.
Report = tuple[list[Ended], Exception | None]

#: A run shorter than this (seconds) is short: after it, a worker claims
#: PREFETCH jobs at once, and the ends of short runs are written together,
#: at most GROUP_ENDS per write and none more than GROUP_WAIT_S after it
#: ended. Each write of jobs.db costs about as much as a no-op job (a commit,
#: the pages of the jobs table, its indexes and the event log): grouping
#: the ends and claims of many jobs in one write halves the cost per job
#: (benches/bench_workers.py: 8 at a time gave 7,800 no-op jobs/s on one
#: worker, 32 10,200, one at a time 5,600). A worker killed within GROUP_WAIT_S of such an
#: end runs that job again from its last checkpoint, as it would a job
#: killed just before its end.
SHORT_RUN_S = 0.002
PREFETCH = 32
GROUP_ENDS = 32
GROUP_WAIT_S = 0.005
#: Jobs claimed ahead go back to the queue when the run before them takes
#: longer than this (other workers take them meanwhile). Wall time: four
#: workers on two cores wait for the CPU for tens of milliseconds, and at
#: 20 ms they handed back jobs they were about to run.
HOLD_S = 0.05
#: The ends that may wait for a group write (a failure or a stop is written at once).
_GROUPED = (JobStatus.COMPLETED, JobStatus.COMPLETED_WITH_ERRORS)


def _storable(end: dict[str, Any]) -> bool:
    """Whether the end's values can be stored (a TypeError otherwise, which
    the manager turns into the job's failure: never kept for a group
    write, where it would fail the others' ends)."""
    try:
        encode(
            [
                end.get("output"),
                end.get("progress"),
                end.get("metrics"),
                end.get("warnings"),
                end.get("errors"),
            ]
        )
    except (TypeError, ValueError):
        return False
    return True


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
        #: Jobs claimed ahead (running, this manager's) not started yet.
        self._prefetched: deque[Claimed] = deque()
        #: Ends of short runs kept for a group write, and when the first was kept.
        self._deferred: list[Ended] = []
        self._deferred_at = 0.0
        #: When a run claimed ahead last started (see flush_loop).
        self._popped_at = 0.0
        #: Wakes the flusher thread (flush_loop) when an end is kept or the slots close.
        self._flush_wake = threading.Condition(self._lock)
        #: Told of ends written by the flusher or by close (the manager
        #: publishes and wakes their waiters), and of a failure to write them.
        self.on_recorded: Callable[[list[Ended], Exception | None], None] | None = None
        #: Told when jobs claimed ahead went back to the queue (the manager's
        #: scheduler looks again).
        self.on_handed_back: Callable[[], None] | None = None

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
            ahead = next((c for c in self._prefetched if c.job_id == job_id), None)
            if ahead is not None:
                # Claimed ahead, not started: stopped now, as a queued job is.
                target = JobStatus.CANCELLED if how == "cancel" else JobStatus.PAUSED
                moved = self.store.move(
                    job_id, target, only_from=(JobStatus.RUNNING,), owner=self.owner
                )
                self._prefetched.remove(ahead)
                self._running.pop(job_id, None)
                self._tenant_of.pop(job_id, None)
                if moved:
                    return True
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

    def orphans(self) -> list[str]:
        """The jobs the store says this manager runs while it does not: ones
        claimed by a write whose COMMIT was reported broken but went through
        (see JobManager._requeue). Under the lock, which every claim here
        holds, so a claim under way is never taken for one."""
        if self.owner is None:
            return []
        with self._lock:
            return [
                job_id
                for job_id, owner in self.store.running_owners()
                if owner == self.owner and job_id not in self._running
            ]

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
        """Start nothing more (the manager is shutting down); the ends still
        kept for a group write are written now, and the jobs claimed ahead
        go back to the queue."""
        reports: list[Report] = []
        with self._lock:
            self._closing = True
            self._flush_wake.notify_all()
            self._flush_deferred(reports)
            try:
                self._hand_back_prefetched()
            except Exception:
                # jobs.db fails: those jobs stay marked running by this
                # manager; the next one resumes them.
                log.exception("could not hand jobs claimed ahead back")
        for recorded, failure in reports:
            self._heard(recorded, failure)

    def take_next(self) -> list[Claimed]:
        """A job to run next for a worker thread whose own end was written
        apart: one claimed ahead, else a new claim."""
        with self._lock:
            if self._prefetched:
                self._popped_at = time.monotonic()
                return [self._prefetched.popleft()]
            return self._pick(1, None)

    def pick(self, most: int | None = None) -> list[Claimed]:
        """Claim up to ``most`` ready jobs (default: every free slot) within
        the limits; they count as running from now on."""
        with self._lock:
            return self._pick(most, None)

    def finish_and_pick(
        self,
        job_id: str,
        name: str,
        status: JobStatus,
        end: dict[str, Any],
        *,
        short: bool = False,
    ) -> tuple[list[Claimed], list[Ended]]:
        """A worker is done with ``job_id``: record its end (``end``: the
        keyword arguments of ``JobStore.finish``) and claim the next ready
        job, in one transaction; returns what it claimed (at most one) and
        the ends recorded (this one, and others kept for a group write).

        After a ``short`` run (see SHORT_RUN_S) the claim takes up to
        PREFETCH jobs: the next ones start without a write, and the ends of
        short jobs that completed are kept, then written together (at most
        GROUP_ENDS, none later than GROUP_WAIT_S after it ended: a flusher
        thread writes them if no run does)."""
        ended: Ended = (job_id, name, status, end)
        # Ends written (or failed) besides this run's own, told to the
        # manager once the lock is released.
        reports: list[Report] = []
        try:
            with self._lock:
                # The job keeps its slot until the next one is claimed: the
                # scheduler, seeing no free slot meanwhile, does not wait for
                # this lock only to find none.
                try:
                    return self._finish_and_pick(ended, short, reports)
                finally:
                    self._running.pop(job_id, None)
                    self._tenant_of.pop(job_id, None)
        finally:
            for recorded, failure in reports:
                self._heard(recorded, failure)

    def _finish_and_pick(
        self, ended: Ended, short: bool, reports: list[Report]
    ) -> tuple[list[Claimed], list[Ended]]:
        """Under the lock: see finish_and_pick. This run's own end is
        written by the call that returns it, and a failure to write it
        raises (the manager handles it as before); the kept ends written
        along the way are added to ``reports``, never lost."""
        job_id, _, status, end = ended
        if self._closing or (self.stopped is not None and self.stopped()):
            self._flush_deferred(reports)
            self._hand_back_prefetched()
            self.store.finish(job_id, status, **end)
            return [], [ended]
        if self._prefetched:
            if short and status in _GROUPED and _storable(end):
                if not self._deferred:
                    self._deferred_at = time.monotonic()
                    self._flush_wake.notify()
                self._deferred.append(ended)
                if len(self._deferred) >= GROUP_ENDS:
                    self._flush_deferred(reports)
                mine: list[Ended] = []
            else:
                self._flush_deferred(reports)
                self.store.finish(job_id, status, **end)
                mine = [ended]
            self._popped_at = time.monotonic()
            return [self._prefetched.popleft()], mine
        if (not short and not self._deferred) or not _storable(end):
            # One write for this end and the next claim, as for any run (an
            # end that cannot be stored fails alone: the kept ones first).
            self._flush_deferred(reports)
            return self._pick(1, (job_id, status, end)), [ended]
        deferred = self._take_deferred()
        try:
            return self._pick_after([*deferred, ended], PREFETCH if short else 1)
        except Exception as exc:
            # Rolled back as a whole: the kept ends are not stored (their
            # jobs stay this manager's, queued again when it closes); this
            # run's own end fails as its write's error says.
            reports.append((deferred, exc))
            raise

    def _take_deferred(self) -> list[Ended]:
        deferred, self._deferred = self._deferred, []
        return deferred

    def _flush_deferred(self, reports: list[Report]) -> None:
        """Under the lock: write the kept ends now; what was written, or the
        ends with the error that kept them from being written, go to
        ``reports`` (never raises: a kept end is never lost)."""
        ends = self._take_deferred()
        if not ends:
            return
        try:
            reports.append((self._record(ends), None))
        except Exception as exc:
            reports.append((ends, exc))

    def _record(self, ends: list[Ended]) -> list[Ended]:
        """Under the lock: write ``ends`` (one transaction); those recorded
        (an end whose lease was lost is given up, logged)."""
        if not ends:
            return []
        _, lost = self.store.finish_many_and_claim(
            [(job_id, status, end) for job_id, _, status, end in ends], [], self.owner or ""
        )
        return self._kept(ends, lost)

    def _kept(self, ends: list[Ended], lost: list[str]) -> list[Ended]:
        for job_id in lost:
            log.warning("gave up job %s: its end was refused (lease lost)", job_id)
        gone = set(lost)
        return [e for e in ends if e[0] not in gone]

    def _pick_after(self, ends: list[Ended], most: int) -> tuple[list[Claimed], list[Ended]]:
        """Under the lock: record ``ends`` and claim up to ``most`` jobs from
        one page of the queue, in one write (the first is returned to run,
        the others kept as claimed ahead); ``(claimed, ends recorded)``."""
        active, active_tenants = self._active({job_id for job_id, *_ in ends})
        goal = min(self.max_concurrency, len(active) + 1) + most - 1
        excluded = len(self._unknown) + len(self._unwanted)
        page, _ = self._page(0)
        picked, picked_tenants, rest = self._choose(page, active, active_tenants, goal)
        self._candidates = rest or None
        names = dict(picked)
        tenants = {job_id: t for (job_id, _), t in zip(picked, picked_tenants, strict=True)}
        batch = [(job_id, status, end) for job_id, _, status, end in ends]
        starts, lost = self.store.finish_many_and_claim(batch, list(names), self.owner or "")
        if len(starts) < len(picked):
            self._candidates = None  # some were claimed elsewhere: the page is stale
        started = [
            self._started(s.record.id, names[s.record.id], tenants[s.record.id], s) for s in starts
        ]
        if not started and len(self._unknown) + len(self._unwanted) > excluded:
            # The page held only types left to others: look further, as a
            # claim of its own (the ends are stored: their slots are free).
            for job_id, *_ in ends:
                self._running.pop(job_id, None)
                self._tenant_of.pop(job_id, None)
            started = self._pick(1, None)
        if len(started) > 1:
            self._prefetched.extend(started[1:])
            self._popped_at = time.monotonic()
            self._flush_wake.notify()  # it watches how long they are held
        return started[:1], self._kept(ends, lost)

    def hand_back(self) -> None:
        """A worker thread stops early (its run's lease was lost, jobs.db
        failed...): the jobs claimed ahead that it would have run go back to
        the queue, for the scheduler or another manager."""
        with self._lock:
            self._hand_back_prefetched()

    def _hand_back_prefetched(self) -> None:
        """Under the lock: the jobs claimed ahead and not started go back
        to the queue (for this manager, when it opens again, or another),
        or stop as asked meanwhile (here, or by a request in jobs.db from
        another process). A job leaves the list only once moved: if jobs.db
        fails, the rest stay this manager's (queued again when it closes)."""
        while self._prefetched:
            claimed = self._prefetched[0]
            self._release_prefetched(claimed)
            self._prefetched.popleft()
            self._running.pop(claimed.job_id, None)
            self._tenant_of.pop(claimed.job_id, None)
        if self.on_handed_back is not None:
            self.on_handed_back()

    def _release_prefetched(self, claimed: Claimed) -> None:
        control = claimed.control
        asked = (
            "cancel"
            if control.cancel_requested
            else "pause"
            if control.pause_requested
            else self.store.stop_request(claimed.job_id)
        )
        target = {"cancel": JobStatus.CANCELLED, "pause": JobStatus.PAUSED}.get(
            asked or "", JobStatus.QUEUED
        )
        self.store.move(claimed.job_id, target, only_from=(JobStatus.RUNNING,), owner=self.owner)

    def flush_loop(self) -> None:
        """The flusher thread: writes the kept ends GROUP_WAIT_S after the
        first of them, when no run has written them by then, and hands the
        jobs claimed ahead back to the queue once the run before them lasts
        longer than HOLD_S (it was not short after all: other workers take
        them); returns once the slots are closed."""
        while True:
            recorded: list[Ended] = []
            failure: Exception | None = None
            with self._lock:
                while not self._deferred and not self._prefetched and not self._closing:
                    self._flush_wake.wait()
                if self._closing and not self._deferred:
                    return
                now = time.monotonic()
                ends_due = self._deferred_at + GROUP_WAIT_S - now if self._deferred else math.inf
                hold_due = self._popped_at + HOLD_S - now if self._prefetched else math.inf
                if ends_due > 0 and hold_due > 0:
                    self._flush_wake.wait(min(ends_due, hold_due))
                    continue
                if ends_due <= 0:
                    ends = self._take_deferred()
                    try:
                        recorded = self._record(ends)
                    except Exception as exc:  # the manager learns of it
                        recorded, failure = ends, exc
                if hold_due <= 0:
                    try:
                        self._hand_back_prefetched()
                    except Exception:
                        # jobs.db fails: what was claimed ahead stays this
                        # manager's, handed back when it closes (or resumed
                        # by the next manager if this one dies).
                        log.exception("could not hand jobs claimed ahead back")
                        self._popped_at = time.monotonic()
            try:
                self._heard(recorded, failure)
            except Exception:  # the flusher goes on whatever a listener does
                log.exception("while reporting job ends")

    def _heard(self, recorded: list[Ended], failure: Exception | None = None) -> None:
        """Tell the manager of ends written outside a run's own call (or,
        with ``failure``, of the ends that could not be written)."""
        if (recorded or failure is not None) and self.on_recorded is not None:
            self.on_recorded(recorded, failure)

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
        active, active_tenants = self._active({finishing[0]} if finishing else set())
        goal = min(self.max_concurrency, len(active) + (most or self.max_concurrency))
        started: list[Claimed] = []
        offset = 0
        while len(active) < goal:
            excluded = len(self._unknown) + len(self._unwanted)
            page, full = self._page(offset)
            picked, picked_tenants, rest = self._choose(page, active, active_tenants, goal)
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
                started.append(self._started(job_id, names[job_id], tenants_of[job_id], start))
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

    def _active(self, done: set[str]) -> tuple[list[str], list[str]]:
        """Under the lock: the type and the tenant of each job holding a
        slot (a parent waiting for its children holds none, nor do the jobs
        in ``done``, being finished)."""
        holding = [
            (job_id, name)
            for job_id, (name, control) in self._running.items()
            if not control.waiting and job_id not in done
        ]
        return [name for _, name in holding], [self._tenant_of.get(j, "") for j, _ in holding]

    def _started(self, job_id: str, name: str, tenant: str, start: RunStart | None) -> Claimed:
        """Under the lock: a job just claimed counts as running here."""
        control = JobControl()
        self._running[job_id] = (name, control)
        self._tenant_of[job_id] = tenant
        return Claimed(job_id, name, control, start)

    def _choose(
        self,
        page: list[tuple[str, str, int, str]],
        active: list[str],
        active_tenants: list[str],
        goal: int,
    ) -> tuple[list[tuple[str, str]], list[str], list[tuple[str, str, int, str]]]:
        """Under the lock: which of ``page`` to claim, within ``goal``
        running jobs and the limits: ``(picked (id, name), their tenants,
        the rest, still waiting)``."""
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
                    and active_tenants.count(tenant) + picked_tenants.count(tenant) >= tenant_limit
                )
            ):
                rest.append(candidate)
            else:
                picked.append((job_id, name))
                picked_tenants.append(tenant)
        return picked, picked_tenants, rest

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
