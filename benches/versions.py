#!/usr/bin/env python3
"""Two builds of phasekit on the same work, one run of each in turn.

    python benches/versions.py --before /path/to/old/venv --after .venv \\
        [TREE] [--pairs 5] [--only jobs,shallow,content,...]

A change that should not cost speed is checked here: each pair runs the
work in a new process of the "before" environment, then of the "after" one
(alternating which goes first), and the ratio before/after is taken per
pair; the median of those ratios is the figure (above 1: the change is
faster). Each environment is a virtualenv with phasekit installed; this
script runs itself there with ``--worker`` and reads one line of JSON back.

Work (TREE defaults to the generated 200k tree):

* ``jobs``: 1,000 no-op jobs dispatched to a ``JobManager`` and awaited.
* ``shallow``, ``content``: ``IndexJob`` into a new library.
* ``reshallow``, ``recontent``: an ``IndexJob`` of the unchanged tree (the
  first index is not timed).
* ``resume``: ``phasekit resume`` of a first content index killed (SIGKILL)
  one second after ``phasekit index`` started.
* ``validate``: ``ValidateJob`` in integrity mode (after a content index).
* ``dupes``: ``phasekit dupes TREE --mode full`` from the command line.
* ``version``: ``phasekit --version`` (interpreter start-up and imports).
* ``walk``, ``cas_ids``, ``checksums``, ``duplicates``: the filesystem
  primitives of the README's first table, in process (``phasekit.fs``):
  walk and stat every entry, walk with cas_ids, full BLAKE3 of every file
  (list given, not timed), byte-exact duplicates (walk included).

Prints one line per pair and a JSON summary; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORK = (
    "jobs",
    "shallow",
    "content",
    "reshallow",
    "recontent",
    "resume",
    "validate",
    "dupes",
    "version",
    "walk",
    "cas_ids",
    "checksums",
    "duplicates",
)
#: When ``resume`` kills the first index (seconds after it starts).
KILL_AFTER_S = 1.0
N_JOBS = 1000


# --- the worker: runs in the environment under test ------------------------------


def _worker(work: str, tree: str, folder: Path, bin_dir: Path) -> float:
    """Seconds the timed part of ``work`` took in this interpreter."""
    cli = str(bin_dir / "phasekit")
    if work == "resume":
        library = ["--library", str(folder / "lib")]
        index = [cli, *library, "index", tree, "--mode", "content"]
        with subprocess.Popen(index, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as proc:
            time.sleep(KILL_AFTER_S)
            proc.send_signal(signal.SIGKILL)
        started = time.perf_counter()
        subprocess.run([cli, *library, "resume"], check=True, stdout=subprocess.DEVNULL)
        return time.perf_counter() - started
    if work in ("dupes", "version"):
        cmd = [cli, "--version"]
        if work == "dupes":
            cmd = [cli, "--library", str(folder / "lib"), "dupes", tree, "--mode", "full"]
        started = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        return time.perf_counter() - started

    if work in ("walk", "cas_ids", "checksums", "duplicates"):
        return _fs_work(work, tree)

    import anyio

    if work == "jobs":
        from phasekit.jobs import Job, JobContext, JobManager, JobRegistry, job

        registry = JobRegistry()

        @job("bench.noop", registry=registry)
        class NoopJob(Job):
            i: int = 0

            def run(self, ctx: JobContext) -> None:
                return None

        async def noop() -> None:
            async with JobManager(folder / "jobs.db", registry=registry) as manager:
                handles = [await manager.dispatch(NoopJob(i)) for i in range(N_JOBS)]
                for handle in handles:
                    await handle.wait()

        started = time.perf_counter()
        anyio.run(noop)
        return time.perf_counter() - started

    from phasekit.indexing import IndexJob
    from phasekit.jobs import JobStatus
    from phasekit.library import Library
    from phasekit.validation import ValidateJob

    async def run(library: Library, job: object) -> None:
        async with library.jobs() as manager:
            handle = await manager.dispatch(job)  # type: ignore[arg-type]
            status = await handle.wait()
            if status is not JobStatus.COMPLETED:
                raise RuntimeError(f"{job!r} ended {status}")

    mode = {"shallow": "shallow", "reshallow": "shallow"}.get(work, "content")
    started = time.perf_counter()
    with Library.open(folder / "lib") as library:
        location = library.add_location(tree, mode=mode)
        if work in ("reshallow", "recontent", "validate"):
            anyio.run(run, library, IndexJob(location.id))
            started = time.perf_counter()
        if work == "validate":
            anyio.run(run, library, ValidateJob(location.id, mode="integrity"))
        else:
            anyio.run(run, library, IndexJob(location.id))
    return time.perf_counter() - started


def _fs_work(work: str, tree: str) -> float:
    """One of the filesystem primitives on ``tree``, in this process."""
    from phasekit import fs

    if work == "checksums":
        files = []
        for batch in fs.walk(tree):
            files += [p for p, is_file in zip(batch.paths, batch.files(), strict=True) if is_file]
        started = time.perf_counter()
        if fs.checksums(files).errors:
            raise RuntimeError("checksums failed")
        return time.perf_counter() - started
    started = time.perf_counter()
    if work == "walk":
        sum(len(batch) for batch in fs.walk(tree))
    elif work == "cas_ids":
        sum(len(batch) for batch in fs.walk(tree, cas_ids=True))
    else:
        fs.find_duplicates(tree, mode="full")
    return time.perf_counter() - started


# --- the driver -------------------------------------------------------------------


def _python(venv: Path) -> Path:
    python = venv.absolute() / "bin" / "python"
    if not python.exists():
        raise SystemExit(f"{venv} is not a virtualenv (no bin/python)")
    return python


def _once(venv: Path, work: str, tree: Path) -> float:
    folder = Path(tempfile.mkdtemp(prefix="phasekit-versions-"))
    try:
        out = subprocess.run(
            [str(_python(venv)), __file__, "--worker", work, str(tree), "--folder", str(folder)],
            check=True,
            capture_output=True,
            text=True,
            # Away from this checkout, so that each environment imports its own
            # phasekit (an editable install finds its sources by itself).
            cwd=folder,
        )
        return float(json.loads(out.stdout.strip().splitlines()[-1])["seconds"])
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("tree", nargs="?", type=Path, help="default: the generated 200k tree")
    ap.add_argument("--before", type=Path, help="virtualenv of the build before the change")
    ap.add_argument("--after", type=Path, help="virtualenv of the build after the change")
    ap.add_argument("--pairs", type=int, default=5)
    ap.add_argument("--only", default=",".join(WORK), help="comma-separated, of: %(default)s")
    ap.add_argument("--worker", choices=WORK, help=argparse.SUPPRESS)
    ap.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        seconds = _worker(args.worker, str(args.tree), args.folder, Path(sys.executable).parent)
        print(json.dumps({"seconds": seconds}))
        return 0
    if args.before is None or args.after is None:
        ap.error("--before and --after are required")
    work = [w.strip() for w in args.only.split(",") if w.strip()]
    unknown = sorted(set(work) - set(WORK))
    if unknown:
        ap.error(f"unknown work {unknown}; choose from {list(WORK)}")
    if args.pairs < 1:
        ap.error("--pairs must be at least 1")
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from conftest import ensure_tree, warm  # the benches' trees

    tree = (args.tree or ensure_tree("tree200k")).resolve()
    warm(tree)
    summary: dict[str, object] = {}
    for name in work:
        before: list[float] = []
        after: list[float] = []
        for i in range(args.pairs):
            # Alternate which goes first: the second of a pair finds the
            # page cache as the first left it.
            if i % 2 == 0:
                b, a = _once(args.before, name, tree), _once(args.after, name, tree)
            else:
                a, b = _once(args.after, name, tree), _once(args.before, name, tree)
            before.append(b)
            after.append(a)
            print(f"{name:>9}: before {b:7.3f} s, after {a:7.3f} s = {b / a:5.2f}x", flush=True)
        ratios = [b / a for b, a in zip(before, after, strict=True)]
        summary[name] = {
            "pairs": len(ratios),
            "before_median_s": round(statistics.median(before), 3),
            "after_median_s": round(statistics.median(after), 3),
            "median_ratio": round(statistics.median(ratios), 3),
            "ratio_range": [round(min(ratios), 3), round(max(ratios), 3)],
        }
    print(json.dumps({"tree": str(tree), "results": summary}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
