"""The web dashboard under load: ``phasekit serve`` over a library with
10,000 jobs in its history while a writer changes jobs 50 times a second.

Run from the repository root, with the venv active::

    python benches/bench_serve.py --rounds 3 --md benches/results/serve.md \\
        --before /tmp/base/python --after python

``--before`` and ``--after`` are folders holding the ``phasekit`` package
(each with its built extension, ``_core.abi3.so``): e.g. a ``git worktree``
of the code to compare against, and this one. Each is run in turn within
every round (the order flips every round); the tables give the medians of
the rounds. One contender: ``--after`` alone. What is measured, each round:

* the library: built once (``--jobs`` jobs created, claimed, given a
  progress report and finished through the public job store API, as a
  worker would; so many history rows and ~4 events each), then copied for
  every server run, so each starts from the same files;
* the server: ``python -m phasekit --library DIR serve`` as a process of
  its own (the contender's package first on ``PYTHONPATH``);
* the writer: another process (this file, ``--writer``) running
  ``--running`` jobs as a worker does through the job store: progress
  reports, and every ``STATUS_EVERY``-th write a job's end and the claim of
  the next one (status events); ``--rate`` writes a second, paced;
* responses: ``/api/jobs`` (the unfinished jobs, the page's default),
  ``/api/jobs?all=true&limit=10000`` (every job), ``/api/history`` (its
  default page of 100) and ``?limit=10000``, and a finished job's detail,
  each requested ``--requests`` times one after the other over one
  keep-alive connection while the writer writes;
* events: 1, then 10 clients reading ``/api/events`` over HTTP for
  ``--seconds`` while the writer writes; each event's latency is its
  receipt (``time.time()`` in the client) minus its ``at`` (the writer's
  ``time.time()`` of the write, stored with it: one machine, one clock);
  the server's CPU is its user + system time from ``/proc/PID/stat`` over
  the same window, per second of wall time.

The machine is a shared 2-core box: the server, the writer and the clients
share its two cores, and other work runs on it at times; figures move by
10-20 % between runs.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

#: The writer ends a running job and claims the next every this many writes.
STATUS_EVERY = 10
#: The job type the bench's jobs carry (no module defines it: nothing runs them).
JOB_NAME = "bench.serve"


# --- the library -------------------------------------------------------------------


def build_library(folder: Path, jobs: int, queued: int) -> None:
    """A library whose job store holds ``jobs`` finished jobs (a few
    failed or cancelled) and ``queued`` waiting ones, written through the
    public job store API as a worker writes them."""
    from phasekit.jobs import JobProgress, JobStatus, open_backend
    from phasekit.library import Library

    with Library.open(folder) as library:
        location = library.jobs_location
    store = open_backend(location)
    try:
        batch = 100
        for start in range(0, jobs, batch):
            ids = [
                store.create_job(JOB_NAME, {"n": start + i, "path": f"/data/{start + i}"})
                for i in range(min(batch, jobs - start))
            ]
            for run in store.claim_runs(ids, None):
                n = run.record.input()["n"]
                progress = JobProgress(done=n % 97, total=97, message="working")
                store.set_progress(run.record.id, progress.to_dict(), lease=run.lease)
                status = JobStatus.COMPLETED
                if n % 50 == 0:
                    status = JobStatus.FAILED
                elif n % 70 == 0:
                    status = JobStatus.CANCELLED
                store.finish(
                    run.record.id,
                    status,
                    output={"files": n, "bytes": n * 1000},
                    error="disk gone" if status is JobStatus.FAILED else None,
                    metrics={"items": n},
                    progress=JobProgress(done=97, total=97).to_dict(),
                    lease=run.lease,
                )
        for i in range(queued):
            store.create_job(JOB_NAME, {"n": jobs + i, "path": f"/data/q{i}"})
    finally:
        store.close()


# --- the writer process ------------------------------------------------------------


def writer(folder: Path, rate: float, running: int) -> int:
    """Run ``running`` jobs as a worker does, ``rate`` writes a second, from
    a line on stdin until stdin closes; prints how many writes it made."""
    from phasekit.jobs import JobProgress, JobStatus, open_backend
    from phasekit.library import Library

    with Library.open(folder) as library:
        location = library.jobs_location
    store = open_backend(location)
    spare = [j.id for j in store.list_jobs(JobStatus.QUEUED, name=JOB_NAME)]
    runs = {run.record.id: run.lease for run in store.claim_runs(spare[:running], None)}
    spare = spare[running:]
    done = dict.fromkeys(runs, 0)
    print("ready", flush=True)
    sys.stdin.readline()
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    writes = 0
    started = time.monotonic()
    while not stop.is_set():
        due = started + writes / rate
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        job_id = list(runs)[writes % len(runs)]
        if writes % STATUS_EVERY == STATUS_EVERY - 1 and spare:
            store.finish(job_id, JobStatus.COMPLETED, output={"files": done[job_id]},
                         lease=runs.pop(job_id))  # fmt: skip
            done.pop(job_id)
            claimed = store.claim_runs([spare.pop(0)], None)
            for run in claimed:
                runs[run.record.id] = run.lease
                done[run.record.id] = 0
        else:
            done[job_id] += 1
            progress = JobProgress(done=done[job_id], total=10_000, message="hashing")
            store.set_progress(job_id, progress.to_dict(), lease=runs[job_id])
        writes += 1
    store.close()
    print(writes, flush=True)
    return 0


# --- measuring -----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (s)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (nearest rank) of ``values``."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


class Server:
    """``phasekit serve`` over a copy of the library, run with ``code`` first
    on the path."""

    def __init__(self, code: Path, library: Path) -> None:
        self.port = free_port()
        env = {**os.environ, "PYTHONPATH": str(code)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "phasekit", "--library", str(library), "serve",
             "--port", str(self.port)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the server did not start: {self.proc.stderr}") from None
                time.sleep(0.05)

    def get(self, conn: http.client.HTTPConnection, path: str) -> tuple[float, bytes]:
        started = time.perf_counter()
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
        took = time.perf_counter() - started
        if response.status != 200:
            raise RuntimeError(f"{path}: {response.status} {body[:200]!r}")
        return took, body

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Writer:
    """The writer process over ``library``, with ``code`` first on the path."""

    def __init__(self, code: Path, library: Path, rate: float, running: int) -> None:
        env = {**os.environ, "PYTHONPATH": str(code)}
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--writer", str(library), "--rate", str(rate),
             "--running", str(running)],
            env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self.proc.stdout is not None
        assert self.proc.stdin is not None
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError("the writer did not start")
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def stop(self) -> int:
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.close()
        writes = int(self.proc.stdout.readline())
        self.proc.wait(15)
        return writes


def sse_client(port: int, until: float, since: float, out: list[float], errors: list[str]) -> None:
    """Read /api/events from now until ``until`` (time.time()); the latency
    of each job event written at or after ``since``, into ``out``."""
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", "/api/events", headers={"Accept": "text/event-stream"})
        response = conn.getresponse()
        if response.status != 200:
            errors.append(f"/api/events: {response.status}")
            return
        last = 0
        while time.time() < until:
            line = response.readline()
            if not line:
                errors.append("the stream ended")
                return
            if line.startswith(b"data: "):
                received = time.time()
                data = json.loads(line[6:])
                if "seq" in data:
                    if data["seq"] <= last:
                        errors.append(f"event {data['seq']} after {last}")
                    elif last and data["seq"] != last + 1:
                        errors.append(f"gap: {last} then {data['seq']}")
                    last = data["seq"]
                if data.get("at", 0) >= since:
                    out.append(received - data["at"])
        conn.close()
    except Exception as exc:
        errors.append(repr(exc))


def measure_events(server: Server, clients: int, seconds: float) -> dict[str, Any]:
    """Latency (each event, every client) and server CPU with ``clients``
    streams open for ``seconds``."""
    latencies: list[float] = []
    errors: list[str] = []
    start = time.time()
    until = start + 1.0 + seconds
    threads = [
        threading.Thread(target=sse_client, args=(server.port, until, start + 1.0, latencies,
                                                  errors))
        for _ in range(clients)
    ]  # fmt: skip
    for t in threads:
        t.start()
    time.sleep(max(0.0, start + 1.0 - time.time()))  # the streams are open
    cpu0, wall0 = cpu_seconds(server.proc.pid), time.monotonic()
    time.sleep(max(0.0, until - time.time()))
    cpu1, wall1 = cpu_seconds(server.proc.pid), time.monotonic()
    for t in threads:
        t.join(40)
    return {
        "clients": clients,
        "events": len(latencies),
        "latency_median_ms": 1000 * statistics.median(latencies) if latencies else None,
        "latency_p99_ms": 1000 * percentile(latencies, 99) if latencies else None,
        "cpu_per_s": (cpu1 - cpu0) / (wall1 - wall0),
        "errors": errors[:5],
    }


def measure_requests(server: Server, requests: int, detail_id: str) -> dict[str, Any]:
    """Response times (median, p99; ms) and sizes of the listing routes."""
    paths = {
        "/api/jobs": "/api/jobs",
        "/api/jobs?all=true&limit=10000": "/api/jobs?all=true&limit=10000",
        "/api/history": "/api/history",
        "/api/history?limit=10000": "/api/history?limit=10000",
        "/api/jobs/ID (finished)": f"/api/jobs/{detail_id}",
    }
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    out: dict[str, Any] = {}
    for label, path in paths.items():
        server.get(conn, path)  # warm
        times, rows = [], 0
        for _ in range(requests):
            took, body = server.get(conn, path)
            times.append(took)
            value = json.loads(body)
            rows = len(value) if isinstance(value, list) else 1
        out[label] = {
            "median_ms": 1000 * statistics.median(times),
            "p99_ms": 1000 * percentile(times, 99),
            "rows": rows,
        }
    conn.close()
    return out


def one_run(code: Path, pristine: Path, args: argparse.Namespace, detail: str) -> dict[str, Any]:
    """Every measurement of one contender, on a fresh copy of the library."""
    with tempfile.TemporaryDirectory(prefix="pk-serve-") as tmp:
        library = Path(tmp) / "lib"
        shutil.copytree(pristine, library)
        server = Server(code, library)
        writer_proc = None
        try:
            writer_proc = Writer(code, library, args.rate, args.running)
            result: dict[str, Any] = {"requests": measure_requests(server, args.requests, detail)}
            result["events"] = [measure_events(server, n, args.seconds) for n in args.clients]
            result["writes"] = writer_proc.stop()
            writer_proc = None
        finally:
            if writer_proc is not None:
                writer_proc.proc.kill()
            server.stop()
    return result


# --- the report --------------------------------------------------------------------


def median_of(runs: list[dict[str, Any]], pick: Any) -> float:
    return statistics.median(pick(r) for r in runs)


def report(results: dict[str, list[dict[str, Any]]], args: argparse.Namespace) -> str:
    names = list(results)
    lines = [
        "# `phasekit serve` under load (benches/bench_serve.py)",
        "",
        f"{args.jobs:,} finished jobs in the history, {args.rate:g} job writes/s from another "
        f"process ({args.running} running jobs: progress reports, and every "
        f"{STATUS_EVERY}th write a job's end and the next claim), `phasekit serve` as its own "
        f"process; medians of {args.rounds} rounds (contenders alternating), each round on a "
        "fresh copy of the same library. Shared, noisy 2-core machine: the server, the writer "
        "and the clients share the two cores; expect 10-20 % between runs.",
        "",
        f"_{platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}._",
        "",
        "Response times over one keep-alive connection, "
        f"{args.requests} requests each (ms, median / p99; rows returned):",
        "",
        "| request | " + " | ".join(names) + " |",
        "|---|" + "---:|" * len(names),
    ]
    for label in results[names[0]][0]["requests"]:
        cells = []
        for name in names:
            runs = results[name]
            med = median_of(runs, lambda r, k=label: r["requests"][k]["median_ms"])
            p99 = median_of(runs, lambda r, k=label: r["requests"][k]["p99_ms"])
            rows = runs[0]["requests"][label]["rows"]
            cells.append(f"{med:.1f} / {p99:.1f} ({rows:,})")
        lines.append(f"| `{label}` | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Event stream, {args.seconds:g} s per measure: latency from the store write to the "
        "client's receipt (ms, median / p99 over every event of every client) and the "
        "server's CPU (user + system, s per s of wall):",
        "",
        "| clients | " + " | ".join(f"{n}: latency | {n}: CPU" for n in names) + " |",
        "|---:|" + "---:|---:|" * len(names),
    ]
    for i, clients in enumerate(args.clients):
        cells = []
        for name in names:
            runs = results[name]
            med = median_of(runs, lambda r, i=i: r["events"][i]["latency_median_ms"] or 0)
            p99 = median_of(runs, lambda r, i=i: r["events"][i]["latency_p99_ms"] or 0)
            cpu = median_of(runs, lambda r, i=i: r["events"][i]["cpu_per_s"])
            cells.append(f"{med:.0f} / {p99:.0f} | {cpu:.3f}")
        lines.append(f"| {clients} | " + " | ".join(cells) + " |")
    lines += ["", "Every round:", "", "```"]
    for name in names:
        for n, run in enumerate(results[name]):
            ev = "; ".join(
                f"{e['clients']} clients: {e['events']} events, "
                f"{e['latency_median_ms'] or 0:.0f}/{e['latency_p99_ms'] or 0:.0f} ms, "
                f"CPU {e['cpu_per_s']:.3f}" + (f", errors {e['errors']}" if e["errors"] else "")
                for e in run["events"]
            )
            req = "; ".join(f"{k} {v['median_ms']:.1f}" for k, v in run["requests"].items())
            lines.append(f"{name} round {n + 1}: {run['writes']} writes; {ev}; {req}")
    lines.append("```")
    return "\n".join(lines) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--writer", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--before", type=Path, help="the phasekit package's folder to compare with")
    p.add_argument("--after", type=Path, default=Path(__file__).parent.parent / "python")
    p.add_argument("--jobs", type=int, default=10_000)
    p.add_argument("--queued", type=int, default=2_000, help="jobs the writer can claim")
    p.add_argument("--running", type=int, default=10)
    p.add_argument("--rate", type=float, default=50.0)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--clients", type=int, nargs="+", default=[1, 10])
    p.add_argument("--requests", type=int, default=50)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--library", type=Path, help="a library built by an earlier run (kept)")
    p.add_argument("--md", type=Path, help="write the report here too")
    p.add_argument("--json", type=Path, help="write every figure here")
    args = p.parse_args()
    if args.writer is not None:
        return writer(args.writer, args.rate, args.running)
    contenders = {"after": args.after.resolve()}
    if args.before is not None:
        contenders = {"before": args.before.resolve(), **contenders}
    with tempfile.TemporaryDirectory(prefix="pk-serve-lib-") as tmp:
        pristine = args.library or Path(tmp) / "lib"
        if not (pristine / "jobs.db").exists():
            started = time.monotonic()
            build_library(pristine, args.jobs, args.queued)
            print(f"library: {args.jobs:,} jobs in {time.monotonic() - started:.1f} s",
                  file=sys.stderr)  # fmt: skip
        from phasekit.jobs import open_backend

        store = open_backend(pristine / "jobs.db")
        try:
            detail = store.history(limit=1)[0].id
        finally:
            store.close()
        results: dict[str, list[dict[str, Any]]] = {name: [] for name in contenders}
        for n in range(args.rounds):
            order = list(contenders) if n % 2 == 0 else list(reversed(contenders))
            for name in order:
                run = one_run(contenders[name], pristine, args, detail)
                results[name].append(run)
                print(f"round {n + 1} {name}: {json.dumps(run)}", file=sys.stderr)
    text = report(results, args)
    print(text)
    if args.md:
        args.md.write_text(text)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
