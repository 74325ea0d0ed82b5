"""Worker processes: ``phasekit worker`` against huey's SQLite consumer.

Run from the repository root, with the venv active (huey installed)::

    python benches/bench_workers.py --rounds 3 --json benches/results/workers.json

and ``--jobs 300 --latency-jobs 20`` for a quick smoke run. Three figures:

* phasekit: ``--jobs`` no-op jobs (``bench.noop`` of benches/noop_jobs.py)
  queued beforehand in a fresh library's jobs.db, then 1, 2 and 4 ``phasekit
  worker`` processes (``--concurrency 1`` each: one job thread per process,
  as huey has one per worker) started; timed from the first start until no
  job is queued or running (polled every POLL_DONE_S), then checked that
  every job completed. Process start-up is included: nothing is subtracted.
* huey: the same number of no-op tasks enqueued beforehand in ``SqliteHuey``
  (WAL, ``synchronous = NORMAL``, as jobs.db: see noop_jobs.make_huey), then
  one ``huey_consumer`` process with 1, 2 and 4 worker threads started; timed
  until every result is stored.
* claim latency: one idle ``phasekit worker``; ``--latency-jobs`` jobs
  dispatched one at a time (each after the previous finished, and after a
  random pause so a dispatch falls anywhere in the worker's poll cycle), each
  returning ``time.time()`` at its start. An idle worker learns of a job
  queued by another process only at its scheduler's next poll of jobs.db,
  every ``phasekit.jobs._handle.POLL_S`` (see ``JobManager._schedule``).

Contenders alternate within each round (their order flips every round); the
table gives the median round. Every round is in the ``--json`` output.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import phasekit
from phasekit.jobs import JobStatus, JobStore
from phasekit.jobs._handle import POLL_S as SCHEDULER_POLL_S
from phasekit.library import Library

HERE = Path(__file__).resolve().parent
#: How often the bench looks whether the queue is done (seconds).
POLL_DONE_S = 0.02
#: What a phasekit worker prints on stderr once it runs jobs.
READY_LINE = "running jobs of"
#: Giving up on a round after this long (seconds), plus 50 ms per job.
TIMEOUT_S = 120.0
#: The workers' environment: they import noop_jobs and this phasekit.
ENV = {
    **os.environ,
    "PYTHONPATH": os.pathsep.join([str(HERE), str(Path(phasekit.__file__).parents[1])]),
}


class Child:
    """A worker process; a thread reads its stderr (each line with its time)."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.argv = argv
        self.lines: list[tuple[float, str]] = []
        self.popen = subprocess.Popen(
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.popen.stderr is not None
        for line in self.popen.stderr:
            self.lines.append((time.perf_counter(), line.rstrip("\n")))

    def first(self, text: str) -> float | None:
        """When a line with ``text`` came (perf_counter), if one did."""
        return next((t for t, line in list(self.lines) if text in line), None)

    def check_alive(self) -> None:
        if self.popen.poll() is not None:
            self._reader.join(5)
            raise RuntimeError(f"{self.argv} exited early: {self.popen.returncode}\n{self.log()}")

    def stop(self) -> int:
        """SIGTERM (both stop gracefully on it), then wait; the exit code."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(30)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()
        self._reader.join(5)
        return self.popen.returncode

    def log(self) -> str:
        return "\n".join(line for _, line in self.lines)


def _wait(done: Callable[[], bool], children: list[Child], timeout: float, pause: float) -> float:
    """Poll ``done`` until true; its perf_counter time then."""
    deadline = time.perf_counter() + timeout
    while not done():
        for child in children:
            child.check_alive()
        if time.perf_counter() > deadline:
            logs = "\n".join(child.log() for child in children)
            raise TimeoutError(f"not done after {timeout:g} s\n{logs}")
        time.sleep(pause)
    return time.perf_counter()


def _stop_all(children: list[Child], notes: list[str], quiet: tuple[str, ...]) -> None:
    """Stop the children; whatever they said beyond ``quiet`` lines goes to ``notes``."""
    codes = [child.stop() for child in children]
    for child, code in zip(children, codes, strict=True):
        said = [line for _, line in child.lines if not any(q in line for q in quiet)]
        if code != 0 or said:
            note = f"{' '.join(child.argv[1:4])}...: exit {code}" + "".join(
                f"\n    {line}" for line in said[:20]
            )
            notes.append(note)
            print(f"bench_workers: {note}", file=sys.stderr)


def phasekit_argv(folder: Path, concurrency: int) -> list[str]:
    # --maintenance-every 0: no maintenance schedule (huey runs with --no-periodic).
    worker = f"worker --import noop_jobs --concurrency {concurrency} --maintenance-every 0".split()
    return [sys.executable, "-m", "phasekit", "--library", str(folder), *worker]


def phasekit_round(
    tmp: Path, n: int, workers: int, concurrency: int, notes: list[str]
) -> dict[str, Any]:
    from noop_jobs import Noop

    folder = Path(tempfile.mkdtemp(prefix=f"pk{workers}-", dir=tmp))
    Library.open(folder).close()
    with JobStore(folder / "jobs.db") as store:
        for i in range(n):
            store.create_job(Noop.job_name, Noop(i).to_state())

        def done() -> bool:
            # Nothing queues jobs meanwhile: once none is queued, none running
            # means all have ended (two indexed reads of at most one row).
            return not store.list_jobs(JobStatus.QUEUED, limit=1) and not store.list_jobs(
                JobStatus.RUNNING, limit=1
            )

        start = time.perf_counter()
        children = [Child(phasekit_argv(folder, concurrency), ENV) for _ in range(workers)]
        try:
            end = _wait(done, children, TIMEOUT_S + 0.05 * n, POLL_DONE_S)
        finally:
            _stop_all(children, notes, quiet=(READY_LINE, "handing its jobs back"))
        completed = len(store.list_jobs(JobStatus.COMPLETED))
    if completed != n:
        raise RuntimeError(f"phasekit: {completed} of {n} jobs completed")
    ready = [child.first(READY_LINE) for child in children]
    last = max(t for t in ready if t is not None) - start if all(ready) else None
    return {"seconds": end - start, "workers_ready_s": last}


def huey_argv(workers: int) -> list[str]:
    consumer = [sys.executable, "-m", "huey.bin.huey_consumer", "noop_jobs.huey"]
    options = ["--workers", str(workers), "--worker-type", "thread", "--no-periodic"]
    return [*consumer, *options, "--quiet", "--graceful-signal", "TERM"]


def huey_round(tmp: Path, n: int, workers: int, notes: list[str]) -> dict[str, Any]:
    from noop_jobs import HUEY_DB_ENV, make_huey

    db = Path(tempfile.mkdtemp(prefix=f"huey{workers}-", dir=tmp)) / "huey.db"
    huey, noop = make_huey(str(db))
    try:
        for i in range(n):
            noop(i)
        start = time.perf_counter()
        children = [Child(huey_argv(workers), {**ENV, HUEY_DB_ENV: str(db)})]
        try:
            end = _wait(
                lambda: huey.result_count() >= n, children, TIMEOUT_S + 0.05 * n, POLL_DONE_S
            )
        finally:
            _stop_all(children, notes, quiet=())
        results, pending = huey.result_count(), huey.pending_count()
    finally:
        huey.storage.close()
    if results != n or pending:
        raise RuntimeError(f"huey: {results} results of {n}, {pending} still queued")
    return {"seconds": end - start, "workers_ready_s": None}


def latency_round(tmp: Path, count: int, rng: random.Random, notes: list[str]) -> list[float]:
    """Dispatch-to-start of ``count`` jobs, one at a time, on one idle worker."""
    from noop_jobs import Stamp

    folder = Path(tempfile.mkdtemp(prefix="latency-", dir=tmp))
    Library.open(folder).close()
    samples: list[float] = []
    with JobStore(folder / "jobs.db") as store:
        children = [Child(phasekit_argv(folder, 1), ENV)]
        try:
            _wait(lambda: children[0].first(READY_LINE) is not None, children, TIMEOUT_S, 0.01)
            for _ in range(count):
                # Idle for one to three poll intervals: a random phase.
                time.sleep(rng.uniform(SCHEDULER_POLL_S, 3 * SCHEDULER_POLL_S))
                dispatched = time.time()
                job_id = store.create_job(Stamp.job_name, Stamp().to_state())
                _wait(lambda j=job_id: store.status(j).finished, children, TIMEOUT_S, 0.005)
                if store.status(job_id) is not JobStatus.COMPLETED:
                    raise RuntimeError(f"latency job {job_id}: {store.get_job(job_id).error}")
                samples.append(store.outcome(job_id)["output"] - dispatched)
        finally:
            _stop_all(children, notes, quiet=(READY_LINE, "handing its jobs back"))
    return samples


def summarise(rows: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    """The median round of each contender and worker count, with its ratio to huey."""
    out = []
    for key in dict.fromkeys((r["contender"], r["workers"]) for r in rows):
        seconds = statistics.median(
            r["seconds"] for r in rows if (r["contender"], r["workers"]) == key
        )
        out.append(
            {"contender": key[0], "workers": key[1], "seconds": seconds, "jobs_per_s": n / seconds}
        )
    huey = {s["workers"]: s["jobs_per_s"] for s in out if s["contender"] == "huey"}
    for s in out:
        s["ratio_vs_huey"] = s["jobs_per_s"] / huey[s["workers"]] if s["workers"] in huey else None
    out.sort(key=lambda s: (s["workers"], s["contender"] != "phasekit"))
    return out


def percentile(samples: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    ranked = sorted(samples)
    return ranked[max(0, math.ceil(p / 100 * len(ranked)) - 1)]


def latency_summary(samples: list[float]) -> dict[str, Any]:
    if not samples:
        return {}
    return {
        "jobs": len(samples),
        "median_s": statistics.median(samples),
        "p99_s": percentile(samples, 99),
        "min_s": min(samples),
        "max_s": max(samples),
        "scheduler_poll_s": SCHEDULER_POLL_S,
    }


def report(
    summary: list[dict[str, Any]],
    rows: list[dict[str, Any]],
    lat: dict[str, Any],
    n: int,
    rounds: int,
    concurrency: int,
    notes: list[str],
) -> None:
    """The Markdown tables, on stdout."""
    print(
        f"\n{n:,} no-op jobs, median of {rounds} round(s); phasekit's workers are "
        f"processes (--concurrency {concurrency}), huey's the threads of one consumer\n"
    )
    print("| contender | workers | seconds | jobs/s | ratio vs huey |\n|---|---|---|---|---|")
    for s in summary:
        ratio = s["ratio_vs_huey"]
        shown = f"{ratio:.2f}x" if s["contender"] != "huey" and ratio is not None else "—"
        print(
            f"| {s['contender']} | {s['workers']} | {s['seconds']:.3f} | "
            f"{s['jobs_per_s']:,.0f} | {shown} |"
        )
    ready = [r["workers_ready_s"] for r in rows if r["workers_ready_s"] is not None]
    if ready:
        print(
            f"\nphasekit's workers printed their ready line {statistics.median(ready):.3f} s "
            "(median) after they were started; that time is included above."
        )
    if lat:
        ms = {k: lat[f"{k}_s"] * 1e3 for k in ("median", "p99", "min", "max")}
        print(
            "\nClaim latency, one idle phasekit worker (its scheduler polls jobs.db every "
            f"{SCHEDULER_POLL_S * 1e3:g} ms), dispatch to job start:\n"
        )
        print("| jobs | median ms | p99 ms | min ms | max ms |\n|---|---|---|---|---|")
        print(
            f"| {lat['jobs']} | {ms['median']:.1f} | {ms['p99']:.1f} | {ms['min']:.1f} | "
            f"{ms['max']:.1f} |"
        )
    for note in notes:
        print(f"\nnote: {note}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description=__doc__.splitlines()[0] if __doc__ else None,
    )
    p.add_argument("--jobs", type=int, default=10_000, help="no-op jobs per round")
    p.add_argument("--rounds", type=int, default=1, help="rounds of every contender")
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4], help="worker counts")
    p.add_argument("--concurrency", type=int, default=1, help="of each phasekit worker")
    p.add_argument("--latency-jobs", type=int, default=200, help="per round (0 skips it)")
    p.add_argument("--json", type=Path, help="write every round and the summary here")
    p.add_argument("--tmp", type=Path, help="where the databases go (None: system temp)")
    args = p.parse_args(argv)
    import huey

    # Bytecode as an installed package has it (pip writes it at install
    # time, as it did for huey): a source checkout run where
    # PYTHONDONTWRITEBYTECODE is set would compile phasekit's modules in
    # every worker process it starts (~0.05 s of each start-up).
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(Path(phasekit.__file__).parent), str(HERE)],
        check=True,
    )
    sys.path.insert(0, str(HERE))  # noop_jobs, in this process too
    tmp = Path(tempfile.mkdtemp(prefix="bench-workers-", dir=args.tmp))
    notes: list[str] = []
    rows: list[dict[str, Any]] = []
    latency: list[float] = []
    rng = random.Random(1)
    contenders: dict[str, Callable[[int, int], dict[str, Any]]] = {
        "phasekit": lambda n, w: phasekit_round(tmp, n, w, args.concurrency, notes),
        "huey": lambda n, w: huey_round(tmp, n, w, notes),
    }
    try:
        for run in contenders.values():  # warm-up: imports, page cache, .pyc files
            run(min(args.jobs, 50), 1)
        for rnd in range(args.rounds):
            order = list(contenders) if rnd % 2 == 0 else list(reversed(contenders))
            for workers in args.workers:
                for name in order:
                    row = {"round": rnd, "contender": name, "workers": workers}
                    row.update(contenders[name](args.jobs, workers))
                    rows.append(row)
                    print(
                        f"round {rnd}: {name:8} x{workers}: {row['seconds']:7.3f} s, "
                        f"{args.jobs / row['seconds']:7.0f} jobs/s",
                        file=sys.stderr,
                    )
            if args.latency_jobs:
                latency += latency_round(tmp, args.latency_jobs, rng, notes)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    summary = summarise(rows, args.jobs)
    lat = latency_summary(latency)
    report(summary, rows, lat, args.jobs, args.rounds, args.concurrency, notes)
    if args.json:
        config = {
            "jobs": args.jobs,
            "rounds": args.rounds,
            "workers": args.workers,
            "concurrency": args.concurrency,
            "poll_done_s": POLL_DONE_S,
            "phasekit": getattr(phasekit, "__version__", None),
            "huey": huey.__version__,
            "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version,
            "cpus": os.cpu_count(),
        }
        out = {
            "config": config,
            "summary": summary,
            "rounds": rows,
            "latency": {**lat, "samples_s": latency},
            "notes": notes,
        }
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
