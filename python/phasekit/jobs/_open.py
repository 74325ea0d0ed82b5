"""Which job backend a location names: a ``postgresql://`` URL is a
PostgreSQL job store (workers on several hosts), anything else the path of a
jobs.db (SQLite, the embedded default)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .postgres import PostgresJobStore
    from .sqlite import JobStore

#: The URL schemes of a PostgreSQL job store (libpq's two spellings).
POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def is_postgres_url(location: str | os.PathLike[str]) -> bool:
    """Whether ``location`` names a PostgreSQL database rather than a file."""
    return isinstance(location, str) and location.startswith(POSTGRES_SCHEMES)


def open_backend(location: str | os.PathLike[str]) -> JobStore | PostgresJobStore:
    """The job store at ``location``: a PostgreSQL URL or a jobs.db path."""
    if is_postgres_url(location):
        from .postgres import PostgresJobStore

        return PostgresJobStore(str(location))
    from .sqlite import JobStore

    return JobStore(os.fspath(location))
