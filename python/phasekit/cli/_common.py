"""What every command shares: argument types, the library folder, sizes for
people and values for JSON. Nothing here imports more than the standard
library's light modules: every command's parser is built from it."""

from __future__ import annotations

import argparse
import math
import sys

from .._layout import (
    JOBS_DB_NAME,
    JOBS_ENV,
    LIBRARY_ENV,
    default_library_path,
    is_database_url,
)

# typing.TYPE_CHECKING without importing typing (see phasekit/cli/__init__.py).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path

    from ..jobs import JobStore, PostgresJobStore
    from ..library import Library


def positive_int(text: str) -> int:
    """An int >= 1 (a thread count, a batch size)."""
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def count(text: str) -> int:
    """An int >= 0 (a number of lines to print, a size in bytes)."""
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
    return value


def seconds(text: str) -> float:
    """A finite number of seconds > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a number of seconds > 0, not {text}")
    return value


def seconds_or_zero(text: str) -> float:
    """A finite number of seconds >= 0 (0: never, or at once)."""
    if text.strip() in ("0", "0.0"):
        return 0.0
    return seconds(text)


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None


def library_folder(args: argparse.Namespace) -> Path:
    """The folder ``--library`` names, else the default one."""
    from pathlib import Path

    return Path(args.library) if args.library else default_library_path()


def library_database(args: argparse.Namespace) -> str | None:
    """The PostgreSQL URL ``--library`` (or ``$PHASEKIT_LIBRARY``) names, if it names one."""
    import os

    location = args.library or os.environ.get(LIBRARY_ENV)
    return location if location and is_database_url(location) else None


def library_name(library: Library) -> str:
    """How a message names an open library: its folder, or its database's
    URL without the password."""
    if library.database is None:
        return str(library.path)
    from ..jobs.postgres._connect import redact

    return redact(library.database)


def jobs_db(args: argparse.Namespace) -> Path:
    """The jobs.db of the library ``--library`` names."""
    return library_folder(args) / JOBS_DB_NAME


def open_jobs(args: argparse.Namespace, what: str = "jobs") -> JobStore | PostgresJobStore | None:
    """The job store of the library: the PostgreSQL database ``--jobs`` or
    ``$PHASEKIT_JOBS`` names, else its jobs.db; None (after saying so) when
    the library has no jobs.db yet (``what``: what it has none of)."""
    import os

    from ..jobs import open_backend

    url = os.environ.get(JOBS_ENV) or library_database(args)
    if url:
        return open_backend(url)
    path = jobs_db(args)
    if not path.exists():
        print(f"phasekit: no {what} in {path.parent} (no jobs.db yet)", file=sys.stderr)
        return None
    return open_backend(path)


def human(n: int) -> str:
    """A size in bytes for people: three significant digits (``999 B``,
    ``1.23 KB``, ``12.3 MB``, ``123 GB``), in SI units as ``du --si`` prints."""
    value = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if unit == "B" and value < 1000:
            return f"{n} B"
        if value < 999.5 or unit == "TB":
            digits = 2 if value < 9.995 else 1 if value < 99.95 else 0
            return f"{value:.{digits}f} {unit}"
        value /= 1000
    raise AssertionError("unreachable: TB ends the loop")


#: The environment variable naming the tenant the commands act for.
TENANT_ENV = "PHASEKIT_TENANT"


def tenant_name(text: str) -> str:
    """A tenant name (see phasekit/jobs/_scope.py: checked here with the
    same rule, without importing the job system into the parser)."""
    import re

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.@:-]{0,127}", text):
        raise argparse.ArgumentTypeError(
            f"not a tenant name (letters, digits and '_.@:-'): {text!r}"
        )
    return text


def tenant_argument(
    p: argparse.ArgumentParser,
    help: str = "act for this tenant (default: $PHASEKIT_TENANT, else 'default'); "
    "another tenant's jobs are as if they did not exist",
    default: str | None = "default",
) -> None:
    """``--tenant NAME``: whose jobs a command sees."""
    import os

    env = os.environ.get(TENANT_ENV)
    p.add_argument("--tenant", type=tenant_name, metavar="NAME",
                   default=env if env else default, help=help)  # fmt: skip
