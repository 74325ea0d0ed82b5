"""Keeping an SQLite database in shape, in short steps: ``PRAGMA optimize``,
and a VACUUM only when it frees much and is quick.

Used on jobs.db through the job store's own connection
(``JobStore.optimize``), and on library.db in a child process that runs this
file as a script (``Library.tune_db``): library.db belongs to the Rust core
in every process that opened it, and a second copy of SQLite in that process
would not share its locks (docs/ARCHITECTURE.md, invariant 7). So this module
imports only the standard library.

What is done, and why (measured on the 2-core development machine, SQLite
3.40, WAL): a full ``VACUUM`` rewrites the whole file at about 115 MB/s
(0.05 s for 16 MB, 0.19 s for 64 MB, 1.0 s for 230 MB) and holds the write
lock all along, so every other writer waits; readers go on (WAL). It runs
only when at least :data:`VACUUM_FREE_FRACTION` of the pages are free and
the file is at most ``vacuum_max_bytes`` (64 MiB by default: ~0.2 s here, a
few times that on a slow disk, far below the 30 s that writers wait and that
a worker's heartbeat may be late). A database whose ``auto_vacuum`` is
``incremental`` gives its free pages back in slices of
:data:`INCREMENTAL_PAGES` instead, one short transaction each, whatever its
size. Neither database is switched to incremental here: that takes one full
VACUUM of its own, and changes how the file is kept. After a VACUUM the WAL
holds a copy of the whole database: it is checkpointed and truncated, waiting
at most :data:`CHECKPOINT_WAIT_MS` for readers (else the next run does it).

``PRAGMA optimize`` (under ``analysis_limit`` = :data:`ANALYSIS_LIMIT`, so an
ANALYZE it decides on reads a bounded sample) refreshes statistics that have
gone stale; it creates none where there are none: phasekit's queries are
planned without statistics (some name their index), and adding them could
change those plans.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import time
import urllib.parse
from typing import Any

#: A VACUUM is worth it when at least this share of the pages is free.
VACUUM_FREE_FRACTION = 0.25
#: ... and the file at most this large (see the module's docstring).
VACUUM_MAX_BYTES = 64 * 1024 * 1024
#: Pages handed back per transaction by an incremental vacuum (4 MiB of 4 KiB pages).
INCREMENTAL_PAGES = 1024
#: Rows sampled per index by an ANALYZE that ``PRAGMA optimize`` runs.
ANALYSIS_LIMIT = 400
#: How long the checkpoint after a VACUUM waits for readers (milliseconds).
CHECKPOINT_WAIT_MS = 1000


def _value(conn: sqlite3.Connection, pragma: str) -> int:
    return int(conn.execute(f"PRAGMA {pragma}").fetchone()[0])


def tune(
    conn: sqlite3.Connection,
    *,
    free_fraction: float = VACUUM_FREE_FRACTION,
    max_bytes: int = VACUUM_MAX_BYTES,
) -> dict[str, Any]:
    """Optimize the database of ``conn`` (autocommit, no transaction open),
    and vacuum it if worthwhile (see the module's docstring). Returns what
    was found and done: ``bytes_before``, ``bytes_after``, ``free_pages``
    (before), ``pages`` (before), ``vacuum`` (``"none"``, ``"full"``,
    ``"incremental"``, or ``"skipped: ..."`` saying why), ``seconds``."""
    began = time.monotonic()
    page_size = _value(conn, "page_size")
    pages, free = _value(conn, "page_count"), _value(conn, "freelist_count")
    before = pages * page_size
    conn.execute(f"PRAGMA analysis_limit = {ANALYSIS_LIMIT}")
    conn.execute("PRAGMA optimize")
    vacuum = "none"
    if pages and free / pages >= free_fraction:
        if _value(conn, "auto_vacuum") == 2:  # incremental
            while _value(conn, "freelist_count"):
                # Each call is a transaction of its own: other writers get
                # their turn between slices.
                conn.execute(f"PRAGMA incremental_vacuum({INCREMENTAL_PAGES})").fetchall()
            vacuum = "incremental"
        elif before <= max_bytes:
            conn.execute("VACUUM")
            vacuum = "full"
        else:
            vacuum = (
                f"skipped: {before / 2**20:.0f} MiB, {free / pages:.0%} free, is larger than "
                f"{max_bytes / 2**20:.0f} MiB (a VACUUM would hold the write lock too long)"
            )
    if vacuum in ("full", "incremental"):
        _truncate_wal(conn)
    after = _value(conn, "page_count") * page_size
    return {
        "bytes_before": before,
        "bytes_after": after,
        "pages": pages,
        "free_pages": free,
        "vacuum": vacuum,
        "seconds": time.monotonic() - began,
    }


def _truncate_wal(conn: sqlite3.Connection) -> None:
    """Copy the WAL back and truncate it, waiting for readers only briefly."""
    waits = _value(conn, "busy_timeout")
    conn.execute(f"PRAGMA busy_timeout = {CHECKPOINT_WAIT_MS}")
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    except sqlite3.OperationalError:
        pass  # readers stayed: the WAL is reused, and the next run truncates it
    finally:
        conn.execute(f"PRAGMA busy_timeout = {waits}")


def main(argv: list[str]) -> int:
    """``python _sqlite_tune.py DB '{"free_fraction": ..., "max_bytes": ...}'``:
    :func:`tune` on ``DB`` (which must exist), its result as one JSON line."""
    path, options = os.fsencode(argv[0]), json.loads(argv[1]) if len(argv) > 1 else {}
    try:
        # mode=rw: never create a database that is not there.
        uri = f"file:{urllib.parse.quote(path)}?mode=rw"
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=30)
        try:
            result = tune(conn, **options)
        finally:
            conn.close()
    except sqlite3.Error as exc:
        # Said to the parent as a result: it reports it as the step's error.
        result = {"error": f"{type(exc).__name__}: {exc}"}
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
