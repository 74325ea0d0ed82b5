"""Loading a heavy client ahead of its first use, on a thread."""

from __future__ import annotations

import sys
import threading


def import_psycopg_meanwhile() -> None:
    """Import psycopg (the PostgreSQL job store's client) on a thread, so
    that it loads while the caller goes on: the import is the largest part
    of a PostgreSQL library's start-up (~0.09 s of CPU). The thread holds
    the GIL most of the time, so this gains where the caller waits without
    it (the library's connection, made in Rust) or would import psycopg
    later anyway. The job store's own import then finds it done, or waits
    for it (Python's import lock); a missing psycopg is reported there."""
    if "psycopg" in sys.modules:
        return

    def run() -> None:
        try:
            import psycopg  # noqa: F401
        except ImportError:
            return

    threading.Thread(target=run, name="phasekit-import-psycopg", daemon=True).start()
