"""The manager's event stream: every status and progress change of the jobs
this process's manager dispatches, runs, pauses, resumes or cancels.

Events are published on the event loop's thread (worker threads hand them
over with the loop's own thread-safe call), and each subscriber has its own
queue: a slow reader never slows a job. Memory stays bounded however slow the
reader: a job's progress events not yet read are replaced by its newest one
(a status change is never dropped, and a job's progress never overtakes its
later status change).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any, Literal

import anyio

from ._progress import JobProgress
from ._store import JobStatus

EventKind = Literal["status", "progress"]


@dataclass(frozen=True, slots=True)
class JobEvent:
    """A change of one job: its new status, or its latest progress."""

    #: Increases by one per event of this manager (gaps: events a slow
    #: reader's queue replaced by a newer progress of the same job).
    seq: int
    kind: EventKind
    job_id: str
    name: str
    status: JobStatus
    progress: JobProgress | None
    #: When it happened (unix seconds).
    at: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "kind": self.kind,
            "job_id": self.job_id,
            "name": self.name,
            "status": self.status.value,
            "progress": None if self.progress is None else self.progress.to_dict(),
            "percent": None if self.progress is None else self.progress.percent,
            "at": self.at,
        }


class _Slot:
    """A queued event, replaceable while it waits (see _Queue.put)."""

    __slots__ = ("event",)

    def __init__(self, event: JobEvent) -> None:
        self.event = event


class _Queue:
    """One subscriber's pending events."""

    def __init__(self) -> None:
        self.slots: deque[_Slot] = deque()
        #: The job's progress event still waiting, to be replaced by a newer one.
        self.progress: dict[str, _Slot] = {}
        self.ready = anyio.Event()

    def put(self, event: JobEvent) -> None:
        if event.kind == "progress":
            waiting = self.progress.get(event.job_id)
            if waiting is not None:
                waiting.event = event
                return
            slot = _Slot(event)
            self.progress[event.job_id] = slot
        else:
            slot = _Slot(event)
            self.progress.pop(event.job_id, None)  # later progress comes after
        self.slots.append(slot)
        self.ready.set()

    def take(self) -> JobEvent | None:
        if not self.slots:
            return None
        slot = self.slots.popleft()
        event = slot.event
        if self.progress.get(event.job_id) is slot:
            del self.progress[event.job_id]
        return event


class EventHub:
    """Publishes events to every open :meth:`subscribe` stream. Used from
    the event loop's thread only."""

    def __init__(self) -> None:
        self._queues: set[_Queue] = set()
        self._seq = 0
        self.closed = False

    @property
    def active(self) -> bool:
        """True while someone listens (publishing is skipped otherwise)."""
        return bool(self._queues)

    def publish(
        self,
        kind: EventKind,
        job_id: str,
        name: str,
        status: JobStatus,
        progress: JobProgress | None,
    ) -> None:
        if not self._queues:
            return
        self._seq += 1
        event = JobEvent(self._seq, kind, job_id, name, status, progress, time.time())
        for queue in self._queues:
            queue.put(event)

    def close(self) -> None:
        """End every stream (after the events already queued)."""
        self.closed = True
        for queue in self._queues:
            queue.ready.set()

    async def subscribe(self) -> AsyncGenerator[JobEvent, None]:
        queue = _Queue()
        self._queues.add(queue)
        try:
            while True:
                event = queue.take()
                if event is not None:
                    yield event
                    continue
                if self.closed:
                    return
                queue.ready = anyio.Event()
                await queue.ready.wait()
        finally:
            self._queues.discard(queue)
