"""procrastinate's side of benches/bench_pg_workers.py, importable by its workers.

``python -m procrastinate --app=procrastinate_noop.app worker`` (this folder
on PYTHONPATH) with ``BENCH_PROCRASTINATE_URL`` naming the database. The app
is made when ``procrastinate_noop.app`` is first asked for, so that the
bench process can make one per database with :func:`make_app` instead.

Two tasks, as benches/noop_jobs.py has two job types:

* ``bench.noop``: does nothing (a plain ``def``, as phasekit's
  ``Job.run`` is: procrastinate runs it in a thread of its event loop's
  executor, as phasekit runs a job in a thread of its own);
* ``bench.stamp``: writes ``time.time()`` at its start to the file ``path``
  (procrastinate keeps no task results, so the file is how the bench reads it).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

#: The environment variable naming the workers' database.
URL_ENV = "BENCH_PROCRASTINATE_URL"


def make_app(url: str) -> tuple[Any, Any, Any]:
    """A procrastinate App on ``url`` (psycopg 3, its defaults), with its
    ``bench.noop`` and ``bench.stamp`` tasks."""
    from procrastinate import App, PsycopgConnector

    app = App(connector=PsycopgConnector(conninfo=url))

    @app.task(name="bench.noop")
    def noop(i: int) -> None:
        return None

    @app.task(name="bench.stamp")
    def stamp(path: str) -> None:
        started = time.time()
        Path(path).write_text(repr(started))

    return app, noop, stamp


_app: Any = None


def __getattr__(name: str) -> Any:
    """``procrastinate_noop.app``: the app on ``$BENCH_PROCRASTINATE_URL`` (made once)."""
    global _app
    if name != "app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if _app is None:
        _app = make_app(os.environ[URL_ENV])[0]
    return _app
