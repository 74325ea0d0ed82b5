"""What a running job sees: progress, warnings, errors, metrics, checkpoints,
and the safe points where pause and cancel take effect."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from ..errors import PhasekitError
from ._store import JobStore

#: Progress is written to jobs.db at most this often (seconds), so frequent
#: updates never dominate a job's time; the latest value is always kept.
PROGRESS_INTERVAL_S = 0.25


class JobInterrupted(PhasekitError):
    """Raised at a safe point when the job was asked to stop."""


class JobPaused(JobInterrupted):
    """The job was paused; it resumes from its last checkpoint."""


class JobCancelled(JobInterrupted):
    """The job was cancelled; its record is kept."""


class JobControl:
    """Pause/cancel requests for one running job, set from any thread."""

    def __init__(self) -> None:
        self._pause = threading.Event()
        self._cancel = threading.Event()

    def pause(self) -> None:
        self._pause.set()

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def pause_requested(self) -> bool:
        return self._pause.is_set()

    @property
    def cancel_requested(self) -> bool:
        return self._cancel.is_set()


@dataclass
class Metrics:
    items: int = 0
    bytes: int = 0
    started: float = field(default_factory=time.monotonic)

    def as_dict(self) -> dict[str, float | int]:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        return {
            "items": self.items,
            "bytes": self.bytes,
            "items_per_s": self.items / elapsed,
            "bytes_per_s": self.bytes / elapsed,
        }


class JobContext:
    """Handed to ``Job.run``. Call :meth:`check_interrupt` or :meth:`checkpoint`
    often: pause and cancel take effect there."""

    def __init__(
        self,
        job_id: str,
        name: str,
        store: JobStore,
        control: JobControl,
        checkpoint: tuple[int, Any] | None = None,
    ) -> None:
        self.id = job_id
        self.name = name
        self.log = logging.getLogger(f"phasekit.job.{name}")
        self._store = store
        self._control = control
        self._checkpoint = checkpoint
        self._last_progress_write = 0.0
        self._pending_progress: dict[str, Any] | None = None
        self.warnings: list[str] = []
        self.errors: list[dict[str, Any]] = []
        self.metrics = Metrics()

    # progress, warnings, errors, metrics

    def progress(
        self,
        *,
        done: int | None = None,
        total: int | None = None,
        message: str | None = None,
        bytes_done: int | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        """Report progress: a count (``done`` of ``total``; no total means
        indeterminate), a message, bytes, or the job's own structured ``data``."""
        value: dict[str, Any] = {
            "done": done,
            "total": total,
            "message": message,
            "bytes": bytes_done,
            "data": data,
        }
        if done is not None and total:
            value["percent"] = 100.0 * done / total
        self._pending_progress = value
        now = time.monotonic()
        if now - self._last_progress_write >= PROGRESS_INTERVAL_S:
            self.flush_progress()

    def flush_progress(self) -> None:
        if self._pending_progress is not None:
            self._store.set_progress(self.id, self._pending_progress)
            self._pending_progress = None
            self._last_progress_write = time.monotonic()

    def warn(self, message: str) -> None:
        self.warnings.append(message)
        self.log.warning("%s", message)

    def error(self, message: str, *, path: str | None = None, errno: int | None = None) -> None:
        """A non-critical error: recorded, and the job goes on (it will end
        ``completed_with_errors``)."""
        self.errors.append({"message": message, "path": path, "errno": errno})
        self.log.error("%s%s", f"{path}: " if path else "", message)

    def add_items(self, n: int = 1, *, nbytes: int = 0) -> None:
        """Count work done, for the job's metrics (items, bytes, rates)."""
        self.metrics.items += n
        self.metrics.bytes += nbytes

    # interruption and checkpoints

    def check_interrupt(self) -> None:
        """Raise :class:`JobCancelled` or :class:`JobPaused` if asked to stop."""
        if self._control.cancel_requested:
            raise JobCancelled(f"job {self.id} cancelled")
        if self._control.pause_requested:
            raise JobPaused(f"job {self.id} paused")

    def checkpoint(self, state: Any) -> int:
        """Save ``state`` atomically (the frontier of the work, not its results),
        then honour a pending pause or cancel. Returns the sequence number."""
        seq = self._store.save_checkpoint(self.id, state)
        self._checkpoint = (seq, state)
        self.flush_progress()
        self.check_interrupt()
        return seq

    def load_state(self) -> Any | None:
        """The state of the last checkpoint (None on a first run)."""
        return None if self._checkpoint is None else self._checkpoint[1]
