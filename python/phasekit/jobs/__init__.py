"""The job system: job definitions, phases, the registry, the jobs.db store
and the manager.

Define a job as a dataclass registered under a stable name; its fields are
persisted (except :func:`transient` ones), so a job can be resumed by another
process. Jobs, atomic checkpoints and history are kept by a
:class:`JobBackend`: :class:`JobStore` (``jobs.db``, SQLite), the embedded
default, or :class:`PostgresJobStore` (workers on several hosts sharing one
database); :func:`open_backend` opens either from a path or a URL.
:class:`JobManager` runs them: priorities, limits, dependencies,
child jobs (``ctx.spawn_child`` / ``ctx.wait_for_children``), interval
schedules (``dispatch(job, every=...)``) and history retention;
:func:`run_direct` runs one job in the calling thread, without an event loop.
"""

from __future__ import annotations

import logging

# typing.TYPE_CHECKING without importing typing (type checkers honour the name).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..errors import CorruptStateError as CorruptStateError
    from ..errors import JobDefinitionError as JobDefinitionError
    from ..errors import TaskNotFound as TaskNotFound
    from ..errors import UnknownJobError as UnknownJobError
    from ._backend import JobBackend as JobBackend
    from ._backend import OwnerLease as OwnerLease
    from ._context import JobCancelled as JobCancelled
    from ._context import JobContext as JobContext
    from ._context import JobControl as JobControl
    from ._context import JobInterrupted as JobInterrupted
    from ._context import JobPaused as JobPaused
    from ._definition import ENTRY_POINT_GROUP as ENTRY_POINT_GROUP
    from ._definition import Job as Job
    from ._definition import JobRegistry as JobRegistry
    from ._definition import default_registry as default_registry
    from ._definition import job as job
    from ._definition import transient as transient
    from ._direct import DirectRun as DirectRun
    from ._direct import run_direct as run_direct
    from ._events import JobEvent as JobEvent
    from ._events import follow_events as follow_events
    from ._handle import JobHandle as JobHandle
    from ._handle import JobUpdate as JobUpdate
    from ._manager import JobManager as JobManager
    from ._model import DEFAULT_TENANT as DEFAULT_TENANT
    from ._model import ErrorRecord as ErrorRecord
    from ._model import HistoryRecord as HistoryRecord
    from ._model import JobRecord as JobRecord
    from ._model import JobStatus as JobStatus
    from ._model import TaskJob as TaskJob
    from ._model import TaskRecord as TaskRecord
    from ._model import WorkerRecord as WorkerRecord
    from ._open import open_backend as open_backend
    from ._phase_model import COMPLETE as COMPLETE
    from ._phase_model import FatalError as FatalError
    from ._phase_model import NonFatalError as NonFatalError
    from ._phase_model import Phase as Phase
    from ._phase_model import PhaseGroup as PhaseGroup
    from ._phase_model import PhaseRecord as PhaseRecord
    from ._phase_model import PhaseResult as PhaseResult
    from ._phase_model import Phases as Phases
    from ._phase_model import PhaseStatus as PhaseStatus
    from ._phase_model import Recovery as Recovery
    from ._phase_model import SkipTo as SkipTo
    from ._phases import PhaseContext as PhaseContext
    from ._phases import PhasedJob as PhasedJob
    from ._phases import PhaseProcessor as PhaseProcessor
    from ._phases import phase_history as phase_history
    from ._progress import JobProgress as JobProgress
    from ._progress import PhaseProgress as PhaseProgress
    from ._runner import execute as execute
    from ._scope import DEFAULT_ITEM_LIMIT as DEFAULT_ITEM_LIMIT
    from ._scope import ENTRIES as ENTRIES
    from ._scope import GLOBAL as GLOBAL
    from ._scope import location_scope as location_scope
    from ._tasks import Submission as Submission
    from ._tasks import TaskDefinition as TaskDefinition
    from ._tasks import TaskStep as TaskStep
    from .postgres import PostgresJobStore as PostgresJobStore
    from .sqlite import SCHEMA_VERSION as SCHEMA_VERSION
    from .sqlite import JobStore as JobStore

# phasekit's loggers (all in the job system) print nothing unless the
# application configures logging (the logging HOWTO's advice for libraries):
# without this, Python's last-resort handler would print every job's warnings
# and failures. Here, not in the package's root: `import phasekit` alone
# (the walker, hashing) does not load logging.
logging.getLogger("phasekit").addHandler(logging.NullHandler())

#: Each public name and the module it comes from, relative to this package.
#: Loaded on first use (PEP 562): a program that runs one job directly
#: (``run_direct``) never loads the manager, anyio or asyncio.
_HOME = {
    "COMPLETE": "._phase_model",
    "CorruptStateError": "..errors",
    "ENTRY_POINT_GROUP": "._definition",
    "ErrorRecord": "._model",
    "FatalError": "._phase_model",
    "HistoryRecord": "._model",
    "Job": "._definition",
    "JobBackend": "._backend",
    "JobCancelled": "._context",
    "JobContext": "._context",
    "JobControl": "._context",
    "JobDefinitionError": "..errors",
    "JobEvent": "._events",
    "follow_events": "._events",
    "JobHandle": "._handle",
    "JobInterrupted": "._context",
    "JobManager": "._manager",
    "JobPaused": "._context",
    "JobProgress": "._progress",
    "JobRecord": "._model",
    "JobRegistry": "._definition",
    "JobStatus": "._model",
    "WorkerRecord": "._model",
    "JobStore": ".sqlite",
    "PostgresJobStore": ".postgres",
    "open_backend": "._open",
    "JobUpdate": "._handle",
    "NonFatalError": "._phase_model",
    "OwnerLease": "._backend",
    "Phase": "._phase_model",
    "PhaseContext": "._phases",
    "PhaseGroup": "._phase_model",
    "PhaseProcessor": "._phases",
    "PhaseProgress": "._progress",
    "PhaseRecord": "._phase_model",
    "PhaseResult": "._phase_model",
    "PhaseStatus": "._phase_model",
    "PhasedJob": "._phases",
    "Phases": "._phase_model",
    "Recovery": "._phase_model",
    "SCHEMA_VERSION": ".sqlite",
    "SkipTo": "._phase_model",
    "UnknownJobError": "..errors",
    "default_registry": "._definition",
    "execute": "._runner",
    "job": "._definition",
    "phase_history": "._phases",
    "transient": "._definition",
    "DirectRun": "._direct",
    "run_direct": "._direct",
    "TaskDefinition": "._tasks",
    "TaskStep": "._tasks",
    "Submission": "._tasks",
    "TaskRecord": "._model",
    "TaskJob": "._model",
    "DEFAULT_TENANT": "._model",
    "GLOBAL": "._scope",
    "ENTRIES": "._scope",
    "DEFAULT_ITEM_LIMIT": "._scope",
    "location_scope": "._scope",
    "TaskNotFound": "..errors",
}

__all__ = [
    "COMPLETE",
    "DEFAULT_ITEM_LIMIT",
    "DEFAULT_TENANT",
    "ENTRIES",
    "ENTRY_POINT_GROUP",
    "GLOBAL",
    "SCHEMA_VERSION",
    "CorruptStateError",
    "DirectRun",
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
    "PostgresJobStore",
    "Recovery",
    "SkipTo",
    "Submission",
    "TaskDefinition",
    "TaskJob",
    "TaskNotFound",
    "TaskRecord",
    "TaskStep",
    "UnknownJobError",
    "WorkerRecord",
    "default_registry",
    "execute",
    "follow_events",
    "job",
    "location_scope",
    "open_backend",
    "phase_history",
    "run_direct",
    "transient",
]


#: Subpackages reachable as attributes before anything imported them
#: (``phasekit.jobs.sqlite.repair``).
_SUBMODULES = ("sqlite",)


def __getattr__(name: str) -> object:
    """Load a public name on first use (PEP 562), then keep it."""
    import importlib

    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'phasekit.jobs' has no attribute {name!r}")
    value = getattr(importlib.import_module(home, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOME, *_SUBMODULES})
