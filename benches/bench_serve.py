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
  the same window, per second of wall time;
* the page: 1, then 10 pages of the dashboard (``--pages``; each its own
  headless Chromium, Debian's ``chromium`` driven through
  ``chromium-driver`` by Selenium, one window each) open at the server's
  ``/`` for ``--browser-seconds`` while the writer writes. A probe
  (:data:`PROBE`) is run in each page before the page's own scripts (CDP
  ``Page.addScriptToEvaluateOnNewDocument``; the page is not changed): it
  wraps ``EventSource`` so that every stream the page opens gets, before
  the page's own handler, a listener that stamps each ``job`` message's
  arrival (``performance.timeOrigin + performance.now()``, wall-clock
  milliseconds; checked against the bench's ``time.time()`` at the end of
  every measure); a ``MutationObserver`` on the jobs table notes when the
  job's row shows the event (a progress event: its row changed in place,
  same status; a status event: the list reloaded with the row in its new
  status, or without it once the job finished), and the next animation
  frame after that; a ``PerformanceObserver`` collects the page's long
  tasks (main thread busy > 50 ms). Each event's latency is its arrival
  minus its ``at``; the time to first render is from the navigation's
  start to the first rows in the jobs table (and to the frame after them),
  over ``--loads`` loads with one page and one load per page with ten; the
  server's CPU (and every browser process's) over the same window.

The machine is a shared 2-core box: the server, the writer, the clients and
the browsers share its two cores, and other work runs on it at times;
figures move by 10-20 % between runs (ten browsers on two cores load the
machine themselves: their figures are the machine's as much as the page's).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import math
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


# --- the page in a real browser ---------------------------------------------------

CHROMIUM = shutil.which("chromium")
DRIVER = shutil.which("chromedriver")

#: Run in every page before its own scripts. It changes nothing the page does:
#: its streams get one more listener (added first, so it runs first on each
#: message), its jobs table an observer, the page a long-task observer.
PROBE = r"""
(() => {
  const now = () => performance.timeOrigin + performance.now();
  const FINISHED = new Set(["completed", "completed_with_errors", "failed", "cancelled"]);
  const probe = {
    recording: false,
    arrivals: [],   // [seq, written at (s), arrived (ms)]
    shown: [],      // [kind, written at (s), arrived, in the DOM, next frame (ms)]
    pending: [],    // events the jobs table does not show yet
    dropped: 0,     // events the table did not show within 10 s
    longtasks: [],  // [start, duration (ms)]
    longtaskError: null,
    firstRows: null,
    firstFrame: null,
    rebuilds: [],   // when the jobs list was built anew (ms)
    streams: 0,
  };
  window.__pkBench = probe;
  try {
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) {
        probe.longtasks.push([performance.timeOrigin + e.startTime, e.duration]);
      }
    }).observe({ type: "longtask", buffered: true });
  } catch (e) {
    probe.longtaskError = String(e);
  }
  const Native = window.EventSource;
  window.EventSource = class extends Native {
    constructor(url, init) {
      super(url, init);
      probe.streams += 1;
      this.addEventListener("job", (message) => {
        const t = now();
        if (!probe.recording) return;
        const d = JSON.parse(message.data);
        probe.arrivals.push([d.seq, d.at, t]);
        probe.pending.push({ job: d.job_id, status: d.status, kind: d.kind, at: d.at, t });
      });
    }
  };
  document.addEventListener("DOMContentLoaded", () => {
    const body = document.querySelector("#jobs-table tbody");
    if (!body) return;
    new MutationObserver((records) => {
      const t = now();
      if (probe.firstRows === null && body.rows.length > 0) {
        probe.firstRows = t - performance.timeOrigin;
        requestAnimationFrame(() => { probe.firstFrame = now() - performance.timeOrigin; });
      }
      if (!probe.pending.length) return;
      let rebuilt = false;
      const touched = new Set();
      for (const r of records) {
        if (r.target === body) rebuilt = true;
        const node = r.target.nodeType === 1 ? r.target : r.target.parentElement;
        const row = node && node.closest("tr[data-job]");
        if (row) touched.add(row.dataset.job);
      }
      if (rebuilt) probe.rebuilds.push(t);
      // An event is shown once its row shows it, or a later event of its job.
      const newest = new Map();
      probe.pending.forEach((p, i) => {
        const row = body.querySelector('tr[data-job="' + CSS.escape(p.job) + '"]');
        const ok = row
          ? row.dataset.status === p.status && (rebuilt || touched.has(p.job))
          : rebuilt && FINISHED.has(p.status);
        if (ok) newest.set(p.job, i);
      });
      const shown = [];
      probe.pending = probe.pending.filter((p, i) => {
        if (newest.has(p.job) && i <= newest.get(p.job)) {
          shown.push(p);
          return false;
        }
        if (t - p.t > 10000) {
          probe.dropped += 1;
          return false;
        }
        return true;
      });
      if (shown.length) {
        requestAnimationFrame(() => {
          const f = now();
          for (const p of shown) probe.shown.push([p.kind, p.at, p.t, t, f]);
        });
      }
    }).observe(body, { childList: true, subtree: true, characterData: true });
  });
})();
"""

#: What a measure takes from a page (and clears).
COLLECT = r"""
const p = window.__pkBench;
const out = {
  arrivals: p.arrivals, shown: p.shown, dropped: p.dropped, pending: p.pending.length,
  longtasks: p.longtasks, longtaskError: p.longtaskError, streams: p.streams,
  rebuilds: p.rebuilds,
  visibility: document.visibilityState, live: document.getElementById("live").textContent,
};
p.arrivals = []; p.shown = []; p.pending = []; p.longtasks = []; p.dropped = 0; p.rebuilds = [];
return out;
"""


def clock_offsets(driver: Any) -> tuple[float, float, float]:
    """The page's clock (``performance.timeOrigin + performance.now()``, ms)
    minus its ``Date.now()`` (the system's clock, read in the same script),
    and minus this process's ``time.time()`` at the middle of the quickest
    of five round trips, with that round trip (the second offset is known
    within half of it)."""
    best: tuple[float, float, float] = (math.inf, 0.0, 0.0)
    for _ in range(5):
        before = time.time()
        page, date = driver.execute_script(
            "return [performance.timeOrigin + performance.now(), Date.now()];"
        )
        after = time.time()
        rtt = 1000 * (after - before)
        best = min(best, (rtt, float(page) - float(date), float(page) - 500 * (before + after)))
    return best[1], best[2], best[0]


def descendants(pid: int) -> list[int]:
    """``pid`` and every process under it (from ``/proc``)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        todo.extend(children.get(p, []))
    return found


def tree_cpu(pids: list[int]) -> float:
    """CPU seconds of ``pids`` and their processes (those alive now)."""
    total = 0.0
    for pid in pids:
        for p in descendants(pid):
            with contextlib.suppress(OSError, IndexError, ValueError):
                total += cpu_seconds(p)
    return total


class Browser:
    """A headless Chromium (Debian's, through its ``chromedriver``; nothing
    is downloaded) with :data:`PROBE` run in every page it loads."""

    def __init__(self) -> None:
        from selenium import webdriver

        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                         "--window-size=1400,1000"):  # fmt: skip
            options.add_argument(argument)
        os.environ["SE_OFFLINE"] = "true"
        service = webdriver.ChromeService(executable_path=str(DRIVER))
        self.driver: Any = webdriver.Chrome(service=service, options=options)
        self.pid = int(self.driver.service.process.pid)
        self.driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": PROBE})

    def load(self, url: str) -> tuple[float, float]:
        """Load the page; ms from the navigation's start to the first rows of
        its jobs table, and to the frame after them."""
        self.driver.get(url)
        deadline = time.monotonic() + 60
        while True:
            first = self.driver.execute_script(
                "const p = window.__pkBench; return p && p.firstFrame !== null"
                " && document.getElementById('live').textContent === 'live'"
                " ? [p.firstRows, p.firstFrame] : null;"
            )
            if first:
                return float(first[0]), float(first[1])
            if time.monotonic() > deadline:
                raise RuntimeError("the page showed no jobs, or no live stream, within 60 s")
            time.sleep(0.05)

    def quit(self) -> None:
        with contextlib.suppress(Exception):
            self.driver.quit()


def measure_browsers(server: Server, pages: int, seconds: float, loads: int) -> dict[str, Any]:
    """Event latency into ``pages`` pages (each its own browser), what the
    page does with the events, its first render and its long tasks, and the
    server's CPU, over ``seconds``."""
    url = f"http://127.0.0.1:{server.port}/"
    browsers: list[Browser] = []
    try:
        first: list[tuple[float, float]] = []
        for _ in range(pages):
            browsers.append(Browser())
        for browser in browsers:
            for _ in range(loads if pages == 1 else 1):
                first.append(browser.load(url))
        time.sleep(1.0)  # every page settled
        for browser in browsers:
            browser.driver.execute_script("window.__pkBench.recording = true;")
        since = time.time()
        cpu0, wall0 = cpu_seconds(server.proc.pid), time.monotonic()
        bcpu0 = tree_cpu([b.pid for b in browsers])
        time.sleep(seconds)
        cpu1, wall1 = cpu_seconds(server.proc.pid), time.monotonic()
        bcpu1 = tree_cpu([b.pid for b in browsers])
        until_ = time.time()
        # No event after this is recorded; those recorded get 2 s to show.
        for browser in browsers:
            browser.driver.execute_script("window.__pkBench.recording = false;")
        time.sleep(2.0)
        got = [browser.driver.execute_script(COLLECT) for browser in browsers]
        offsets = [clock_offsets(browser.driver) for browser in browsers]
    finally:
        for browser in browsers:
            browser.quit()
    latencies: list[float] = []
    errors: list[str] = []
    dom: dict[str, list[float]] = {"progress": [], "status": []}
    frame: list[float] = []
    store_to_frame: list[float] = []
    long_counts: list[int] = []
    rebuilds: list[int] = []
    long_ms: list[float] = []
    longest = 0.0
    dropped = pending = 0
    for out in got:
        if out["visibility"] != "visible" or out["live"] != "live" or out["streams"] != 1:
            errors.append(f"page {out['visibility']}, {out['live']}, {out['streams']} streams")
        if out["longtaskError"]:
            errors.append(f"no long tasks: {out['longtaskError']}")
        last = 0
        for seq, at, arrived in out["arrivals"]:
            if last and seq != last + 1:
                errors.append(f"gap or disorder: {last} then {seq}")
            last = seq
            if at >= since:
                latencies.append(arrived / 1000 - at)
        for kind, at, arrived, shown, next_frame in out["shown"]:
            if at >= since:
                dom["status" if kind == "status" else "progress"].append((shown - arrived) / 1000)
                if kind != "status":
                    frame.append((next_frame - arrived) / 1000)
                store_to_frame.append(next_frame / 1000 - at)
        tasks = [d for start, d in out["longtasks"] if 1000 * since <= start <= 1000 * until_]
        long_counts.append(len(tasks))
        rebuilds.append(sum(1000 * since <= t <= 1000 * until_ for t in out["rebuilds"]))
        long_ms.append(sum(tasks))
        longest = max([longest, *tasks])
        dropped += out["dropped"]
        pending += out["pending"]
    minutes = (until_ - since) / 60

    def ms(values: list[float], q: float | None = None) -> float | None:
        if not values:
            return None
        return 1000 * (statistics.median(values) if q is None else percentile(values, q))

    return {
        "pages": pages,
        "events": len(latencies),
        "latency_median_ms": ms(latencies),
        "latency_p99_ms": ms(latencies, 99),
        "dom_progress_median_ms": ms(dom["progress"]),
        "dom_progress_p99_ms": ms(dom["progress"], 99),
        "dom_progress_events": len(dom["progress"]),
        "dom_status_median_ms": ms(dom["status"]),
        "dom_status_p99_ms": ms(dom["status"], 99),
        "dom_status_events": len(dom["status"]),
        "frame_progress_median_ms": ms(frame),
        "frame_progress_p99_ms": ms(frame, 99),
        "store_to_frame_median_ms": ms(store_to_frame),
        "store_to_frame_p99_ms": ms(store_to_frame, 99),
        "not_shown": dropped,
        "still_pending": pending,
        "first_rows_ms": [f[0] for f in first],
        "first_frame_ms": [f[1] for f in first],
        "longtasks_per_min": statistics.mean(long_counts) / minutes,
        "rebuilds_per_min": statistics.mean(rebuilds) / minutes,
        "longtask_ms_per_min": statistics.mean(long_ms) / minutes,
        "longest_task_ms": longest,
        "cpu_per_s": (cpu1 - cpu0) / (wall1 - wall0),
        "browser_cpu_per_s": (bcpu1 - bcpu0) / (wall1 - wall0),
        # The page's clock minus its Date.now(); minus time.time(), within
        # half the round trip: the worst page's.
        "clock_offset_ms": max((o[0] for o in offsets), key=abs),
        "clock_vs_bench_ms": max((o[1] for o in offsets), key=abs),
        "clock_round_trip_ms": max(o[2] for o in offsets),
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
            if args.pages:
                result["browsers"] = [
                    measure_browsers(server, n, args.browser_seconds, args.loads)
                    for n in args.pages
                ]
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
        "fresh copy of the same library. Shared, noisy 2-core machine: the server, the writer, "
        "the clients and the browsers share the two cores; expect 10-20 % between runs.",
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
    if "browsers" in results[names[0]][0]:
        lines += browser_report(results, args)
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
            for b in run.get("browsers", []):
                lines.append(
                    f"  {b['pages']} pages: {b['events']} events, "
                    f"{fmt(b['latency_median_ms'])}/{fmt(b['latency_p99_ms'])} ms; "
                    f"row {fmt(b['dom_progress_median_ms'], 1)}/"
                    f"{fmt(b['dom_progress_p99_ms'], 1)} ms in place "
                    f"({b['dom_progress_events']}), {fmt(b['dom_status_median_ms'])}/"
                    f"{fmt(b['dom_status_p99_ms'])} ms by reload ({b['dom_status_events']}), "
                    f"{b['not_shown'] + b['still_pending']} not shown; first rows "
                    + ",".join(f"{v:.0f}" for v in b["first_rows_ms"])
                    + f" ms; list rebuilt {b['rebuilds_per_min']:.0f}/min; "
                    f"long tasks {b['longtasks_per_min']:.0f}/min, "
                    f"{b['longtask_ms_per_min'] / 1000:.1f} s/min, longest "
                    f"{b['longest_task_ms']:.0f} ms; CPU server {b['cpu_per_s']:.3f}, "
                    f"browsers {b['browser_cpu_per_s']:.2f}; page clock - Date.now() "
                    f"{b['clock_offset_ms']:+.1f} ms, - time.time() "
                    f"{b['clock_vs_bench_ms']:+.1f} ms (round trip "
                    f"{b['clock_round_trip_ms']:.1f} ms)"
                    + (f", errors {b['errors']}" if b["errors"] else "")
                )
    lines.append("```")
    return "\n".join(lines) + "\n"


def fmt(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def browser_report(results: dict[str, list[dict[str, Any]]], args: argparse.Namespace) -> list[str]:
    """The table of the page measured in headless Chromium (each contender's
    medians of the rounds)."""
    names = list(results)
    version = "Chromium"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        version = subprocess.run(
            [str(CHROMIUM), "--version"], capture_output=True, text=True, timeout=30
        ).stdout.strip()

    def cell(name: str, i: int, key: str, digits: int = 0) -> str:
        values = [r["browsers"][i][key] for r in results[name] if r["browsers"][i][key] is not None]
        return fmt(statistics.median(values) if values else None, digits)

    def pair(name: str, i: int, key: str, digits: int = 0) -> str:
        med, p99 = cell(name, i, key + "_median_ms", digits), cell(name, i, key + "_p99_ms", digits)
        return f"{med} / {p99}"

    def first(name: str, i: int, key: str) -> str:
        per_round = [r["browsers"][i][key] for r in results[name]]
        med = statistics.median(statistics.median(v) for v in per_round)
        p99 = statistics.median(percentile(v, 99) for v in per_round)
        return f"{med:.0f} / {p99:.0f}"

    rows: list[tuple[str, Any]] = [
        ("event latency, store write to the page's handler (ms, median / p99)",
         lambda n, i: pair(n, i, "latency")),
        ("progress event to its row changed in the DOM, in place (ms)",
         lambda n, i: pair(n, i, "dom_progress", 1)),
        ("status event to the row in its new status, list reloaded (ms)",
         lambda n, i: pair(n, i, "dom_status")),
        ("progress event to the next frame after its row changed (ms)",
         lambda n, i: pair(n, i, "frame_progress", 1)),
        ("store write to the next frame showing it, every event (ms)",
         lambda n, i: pair(n, i, "store_to_frame")),
        ("load to the first rows of the jobs list; to the frame after (ms)",
         lambda n, i: first(n, i, "first_rows_ms") + "; " + first(n, i, "first_frame_ms")),
        ("long tasks (> 50 ms) per minute per page; their time (s per minute); longest (ms)",
         lambda n, i: f"{cell(n, i, 'longtasks_per_min')}; "
         f"{float(cell(n, i, 'longtask_ms_per_min')) / 1000:.1f}; {cell(n, i, 'longest_task_ms')}"),
        ("the jobs list rebuilt (after status events) per minute per page",
         lambda n, i: cell(n, i, "rebuilds_per_min")),
        ("server CPU (s per s)", lambda n, i: cell(n, i, "cpu_per_s", 3)),
        ("every browser process's CPU (s per s, all pages)",
         lambda n, i: cell(n, i, "browser_cpu_per_s", 2)),
    ]  # fmt: skip
    header = [f"{name}: {p} page{'s' if p > 1 else ''}" for name in names for p in args.pages]
    lines = [
        "",
        f"The page in a real browser ({version}, headless, driven by Selenium through Debian's "
        f"chromium-driver), {args.browser_seconds:g} s per measure while the writer writes; each "
        "page in a browser of its own (one window, visible); medians of the rounds, p99 over "
        f"every event of every page. First render: {args.loads} loads with one page, one load "
        "per page with more, each after the page's own start (median / p99 of the loads).",
        "",
        "| measure | " + " | ".join(header) + " |",
        "|---|" + "---:|" * len(header),
    ]
    for label, value in rows:
        cells = [value(name, i) for name in names for i in range(len(args.pages))]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


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
    p.add_argument(
        "--pages",
        type=int,
        nargs="*",
        default=[1, 3, 10],
        help="pages (each its own browser) per measure; none: no browser",
    )
    p.add_argument("--browser-seconds", type=float, default=30.0)
    p.add_argument("--loads", type=int, default=5, help="loads of the page alone, timed")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--library", type=Path, help="a library built by an earlier run (kept)")
    p.add_argument("--md", type=Path, help="write the report here too")
    p.add_argument("--json", type=Path, help="write every figure here")
    args = p.parse_args()
    if args.writer is not None:
        return writer(args.writer, args.rate, args.running)
    if args.pages and (CHROMIUM is None or DRIVER is None):
        p.error("--pages needs Debian's chromium and chromium-driver (or --pages with no value)")
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
