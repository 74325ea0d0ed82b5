"""Where a library lives and what its folder holds.

The library, the job system and the command line share these names; this
module imports nothing heavy, so the command line can use them before it
loads anything else (see phasekit/cli/__init__.py).
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from pathlib import Path

#: Environment variable naming the library folder when none is given.
LIBRARY_ENV = "PHASEKIT_LIBRARY"
#: Files read at once by default (see :func:`phasekit.fs.read_threads`).
READ_THREADS_ENV = "PHASEKIT_READ_THREADS"
#: Sets the default staleness of the job runners of this process (seconds
#: without a heartbeat before the others take one for dead): see
#: phasekit/jobs/_recovery.py.
STALE_AFTER_ENV = "PHASEKIT_STALE_AFTER_S"
#: The library's index (opened only through the Rust core).
DB_NAME = "library.db"
#: The library's job store.
JOBS_DB_NAME = "jobs.db"
#: Environment variable naming a PostgreSQL database (a ``postgresql://``
#: URL) that keeps the library's jobs instead of its jobs.db.
JOBS_ENV = "PHASEKIT_JOBS"


def default_library_path() -> Path:
    """``$PHASEKIT_LIBRARY``, else the per-user data folder's ``phasekit``."""
    from pathlib import Path  # here: a command that never opens a library never needs it

    env = os.environ.get(LIBRARY_ENV)
    if env:
        return Path(env)
    home = Path.home()
    if sys.platform == "darwin":
        return home / "Library" / "Application Support" / "phasekit"
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else home / ".local" / "share"
    return base / "phasekit"
