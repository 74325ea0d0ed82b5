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


#: Environment variable naming the folder of a PostgreSQL library's files
#: (thumbnails, scratch files): shared storage when workers on several hosts
#: make thumbnails.
LIBRARY_FILES_ENV = "PHASEKIT_LIBRARY_FILES"


def is_database_url(location: str) -> bool:
    """Whether a library location names a PostgreSQL database."""
    return location.startswith(("postgresql://", "postgres://"))


def default_library_path() -> Path:
    """``$PHASEKIT_LIBRARY`` (a folder), else the per-user data folder's ``phasekit``."""
    from pathlib import Path  # here: a command that never opens a library never needs it

    env = os.environ.get(LIBRARY_ENV)
    if env and not is_database_url(env):
        return Path(env)
    return _data_folder()


def library_files_folder(url: str) -> Path:
    """Where a PostgreSQL library keeps its files: ``$PHASEKIT_LIBRARY_FILES``,
    else a folder of the per-user data folder named after the database."""
    import re
    from pathlib import Path

    env = os.environ.get(LIBRARY_FILES_ENV)
    if env:
        return Path(env)
    # The URL without its password and options, as a folder name.
    plain = re.sub(r"^[a-z]+://(?:([^:@/]*)(?::[^@/]*)?@)?", r"\1@", url).split("?")[0]
    return _data_folder() / "databases" / re.sub(r"[^A-Za-z0-9._@-]+", "_", plain)


def _data_folder() -> Path:
    from pathlib import Path

    home = Path.home()
    if sys.platform == "darwin":
        return home / "Library" / "Application Support" / "phasekit"
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else home / ".local" / "share"
    return base / "phasekit"
