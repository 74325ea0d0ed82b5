#!/usr/bin/env python3
"""phasekit at 200,000 and at 1,000,000 files: wall time, per-file cost and
peak RSS of each command, beside fd and jdupes on the same tree.

    python benches/scale.py [--sizes 200000,1000000] [--rounds 3] [--bytes-scale 0.1]

Each tree is made by benches/gen_tree.py with the same profile (``--files N
--dirs N*0.00468 --bytes-scale``: small files, a few large ones, planted
duplicates; 1,000,000 files in 4,680 folders), kept under
``$PHASEKIT_BENCH_DIR`` (default /tmp/pk-bench), and read once before the
runs (warm page cache; benches/cold.py measures cold). Per size and round,
in a new random order each round, every contender runs as a new process:

* ``index shallow`` and ``index content``: ``phasekit index`` into a new
  library (content: the shallow library switched to content mode, so only
  the hashing is timed);
* ``dupes location`` (over the indexed location) and ``dupes --walk`` (the
  paths, a new library), full mode;
* ``validate integrity`` over the indexed location;
* ``ls --json`` (to /dev/null) and the Python iterator over the location's
  entries (``Library.entries``);
* ``fd -t f -u . TREE`` and ``jdupes -r -q TREE`` (if installed).

Prints a table: median wall time, per-file cost, the 1,000,000/200,000
per-file ratio (target 1.3 or less) and peak RSS (the largest process a
contender started: ``ru_maxrss`` of the reaped children). Writes JSON with
``--json-out``. Nothing is asserted.
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

HERE = Path(__file__).resolve().parent
BENCH_DIR = Path(os.environ.get("PHASEKIT_BENCH_DIR", "/tmp/pk-bench"))

# Runs argv (stdout to /dev/null) and prints the peak RSS (KiB) of the
# largest process it started.
MEASURE = (
    "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, "
    "stdout=subprocess.DEVNULL); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
)
ITERATE = (
    "import sys; from phasekit.library import Library\n"
    "with Library.open(sys.argv[1]) as lib:\n"
    "    n = sum(1 for _ in lib.entries(sys.argv[2]))\n"
    "print(n)\n"
)


def tree(files: int, scale: float) -> Path:
    dest = BENCH_DIR / f"scale-{files}-{scale:g}"
    dirs = max(2, round(files * 0.00468))
    subprocess.run(
        [sys.executable, str(HERE / "gen_tree.py"), str(dest), "--files", str(files),
         "--dirs", str(dirs), "--bytes-scale", str(scale)],
        check=True,
    )  # fmt: skip
    return dest


def warm(root: Path) -> None:
    """Read every file once (and its metadata) so every contender finds the
    page cache warm."""
    subprocess.run(
        ["bash", "-c", f"find {root} -type f -print0 | xargs -0 -P 2 -n 500 cat > /dev/null"],
        check=True,
    )


def timed(argv: list[str]) -> tuple[float, int]:
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, *argv], capture_output=True, text=True, check=False
    )
    seconds = time.perf_counter() - start
    if done.returncode not in (0,):
        # jdupes exits 0; phasekit dupes exits 0 with duplicates found.
        raise RuntimeError(f"{argv[:4]} failed: {done.stderr[-2000:]}")
    return seconds, int(done.stdout.strip().splitlines()[-1])


def run_size(root: Path, files: int, rounds: int, work: Path) -> dict[str, dict[str, float]]:
    phasekit = str(Path(sys.executable).with_name("phasekit"))
    indexed = work / "indexed"
    shutil.rmtree(indexed, ignore_errors=True)
    # The library the location contenders read: shallow then content.
    subprocess.run([phasekit, "--library", str(indexed), "index", str(root), "--mode", "content"],
                   check=True, stdout=subprocess.DEVNULL)  # fmt: skip

    def fresh(name: str) -> Path:
        lib = work / name
        shutil.rmtree(lib, ignore_errors=True)
        return lib

    def index_shallow() -> list[str]:
        return [phasekit, "--library", str(fresh("shallow")), "index", str(root), "--mode",
                "shallow"]  # fmt: skip

    def index_content() -> list[str]:
        lib = fresh("content")
        subprocess.run([phasekit, "--library", str(lib), "index", str(root), "--mode", "shallow"],
                       check=True, stdout=subprocess.DEVNULL)  # fmt: skip
        return [phasekit, "--library", str(lib), "index", str(root), "--mode", "content"]

    def pk(lib: Path, *args: str) -> list[str]:
        return [phasekit, "--library", str(lib), *args]

    contenders = {
        "index shallow": index_shallow,
        "index content": index_content,
        "dupes location": lambda: pk(indexed, "dupes", str(root), "--mode", "full"),
        "dupes --walk": lambda: pk(fresh("walk"), "dupes", str(root), "--walk", "--mode", "full"),
        "validate integrity": lambda: pk(indexed, "validate", str(root), "--mode", "integrity"),
        "ls --json": lambda: pk(indexed, "ls", str(root), "--json"),
        "Library.entries": lambda: [sys.executable, "-c", ITERATE, str(indexed), str(root)],
    }
    if shutil.which("fd") or shutil.which("fdfind"):
        fd = shutil.which("fd") or shutil.which("fdfind")
        contenders["fd -t f -u"] = lambda: [str(fd), "-t", "f", "-u", ".", str(root)]
    if shutil.which("jdupes"):
        contenders["jdupes -r"] = lambda: ["jdupes", "-r", "-q", str(root)]
    results: dict[str, list[tuple[float, int]]] = {name: [] for name in contenders}
    for r in range(rounds):
        order = list(contenders)
        random.Random(files * 100 + r).shuffle(order)
        for name in order:
            argv = contenders[name]()
            results[name].append(timed(argv))
            print(f"  {files:,} round {r + 1} {name}: {results[name][-1][0]:.2f} s",
                  file=sys.stderr)  # fmt: skip
    return {
        name: {
            "seconds": statistics.median(s for s, _ in runs),
            "rss_mb": max(k for _, k in runs) / 1024,
            "us_per_file": statistics.median(s for s, _ in runs) / files * 1e6,
        }
        for name, runs in results.items()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", default="200000,1000000")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--bytes-scale", type=float, default=0.1)
    parser.add_argument("--json-out", default=None)
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    out: dict[int, dict[str, dict[str, float]]] = {}
    sys.path.insert(0, str(HERE))
    from run_all import proactive_reclaim_off  # the same pause as the main benchmarks

    # Warm means warm: a VM's proactive reclaim would evict the tree
    # between runs (a content index of 1,000,000 files took 55 s, not 12).
    with proactive_reclaim_off(True) as note:
        print(note, file=sys.stderr)
        for files in sizes:
            root = tree(files, args.bytes_scale)
            warm(root)
            with tempfile.TemporaryDirectory(prefix="pk-scale-", dir=BENCH_DIR) as work:
                out[files] = run_size(root, files, args.rounds, Path(work))
    first, last = sizes[0], sizes[-1]
    columns = " | ".join(f"{n:,} files" for n in sizes)
    peaks = " / ".join(f"{n // 1000}k" for n in sizes)
    print(
        f"| contender | {columns} | per-file {last // 1000}k/{first // 1000}k | peak RSS {peaks} |"
    )
    print("|---" * (3 + len(sizes)) + "|")
    for name in out[first]:
        cells = [f"{out[n][name]['seconds']:.2f} s ({out[n][name]['us_per_file']:.1f} µs)"
                 for n in sizes]  # fmt: skip
        ratio = out[last][name]["us_per_file"] / out[first][name]["us_per_file"]
        rss = " / ".join(f"{out[n][name]['rss_mb']:.0f} MB" for n in sizes)
        print(f"| {name} | {' | '.join(cells)} | {ratio:.2f} | {rss} |")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
