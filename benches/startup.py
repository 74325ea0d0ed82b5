#!/usr/bin/env python3
"""The command line's fixed cost, and ``phasekit dupes`` against ``jdupes -r``.

    python benches/startup.py [--rounds 15] [--trees tree200k,tree60k]
                              [--only version,index,dupes] [--bin DIR]

Every round runs each contender once, in a new random order, as a new
process (``subprocess.run``, output to /dev/null, like a script would): the
machine's drift hits every contender alike, and the figures are medians and
the median of per-round ratios.

* ``version``: ``phasekit --version``; anchor ``python -c pass`` (the
  interpreter's own start-up, which no Python program can go below); target
  60 ms.
* ``index``: ``phasekit index EMPTY_DIR`` into a new library (the folder is
  removed, and the removal synced to disk, before each run, outside the
  timing); target 150 ms; anchor
  ``python -c "import anyio; anyio.run(anyio.sleep, 0)"``, the floor of any
  command that runs a job through the (anyio) job system.
* ``dupes``: ``phasekit dupes TREE`` (byte-exact, into a new library, groups
  printed) against ``jdupes -r -q TREE`` on each tree (files read from the
  page cache: one untimed run of each first); targets 1.5x on the
  200,000-file tree, 1.2x on a 60,000-file one.

``--bin`` takes the folder of the ``phasekit`` to time (default: the one
next to this Python); ``--bin-before`` an earlier build's, whose commands
join the same rounds (into their own library). Prints one line per round and a JSON summary; nothing
is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# The script's own folder is on sys.path: the trees are the benches' trees.
from conftest import BENCH_DIR

TARGETS = {"version": 0.060, "index": 0.150}
DUPES_TARGETS = {"tree200k": 1.5, "tree60k": 1.2}


def _timed(argv: list[str], before: list[Path] | None = None) -> float:
    if before:
        for path in before:
            shutil.rmtree(path, ignore_errors=True)
        # The removal's metadata reaches the disk now, not at the first fsync
        # of the run timed next (creating a library fsyncs a few times).
        os.sync()
    start = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def _ratio(slow: list[float], fast: list[float]) -> dict[str, object]:
    """The median and range of per-round ratios ``slow / fast``."""
    ratios = sorted(s / f for s, f in zip(slow, fast, strict=True))
    return {
        "median": round(statistics.median(ratios), 2),
        "range": [round(ratios[0], 2), round(ratios[-1], 2)],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--trees", default="tree200k,tree60k")
    parser.add_argument("--only", default="version,index,dupes")
    parser.add_argument("--bin", type=Path, default=Path(sys.executable).parent)
    parser.add_argument(
        "--bin-before",
        type=Path,
        default=None,
        help="the folder of an earlier phasekit, timed in the same rounds",
    )
    args = parser.parse_args(argv)
    phasekit = str(args.bin / "phasekit")
    python = str(args.bin / "python")
    only = set(args.only.split(","))
    work = Path(tempfile.mkdtemp(prefix="phasekit-startup-"))
    empty = work / "empty"
    empty.mkdir()
    lib = work / "lib"
    contenders: dict[str, tuple[list[str], list[Path]]] = {}
    if "version" in only:
        contenders["python -c pass"] = ([python, "-c", "pass"], [])
        contenders["phasekit --version"] = ([phasekit, "--version"], [])
    if "index" in only:
        # The floor of any command that runs a job: the interpreter, asyncio
        # and anyio, started and stopped.
        floor = "import anyio; anyio.run(anyio.sleep, 0)"
        contenders["anyio.run floor"] = ([python, "-c", floor], [])
        contenders["phasekit index EMPTY"] = (
            [phasekit, "--library", str(lib), "index", str(empty)],
            [lib],
        )
    trees = [t for t in args.trees.split(",") if t] if "dupes" in only else []
    for name in trees:
        tree = BENCH_DIR / name
        if not (tree / ".gen_tree_done").exists():
            sys.exit(f"{tree} is missing: python benches/gen_tree.py {tree} ...")
        contenders[f"phasekit dupes {name}"] = (
            [phasekit, "--library", str(lib), "dupes", str(tree)],
            [lib],
        )
        contenders[f"jdupes -r {name}"] = (["jdupes", "-r", "-q", str(tree)], [])
    if args.bin_before is not None:
        # The same commands from the earlier build, into its own library.
        old, old_lib = str(args.bin_before / "phasekit"), work / "lib-before"
        for name, (argv_, before) in list(contenders.items()):
            if name.startswith("phasekit"):
                swapped = [old if a == phasekit else str(old_lib) if a == str(lib) else a
                           for a in argv_]  # fmt: skip
                contenders[f"{name} (before)"] = (swapped, [old_lib] if before else [])
    for argv_, before in contenders.values():  # warm the page cache and the imports
        _timed(argv_, before)
    times: dict[str, list[float]] = {name: [] for name in contenders}
    rng = random.Random(1)
    for round_ in range(args.rounds):
        order = list(contenders)
        rng.shuffle(order)
        for name in order:
            argv_, before = contenders[name]
            times[name].append(_timed(argv_, before))
        print(
            f"round {round_ + 1}: "
            + ", ".join(f"{n} {times[n][-1] * 1000:.0f} ms" for n in contenders),
            flush=True,
        )
    shutil.rmtree(work, ignore_errors=True)
    summary: dict[str, object] = {
        name: {
            "median_ms": round(statistics.median(t) * 1000, 1),
            "min_ms": round(min(t) * 1000, 1),
        }
        for name, t in times.items()
    }
    for name, target in TARGETS.items():
        key = "phasekit --version" if name == "version" else "phasekit index EMPTY"
        if key in times:
            summary[f"{name}: target met"] = statistics.median(times[key]) <= target
    for name in trees:
        summary[f"dupes {name}: jdupes / phasekit"] = {
            **_ratio(times[f"jdupes -r {name}"], times[f"phasekit dupes {name}"]),
            "target": DUPES_TARGETS.get(name),
        }
        if args.bin_before is not None:
            summary[f"dupes {name}: jdupes / phasekit before"] = _ratio(
                times[f"jdupes -r {name}"], times[f"phasekit dupes {name} (before)"]
            )
    if args.bin_before is not None:
        for name in times:
            if name.endswith(" (before)"):
                now = name.removesuffix(" (before)")
                summary[f"before / now: {now}"] = _ratio(times[name], times[now])
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
