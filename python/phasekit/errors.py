"""phasekit's exceptions: one tree, rooted at :class:`PhasekitError`.

Catch :class:`PhasekitError` for anything phasekit raises on purpose; the
branches say what went wrong and what to do::

    PhasekitError
    ├── CancelledError          a call stopped because its cancel token was set
    ├── InvalidStateError       a walk/scan resume state cannot be decoded
    ├── InvalidInputError       a bad argument or job field (also a ValueError)
    │   └── LocationOverlapError   a location inside (or around) another one
    ├── NotFoundError           (also a KeyError)
    │   ├── LocationNotFound
    │   ├── JobNotFound
    │   └── TaskNotFound
    ├── ClosedError             the object was closed
    │   ├── LibraryClosed
    │   └── ManagerClosed
    ├── StorageFullError        the disk under library.db or jobs.db is full
    ├── LibraryError            library.db cannot be read or written
    │   ├── LibraryFullError    (also a StorageFullError)
    │   └── LibraryUnavailable  for now: the library's PostgreSQL server away
    ├── JobStoreError           jobs.db cannot be read or written
    │   ├── JobStoreFullError   (also a StorageFullError)
    │   └── JobStoreUnavailable  for now: a server away, a lock held too long
    ├── JobStateError           the job is not in a state that allows this
    ├── JobDefinitionError      a job class or phase is malformed
    ├── UnknownJobError         no job type of that name is known here
    ├── CorruptStateError       a stored job input or checkpoint cannot be decoded
    └── ImageError              an image cannot be decoded (damaged, truncated,
                                not an image, too many pixels)

:class:`PhasekitError`, :class:`CancelledError`, :class:`InvalidStateError` and
:class:`LibraryError` are defined by the Rust core (which raises them too); the
Rust core raises the Python-defined ones below by name, so every class lives
here and nowhere else.
"""

from __future__ import annotations

from ._core import CancelledError, InvalidStateError, LibraryError, PhasekitError


class InvalidInputError(PhasekitError, ValueError):
    """A bad argument or job field: the message says which and why."""


class LocationOverlapError(InvalidInputError):
    """A new location would lie inside an existing one, or contain one
    (pass ``allow_nested=True`` to ``Library.add_location`` to allow it)."""


class NotFoundError(PhasekitError, KeyError):
    """Something asked for by id or path does not exist."""

    def __str__(self) -> str:
        # KeyError quotes its argument (repr); a message reads better plain.
        return str(self.args[0]) if self.args else ""


class LocationNotFound(NotFoundError):
    """No location with that id or root path in this library."""


class JobNotFound(NotFoundError):
    """No job with that id in this jobs.db (or none of this manager's tenant:
    another tenant's job is reported exactly as a missing one)."""


class TaskNotFound(NotFoundError):
    """No task with that id in this jobs.db (or none of this manager's tenant)."""


class ClosedError(PhasekitError):
    """The library, manager or store was closed."""


class LibraryClosed(ClosedError):
    """The library was closed."""


class ManagerClosed(ClosedError):
    """The job manager was closed (its ``async with`` block ended)."""


class StorageFullError(PhasekitError):
    """The disk (or quota) holding library.db or jobs.db is full. Nothing is
    lost: free some space, then resume the interrupted jobs
    (``phasekit resume``)."""


class LibraryFullError(LibraryError, StorageFullError):
    """library.db cannot grow: its disk is full."""


class LibraryUnavailable(LibraryError):
    """The library's PostgreSQL database cannot be reached for now: its
    server ended the connection (a restart, a shutdown) or the link broke.
    The library connects again at its next call (waiting up to 30 s for a
    server that is starting); a job's run that meets this is interrupted,
    not failed, and resumes from its last checkpoint."""


class DestinationFullError(StorageFullError):
    """The disk a copy or move writes to is full. No partial file is left
    under a final name and a move's source of that file is intact: free some
    space, then resume the job (``phasekit resume``)."""


class JobStoreError(PhasekitError):
    """jobs.db cannot be used: corrupt, written by a newer phasekit, or busy
    for too long. The message says what to do; a corrupt jobs.db can be moved
    aside with ``phasekit jobs repair`` (the library's entries are kept)."""


class JobStoreFullError(JobStoreError, StorageFullError):
    """jobs.db cannot grow: its disk is full."""


class JobStoreUnavailable(JobStoreError):
    """The job store cannot be used for now, and may be again without anyone
    doing anything: a PostgreSQL server away longer than the store waits for
    it, a connection broken inside a commit (whether it was stored is
    unknown), jobs.db locked by another process for too long. A job's run
    that meets it is interrupted, not failed: the job is queued again and
    resumes from its last checkpoint once the store answers. Any other
    JobStoreError (damaged, refused, too big) fails the run."""


class JobStateError(PhasekitError):
    """The job's state does not allow this (pausing a finished job, say)."""


class LeaseLostError(JobStateError):
    """This run's claim on its job has moved on: the job was resumed by
    another worker (this one stalled longer than the heartbeat allows, or
    was thought dead), or left the running state from outside. Every write
    of the run is refused; the run gives the job up without recording an
    end (the job's current run records its own)."""


class JobDefinitionError(PhasekitError):
    """A job class is malformed, or its name is already taken."""


class UnknownJobError(PhasekitError):
    """No job type of this name is known in this process (not registered,
    not built in, not declared by an installed package's entry point)."""


class CorruptStateError(PhasekitError):
    """A stored blob (job input, checkpoint, progress) cannot be decoded."""


class ImageError(PhasekitError):
    """An image cannot be made into thumbnails: it is damaged, truncated,
    not an image, or has more pixels than allowed (a decompression bomb).
    A thumbnail job records it as a non-critical error for that file."""


__all__ = [
    "CancelledError",
    "ClosedError",
    "CorruptStateError",
    "DestinationFullError",
    "ImageError",
    "InvalidInputError",
    "InvalidStateError",
    "JobDefinitionError",
    "JobNotFound",
    "JobStateError",
    "JobStoreError",
    "JobStoreFullError",
    "JobStoreUnavailable",
    "LeaseLostError",
    "LibraryClosed",
    "LibraryError",
    "LibraryFullError",
    "LibraryUnavailable",
    "LocationNotFound",
    "LocationOverlapError",
    "ManagerClosed",
    "NotFoundError",
    "PhasekitError",
    "StorageFullError",
    "TaskNotFound",
    "UnknownJobError",
]
