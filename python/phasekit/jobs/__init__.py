"""The job system: job definitions, phases, the registry, the jobs.db store
and the manager.

Define a job as a dataclass registered under a stable name; its fields are
persisted (except :func:`transient` ones), so a job can be resumed by another
process. Jobs, atomic checkpoints and history are kept by a
:class:`JobBackend`: :class:`JobStore` (``jobs.db``, SQLite) is the one there
is. :class:`JobManager` runs them: priorities, limits, dependencies,
child jobs (``ctx.spawn_child`` / ``ctx.wait_for_children``), interval
schedules (``dispatch(job, every=...)``) and history retention.
"""

from __future__ import annotations

import logging

from ..errors import CorruptStateError, JobDefinitionError, UnknownJobError
from ._backend import JobBackend, OwnerLease
from ._context import JobCancelled, JobContext, JobControl, JobInterrupted, JobPaused
from ._definition import (
    ENTRY_POINT_GROUP,
    Job,
    JobRegistry,
    default_registry,
    job,
    transient,
)
from ._events import JobEvent
from ._handle import ErrorRecord, JobHandle, JobUpdate
from ._manager import JobManager
from ._model import HistoryRecord, JobRecord, JobStatus
from ._phase_model import (
    COMPLETE,
    FatalError,
    NonFatalError,
    Phase,
    PhaseGroup,
    PhaseRecord,
    PhaseResult,
    Phases,
    PhaseStatus,
    Recovery,
    SkipTo,
)
from ._phases import PhaseContext, PhasedJob, PhaseProcessor, phase_history
from ._progress import JobProgress, PhaseProgress
from ._runner import execute
from .sqlite import SCHEMA_VERSION, JobStore

# phasekit's loggers (all in the job system) print nothing unless the
# application configures logging (the logging HOWTO's advice for libraries):
# without this, Python's last-resort handler would print every job's warnings
# and failures. Here, not in the package's root: `import phasekit` alone
# (the walker, hashing) does not load logging.
logging.getLogger("phasekit").addHandler(logging.NullHandler())

__all__ = [
    "COMPLETE",
    "ENTRY_POINT_GROUP",
    "SCHEMA_VERSION",
    "CorruptStateError",
    "ErrorRecord",
    "FatalError",
    "HistoryRecord",
    "Job",
    "JobBackend",
    "JobCancelled",
    "JobContext",
    "JobControl",
    "JobDefinitionError",
    "JobEvent",
    "JobHandle",
    "JobInterrupted",
    "JobManager",
    "JobPaused",
    "JobProgress",
    "JobRecord",
    "JobRegistry",
    "JobStatus",
    "JobStore",
    "JobUpdate",
    "NonFatalError",
    "OwnerLease",
    "Phase",
    "PhaseContext",
    "PhaseGroup",
    "PhaseProcessor",
    "PhaseProgress",
    "PhaseRecord",
    "PhaseResult",
    "PhaseStatus",
    "PhasedJob",
    "Phases",
    "Recovery",
    "SkipTo",
    "UnknownJobError",
    "default_registry",
    "execute",
    "job",
    "phase_history",
    "transient",
]
