"""Worker processes on PostgreSQL: ``phasekit worker`` against procrastinate.

Run from the repository root, with the venv active (procrastinate and
psycopg 3 installed)::

    python benches/bench_pg_workers.py --rounds 3 --json benches/results/pg_workers.json

and ``--jobs 300 --rounds 1 --latency-jobs 20`` for a quick smoke run. The
conventions are benches/bench_workers.py's (phasekit against huey on SQLite),
whose helpers this imports. The server: a PostgreSQL cluster of Debian's
packages made in a temporary folder, on 127.0.0.1 and a free port, run as
``nobody`` when the bench runs as root, with PostgreSQL's default durability
(``fsync``, ``synchronous_commit`` and ``full_page_writes`` on: only the
port, the socket folder and ``max_connections`` are set), stopped and removed
at the end; ``--url`` uses an existing server instead (its user must be
allowed to create databases). Every run gets a database of its own, created
for it and dropped after it, so neither contender inherits the other's (or
its own earlier rounds') dead rows; once its queue is filled the database is
``ANALYZE``d, untimed (``--no-analyze`` skips it: see :func:`analyze`).
Three figures:

* phasekit: ``--jobs`` no-op jobs (``bench.noop`` of benches/noop_jobs.py)
  queued beforehand through ``PostgresJobStore`` (one insert per job, on a
  session with ``synchronous_commit = off``: queueing is not timed, the
  workers' sessions keep the default), then N ``phasekit --jobs URL worker``
  processes (``--concurrency 1`` each, ``--maintenance-every 0``) started;
  timed from the first start until no job is queued or running (polled every
  POLL_DONE_S), then checked that every job completed. Process start-up is
  included: nothing is subtracted.
* procrastinate: the same number of no-op tasks (``bench.noop`` of
  benches/procrastinate_noop.py, a plain ``def``) deferred beforehand with
  ``batch_defer`` into a database its schema was applied to, then N
  ``procrastinate worker`` processes started (``--concurrency 1`` each, as
  phasekit's; its other defaults kept: LISTEN/NOTIFY on, a 5 s fallback poll,
  ``wait`` on so a worker stays when the queue is empty, jobs kept, not
  deleted, when done) with ``--log-level warning`` (by default it logs two
  INFO lines per job on stderr, as huey's consumer does unless ``--quiet``,
  which bench_workers.py passes); timed until no job is ``todo`` or
  ``doing``, then checked that every job ``succeeded``.
* claim latency: one idle worker of each; ``--latency-jobs`` jobs dispatched
  one at a time (each after the previous finished, and after a random pause
  of one to three phasekit scheduler polls, the same pauses for both), each
  recording ``time.time()`` at its start: latency = start - dispatch. Both
  workers LISTEN for the NOTIFY their schema sends when a job is queued, and
  poll as a fallback: phasekit's scheduler every
  ``phasekit.jobs._handle.POLL_S``, procrastinate's worker every 5 s.

Contenders alternate within each round (their order flips every round); the
table gives the median round. For each run the server's own counters are
kept too (transactions committed, WAL records, bytes and flushes, per job;
with ``--stat-statements``, the top statements of ``pg_stat_statements``),
since where the time goes on a server is what tells the two designs apart.
Every round is in the ``--json`` output.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import itertools
import json
import os
import platform
import pwd
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg

import phasekit
from bench_workers import (
    ENV,
    HERE,
    POLL_DONE_S,
    READY_LINE,
    SCHEDULER_POLL_S,
    TIMEOUT_S,
    Child,
    _stop_all,
    _wait,
    latency_summary,
    phasekit_argv,
)
from phasekit.jobs import JobStatus
from phasekit.jobs.postgres import PostgresJobStore
from phasekit.library import Library

#: The user the server runs as when the bench runs as root (PostgreSQL
#: refuses to run as root).
SERVER_USER = "nobody"
#: Enough for 8 procrastinate workers (a pool of 4 and a listening session
#: each) or phasekit's, and the bench's own sessions.
MAX_CONNECTIONS = 200
#: Rows a batch_defer inserts at once.
DEFER_BATCH = 1000
#: What phasekit's workers say that is not news (as bench_workers.py).
PHASEKIT_QUIET = (READY_LINE, "handing its jobs back")
#: What procrastinate's workers print on stderr whatever the log level.
PROCRASTINATE_QUIET = ("Launching a worker on",)
#: The top statements of pg_stat_statements kept per run.
TOP_STATEMENTS = 12
_databases = itertools.count(1)
#: Sessions still connected to a run's database when it was dropped (the
#: drop ends them): what they were, for the notes.
LEFTOVER_SESSIONS: list[str] = []


# the server


def _bindir() -> Path:
    """The newest installed PostgreSQL's programs (Debian's layout)."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parent.parent.name.split(".")[0]),
    )
    if not found:
        raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql)")
    return Path(found[-1]).parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class BenchServer:
    """A cluster in ``root`` on ``127.0.0.1:port``: tests/pg_server.py's
    PgServer without its test-only settings (it turns fsync,
    synchronous_commit and full_page_writes off; here they keep PostgreSQL's
    defaults). ``stat_statements``: load pg_stat_statements."""

    def __init__(self, root: Path, *, stat_statements: bool = False) -> None:
        self.root = root
        self.data = root / "data"
        self.log = root / "log"
        self.port = _free_port()
        self.bin = _bindir()
        self._as: list[str] = []
        if os.geteuid() == 0:
            user = pwd.getpwnam(SERVER_USER)
            os.chown(root, user.pw_uid, user.pw_gid)
            self._as = [
                "setpriv",
                f"--reuid={user.pw_uid}",
                f"--regid={user.pw_gid}",
                "--clear-groups",
            ]
        # --no-sync: initdb does not flush the new cluster's files (it is
        # thrown away at the end); the server's own settings are untouched.
        self._run(
            "initdb",
            *("-D", str(self.data), "-U", "bench", "--auth=trust", "-E", "UTF8"),
            *("--locale=C.UTF-8", "--no-sync"),
        )
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"port = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{root}'\nmax_connections = {MAX_CONNECTIONS}\n"
            )
            if stat_statements:
                conf.write("shared_preload_libraries = 'pg_stat_statements'\n")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "start")

    def _run(self, program: str, *args: str) -> None:
        subprocess.run(
            [*self._as, str(self.bin / program), *args],
            check=True,
            stdout=subprocess.DEVNULL,
            cwd=self.root,
        )

    def url(self) -> str:
        return f"postgresql://bench@127.0.0.1:{self.port}/postgres"

    def log_summary(self) -> list[str]:
        """The server log's errors and warnings: each message once, with its
        count and the statement it first came with."""
        try:
            lines = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return []
        counts: dict[str, int] = {}
        statements: dict[str, str] = {}
        last = ""
        for line in lines:
            for word in ("ERROR:", "WARNING:", "FATAL:", "PANIC:"):
                if word in line:
                    last = word + line.split(word, 1)[1]
                    counts[last] = counts.get(last, 0) + 1
                    break
            else:
                if "STATEMENT:" in line and last and last not in statements:
                    statements[last] = " ".join(line.split("STATEMENT:", 1)[1].split())[:160]
        return [
            f"{count} x {message[:200]}"
            + (f"  [{statements[message]}]" if message in statements else "")
            for message, count in counts.items()
        ]

    def close(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)


def _with_db(server_url: str, name: str) -> str:
    base, _, _ = server_url.partition("?")
    return f"{base.rpartition('/')[0]}/{name}"


@contextlib.contextmanager
def fresh_database(server_url: str, prefix: str) -> Iterator[str]:
    """A new empty database (its URL), dropped at the end."""
    name = f"bench_{prefix}_{os.getpid()}_{next(_databases)}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _with_db(server_url, name)
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            left = conn.execute(
                "SELECT application_name, state, left(query, 80) FROM pg_stat_activity"
                " WHERE datname = %s",
                (name,),
            ).fetchall()
            LEFTOVER_SESSIONS.extend(f"{name}: {' | '.join(map(str, row))}" for row in left)
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def unsynced(url: str) -> str:
    """``url`` for a session that does not wait for its commits to be flushed
    (queueing, which is not timed)."""
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options={quote('-c synchronous_commit=off')}"


def analyze(url: str) -> None:
    """``ANALYZE`` the database: a queue filled at once in a new database has
    no statistics until autovacuum's first visit (a minute or more), and a
    plan made without them can scan the whole queue on every claim
    (procrastinate's fetch took 3 ms a job instead of 0.5 here); a queue in
    service has had them long since."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ANALYZE")


class Counters:
    """The server's counters around one run: its database's commits, the
    cluster's WAL, and (if loaded) pg_stat_statements for the database."""

    def __init__(self, server_url: str, db_url: str, statements: bool) -> None:
        self.server_url = server_url
        self.dbname = db_url.rpartition("/")[2]
        self.statements = statements
        self.before: dict[str, float] = {}

    def _read(self) -> dict[str, float]:
        # Sessions flush their counters when they end; the bench's ended just
        # before (queueing) or the workers just stopped: give them a moment.
        time.sleep(0.5)
        with psycopg.connect(self.server_url, autocommit=True) as conn:
            commits, rollbacks = conn.execute(
                "SELECT xact_commit, xact_rollback FROM pg_stat_database WHERE datname = %s",
                (self.dbname,),
            ).fetchone() or (0, 0)
            records, wal_bytes, writes, syncs = conn.execute(
                "SELECT wal_records, wal_bytes, wal_write, wal_sync FROM pg_stat_wal"
            ).fetchone() or (0, 0, 0, 0)
        return {
            "commits": float(commits),
            "rollbacks": float(rollbacks),
            "wal_records": float(records),
            "wal_bytes": float(wal_bytes),
            "wal_writes": float(writes),
            "wal_syncs": float(syncs),
        }

    def start(self) -> None:
        self.before = self._read()
        if self.statements:
            with psycopg.connect(self.server_url, autocommit=True) as conn:
                conn.execute("SELECT pg_stat_statements_reset()")

    def stop(self, n: int, bench_reads: int) -> dict[str, Any]:
        """The differences, per job (``bench_reads``: the bench's own polls,
        each an autocommit transaction, taken off the commits)."""
        after = self._read()
        out: dict[str, Any] = {
            f"{k}_per_job": (after[k] - self.before.get(k, 0.0)) / n for k in after
        }
        out["commits_per_job"] = (after["commits"] - self.before["commits"] - bench_reads) / n
        if self.statements:
            out["statements"] = top_statements(self.server_url, self.dbname)
        return out


def top_statements(server_url: str, dbname: str) -> list[dict[str, Any]]:
    """pg_stat_statements' costliest statements in ``dbname``."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT s.query, s.calls, s.total_exec_time, s.rows, s.wal_bytes"
            " FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid"
            " WHERE d.datname = %s ORDER BY s.total_exec_time DESC LIMIT %s",
            (dbname, TOP_STATEMENTS),
        ).fetchall()
    return [
        {
            "query": " ".join(str(q).split())[:300],
            "calls": int(calls),
            "total_ms": float(total),
            "rows": int(nrows),
            "wal_bytes": float(wal),
        }
        for q, calls, total, nrows, wal in rows
    ]


# phasekit


def pk_argv(folder: Path, url: str, concurrency: int) -> list[str]:
    """bench_workers.py's worker command line, its jobs in ``url``."""
    argv = phasekit_argv(folder, concurrency)
    at = argv.index("worker")
    return [*argv[:at], "--jobs", url, *argv[at:]]


def phasekit_round(
    server_url: str, tmp: Path, n: int, workers: int, concurrency: int, opts: dict[str, Any]
) -> dict[str, Any]:
    from noop_jobs import Noop

    notes: list[str] = opts["notes"]
    with fresh_database(server_url, f"pk{workers}") as url:
        folder = Path(tempfile.mkdtemp(prefix=f"pk{workers}-", dir=tmp))
        Library.open(folder, jobs=url).close()
        with PostgresJobStore(unsynced(url)) as store:
            for i in range(n):
                store.create_job(Noop.job_name, Noop(i).to_state())
        if opts["analyze"]:
            analyze(url)
        counters = Counters(server_url, url, opts["statements"])
        counters.start()
        reads = 0
        with PostgresJobStore(url) as store:

            def done() -> bool:
                # Nothing queues jobs meanwhile: once none is queued, none
                # running means all have ended (as bench_workers.py).
                nonlocal reads
                reads += 1
                if store.list_jobs(JobStatus.QUEUED, limit=1):
                    return False
                reads += 1
                return not store.list_jobs(JobStatus.RUNNING, limit=1)

            start = time.perf_counter()
            argv = pk_argv(folder, url, concurrency)
            children = [Child(argv, ENV) for _ in range(workers)]
            try:
                end = _wait(done, children, TIMEOUT_S + 0.05 * n, POLL_DONE_S)
            finally:
                _stop_all(children, notes, quiet=PHASEKIT_QUIET)
            server = counters.stop(n, reads)
            completed = len(store.list_jobs(JobStatus.COMPLETED))
    if completed != n:
        raise RuntimeError(f"phasekit: {completed} of {n} jobs completed")
    ready = [child.first(READY_LINE) for child in children]
    last = max(t for t in ready if t is not None) - start if all(ready) else None
    return {"seconds": end - start, "workers_ready_s": last, "server": server}


def phasekit_latency(
    server_url: str, tmp: Path, pauses: list[float], notes: list[str]
) -> list[float]:
    """Dispatch-to-start on one idle phasekit worker (bench_workers.py's
    latency_round, on PostgreSQL)."""
    from noop_jobs import Stamp

    samples: list[float] = []
    with fresh_database(server_url, "pklat") as url:
        folder = Path(tempfile.mkdtemp(prefix="pklat-", dir=tmp))
        Library.open(folder, jobs=url).close()
        with PostgresJobStore(url) as store:
            children = [Child(pk_argv(folder, url, 1), ENV)]
            try:
                _wait(lambda: children[0].first(READY_LINE) is not None, children, TIMEOUT_S, 0.01)
                for pause in pauses:
                    time.sleep(pause)
                    dispatched = time.time()
                    job_id = store.create_job(Stamp.job_name, Stamp().to_state())
                    _wait(lambda j=job_id: store.status(j).finished, children, TIMEOUT_S, 0.005)
                    if store.status(job_id) is not JobStatus.COMPLETED:
                        raise RuntimeError(f"latency job {job_id}: {store.get_job(job_id).error}")
                    samples.append(store.outcome(job_id)["output"] - dispatched)
            finally:
                _stop_all(children, notes, quiet=PHASEKIT_QUIET)
    return samples


# procrastinate


def procrastinate_argv(concurrency: int, log_level: str) -> list[str]:
    app = [sys.executable, "-m", "procrastinate", "--app=procrastinate_noop.app"]
    return [*app, f"--log-level={log_level}", "worker", f"--concurrency={concurrency}"]


@contextlib.contextmanager
def procrastinate_app(url: str) -> Iterator[tuple[Any, Any, Any]]:
    """The bench's own App on ``url``, its schema applied; (app, noop, stamp)."""
    from procrastinate_noop import make_app

    app, noop, stamp = make_app(url)
    app.open()
    try:
        app.schema_manager.apply_schema()
        yield app, noop, stamp
    finally:
        app.close()


def procrastinate_env(url: str) -> dict[str, str]:
    from procrastinate_noop import URL_ENV

    return {**ENV, URL_ENV: url}


def procrastinate_round(
    server_url: str, n: int, workers: int, concurrency: int, opts: dict[str, Any]
) -> dict[str, Any]:
    notes: list[str] = opts["notes"]
    with fresh_database(server_url, f"pq{workers}") as url:
        with procrastinate_app(unsynced(url)) as (_, noop, _):
            for first in range(0, n, DEFER_BATCH):
                noop.batch_defer(*({"i": i} for i in range(first, min(n, first + DEFER_BATCH))))
        if opts["analyze"]:
            analyze(url)
        counters = Counters(server_url, url, opts["statements"])
        counters.start()
        reads = 0
        with psycopg.connect(url, autocommit=True) as conn:

            def done() -> bool:
                # The partial index procrastinate_jobs_id_lock_idx_v1 covers
                # exactly these rows: one indexed read, as phasekit's two.
                nonlocal reads
                reads += 1
                row = conn.execute(
                    "SELECT EXISTS (SELECT 1 FROM procrastinate_jobs"
                    " WHERE status IN ('todo', 'doing'))"
                ).fetchone()
                return not (row and row[0])

            start = time.perf_counter()
            argv = procrastinate_argv(concurrency, opts["log_level"])
            children = [Child(argv, procrastinate_env(url)) for _ in range(workers)]
            try:
                end = _wait(done, children, TIMEOUT_S + 0.05 * n, POLL_DONE_S)
            finally:
                _stop_all(children, notes, quiet=PROCRASTINATE_QUIET)
            server = counters.stop(n, reads)
            counts = dict(
                conn.execute(
                    "SELECT status::text, count(*) FROM procrastinate_jobs GROUP BY status"
                ).fetchall()
            )
    if counts != {"succeeded": n}:
        raise RuntimeError(f"procrastinate: {counts} of {n} jobs")
    return {"seconds": end - start, "workers_ready_s": None, "server": server}


def procrastinate_latency(
    server_url: str, tmp: Path, pauses: list[float], notes: list[str], log_level: str
) -> list[float]:
    """Dispatch-to-start on one idle procrastinate worker."""
    samples: list[float] = []
    stamps = Path(tempfile.mkdtemp(prefix="pqlat-", dir=tmp))
    with (
        fresh_database(server_url, "pqlat") as url,
        procrastinate_app(url) as (_, _, stamp),
        psycopg.connect(url, autocommit=True) as conn,
    ):

        def listening() -> bool:
            # Its worker row is there, and its session LISTENs (the
            # query a session ran last stays in pg_stat_activity).
            row = conn.execute(
                "SELECT EXISTS (SELECT 1 FROM procrastinate_workers),"
                " EXISTS (SELECT 1 FROM pg_stat_activity"
                "  WHERE datname = current_database() AND query LIKE 'LISTEN %')"
            ).fetchone()
            return bool(row and row[0] and row[1])

        def status(job_id: int) -> str:
            row = conn.execute(
                "SELECT status::text FROM procrastinate_jobs WHERE id = %s", (job_id,)
            ).fetchone()
            return str(row[0]) if row else "missing"

        children = [Child(procrastinate_argv(1, log_level), procrastinate_env(url))]
        try:
            _wait(listening, children, TIMEOUT_S, 0.01)
            for k, pause in enumerate(pauses):
                time.sleep(pause)
                path = stamps / f"{k}"
                dispatched = time.time()
                job_id = stamp.defer(path=str(path))
                _wait(
                    lambda j=job_id: status(j) not in ("todo", "doing"),
                    children,
                    TIMEOUT_S,
                    0.005,
                )
                if status(job_id) != "succeeded":
                    raise RuntimeError(f"latency job {job_id}: {status(job_id)}")
                samples.append(float(path.read_text()) - dispatched)
        finally:
            _stop_all(children, notes, quiet=PROCRASTINATE_QUIET)
    return samples


# the report


def summarise(rows: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    """Per worker count: each contender's median round, and the ratio."""
    out = []
    for workers in dict.fromkeys(r["workers"] for r in rows):
        entry: dict[str, Any] = {"workers": workers}
        for name in ("phasekit", "procrastinate"):
            mine = [r for r in rows if r["workers"] == workers and r["contender"] == name]
            if not mine:
                continue
            seconds = statistics.median(r["seconds"] for r in mine)
            entry[name] = {"seconds": seconds, "jobs_per_s": n / seconds}
            per_job = [r["server"] for r in mine if r.get("server")]
            for key in ("commits_per_job", "wal_records_per_job", "wal_bytes_per_job"):
                values = [s[key] for s in per_job if key in s]
                if values:
                    entry[name][key] = statistics.median(values)
        if "phasekit" in entry and "procrastinate" in entry:
            entry["ratio"] = entry["phasekit"]["jobs_per_s"] / entry["procrastinate"]["jobs_per_s"]
        out.append(entry)
    return out


def report(
    summary: list[dict[str, Any]],
    rows: list[dict[str, Any]],
    lat: dict[str, dict[str, Any]],
    config: dict[str, Any],
    notes: list[str],
) -> None:
    """The Markdown tables, on stdout."""
    print(
        f"\n{config['jobs']:,} no-op jobs, median of {config['rounds']} round(s); "
        f"every worker a process (--concurrency {config['concurrency']}); PostgreSQL "
        f"{config['server_version']} (fsync {config['fsync']}, synchronous_commit "
        f"{config['synchronous_commit']})\n"
    )
    print(
        "| workers | phasekit jobs/s | procrastinate jobs/s | ratio | phasekit s "
        "| procrastinate s |\n|---:|---:|---:|---:|---:|---:|"
    )
    for s in summary:
        pk, pq = s.get("phasekit", {}), s.get("procrastinate", {})

        def rate(c: dict[str, Any]) -> str:
            return f"{c['jobs_per_s']:,.0f}" if c else "—"

        def secs(c: dict[str, Any]) -> str:
            return f"{c['seconds']:.3f}" if c else "—"

        ratio = f"{s['ratio']:.2f}x" if "ratio" in s else "—"
        print(f"| {s['workers']} | {rate(pk)} | {rate(pq)} | {ratio} | {secs(pk)} | {secs(pq)} |")
    ready = [r["workers_ready_s"] for r in rows if r["workers_ready_s"] is not None]
    if ready:
        print(
            f"\nphasekit's workers printed their ready line {statistics.median(ready):.3f} s "
            "(median) after they were started; that time is included above."
        )
    print(
        "\nServer work per job (median round; commits exclude the bench's polls; WAL is "
        "the cluster's):\n\n| workers | contender | commits/job | WAL records/job | "
        "WAL bytes/job |\n|---:|---|---:|---:|---:|"
    )
    for s in summary:
        for name in ("phasekit", "procrastinate"):
            c = s.get(name, {})
            if "commits_per_job" in c:
                print(
                    f"| {s['workers']} | {name} | {c['commits_per_job']:.2f} | "
                    f"{c.get('wal_records_per_job', 0):.1f} | "
                    f"{c.get('wal_bytes_per_job', 0):,.0f} |"
                )
    if any(lat.values()):
        print(
            "\nClaim latency, one idle worker, dispatch to job start (both LISTEN for a "
            "NOTIFY of the queued job; phasekit's scheduler also polls the store every "
            f"{SCHEDULER_POLL_S * 1e3:g} ms, procrastinate's worker every 5 s):\n"
        )
        print("| contender | jobs | median ms | p99 ms | min ms | max ms |")
        print("|---|---:|---:|---:|---:|---:|")
        for name, one in lat.items():
            if not one:
                continue
            ms = {k: one[f"{k}_s"] * 1e3 for k in ("median", "p99", "min", "max")}
            print(
                f"| {name} | {one['jobs']} | {ms['median']:.1f} | {ms['p99']:.1f} | "
                f"{ms['min']:.1f} | {ms['max']:.1f} |"
            )
    for note in notes:
        print(f"\nnote: {note}")


def server_settings(server_url: str) -> dict[str, str]:
    names = (
        "server_version",
        "fsync",
        "synchronous_commit",
        "full_page_writes",
        "wal_sync_method",
        "shared_buffers",
        "max_connections",
        "autovacuum",
        "shared_preload_libraries",
    )
    with psycopg.connect(server_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT name, setting, unit FROM pg_settings WHERE name = ANY(%s)", (list(names),)
        ).fetchall()
        version = conn.execute("SHOW server_version").fetchone()
    out = {name: f"{setting}{'' if unit is None else ' ' + unit}" for name, setting, unit in rows}
    out["server_version"] = str(version[0]) if version else "?"
    return out


def repo_state() -> dict[str, Any]:
    """The repository's commit, and its changed files under python/ and rust/,
    as the bench starts: what the phasekit measured was if it was imported
    from there (``phasekit_from_repo``), not if from a copy elsewhere."""

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", "-C", str(HERE.parent), *args], capture_output=True, text=True, check=False
        )
        return done.stdout.strip()

    changed = git("status", "--porcelain", "--", "python", "rust").splitlines()
    imported = Path(phasekit.__file__).resolve().parent
    return {
        "phasekit_from_repo": imported.is_relative_to(HERE.parent.resolve()),
        "repo_commit": git("rev-parse", "HEAD"),
        "repo_changed": changed,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description=__doc__.splitlines()[0] if __doc__ else None,
    )
    p.add_argument("--jobs", type=int, default=10_000, help="no-op jobs per round")
    p.add_argument("--rounds", type=int, default=1, help="rounds of every contender")
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4, 8], help="worker counts")
    p.add_argument("--concurrency", type=int, default=1, help="of each worker")
    p.add_argument("--latency-jobs", type=int, default=200, help="per round (0 skips it)")
    p.add_argument("--json", type=Path, help="write every round and the summary here")
    p.add_argument("--tmp", type=Path, help="where the libraries and the cluster go")
    p.add_argument("--url", help="an existing server (postgresql://...) instead of a new one")
    p.add_argument(
        "--contenders",
        nargs="+",
        default=["phasekit", "procrastinate"],
        choices=["phasekit", "procrastinate"],
    )
    p.add_argument(
        "--stat-statements",
        action="store_true",
        help="load pg_stat_statements in the new cluster and keep each run's top statements",
    )
    p.add_argument("--procrastinate-log-level", default="warning", help="its workers' --log-level")
    p.add_argument(
        "--no-analyze",
        action="store_true",
        help="do not ANALYZE a run's database once its queue is filled (see analyze())",
    )
    args = p.parse_args(argv)
    import procrastinate

    # As bench_workers.py: bytecode compiled as an installed package has it
    # (pip compiled procrastinate's at install time).
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(Path(phasekit.__file__).parent), str(HERE)],
        check=True,
    )
    sys.path.insert(0, str(HERE))  # noop_jobs, procrastinate_noop, in this process too
    repo = repo_state()
    tmp = Path(tempfile.mkdtemp(prefix="bench-pg-workers-", dir=args.tmp))
    server: BenchServer | None = None
    notes: list[str] = []
    rows: list[dict[str, Any]] = []
    latency: dict[str, list[float]] = {name: [] for name in args.contenders}
    rng = random.Random(1)
    try:
        if args.url:
            server_url = args.url
            statements = args.stat_statements
        else:
            root = Path(tempfile.mkdtemp(prefix="bench-pg-", dir=args.tmp))
            server = BenchServer(root, stat_statements=args.stat_statements)
            server_url = server.url()
            statements = args.stat_statements
        if statements:
            with psycopg.connect(server_url, autocommit=True) as conn:
                conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        settings = server_settings(server_url)
        opts = {
            "notes": notes,
            "statements": statements,
            "log_level": args.procrastinate_log_level,
            "analyze": not args.no_analyze,
        }
        c = args.concurrency
        contenders: dict[str, Callable[[int, int], dict[str, Any]]] = {
            "phasekit": lambda n, w: phasekit_round(server_url, tmp, n, w, c, opts),
            "procrastinate": lambda n, w: procrastinate_round(server_url, n, w, c, opts),
        }
        contenders = {k: v for k, v in contenders.items() if k in args.contenders}
        latencies: dict[str, Callable[[list[float]], list[float]]] = {
            "phasekit": lambda pauses: phasekit_latency(server_url, tmp, pauses, notes),
            "procrastinate": lambda pauses: procrastinate_latency(
                server_url, tmp, pauses, notes, args.procrastinate_log_level
            ),
        }
        for run in contenders.values():  # warm-up: imports, page cache, .pyc files
            run(min(args.jobs, 50), 1)
        for rnd in range(args.rounds):
            order = list(contenders) if rnd % 2 == 0 else list(reversed(contenders))
            for workers in args.workers:
                for name in order:
                    row: dict[str, Any] = {"round": rnd, "contender": name, "workers": workers}
                    # The machine's load as the run starts (1-minute average; this
                    # bench's own earlier runs count in it, others' work too).
                    row["loadavg_before"] = os.getloadavg()[0]
                    row.update(contenders[name](args.jobs, workers))
                    rows.append(row)
                    per = row["server"]
                    print(
                        f"round {rnd}: {name:13} x{workers}: {row['seconds']:7.3f} s, "
                        f"{args.jobs / row['seconds']:7.0f} jobs/s, "
                        f"{per['commits_per_job']:.2f} commits/job, "
                        f"{per['wal_bytes_per_job']:,.0f} WAL bytes/job",
                        file=sys.stderr,
                    )
            if args.latency_jobs:
                # The same pauses for both contenders.
                pauses = [
                    rng.uniform(SCHEDULER_POLL_S, 3 * SCHEDULER_POLL_S)
                    for _ in range(args.latency_jobs)
                ]
                for name in order:
                    got = latencies[name](pauses)
                    latency[name] += got
                    print(
                        f"round {rnd}: {name:13} latency: median "
                        f"{statistics.median(got) * 1e3:.1f} ms",
                        file=sys.stderr,
                    )
        if LEFTOVER_SESSIONS:
            notes.append(
                f"{len(LEFTOVER_SESSIONS)} session(s) still connected when a run's database"
                " was dropped:" + "".join(f"\n    {line}" for line in LEFTOVER_SESSIONS[:20])
            )
        if server is not None:
            logged = server.log_summary()
            if logged:
                notes.append(
                    "the server logged (count, message, first statement):"
                    + "".join(f"\n    {line}" for line in logged)
                )
    finally:
        if server is not None:
            server.close()
        shutil.rmtree(tmp, ignore_errors=True)

    summary = summarise(rows, args.jobs)
    lat = {name: latency_summary(samples) for name, samples in latency.items()}
    for one in lat.values():
        one.pop("scheduler_poll_s", None)
    config = {
        "jobs": args.jobs,
        "rounds": args.rounds,
        "workers": args.workers,
        "concurrency": args.concurrency,
        "latency_jobs": args.latency_jobs,
        "poll_done_s": POLL_DONE_S,
        "scheduler_poll_s": SCHEDULER_POLL_S,
        "procrastinate_log_level": args.procrastinate_log_level,
        "stat_statements": args.stat_statements,
        "analyze": not args.no_analyze,
        "existing_server": bool(args.url),
        "phasekit": getattr(phasekit, "__version__", None),
        "phasekit_path": str(Path(phasekit.__file__).parent),
        **repo,
        "procrastinate": procrastinate.__version__,
        "psycopg": psycopg.__version__,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        **settings,
    }
    report(summary, rows, lat, config, notes)
    if args.json:
        out = {
            "config": config,
            "summary": summary,
            "rounds": rows,
            "latency": {
                name: {**lat[name], "samples_s": samples} for name, samples in latency.items()
            },
            "notes": notes,
        }
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
