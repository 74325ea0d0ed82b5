"""JobManager: dispatch, priorities, concurrency limits, dependencies,
pause/resume/cancel, and recovery of interrupted jobs when a library opens.

Built on anyio (asyncio or trio). Jobs run in worker threads (their heavy
loops are in Rust and release the GIL); the manager's own state lives in
jobs.db, so a second process (a CLI) sees and can pause the same jobs.
"""

from __future__ import annotations

import asyncio
import math
import sys
import time
from collections import Counter
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import anyio
import anyio.abc
import anyio.lowlevel

from ._definition import Job, JobRegistry, UnknownJobError, default_registry
from ._owners import Ownership
from ._phase_model import PhaseRecord
from ._phases import phase_history
from ._progress import JobProgress
from ._runner import run_job
from ._schedule import check_every
from ._slots import Claimed, Slots
from ._store import JobRecord, JobStatus, JobStore

#: How often the scheduler and update streams look at jobs.db (seconds).
POLL_S = 0.05
#: How often the scheduler looks for jobs whose dependency failed elsewhere.
BLOCKED_CHECK_S = 1.0
#: While running, the manager prunes history at most this often (seconds).
PRUNE_EVERY_S = 3600.0
#: Default of ``JobManager(history_retention_s=...)``: 30 days.
HISTORY_RETENTION_S = 30 * 24 * 3600.0


@dataclass(frozen=True, slots=True)
class JobUpdate:
    """A change seen on a job: its status and latest progress."""

    job_id: str
    status: JobStatus
    progress: JobProgress | None


class JobHandle:
    """Follow and steer one dispatched job."""

    def __init__(
        self, manager: JobManager, job_id: str, job_class: type[Job] | None = None
    ) -> None:
        self.manager = manager
        self.id = job_id
        #: The job's class when the handle's creator knows it (dispatch does);
        #: else read from jobs.db on first use.
        self._cls = job_class

    @property
    def status(self) -> JobStatus:
        return self.manager.store.status(self.id)

    async def pause(self) -> None:
        await self.manager.pause(self.id)

    async def resume(self) -> None:
        await self.manager.resume(self.id)

    async def cancel(self) -> None:
        await self.manager.cancel(self.id)

    async def wait(self) -> JobStatus:
        """Wait until the job finishes (completed, failed or cancelled) or pauses."""
        # The status alone, not updates(): waiting on many handles is common,
        # and the progress each update decodes would be thrown away.
        manager = self.manager
        status = manager.store.status(self.id)
        if status.finished or status is JobStatus.PAUSED:
            return status  # the usual case when waiting for a batch: done already
        manager._watched[self.id] += 1
        try:
            while True:
                # Read again once watched: an end committed before would not
                # have woken this wait.
                changed = manager._changed  # taken before the read: no missed wake-up
                status = manager.store.status(self.id)
                if status.finished or status is JobStatus.PAUSED:
                    return status
                with anyio.move_on_after(POLL_S):
                    await changed.wait()
        finally:
            manager._unwatch(self.id)

    def _job_class(self) -> type[Job] | None:
        if self._cls is None:
            try:
                self._cls = self.manager.registry.get(self.manager.store.get_job(self.id).name)
            except UnknownJobError:
                return None
        return self._cls

    def output(self) -> Any:
        """The output of the job's last run (None before it completes), as
        an instance of the job's ``output_type`` when it declares one."""
        value = self.manager.store.outcome(self.id)["output"]
        cls = self._job_class()
        if cls is not None and cls.output_type is not None and isinstance(value, dict):
            # An output holding other dataclasses rebuilds them itself.
            rebuild = getattr(cls.output_type, "from_mapping", None)
            return rebuild(value) if rebuild is not None else cls.output_type(**value)
        return value

    def phases(self) -> list[PhaseRecord]:
        """Per-phase history of a phased job (status, attempt, times, error)."""
        return phase_history(self.manager.store, self.id)

    async def updates(self) -> AsyncGenerator[JobUpdate, None]:
        """Status and progress changes, until the job finishes or pauses.
        Structured progress ``data`` comes as the job's ``progress_type``."""
        cls = self._job_class()
        data_type = cls.progress_type if cls is not None else None
        self.manager._watched[self.id] += 1
        try:
            async with aclosing(self._poll(data_type)) as updates:
                async for update in updates:
                    yield update
        finally:
            self.manager._unwatch(self.id)

    async def _poll(self, data_type: type[Any] | None) -> AsyncGenerator[JobUpdate, None]:
        last: tuple[JobStatus, Any] | None = None
        while True:
            changed = self.manager._changed  # taken before the read: no missed wake-up
            status, progress = self.manager.store.status_and_progress(self.id, data_type)
            if (status, progress) != last:
                last = (status, progress)
                yield JobUpdate(self.id, status, progress)
            if status.finished or status is JobStatus.PAUSED:
                return
            # Woken at once when a job of this manager stops; progress written
            # by a running job (or another process) is seen at the next poll.
            with anyio.move_on_after(POLL_S):
                await changed.wait()


class JobManager:
    """One per library. Use as ``async with JobManager(path) as manager:``.

    ``max_concurrency`` and ``limits`` (per job name) bound the jobs running
    at once; a parent blocked in ``ctx.wait_for_children()`` does not count
    (when its children are done it goes on, so a limit can be exceeded by
    the parents that have just stopped waiting). Finished jobs and their
    history are kept ``history_retention_s`` seconds (pruned when the
    manager opens, then at most hourly); None keeps them forever.
    """

    def __init__(
        self,
        jobs_db: str | Path,
        *,
        registry: JobRegistry | None = None,
        max_concurrency: int = 2,
        limits: dict[str, int] | None = None,
        history_retention_s: float | None = HISTORY_RETENTION_S,
        library: Any = None,
    ) -> None:
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        if history_retention_s is not None and not history_retention_s >= 0:
            raise ValueError(
                f"history_retention_s must be >= 0 or None, got {history_retention_s!r}"
            )
        self.store = JobStore(jobs_db)
        #: Handed to every job as ``ctx.library``.
        self.library = library
        self.registry = registry or default_registry
        self.max_concurrency = max_concurrency
        self.limits = dict(limits or {})
        self._owner: Ownership | None = None
        self._slots = Slots(self.store, max_concurrency, self.limits)
        #: Jobs whose update streams are open (a worker thread wakes them).
        self._watched: Counter[str] = Counter()
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

    async def __aenter__(self) -> Self:
        self._owner = Ownership(self.store.path)
        self._slots.owner = self._owner.id
        self._recover()
        self._prune()
        self._call_soon = _threadsafe_call_soon()
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        self._tg.start_soon(self._schedule)
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
        self._slots.close()
        running = self._slots.running()
        interrupted = set(running) - self._user_paused
        for control in running.values():
            control.pause()
        self._tg.cancel_scope.cancel()
        try:
            await self._tg.__aexit__(exc_type, exc, tb)
        finally:
            for job_id in interrupted:
                # PAUSED: stopped at a safe point; RUNNING: its task was
                # cancelled before the job started. Either way, queue it again.
                self.store.move(
                    job_id,
                    JobStatus.QUEUED,
                    only_from=(JobStatus.PAUSED, JobStatus.RUNNING),
                    owner=self._owner.id if self._owner is not None else None,
                )
            self.store.close()
            if self._owner is not None:
                self._owner.close()

    def _recover(self) -> None:
        """Jobs left 'running' by a dead process resume from their checkpoint;
        those another live manager runs are left alone."""
        for job_id, owner in self.store.running_owners():
            assert self._owner is not None
            if not self._owner.alive(owner):
                # Only if still that dead owner's: another manager opening
                # the library at the same time may have taken it already.
                self.store.move(
                    job_id, JobStatus.QUEUED, only_from=(JobStatus.RUNNING,), owner=owner
                )

    # dispatch and control

    async def dispatch(
        self,
        job: Job,
        *,
        priority: int = 0,
        after: JobHandle | str | None = None,
        every: float | None = None,
        first_at: float | None = None,
    ) -> JobHandle:
        """Queue ``job``; with ``after``, it runs once that job completes (and
        fails if that job fails or is cancelled).

        With ``every`` (seconds, > 0) the job repeats: it first runs at
        ``first_at`` (unix time; default now), and whenever an occurrence
        completes or fails the next is queued at the next multiple of
        ``every`` after the previous planned time that lies in the future
        (missed runs are skipped). The handle follows the first occurrence;
        :meth:`cancel` on any occurrence stops the schedule. ``first_at``
        without ``every`` delays a one-off job.
        """
        if not job.job_name or job.job_name not in self.registry:
            raise ValueError(
                f"{type(job).__qualname__} is not registered in this manager's registry"
            )
        check_every(every)
        depends_on = after.id if isinstance(after, JobHandle) else after
        job_id = self.store.create_job(
            job.job_name,
            job.to_state(),
            priority=priority,
            depends_on=depends_on,
            run_every_s=every,
            next_run_at=first_at,
        )
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
        return JobHandle(self, job_id, self.registry.get(job.job_name))

    def jobs(
        self,
        status: JobStatus | None = None,
        *,
        name: str | None = None,
        parent: JobHandle | str | None = None,
        limit: int | None = None,
    ) -> list[JobRecord]:
        """List and query the jobs of this library, in dispatch order."""
        parent_id = parent.id if isinstance(parent, JobHandle) else parent
        return self.store.list_jobs(status, name=name, parent_id=parent_id, limit=limit)

    def handle(self, job_id: str) -> JobHandle:
        self.store.get_job(job_id)  # KeyError if unknown
        return JobHandle(self, job_id)

    async def pause(self, job_id: str) -> None:
        """Pause now if queued; at the next safe point if running (here, or
        in another process sharing this jobs.db)."""
        self._user_paused.add(job_id)
        if self._slots.stop(job_id, "pause"):
            self._notify()

    async def resume(self, job_id: str) -> None:
        self._user_paused.discard(job_id)
        if self.store.move(job_id, JobStatus.QUEUED, only_from=(JobStatus.PAUSED,)):
            self._slots.invalidate()  # it may come first
            self._wake.set()
            self._notify()

    async def cancel(self, job_id: str) -> None:
        """Cancel; the record is kept. Unfinished child jobs (and theirs) are
        cancelled too; cancelling any occurrence of an interval schedule
        cancels the pending one, which ends the schedule."""
        record = self.store.get_job(job_id)  # KeyError if unknown
        targets = [job_id]
        if record.schedule_id is not None:
            targets += [
                o.id for o in self.store.occurrences(record.schedule_id) if not o.status.finished
            ]
        for target in list(targets):
            targets += self.store.descendants(target)
        for target in dict.fromkeys(targets):
            self._slots.stop(target, "cancel")
        self._check_blocked = True  # jobs that depend on it fail
        self._wake.set()
        self._notify()

    # scheduling

    async def _schedule(self) -> None:
        assert self._tg is not None
        last_blocked_check = time.monotonic()
        while True:
            now_mono = time.monotonic()
            if now_mono - self._last_prune >= PRUNE_EVERY_S:
                self._prune()
            # Dependencies fail in this manager (flagged) or in another
            # process (seen within BLOCKED_CHECK_S).
            if self._check_blocked or now_mono - last_blocked_check >= BLOCKED_CHECK_S:
                self._check_blocked = False
                last_blocked_check = now_mono
                if self.store.fail_blocked():
                    self._notify()
            # Taking the slots lock would wait for a worker's write: look
            # first whether a slot can be free at all.
            if self._slots.maybe_free():
                for claimed in self._slots.pick():
                    self._tg.start_soon(self._slot, claimed)
            self._wake = anyio.Event()
            # Poll, but wake in time for the next scheduled occurrence (read
            # again once per poll, or when a dispatch planned one).
            timeout, now = POLL_S, time.time()
            if now_mono - self._due_read_at >= POLL_S or self._due_stale:
                self._due = self.store.next_due(after=now)
                self._due_read_at, self._due_stale = now_mono, False
            if self._due is not None:
                timeout = max(0.0, min(timeout, self._due - now))
            with anyio.move_on_after(timeout):
                await self._wake.wait()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    def _unwatch(self, job_id: str) -> None:
        self._watched[job_id] -= 1
        if self._watched[job_id] <= 0:
            del self._watched[job_id]

    def _notify_from_thread(self) -> None:
        """From a worker thread: have the event loop wake the update streams,
        without waiting for it to do so (the worker goes on with its next job)."""
        call_soon = self._call_soon
        try:
            if call_soon is not None:
                call_soon(self._notify)
            else:
                anyio.from_thread.run_sync(self._notify)
        except RuntimeError:
            pass  # the event loop is gone: nobody is left to tell

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
            job_id = claimed.job_id
            try:
                status, end = run_job(
                    self.store,
                    job_id,
                    registry=self.registry,
                    control=claimed.control,
                    claimed=True,
                    library=self.library,
                    loaded=claimed.row,
                )
                try:
                    nxt = self._slots.finish_and_pick(job_id, status, end)
                except (TypeError, ValueError) as exc:
                    # The end cannot be stored (an output msgpack refuses):
                    # that job fails; the manager and the other jobs go on.
                    self._slots.release(job_id)
                    self.store.finish(
                        job_id, JobStatus.FAILED, error=f"cannot store the job's end: {exc}"
                    )
                    status = JobStatus.FAILED
                    nxt = self._slots.pick(most=1)
            except BaseException:
                self._slots.release(job_id)
                self._check_blocked = True  # read by the scheduler's next pass
                raise
            if status in (JobStatus.FAILED, JobStatus.CANCELLED):
                self._check_blocked = True  # the jobs that depend on it fail
            if job_id in self._watched:
                self._notify_from_thread()
            if not nxt:
                return
            claimed = nxt[0]


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
