"""JobHandle: follow and steer one job of a manager, typed by the job's output."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import anyio

from ..errors import UnknownJobError
from ._model import ErrorRecord, JobRecord, JobStatus
from ._phase_model import PhaseRecord
from ._phases import phase_history
from ._progress import JobProgress

if TYPE_CHECKING:
    from ._definition import Job
    from ._manager import JobManager

OutputT = TypeVar("OutputT")

#: How often update streams and waits look at jobs.db (seconds); a job this
#: manager runs wakes them at once when it stops.
POLL_S = 0.05


@dataclass(frozen=True, slots=True)
class JobUpdate:
    """A change seen on a job: its status and latest progress."""

    job_id: str
    status: JobStatus
    progress: JobProgress | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "status": self.status.value,
            "percent": None if self.progress is None else self.progress.percent,
            "progress": None if self.progress is None else self.progress.to_dict(),
        }


class JobHandle(Generic[OutputT]):
    """Follow and steer one job: its status, progress, errors and output,
    pause, resume, cancel, wait, and a stream of updates.

    Every property reads jobs.db, so a handle sees what any process did to
    the job. ``OutputT`` is the type of the job's output (``IndexSummary``
    for an index, ...)."""

    def __init__(
        self, manager: JobManager, job_id: str, job_class: type[Job[OutputT]] | None = None
    ) -> None:
        self.manager = manager
        self.id = job_id
        #: The job's class when the handle's creator knows it (dispatch does);
        #: else read from jobs.db on first use.
        self._cls = job_class

    def __repr__(self) -> str:
        name = self._cls.job_name if self._cls is not None else "?"
        return f"JobHandle(id={self.id!r}, name={name!r})"

    @property
    def record(self) -> JobRecord:
        """The job's row: name, status, priority, times, error, ..."""
        return self.manager._store_for_handles().get_job(self.id)

    @property
    def status(self) -> JobStatus:
        return self.manager._store_for_handles().status(self.id)

    @property
    def progress(self) -> JobProgress | None:
        """The latest progress (None before the first report); the job's
        structured ``data`` as its ``progress_type``."""
        cls = self._job_class()
        data_type = cls.progress_type if cls is not None else None
        return self.manager._store_for_handles().progress(self.id, data_type)

    @property
    def error(self) -> str | None:
        """Why the job failed, or stopped (a full disk), as a message; None
        otherwise. ``phasekit jobs show JOB --debug`` shows the traceback."""
        return self.record.error

    def errors(self) -> list[ErrorRecord]:
        """The non-critical errors of the job's last run (files it could not
        read, ...): the first ones a job keeps (each job says how many)."""
        stored = self.manager._store_for_handles().outcome(self.id)["errors"] or []
        return [ErrorRecord.from_dict(e) for e in stored if isinstance(e, dict)]

    def warnings(self) -> list[str]:
        """The warnings of the job's last run (``ctx.warn``)."""
        return list(self.manager._store_for_handles().outcome(self.id)["warnings"] or [])

    def phases(self) -> list[PhaseRecord]:
        """Per-phase history of a phased job (status, attempt, times, error)."""
        return phase_history(self.manager._store_for_handles(), self.id)

    def output(self) -> OutputT | None:
        """The output of the job's last run (None before it completes), as
        an instance of the job's ``output_type`` when it declares one.

        For a job that completed in this manager while a handle waited for
        it, the first call returns the very object the job returned (no
        round trip through jobs.db: thousands of duplicate groups are not
        decoded again); later calls read jobs.db, where it is stored."""
        store = self.manager._store_for_handles()  # ManagerClosed once closed
        cls = self._job_class()
        output_type = cls.output_type if cls is not None else None
        # Only a declared output type: an undeclared output (a tuple, say)
        # reads back from jobs.db as msgpack made it (a list), so every call
        # goes there. And only once the end is stored: the manager keeps the
        # output just before it writes the end.
        if (
            output_type is not None
            and self.id in self.manager._outputs
            and store.status(self.id) in (JobStatus.COMPLETED, JobStatus.COMPLETED_WITH_ERRORS)
        ):
            kept, value = self.manager._take_output(self.id)
            if kept and isinstance(value, output_type):
                result_kept: OutputT | None = value
                return result_kept
        value = store.outcome(self.id)["output"]
        if cls is not None and cls.output_type is not None and isinstance(value, dict):
            # An output holding other dataclasses rebuilds them itself.
            rebuild = getattr(cls.output_type, "from_mapping", None)
            built: OutputT = rebuild(value) if rebuild is not None else cls.output_type(**value)
            return built
        result: OutputT | None = value
        return result

    async def pause(self) -> None:
        """Pause: now if queued, at the next safe point if running (in any
        process). See :meth:`JobManager.pause`."""
        await self.manager.pause(self.id)

    async def resume(self) -> None:
        """Queue a paused job again; it goes on from its last checkpoint."""
        await self.manager.resume(self.id)

    async def cancel(self) -> None:
        """Cancel (with its unfinished children); the record is kept."""
        await self.manager.cancel(self.id)

    async def wait(self, *, paused: bool = True) -> JobStatus:
        """Wait until the job finishes (completed, failed or cancelled), or
        pauses (unless ``paused=False``: then a paused job is waited for
        until someone resumes it and it finishes). Returns the status."""
        manager = self.manager
        store = manager._store_for_handles()
        status = store.status(self.id)
        if _stops(status, paused):
            return status  # the usual case when waiting for a batch: done already
        manager._watched[self.id] += 1
        try:
            while True:
                # Read again once watched: an end committed before would not
                # have woken this wait.
                changed = manager._changed  # taken before the read: no missed wake-up
                manager._raise_if_lost(self.id)
                status = manager._store_for_handles().status(self.id)
                if _stops(status, paused):
                    return status
                with anyio.move_on_after(POLL_S):
                    await changed.wait()
        finally:
            manager._unwatch(self.id)

    async def updates(self) -> AsyncGenerator[JobUpdate, None]:
        """Status and progress changes until the job finishes (a pause does
        not end the stream: a resumed job goes on in it), the manager closes,
        or the caller stops iterating. Structured progress ``data`` comes as
        the job's ``progress_type``."""
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
        manager = self.manager
        last: tuple[JobStatus, Any] | None = None
        while not manager.closed:
            changed = manager._changed  # taken before the read: no missed wake-up
            manager._raise_if_lost(self.id)
            status, progress = manager._store_for_handles().status_and_progress(self.id, data_type)
            if (status, progress) != last:
                last = (status, progress)
                yield JobUpdate(self.id, status, progress)
            if status.finished:
                return
            # Woken at once when a job of this manager stops; progress written
            # by a running job (or another process) is seen at the next poll.
            with anyio.move_on_after(POLL_S):
                await changed.wait()

    def _job_class(self) -> type[Job[OutputT]] | None:
        if self._cls is None:
            manager = self.manager
            try:
                name = manager._store_for_handles().get_job(self.id).name
                self._cls = manager.registry.get(name)
            except UnknownJobError:
                return None
        return self._cls


def _stops(status: JobStatus, paused: bool) -> bool:
    return status.finished or (paused and status is JobStatus.PAUSED)
