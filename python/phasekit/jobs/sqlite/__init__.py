"""The SQLite job backend: jobs.db, the embedded default (nothing to
install). :class:`JobStore` implements :class:`~phasekit.jobs.JobBackend`; no
SQL of the job system lives outside this package."""

from __future__ import annotations

from ._schema import SCHEMA_VERSION
from ._store import EVENTS_KEPT, JobStore

# typing.TYPE_CHECKING without importing typing (type checkers honour the name).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from ._repair import RepairReport as RepairReport
    from ._repair import repair as repair

__all__ = ["EVENTS_KEPT", "SCHEMA_VERSION", "JobStore", "RepairReport", "repair"]


def __getattr__(name: str) -> object:
    """``repair`` and its report load on first use (PEP 562): running a job
    never needs them."""
    if name in ("RepairReport", "repair"):
        from . import _repair

        value = getattr(_repair, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), "RepairReport", "repair"})
