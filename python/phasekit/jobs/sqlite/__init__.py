"""The SQLite job backend: jobs.db, the embedded default (nothing to
install). :class:`JobStore` implements :class:`~phasekit.jobs.JobBackend`; no
SQL of the job system lives outside this package."""

from __future__ import annotations

from ._repair import RepairReport, repair
from ._schema import SCHEMA_VERSION
from ._store import JobStore

__all__ = ["SCHEMA_VERSION", "JobStore", "RepairReport", "repair"]
