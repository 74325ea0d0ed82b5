"""The PostgreSQL job backend: the jobs of a library shared by workers on
several hosts. :class:`PostgresJobStore` implements
:class:`~phasekit.jobs.JobBackend` and passes the contract suite the SQLite
store passes (``tests/test_backend_contract.py``); psycopg 3 is needed
(``pip install 'phasekit[postgres]'``), imported when a store opens.
"""

from __future__ import annotations

from ._schema import SCHEMA_VERSION
from ._store import EVENTS_KEPT, PostgresJobStore

__all__ = ["EVENTS_KEPT", "SCHEMA_VERSION", "PostgresJobStore"]
