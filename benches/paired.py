#!/usr/bin/env python3
"""phasekit against its pure-Python twin, one run of each in turn.

    python benches/paired.py [TREE] [--pairs 8] [--only shallow,content,validate]

On a shared machine the speed of both sides drifts by 10-30 % over minutes,
so medians taken minutes apart (pytest-benchmark runs all rounds of one
contender, then the other) can move a ratio across its target by drift
alone. Here each round runs phasekit and then the twin back to back, and
the ratio is taken per pair; the median of those ratios is the figure.

* ``shallow``, ``content``: ``IndexJob`` into a new library (open and close
  included) against ``phasekit.reference.index_into_sqlite``; target 4x.
* ``reindex``: a second shallow ``IndexJob`` of the unchanged tree against
  the first one into a new library; target 3x.
* ``validate``: ``ValidateJob`` in integrity mode against
  ``phasekit.reference.validate_entries`` (given the entries already read);
  target 4x.

Prints one line per pair and a JSON summary; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import anyio

from phasekit.indexing import IndexJob
from phasekit.jobs import JobStatus
from phasekit.library import Library
from phasekit.reference import index_into_sqlite, validate_entries
from phasekit.validation import ValidateJob

# The script's own folder is on sys.path: the trees are the benches' trees.
from conftest import BENCH_DIR, ensure_tree, warm

TARGETS = {"shallow": 4.0, "content": 4.0, "reindex": 3.0, "validate": 4.0}


async def _run(library: Library, job: IndexJob | ValidateJob) -> None:
    async with library.jobs() as manager:
        handle = await manager.dispatch(job)
        status = await handle.wait()
        if status is not JobStatus.COMPLETED:
            raise RuntimeError(f"{job!r} ended {status}: {manager.store.get_job(handle.id).error}")


def _timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def index_pair(tree: Path, mode: str) -> tuple[float, float]:
    """(twin seconds, phasekit seconds) for one fresh index."""
    folder = Path(tempfile.mkdtemp(prefix="phasekit-paired-"))
    try:

        def phasekit() -> None:
            with Library.open(folder / "lib") as library:
                location = library.add_location(str(tree), mode=mode)
                anyio.run(_run, library, IndexJob(location.id))

        def twin() -> None:
            index_into_sqlite(tree, str(folder / "twin.db"), cas_ids=mode == "content")

        fast = _timed(phasekit)
        slow = _timed(twin)
        return slow, fast
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def reindex_pair(tree: Path) -> tuple[float, float]:
    """(first shallow index, re-index of the unchanged tree) seconds."""
    folder = Path(tempfile.mkdtemp(prefix="phasekit-paired-"))
    try:
        with Library.open(folder) as library:
            location = library.add_location(str(tree), mode="shallow")
            first = _timed(lambda: anyio.run(_run, library, IndexJob(location.id)))
            again = _timed(lambda: anyio.run(_run, library, IndexJob(location.id)))
        return first, again
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def validate_pairs(tree: Path, pairs: int, report: Callable[[float, float], None]) -> None:
    folder = Path(tempfile.mkdtemp(prefix="phasekit-paired-"))
    try:
        with Library.open(folder) as library:
            location = library.add_location(str(tree), mode="content")
            anyio.run(_run, library, IndexJob(location.id))
            entries = list(library.entries(location))
            for _ in range(pairs):
                fast = _timed(
                    lambda: anyio.run(_run, library, ValidateJob(location.id, mode="integrity"))
                )
                slow = _timed(lambda: validate_entries(tree, entries, "integrity"))
                report(slow, fast)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


class Pairs:
    """The (baseline, phasekit) times of one kind of work, pair by pair."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.slow: list[float] = []
        self.fast: list[float] = []

    def add(self, slow: float, fast: float) -> None:
        self.slow.append(slow)
        self.fast.append(fast)
        print(f"{self.name:>9}: {slow:7.3f} s / {fast:7.3f} s = {slow / fast:5.2f}x", flush=True)

    def summary(self) -> dict[str, object]:
        ratios = [s / f for s, f in zip(self.slow, self.fast, strict=True)]
        median = statistics.median(ratios)
        return {
            "pairs": len(ratios),
            "median_ratio": round(median, 2),
            "ratio_range": [round(min(ratios), 2), round(max(ratios), 2)],
            "baseline_median_s": round(statistics.median(self.slow), 3),
            "phasekit_median_s": round(statistics.median(self.fast), 3),
            "target": TARGETS[self.name],
            "met": median >= TARGETS[self.name],
        }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("tree", nargs="?", type=Path, help="default: the generated 200k tree")
    ap.add_argument("--pairs", type=int, default=8)
    ap.add_argument("--only", default=",".join(TARGETS), help="comma-separated, of: %(default)s")
    args = ap.parse_args(argv)
    work = [w.strip() for w in args.only.split(",") if w.strip()]
    unknown = sorted(set(work) - set(TARGETS))
    if unknown:
        ap.error(f"unknown work {unknown}; choose from {sorted(TARGETS)}")
    if args.pairs < 1:
        ap.error("--pairs must be at least 1")
    tree = args.tree or ensure_tree("tree200k")
    warm(tree)
    summary: dict[str, dict[str, object]] = {}
    for name in work:
        pairs = Pairs(name)
        if name == "validate":
            validate_pairs(tree, args.pairs, pairs.add)
        else:
            for _ in range(args.pairs):
                pairs.add(*(reindex_pair(tree) if name == "reindex" else index_pair(tree, name)))
        summary[name] = pairs.summary()
    out = {"tree": str(tree), "bench_dir": str(BENCH_DIR), "results": summary}
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
