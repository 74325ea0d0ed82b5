"""JobManager: dispatch, priorities, concurrency limits, dependencies,
conflict keys, pause/resume/cancel, events, and recovery of interrupted jobs
when a library opens.

Built on anyio (asyncio or trio). Jobs run in worker threads (their heavy
loops are in Rust and release the GIL); the manager's own state lives in
jobs.db, so a second process (a CLI) sees and can pause the same jobs.

A manager never fails a job it cannot run: a job whose type no module of
this process knows stays queued for a process that knows it. When jobs.db
itself cannot be written (its disk is full, it is damaged), the jobs in
flight stay recorded as running: the waits and update streams on them raise
the error (a :class:`~phasekit.errors.JobStoreError`), and the next manager
to open the library resumes them from their last checkpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Self, TypeVar

import anyio
import anyio.abc
import anyio.lowlevel

from .._defaults import HISTORY_RETENTION_S
from ..errors import (
    InvalidInputError,
    JobNotFound,
    JobStateError,
    JobStoreError,
    JobStoreUnavailable,
    LeaseLostError,
    ManagerClosed,
    PhasekitError,
    TaskNotFound,
    UnknownJobError,
)
from ._definition import Job, JobRegistry, default_registry
from ._events import EventHub, EventKind, EventStream
from ._handle import POLL_S, JobHandle
from ._model import DEFAULT_TENANT, JobRecord, JobStatus, TaskRecord
from ._open import open_backend
from ._progress import JobProgress
from ._recovery import RECOVER_EVERY_S, check_stale_after, default_stale_after, recover_dead
from ._runner import describe, run_job
from ._schedule import check_every
from ._scope import check_scope, check_tenant, split_items
from ._slots import SHORT_RUN_S, Claimed, Ended, Slots
from ._tasks import (
    PlannedJob,
    Submission,
    TaskDefinition,
    plan_split,
    plan_task,
    split_definition,
    store_task,
)

if TYPE_CHECKING:
    from ..library import Library
    from ._backend import JobBackend, OwnerLease

OutputT = TypeVar("OutputT")

log = logging.getLogger("phasekit.jobs")

#: How often the scheduler looks for jobs whose dependency failed elsewhere.
BLOCKED_CHECK_S = 1.0
#: While running, the manager prunes history at most this often (seconds).
PRUNE_EVERY_S = 3600.0
#: After jobs.db failed under it, the scheduler tries again this often (s).
RETRY_STORE_S = 1.0
#: Outputs of completed jobs kept for their handles' first output() (a
#: bound: a program that never asks for them keeps only the newest).
KEPT_OUTPUTS = 16


class JobManager:
    """One per library. Use as ``async with JobManager(path) as manager:``
    (``path``: a jobs.db), or ``JobManager(backend=...)`` with any
    :class:`~phasekit.jobs.JobBackend`; the manager closes its backend when
    it closes.

    Leaving the block stops the jobs running here at their next safe point
    and queues them again: the next manager of the library (in this process
    or another) resumes them from their last checkpoint. While open, the
    manager also resumes the jobs of processes that died (killed) since,
    and those of managers whose heartbeat is older than the staleness they
    declared (``stale_after_s``, default ``$PHASEKIT_STALE_AFTER_S`` or 30:
    stopped or cut off; their late writes are
    refused, see :class:`~phasekit.jobs.JobBackend`). ``worker_info`` is
    listed with this manager among the library's workers.

    Every manager is bound to a ``tenant`` (``"default"`` unless named):
    what it dispatches is that tenant's, and it lists, reads and controls
    only that tenant's jobs and tasks (another tenant's job is
    :class:`~phasekit.errors.JobNotFound`). It runs the jobs of ``tenants``
    (default: its own tenant's; ``"*"``: every tenant's, as a shared
    worker does), at most ``tenant_limits[t]`` of tenant ``t`` at once.

    ``max_concurrency`` and ``limits`` (per job name) bound the jobs running
    at once; a parent blocked in ``ctx.wait_for_children()`` does not count
    (when its children are done it goes on, so a limit can be exceeded by
    the parents that have just stopped waiting). Finished jobs and their
    history are kept ``history_retention_s`` seconds (pruned when the
    manager opens, then at most hourly); None keeps them forever.
    """

    def __init__(
        self,
        jobs_db: str | Path | None = None,
        *,
        backend: JobBackend | None = None,
        registry: JobRegistry | None = None,
        max_concurrency: int = 2,
        limits: dict[str, int] | None = None,
        history_retention_s: float | None = HISTORY_RETENTION_S,
        library: Library | None = None,
        stale_after_s: float | None = None,
        worker_info: dict[str, Any] | None = None,
        types: list[str] | None = None,
        tenant: str = DEFAULT_TENANT,
        tenants: list[str] | Literal["*"] | None = None,
        tenant_limits: dict[str, int] | None = None,
    ) -> None:
        if isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int):
            raise InvalidInputError(f"max_concurrency must be an int, got {max_concurrency!r}")
        if max_concurrency < 1:
            raise InvalidInputError("max_concurrency must be at least 1")
        for name, limit in (limits or {}).items():
            if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
                raise InvalidInputError(f"limit of {name!r} must be an int >= 1, got {limit!r}")
        #: The tenant this manager acts for (see the class's docstring).
        self.tenant = check_tenant(tenant)
        runs: list[str] | None
        if tenants == "*":
            runs = None
        elif tenants is None:
            runs = [self.tenant]
        elif isinstance(tenants, str) or not isinstance(tenants, list | tuple) or not tenants:
            raise InvalidInputError(
                f"tenants must be a list of tenant names or '*', got {tenants!r}"
            )
        else:
            runs = [check_tenant(t) for t in tenants]
        for name, limit in (tenant_limits or {}).items():
            check_tenant(name)
            if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
                raise InvalidInputError(
                    f"limit of tenant {name!r} must be an int >= 1, got {limit!r}"
                )
        self.stale_after_s = (
            default_stale_after() if stale_after_s is None else check_stale_after(stale_after_s)
        )
        self._worker_info = dict(worker_info or {})
        if types is not None and (
            isinstance(types, str) or not all(isinstance(t, str) and t for t in types)
        ):
            raise InvalidInputError(f"types must be a list of job type names, got {types!r}")
        if history_retention_s is not None and not history_retention_s >= 0:
            raise InvalidInputError(
                f"history_retention_s must be >= 0 or None, got {history_retention_s!r}"
            )
        if backend is None:
            if jobs_db is None:
                raise InvalidInputError("give jobs_db (a path or a PostgreSQL URL) or backend")
            backend = open_backend(jobs_db)
        elif jobs_db is not None:
            raise InvalidInputError("give either jobs_db (a path) or backend, not both")
        #: Where the jobs are kept (see JobBackend).
        self.store: JobBackend = backend
        #: Handed to every job as ``ctx.library``.
        self.library = library
        self.registry = registry or default_registry
        self.max_concurrency = max_concurrency
        self.limits = dict(limits or {})
        self._owner: OwnerLease | None = None
        #: The job types this manager runs (None: every type it knows).
        self.types = None if types is None else sorted(set(types))
        self._slots = Slots(
            self.store,
            max_concurrency,
            self.limits,
            self.registry,
            self.types,
            tenants=runs,
            tenant_limits=tenant_limits,
        )
        if library is not None:
            # A closed library runs nothing more: its jobs wait, queued.
            self._slots.stopped = lambda: bool(getattr(library, "closed", False))
        #: Jobs whose update streams are open (a worker thread wakes them).
        self._watched: Counter[str] = Counter()
        #: The outputs of watched jobs that completed here, as the jobs
        #: returned them: a handle's first ``output()`` takes its job's from
        #: here instead of decoding it back from jobs.db (see JobHandle.output).
        #: Set by worker threads, taken on the loop: single dict operations,
        #: atomic under the GIL. At most KEPT_OUTPUTS, the oldest dropped.
        self._outputs: dict[str, Any] = {}
        self._tg: anyio.abc.TaskGroup | None = None
        self._wake = anyio.Event()
        #: Set (and replaced) whenever a job this manager runs stops, or is
        #: paused, resumed or cancelled through it: wakes the update streams.
        self._changed = anyio.Event()
        #: A dependency may have failed since the last look.
        self._check_blocked = True
        #: The next planned start of a queued job (cached; see _schedule).
        self._due: float | None = None
        self._due_read_at = -math.inf
        self._due_stale = True
        self._user_paused: set[str] = set()
        #: Schedules a callback on the event loop from another thread (see
        #: _notify_from_thread); set when the manager opens.
        self._call_soon: Callable[[Callable[[], None]], object] | None = None
        self.history_retention_s = history_retention_s
        self._last_prune = -math.inf
        self._events = EventHub()
        #: Jobs whose end could not be recorded (jobs.db failed): their waits
        #: and update streams raise this; jobs.db still says running.
        self._lost: dict[str, PhasekitError] = {}
        #: Set while jobs.db fails under the scheduler (cleared when it works).
        self._failure: PhasekitError | None = None
        #: A write of this manager failed: jobs it claimed may be marked
        #: running in the store without running here (see _requeue).
        self._sweep_orphans = False
        self._open = False
        self._closed = False
        self._last_recover = time.monotonic()
        self._flusher: threading.Thread | None = None
        #: Stops the store's wake-ups (see JobBackend implementations with ``watch``).
        self._unwatch_store: Callable[[], None] | None = None

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open" if self._open else "not started"
        return f"JobManager({self.store.location!r}, {state})"

    @property
    def worker_id(self) -> str | None:
        """This manager's id among the library's workers (None until open)."""
        return self._owner.id if self._owner is not None else None

    @property
    def closed(self) -> bool:
        """True once the ``async with`` block has ended."""
        return self._closed

    async def __aenter__(self) -> Self:
        if self._closed:
            raise ManagerClosed("this manager was closed: make a new one")
        try:
            info = {
                "max_concurrency": self.max_concurrency,
                "limits": self.limits,
                **self._worker_info,
            }
            self._owner = self.store.register_owner(stale_after_s=self.stale_after_s, info=info)
            self._slots.owner = self._owner.id
            self._recover()
            self._prune()
        except BaseException:
            self._close_store()
            raise
        self._call_soon = _threadsafe_call_soon()
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        self._tg.start_soon(self._schedule)
        self._slots.on_recorded = self._recorded
        self._slots.on_handed_back = self._look_again
        # Writes the ends of short runs kept for a group write when no run
        # writes them in time (see Slots.finish_and_pick); ends with the slots.
        self._flusher = threading.Thread(
            target=self._slots.flush_loop, name="phasekit-ends", daemon=True
        )
        self._flusher.start()
        # A backend that can tell when a job is queued (PostgreSQL's
        # LISTEN/NOTIFY) wakes the scheduler at once; polling stays the rule.
        watch = getattr(self.store, "watch", None)
        if watch is not None:
            self._unwatch_store = watch(self._look_now)
        self._open = True
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._tg is not None
        # Running jobs stop at their next safe point; they were interrupted,
        # not paused by anyone, so they go back to the queue and the next
        # manager of this library resumes them from their checkpoint.
        try:
            self._slots.close()
        except Exception:  # its own failures are logged; the close goes on
            log.exception("while closing the manager's slots")
        running = self._slots.running()
        interrupted = (set(running) - self._user_paused) | set(self._lost)
        for control in running.values():
            control.pause()
        self._tg.cancel_scope.cancel()
        try:
            if exc_type is not None and issubclass(exc_type, Exception):
                # The block's own error leaves as it is, not wrapped in the
                # task group's ExceptionGroup (the tasks are cancelled anyway).
                await self._tg.__aexit__(None, None, None)
            else:
                await self._tg.__aexit__(exc_type, exc, tb)
        finally:
            if self._unwatch_store is not None:
                self._unwatch_store()
            if self._flusher is not None:
                self._flusher.join()
            self._open = False
            self._closed = True
            self._events.close()
            self._notify()
            for job_id in interrupted:
                # PAUSED: stopped at a safe point; RUNNING: its task was
                # cancelled before the job started, or its end could not be
                # recorded. Either way, queue it again.
                try:
                    self.store.move(
                        job_id,
                        JobStatus.QUEUED,
                        only_from=(JobStatus.PAUSED, JobStatus.RUNNING),
                        owner=self._owner.id if self._owner is not None else None,
                    )
                except PhasekitError:
                    # jobs.db still fails: the job stays marked running by
                    # this manager, which is dead once this process ends,
                    # so the next manager resumes it.
                    continue
            self._close_store()

    def _close_store(self) -> None:
        self._outputs.clear()  # a closed manager's handles read nothing more
        try:
            # The owner first, while the store is open: its row in the
            # workers table goes with it (its jobs were handed back).
            if self._owner is not None:
                self._owner.close()
        finally:
            # On failure the history rows wait for the next flush; nothing is lost.
            with contextlib.suppress(PhasekitError):
                self.store.close()

    def _check_open(self) -> None:
        if self._closed:
            raise ManagerClosed("this job manager is closed")
        if not self._open:
            raise ManagerClosed("this job manager is not open: use `async with manager:`")

    def _store_for_handles(self) -> JobBackend:
        """The store, for a handle's reads (after close: ManagerClosed)."""
        if self._closed:
            raise ManagerClosed("this job manager is closed")
        return self.store

    def _own(self, job_id: str) -> JobRecord:
        """The job's record if it is this manager's tenant's; JobNotFound
        otherwise, worded as for a missing job (a tenant learns nothing of
        another's jobs, not even that the id exists)."""
        record = self._store_for_handles().get_job(job_id)
        if record.tenant != self.tenant:
            raise JobNotFound(f"no job with id {job_id!r}")
        return record

    def _raise_if_lost(self, job_id: str) -> None:
        lost = self._lost.get(job_id) or self._failure
        if lost is not None:
            raise lost

    def _recover(self) -> list[str]:
        """Jobs left 'running' by a dead process are queued again (see
        _recovery.py); the ids."""
        assert self._owner is not None
        return recover_dead(self.store, self._owner)

    def _requeue(self) -> None:
        """While open: resume the jobs of processes that died since (a
        killed CLI), and the jobs whose end this manager could not record
        once jobs.db works again."""
        self._last_recover = time.monotonic()
        queued = self._recover()
        running_here = self._slots.running()
        for job_id in list(self._lost):
            # Taken out first: a worker thread may lose it again meanwhile.
            lost = self._lost.pop(job_id, None)
            if lost is None or job_id in running_here:
                # Queued by another worker's recovery and claimed again here
                # since: that run is the job's now.
                continue
            try:
                target = self._requeue_one(job_id)
            except PhasekitError:
                # The store still fails for this job: again at the next pass
                # (the other jobs go on).
                self._lost.setdefault(job_id, lost)
                continue
            if target is JobStatus.QUEUED:
                queued.append(job_id)
        if self._sweep_orphans and not self._lost:
            # Once the lost jobs are back: the jobs a write reported broken
            # had claimed after all are queued again too.
            for job_id in self._slots.orphans():
                if self._requeue_one(job_id) is JobStatus.QUEUED:
                    queued.append(job_id)
            self._sweep_orphans = False
        if queued:
            if self._events.active:
                for job_id in queued:
                    self._publish(
                        "status", job_id, self.store.get_job(job_id).name, JobStatus.QUEUED
                    )
            self._slots.invalidate()
            self._notify()

    def _requeue_one(self, job_id: str) -> JobStatus | None:
        """A job this manager lost (see _chain) back to the queue, or paused
        or cancelled if someone asked meanwhile (as recover_dead does): the
        status it went to; None if it was not this manager's any more."""
        request = self.store.stop_request(job_id)
        target = {"pause": JobStatus.PAUSED, "cancel": JobStatus.CANCELLED}.get(
            request or "", JobStatus.QUEUED
        )
        if self.store.move(job_id, target, only_from=(JobStatus.RUNNING,), owner=self._owner_id):
            if target is not JobStatus.QUEUED:
                self._publish("status", job_id, self.store.get_job(job_id).name, target)
                self._notify()
            return target
        record = self.store.get_job(job_id)
        if record.status.finished:
            # Its end was stored after all (a commit reported broken had
            # gone through): said now, and its waiters woken.
            self._check_blocked = True
            self._publish("status", job_id, record.name, record.status)
            self._notify()
        else:
            # Resumed by another worker while this one could not reach the
            # store.
            log.warning("gave up job %s: it is no longer this worker's", job_id)
        return None

    @property
    def _owner_id(self) -> str | None:
        return self._owner.id if self._owner is not None else None

    # dispatch and control

    async def dispatch(
        self,
        job: Job[OutputT],
        *,
        priority: int = 0,
        after: JobHandle[Any] | str | None = None,
        every: float | None = None,
        first_at: float | None = None,
        scope: str | None = None,
    ) -> JobHandle[OutputT]:
        """Queue ``job``; with ``after``, it runs once that job completes (and
        fails if that job fails or is cancelled).

        With ``every`` (seconds, > 0) the job repeats: it first runs at
        ``first_at`` (unix time; default now), and whenever an occurrence
        completes or fails the next is queued at the next multiple of
        ``every`` after the previous planned time that lies in the future
        (missed runs are skipped). The handle follows the first occurrence;
        :meth:`cancel` on any occurrence stops the schedule. ``first_at``
        without ``every`` delays a one-off job.

        A job with a conflict key (see :meth:`Job.conflict_key`) never runs
        while another job with that key runs; dispatching one identical to a
        job already queued or running (same type, input and key) returns
        that job's handle.

        The job is this manager's tenant's; its ``scope`` is the one given,
        else :meth:`Job.scope`. A job holding more items than its type's
        :attr:`~Job.item_limit` is refused (:meth:`submit` splits it).
        """
        self._check_open()
        if not isinstance(job, Job):
            raise InvalidInputError(f"dispatch() takes a job (a Job instance), not {job!r}")
        if not job.job_name or job.job_name not in self.registry:
            raise InvalidInputError(
                f"{type(job).__qualname__} is not registered in this manager's registry"
            )
        check_every(every)
        if isinstance(priority, bool) or not isinstance(priority, int):
            raise InvalidInputError(f"priority must be an int, got {priority!r}")
        depends_on = after.id if isinstance(after, JobHandle) else after
        if depends_on is not None:
            self._own(depends_on)  # JobNotFound if there is no such job
        if len(split_items(job)) > 1:
            raise InvalidInputError(
                f"this {job.job_name} job holds more than {type(job).item_limit} items: "
                "submit() splits it into several jobs under one task"
            )
        scope = job.scope() if scope is None else scope
        check_scope(scope)
        key = job.conflict_key()
        cls = self.registry.get(job.job_name)
        if key is not None and depends_on is None and every is None and first_at is None:
            job_id, created = self.store.create_or_join(
                job.job_name,
                job.to_state(),
                key,
                priority=priority,
                tenant=self.tenant,
                scope=scope,
            )
            if not created:
                # The same job is there already: go on with it (a paused one
                # is resumed: asking again for it means wanting it done).
                await self.resume(job_id)
                return JobHandle(self, job_id, cls)
        else:
            job_id = self.store.create_job(
                job.job_name,
                job.to_state(),
                priority=priority,
                depends_on=depends_on,
                run_every_s=every,
                next_run_at=first_at,
                conflict_key=key,
                tenant=self.tenant,
                scope=scope,
            )
        self._publish("status", job_id, job.job_name, JobStatus.QUEUED)
        self._slots.invalidate(priority)  # the new job may come first
        if first_at is not None or every is not None:
            self._due_stale = True
            self._wake.set()
        elif self._slots.maybe_free():
            # Only a free slot needs the scheduler: a busy worker claims the
            # next ready job itself when it finishes one, and one that finds
            # none leaves its slot and wakes the scheduler then.
            self._wake.set()
        # Let the scheduler start work while a caller dispatches many jobs.
        await anyio.lowlevel.checkpoint()
        return JobHandle(self, job_id, cls)

    async def submit(
        self, job: Job[Any], *, priority: int = 0, scope: str | None = None
    ) -> Submission:
        """Queue ``job``, split into jobs of at most its type's
        :attr:`~Job.item_limit` items under one task when it holds more
        (every part with this tenant, the same scope and priority): the
        result says how many jobs, and whether it split. A job that fits is
        dispatched as :meth:`dispatch` does (no task)."""
        self._check_open()
        if not isinstance(job, Job):
            raise InvalidInputError(f"submit() takes a job (a Job instance), not {job!r}")
        if scope is not None:
            check_scope(scope)
        parts = plan_split(job, scope)
        if parts is None:
            handle = await self.dispatch(job, priority=priority, scope=scope)
            return Submission([handle.id], None, False)
        definition = split_definition(job, len(parts))
        return await self._start(job.job_name, definition, [parts], scope or job.scope(), priority)

    async def start_task(
        self,
        definition: TaskDefinition,
        *,
        scope: str | None = None,
        items: list[Any] | None = None,
        priority: int = 0,
    ) -> Submission:
        """Start a task: its steps run one after the other, each once every
        job of the one before completed, all with this tenant and ``scope``
        (``location:<id>`` fills the steps' ``location_id``; ``items`` fills
        each step's items field and makes the scope ``entries``). A step
        whose job holds more than its type's item limit is split. The first
        job that fails or is cancelled stops the task. Every step is checked
        before anything is stored; the result holds every job, by step."""
        self._check_open()
        if not isinstance(definition, TaskDefinition):
            raise InvalidInputError(f"start_task() takes a TaskDefinition, not {definition!r}")
        task_scope, steps = plan_task(definition, self.registry, scope=scope, items=items)
        return await self._start(definition.name, definition.to_dict(), steps, task_scope, priority)

    async def _start(
        self,
        name: str,
        definition: dict[str, Any],
        steps: list[list[PlannedJob]],
        scope: str,
        priority: int,
    ) -> Submission:
        submission = store_task(
            self.store, name, definition, steps, tenant=self.tenant, scope=scope, priority=priority
        )
        if self._events.active:
            planned = [job for jobs in steps for job in jobs]
            for (job_name, *_), job_id in zip(planned, submission.job_ids, strict=True):
                self._publish("status", job_id, job_name, JobStatus.QUEUED)
        self._slots.invalidate(priority)
        self._wake.set()
        await anyio.lowlevel.checkpoint()
        return submission

    def task(self, task_id: str) -> TaskRecord:
        """A task of this tenant: its status, step, progress and jobs
        (:class:`~phasekit.errors.TaskNotFound` if there is none)."""
        record = self._store_for_handles().task(task_id)
        if record.tenant != self.tenant:
            raise TaskNotFound(f"no task with id {task_id!r}")
        return record

    def tasks(self, *, limit: int | None = 100) -> list[TaskRecord]:
        """This tenant's tasks, newest first."""
        return self._store_for_handles().tasks(tenant=self.tenant, limit=limit)

    async def wait_task(self, task_id: str, *, timeout: float | None = None) -> TaskRecord:
        """Wait until the task ends (completed, failed or cancelled, by
        whichever process runs its jobs); its record then. TimeoutError
        after ``timeout`` seconds."""
        with anyio.fail_after(timeout):
            while True:
                record = self.task(task_id)
                if record.finished:
                    return record
                await anyio.sleep(POLL_S)

    async def cancel_task(self, task_id: str) -> None:
        """Cancel a task: its waiting jobs at once, its running ones at
        their next safe point. JobStateError if it has ended."""
        record = self.task(task_id)
        if record.finished:
            raise JobStateError(f"task {task_id} is {record.status}: nothing to cancel")
        for job in record.jobs:
            if not job.status.finished:
                with contextlib.suppress(JobStateError):
                    await self.cancel(job.id)

    def jobs(
        self,
        status: JobStatus | None = None,
        *,
        name: str | None = None,
        parent: JobHandle[Any] | str | None = None,
        limit: int | None = None,
        scope: str | None = None,
        task: str | None = None,
    ) -> list[JobRecord]:
        """List and query this tenant's jobs of this library, in dispatch
        order (of one ``scope``, of one ``task``, if given)."""
        parent_id = parent.id if isinstance(parent, JobHandle) else parent
        if status is not None:
            try:
                status = JobStatus(status)
            except ValueError:
                known = ", ".join(s.value for s in JobStatus)
                raise InvalidInputError(f"status must be one of {known}, not {status!r}") from None
        if scope is not None:
            check_scope(scope)
        return self._store_for_handles().list_jobs(
            status,
            name=name,
            parent_id=parent_id,
            limit=limit,
            tenant=self.tenant,
            scope=scope,
            task_id=task,
        )

    def handle(self, job_id: str) -> JobHandle[Any]:
        """A handle on any job of this tenant (JobNotFound if there is none)."""
        record = self._own(job_id)
        try:
            cls: type[Job[Any]] | None = self.registry.get(record.name)
        except UnknownJobError:
            cls = None
        return JobHandle(self, job_id, cls)

    async def pause(self, job_id: str) -> None:
        """Pause now if queued; at the next safe point if running (here, or
        in another process sharing this jobs.db). A paused job stays as it
        is; :class:`~phasekit.errors.JobNotFound` for an unknown id,
        :class:`~phasekit.errors.JobStateError` for a finished job."""
        self._check_open()
        record = self._own(job_id)
        if record.status.finished:
            raise JobStateError(f"job {job_id} is {record.status.value}: nothing to pause")
        if record.status is JobStatus.PAUSED:
            return
        self._user_paused.add(job_id)
        if self._slots.stop(job_id, "pause"):
            self._publish("status", job_id, record.name, JobStatus.PAUSED)
            self._notify()

    async def resume(self, job_id: str) -> None:
        """Queue a paused job again (it goes on from its last checkpoint); a
        queued or running job is left as it is. JobNotFound for an unknown
        id, JobStateError for a finished job."""
        self._check_open()
        record = self._own(job_id)
        if record.status.finished:
            raise JobStateError(f"job {job_id} is {record.status.value}: nothing to resume")
        self._user_paused.discard(job_id)
        if self.store.move(job_id, JobStatus.QUEUED, only_from=(JobStatus.PAUSED,)):
            self._publish("status", job_id, record.name, JobStatus.QUEUED)
            self._slots.invalidate()  # it may come first
            self._wake.set()
            self._notify()

    async def cancel(self, job_id: str) -> None:
        """Cancel; the record is kept. Unfinished child jobs (and theirs) are
        cancelled too; cancelling any occurrence of an interval schedule
        cancels the pending one, which ends the schedule. JobNotFound for an
        unknown id, JobStateError when there is nothing left to cancel."""
        self._check_open()
        record = self._own(job_id)
        targets = [job_id]
        if record.schedule_id is not None:
            targets += [
                o.id for o in self.store.occurrences(record.schedule_id) if not o.status.finished
            ]
        for target in list(targets):
            targets += self.store.descendants(target)
        if record.status.finished and len(targets) == 1:
            raise JobStateError(f"job {job_id} is {record.status.value}: nothing to cancel")
        for target in dict.fromkeys(targets):
            if self._slots.stop(target, "cancel"):
                name = record.name if target == job_id else self.store.get_job(target).name
                self._publish("status", target, name, JobStatus.CANCELLED)
        self._check_blocked = True  # jobs that depend on it fail
        self._wake.set()
        self._notify()

    def events(self) -> EventStream:
        """Every status and progress change of the jobs this manager
        dispatches, runs, pauses, resumes or cancels, as :class:`JobEvent`
        values, from this call on, until the manager closes (``async for
        event in manager.events():``; ``aclose()`` or ``async with`` stops
        listening earlier).

        Progress comes at most every few tenths of a second per job; a
        reader that falls behind gets each job's newest progress of each
        phase (how every phase ended), never a backlog, and never loses a
        status change. Changes made by other
        processes are not included (their jobs' handles see them)."""
        self._check_open()
        return self._events.subscribe()

    # events

    def _publish(
        self,
        kind: EventKind,
        job_id: str,
        name: str,
        status: JobStatus,
        progress: JobProgress | None = None,
    ) -> None:
        """On the event loop's thread: an event for the listeners (none for
        another tenant's job this manager runs)."""
        if not self._events.active:
            return
        tenant = self._slots.tenant_of(job_id)
        if tenant is None and self._slots.tenants != [self.tenant]:
            # This manager runs other tenants' jobs too, and this one is not
            # running here (any more): its record says whose it is.
            try:
                tenant = self.store.get_job(job_id).tenant
            except JobNotFound:
                return
        if tenant is not None and tenant != self.tenant:
            return
        self._events.publish(kind, job_id, name, status, progress)

    def _publish_from_thread(
        self,
        kind: EventKind,
        job_id: str,
        name: str,
        status: JobStatus,
        progress: JobProgress | None = None,
    ) -> None:
        """From a worker thread: an event for the listeners, if any listen
        (reading the flag without the loop is a race only with a listener
        that starts right now, which then misses that one event)."""
        if not self._events.active:
            return
        self._run_on_loop(functools.partial(self._publish, kind, job_id, name, status, progress))

    def _progress_listener(self, name: str) -> Callable[[str, dict[str, Any]], None]:
        def heard(job_id: str, stored: dict[str, Any]) -> None:
            # The job's class is looked up only when someone listens: most
            # jobs run with no listener, and this is built for each of them.
            if self._events.active:
                progress = JobProgress.from_dict(stored, self.registry.get(name).progress_type)
                self._publish_from_thread("progress", job_id, name, JobStatus.RUNNING, progress)

        return heard

    def _spawned(self, job_id: str, name: str) -> None:
        self._publish_from_thread("status", job_id, name, JobStatus.QUEUED)

    # scheduling

    async def _schedule(self) -> None:
        assert self._tg is not None
        last_blocked_check = time.monotonic()
        while True:
            timeout, now, now_mono = POLL_S, time.time(), time.monotonic()
            try:
                last_blocked_check = self._schedule_pass(last_blocked_check)
                # Poll, but wake in time for the next scheduled occurrence
                # (read again once per poll, or when a dispatch planned one).
                if now_mono - self._due_read_at >= POLL_S or self._due_stale:
                    self._due = self.store.next_due(after=now)
                    self._due_read_at, self._due_stale = now_mono, False
                if self._failure is not None:
                    self._failure = None  # jobs.db works again
            except PhasekitError as exc:
                # jobs.db fails (full disk, damaged): waiters raise it; look
                # again later, as space may be freed meanwhile.
                self._failure = exc
                self._notify()
                await anyio.sleep(RETRY_STORE_S)
                continue
            self._wake = anyio.Event()
            if self._due is not None:
                timeout = max(0.0, min(timeout, self._due - now))
            with anyio.move_on_after(timeout):
                await self._wake.wait()

    def _schedule_pass(self, last_blocked_check: float) -> float:
        """One look at the queue: prune, fail blocked jobs, start ready ones."""
        assert self._tg is not None
        now_mono = time.monotonic()
        if now_mono - self._last_prune >= PRUNE_EVERY_S:
            self._prune()
        # Dependencies fail in this manager (flagged) or in another
        # process (seen within BLOCKED_CHECK_S).
        if self._check_blocked or now_mono - last_blocked_check >= BLOCKED_CHECK_S:
            self._check_blocked = False
            last_blocked_check = now_mono
            failed = self.store.fail_blocked()
            if failed:
                if self._events.active:
                    for job_id in failed:
                        name = self.store.get_job(job_id).name
                        self._publish("status", job_id, name, JobStatus.FAILED)
                self._notify()
        if now_mono - self._last_recover >= RECOVER_EVERY_S:
            self._requeue()
        # Taking the slots lock would wait for a worker's write: look
        # first whether a slot can be free at all.
        if self._slots.maybe_free():
            for claimed in self._slots.pick():
                self._publish("status", claimed.job_id, claimed.name, JobStatus.RUNNING)
                self._tg.start_soon(self._slot, claimed)
        return last_blocked_check

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    def _unwatch(self, job_id: str) -> None:
        self._watched[job_id] -= 1
        if self._watched[job_id] <= 0:
            del self._watched[job_id]

    def _run_on_loop(self, fn: Callable[[], None]) -> None:
        """From a worker thread: have the event loop call ``fn``, without
        waiting for it (the worker goes on with its next job)."""
        call_soon = self._call_soon
        try:
            if call_soon is not None:
                call_soon(fn)
            else:
                anyio.from_thread.run_sync(fn)
        except RuntimeError:
            pass  # the event loop is gone: nobody is left to tell

    def _notify_from_thread(self) -> None:
        self._run_on_loop(self._notify)

    def _prune(self) -> None:
        self._last_prune = time.monotonic()
        if self.history_retention_s is not None:
            self.store.prune_history(self.history_retention_s)

    async def _slot(self, claimed: Claimed) -> None:
        try:
            # Jobs run in a worker thread; abandoning it on cancellation would
            # leave a job running unseen, so the thread is always awaited
            # (shutdown asks the job to pause at its next safe point instead).
            await anyio.to_thread.run_sync(self._chain, claimed, abandon_on_cancel=False)
        finally:
            self._wake.set()
            self._notify()

    def _chain(self, claimed: Claimed) -> None:
        """In a worker thread: run the job, then the next ready ones, until
        none is ready (then the slot goes back to the scheduler). A job's end
        and the claim of the next one are one write, which also reads what
        the next run starts from."""
        while True:
            job_id, name = claimed.job_id, claimed.name
            began = time.perf_counter()
            try:
                status, end = run_job(
                    self.store,
                    job_id,
                    registry=self.registry,
                    control=claimed.control,
                    claimed=True,
                    library=self.library,
                    loaded=claimed.start,
                    on_progress=self._progress_listener(name),
                    on_spawn=self._spawned,
                )
                short = time.perf_counter() - began < SHORT_RUN_S
                nxt = self._end(job_id, name, status, end, short=short)
            except LeaseLostError as exc:
                # This run stalled past its heartbeat and the job was resumed
                # elsewhere (or stopped from outside): its writes, its end
                # included, were refused. Give it up; the job's current run
                # records its own end.
                self._slots.release(job_id)
                self._hand_back()
                log.warning("gave up job %s (%s): %s", job_id, name, exc)
                return
            except UnknownJobError:
                # Its type was known when it was claimed (see Slots): only a
                # registry changed meanwhile gets here. Leave it for others.
                self._slots.release(job_id)
                self.store.move(
                    job_id,
                    JobStatus.QUEUED,
                    only_from=(JobStatus.RUNNING,),
                    owner=self._owner.id if self._owner is not None else None,
                )
                self._hand_back()
                return
            except PhasekitError as exc:
                # The job store failed while the job started, ran or ended
                # (see _runner._run).
                self._slots.release(job_id)
                if not isinstance(exc, JobStoreUnavailable) and self._fail_refused(claimed, exc):
                    self._hand_back()
                    return
                # For now (a server away, a lock held too long) or its end
                # not recorded: it stays recorded as running, and is queued
                # again once the store answers (_requeue), or resumed by the
                # next manager.
                log.warning(
                    "job %s (%s) interrupted, to resume once the job store answers: %s",
                    job_id,
                    name,
                    exc,
                )
                self._lost[job_id] = exc
                # A write broken in its COMMIT may have claimed jobs too.
                self._sweep_orphans = True
                self._notify_from_thread()
                self._hand_back()
                return
            except BaseException:
                self._slots.release(job_id)
                self._check_blocked = True  # read by the scheduler's next pass
                self._hand_back()
                raise
            if not nxt:
                return
            claimed = nxt[0]
            self._publish_from_thread("status", claimed.job_id, claimed.name, JobStatus.RUNNING)

    def _fail_refused(self, claimed: Claimed, exc: PhasekitError) -> bool:
        """A job whose start or end the store refused (not for now: see
        JobStoreUnavailable; a run would meet the same refusal again) fails
        with the store's message; True if that end was recorded."""
        lease = claimed.start.lease if claimed.start is not None else None
        try:
            self.store.finish(
                claimed.job_id,
                JobStatus.FAILED,
                error=f"the job store refused the run: {describe(exc)}",
                lease=lease,
            )
        except PhasekitError:
            return False  # not even that: left to _requeue
        log.error("job %s (%s) failed: the job store refused it: %s", *claimed[:2], exc)
        self._check_blocked = True  # the jobs that depend on it fail
        self._publish_from_thread("status", claimed.job_id, claimed.name, JobStatus.FAILED)
        self._notify_from_thread()
        return True

    def _look_now(self) -> None:
        """From any thread: a job was queued somewhere; the scheduler looks
        at once instead of at its next poll."""
        call_soon = self._call_soon
        if call_soon is not None:
            with contextlib.suppress(RuntimeError):  # the loop is gone
                call_soon(self._wake.set)

    def _look_again(self) -> None:
        """Jobs claimed ahead went back to the queue: the scheduler looks
        again. Called under the slots' lock, so it only schedules (never
        waits for the event loop)."""
        self._slots.invalidate()
        self._look_now()

    def _hand_back(self) -> None:
        """A worker thread stops early: what it claimed ahead goes back to
        the queue (jobs.db failing too leaves them to the next manager)."""
        with contextlib.suppress(PhasekitError):
            self._slots.hand_back()
        self._slots.invalidate()
        self._run_on_loop(self._wake.set)

    def _end(
        self, job_id: str, name: str, status: JobStatus, end: dict[str, Any], *, short: bool
    ) -> list[Claimed]:
        """Record a run's end and claim the next job (see _chain); the ends
        recorded (this one, unless kept for a group write, and others kept
        before) are published."""
        handed = job_id in self._watched and status in (
            JobStatus.COMPLETED,
            JobStatus.COMPLETED_WITH_ERRORS,
        )
        if handed:
            # Kept before the end is stored: a waiter that sees the job
            # completed finds its output here.
            self._keep_output(job_id, end.get("output"))
        try:
            nxt, recorded = self._slots.finish_and_pick(job_id, name, status, end, short=short)
        except BaseException as exc:
            if handed:
                self._outputs.pop(job_id, None)
            if not isinstance(exc, TypeError):
                raise
            # The end cannot be stored (an output msgpack refuses): that job
            # fails; the manager and the other jobs go on.
            self._slots.release(job_id)
            self.store.finish(
                job_id,
                JobStatus.FAILED,
                error=f"cannot store the job's end: {exc}",
                lease=end.get("lease"),
            )
            end = {**end, "output": None}
            recorded = [(job_id, name, JobStatus.FAILED, end)]
            nxt = self._slots.take_next()
        self._recorded(recorded)
        return nxt

    def _recorded(self, ends: list[Ended], failure: Exception | None = None) -> None:
        """From a worker or the flusher thread: runs' ends now stored (see
        Slots.finish_and_pick) are published and their waiters woken; with
        ``failure``, ends jobs.db could not store: those jobs stay recorded
        as running, their waits raise it, and they are queued again when
        this manager closes (or resumed by the next)."""
        if failure is not None:
            lost = (
                failure
                if isinstance(failure, PhasekitError)
                else JobStoreError(f"the end of a run could not be stored: {failure!r}")
            )
            for job_id, *_ in ends:
                self._lost[job_id] = lost
                self._outputs.pop(job_id, None)
            self._sweep_orphans = True
            self._notify_from_thread()
            return
        watched = False
        for job_id, name, status, end in ends:
            if status in (JobStatus.FAILED, JobStatus.CANCELLED):
                self._check_blocked = True  # the jobs that depend on it fail
            if self._events.active:
                # The end's event carries the progress stored with it (100 %
                # for a completed job).
                stored = end.get("progress")
                progress = None
                if isinstance(stored, dict) and status is not JobStatus.FAILED:
                    cls = self.registry.get(name) if name in self.registry else None
                    progress = JobProgress.from_dict(stored, cls.progress_type if cls else None)
                self._publish_from_thread("status", job_id, name, status, progress)
            watched = watched or job_id in self._watched
        if watched:
            self._notify_from_thread()

    def _keep_output(self, job_id: str, output: Any) -> None:
        outputs = self._outputs
        outputs[job_id] = output
        while len(outputs) > KEPT_OUTPUTS:
            outputs.pop(next(iter(outputs)), None)

    def _take_output(self, job_id: str) -> tuple[bool, Any]:
        """``(True, output)`` once for a job that completed here while watched
        (see _outputs); ``(False, None)`` otherwise."""
        try:
            return True, self._outputs.pop(job_id)
        except KeyError:
            return False, None


def _threadsafe_call_soon() -> Callable[[Callable[[], None]], object] | None:
    """The running event loop's own way to schedule a callback from another
    thread without waiting for it (asyncio or trio; None for another loop)."""
    try:
        return asyncio.get_running_loop().call_soon_threadsafe
    except RuntimeError:
        pass
    trio = sys.modules.get("trio")
    if trio is not None:
        try:
            token = trio.lowlevel.current_trio_token()
        except RuntimeError:
            return None
        run_sync_soon: Callable[[Callable[[], None]], object] = token.run_sync_soon
        return run_sync_soon
    return None
