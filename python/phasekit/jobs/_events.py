"""The manager's event stream: every status and progress change of the jobs
this process's manager dispatches, runs, pauses, resumes or cancels.

Events are published on the event loop's thread (worker threads hand them
over with the loop's own thread-safe call), and each subscriber has its own
queue: a slow reader never slows a job. Memory stays bounded however slow the
reader: a job's progress events not yet read are replaced by its newest one
of the same phase (so a reader that falls behind still sees how each phase
ended, e.g. a hashing step's last count; a status change is never dropped,
and a job's progress never overtakes its later status change).
"""

from __future__ import annotations

import functools
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import anyio
import anyio.to_thread

from ..errors import JobStateError
from ._model import JobStatus
from ._progress import JobProgress

if TYPE_CHECKING:
    from ._backend import JobBackend

#: How often a follower looks for new events when it has seen them all (s).
FOLLOW_POLL_S = 0.1

EventKind = Literal["status", "progress"]


@dataclass(frozen=True, slots=True)
class JobEvent:
    """A change of one job: its new status (``kind == "status"``, with the
    final progress when the job ended) or its latest progress (``kind ==
    "progress"``, while it runs)."""

    #: Increases by one per event of this manager; a reader sees it grow
    #: (with gaps where a slow reader's queue replaced a job's progress by
    #: a newer one).
    seq: int
    kind: EventKind
    job_id: str
    name: str
    status: JobStatus
    progress: JobProgress | None
    #: When it happened (unix seconds).
    at: float
    #: The job's parent, if it is a child job (events read from the store).
    parent_id: str | None = None
    #: The worker running the job, when it runs (events read from the store).
    worker: str | None = None
    #: The job's tenant, scope and task (events read from the store).
    tenant: str | None = None
    scope: str | None = None
    task_id: str | None = None

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
            "parent_id": self.parent_id,
            "worker": self.worker,
            "tenant": self.tenant,
            "scope": self.scope,
            "task_id": self.task_id,
        }


class _Slot:
    """A queued event, replaceable while it waits (see _Queue.put)."""

    __slots__ = ("event",)

    def __init__(self, event: JobEvent) -> None:
        self.event: JobEvent | None = event


class _Queue:
    """One subscriber's pending events."""

    def __init__(self) -> None:
        self.slots: deque[_Slot] = deque()
        #: Each job's progress events still waiting, by phase (None: a job
        #: without phases), to be replaced by a newer one of that phase.
        self.progress: dict[str, dict[str | None, _Slot]] = {}
        #: Slots still queued whose event was replaced.
        self.dropped = 0
        self.ready = anyio.Event()

    def put(self, event: JobEvent) -> None:
        slot = _Slot(event)
        if event.kind == "progress":
            # The job's older progress of this phase still waiting is
            # dropped: the newer one goes to the end, so the sequence numbers
            # a reader sees only grow.
            waiting = self.progress.setdefault(event.job_id, {})
            older = waiting.get(_phase(event))
            if older is not None:
                older.event = None
                self.dropped += 1
                if self.dropped > 64 and self.dropped * 2 > len(self.slots):
                    # Mostly dropped slots: sweep them out (memory stays
                    # bounded by the jobs, their phases and status changes).
                    self.slots = deque(s for s in self.slots if s.event is not None)
                    self.dropped = 0
            waiting[_phase(event)] = slot
        else:
            self.progress.pop(event.job_id, None)  # later progress comes after
        self.slots.append(slot)
        self.ready.set()

    def take(self) -> JobEvent | None:
        while self.slots:
            slot = self.slots.popleft()
            event = slot.event
            if event is None:
                self.dropped -= 1
                continue  # replaced by a newer progress of its job
            waiting = self.progress.get(event.job_id)
            if waiting is not None and waiting.get(_phase(event)) is slot:
                del waiting[_phase(event)]
                if not waiting:
                    del self.progress[event.job_id]
            return event
        return None


def _phase(event: JobEvent) -> str | None:
    """The phase an event's progress is of (None: a job without phases)."""
    progress = event.progress
    return None if progress is None or progress.phase is None else progress.phase.name


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

    def subscribe(self) -> EventStream:
        """A stream of the events from now on (it listens from this call)."""
        return EventStream(self)


class EventStream:
    """The events of a manager from the moment it was made, as an async
    iterator; ends when the manager closes. ``aclose()`` (or ``async with``)
    stops listening."""

    def __init__(self, hub: EventHub) -> None:
        self._hub = hub
        self._queue: _Queue | None = _Queue()
        hub._queues.add(self._queue)

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> JobEvent:
        while True:
            queue = self._queue
            if queue is None:
                raise StopAsyncIteration
            event = queue.take()
            if event is not None:
                return event
            if self._hub.closed:
                await self.aclose()
                raise StopAsyncIteration
            queue.ready = anyio.Event()
            await queue.ready.wait()

    async def aclose(self) -> None:
        if self._queue is not None:
            self._hub._queues.discard(self._queue)
            self._queue = None

    async def __aenter__(self) -> EventStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __del__(self) -> None:
        # A stream dropped without aclose() stops collecting events.
        if self._queue is not None:
            self._hub._queues.discard(self._queue)


async def follow_events(
    backend: JobBackend,
    *,
    after: int | None = None,
    tenant: str | None = None,
    poll_s: float = FOLLOW_POLL_S,
    page: int = 1000,
) -> AsyncIterator[JobEvent]:
    """Every status and progress change of every job of ``backend``, made by
    any process, in the order they committed: the event log, followed.

    Starts after the event numbered ``after`` (its ``seq``; None: from now,
    0: from the oldest kept), so a reader that reconnects with the last
    ``seq`` it saw misses nothing; raises :class:`~phasekit.errors.JobStateError`
    if the events after it were pruned meanwhile (the log keeps the newest
    :data:`~phasekit.jobs.sqlite.EVENTS_KEPT`). Unlike a manager's
    :meth:`~phasekit.jobs.JobManager.events`, no progress is coalesced: a
    slow reader reads the log at its own pace. ``tenant``: only the changes
    of that tenant's jobs (their ``seq`` then skips the others'). Runs until
    cancelled.
    """
    last = backend.last_event_id() if after is None else after
    checked = after is None  # from now: nothing before can have been pruned
    while True:
        if not checked:
            # Whatever the tenant: the log's first event after ``last``
            # says whether any was pruned.
            first = await anyio.to_thread.run_sync(
                functools.partial(backend.events, after=last, limit=1)
            )
            if first:
                checked = True
                if first[0].seq > last + 1:
                    raise JobStateError(
                        f"events {last + 1} to {first[0].seq - 1} were pruned from the log: "
                        "start again from a job listing and follow from the newest event"
                    )
        read = functools.partial(backend.events, after=last, limit=page, tenant=tenant)
        events = await anyio.to_thread.run_sync(read)
        for event in events:
            last = event.seq
            yield event
        if len(events) < page:
            await anyio.sleep(poll_s)
