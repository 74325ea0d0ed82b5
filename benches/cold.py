#!/usr/bin/env python3
"""Cold caches: every run starts with nothing of the tree in the page cache.

    sudo python benches/cold.py [--files 60000 | --tree200k] [--rounds 3]

Root only: before each run, ``sync; echo 3 > /proc/sys/vm/drop_caches``
(and the VM's proactive reclaim is paused, as in run_all.py, so runs differ
only by what they read). The tree is benches/gen_tree.py's default profile
at ``--files`` files (60,000: about 0.9 GB) under ``$PHASEKIT_BENCH_DIR``,
or with ``--tree200k`` the 200,000-file tree of run_all.py (2.8 GB).
Each round runs every contender once, in a new random order, each in a new
process:

* ``index content`` (a new library, the default settings: 16 files read at
  once) and the same with ``--threads 2`` (one thread per core here, the
  default before the reading pool);
* the floor: ``benches/reader`` (a plain Rust program, built here) reading
  the bytes cas_id reads from every file with 16 threads, and with 2;
* ``index shallow`` against ``find TREE -printf '%s\\n'``;
* ``dupes --walk`` (full) against ``jdupes -r -q``;
* ``validate integrity`` over a library indexed beforehand (warm, outside
  the timing), then the caches dropped.

Prints medians and ratios (the targets: content index within 1.3x of the
16-thread reader, shallow index no slower than find, dupes at least 2x faster
than jdupes). Nothing is asserted (README, Performance).
"""

from __future__ import annotations

import argparse
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


def drop_caches() -> None:
    subprocess.run(["sync"], check=True)
    Path("/proc/sys/vm/drop_caches").write_text("3\n")


def build_reader() -> str:
    """benches/reader, built in release mode (once; cargo skips it after)."""
    manifest = HERE / "reader" / "Cargo.toml"
    subprocess.run(
        ["cargo", "build", "--release", "--quiet", "--manifest-path", str(manifest)], check=True
    )
    return str(HERE / "reader" / "target" / "release" / "sample-reader")


def timed(argv: list[str]) -> float:
    drop_caches()
    start = time.perf_counter()
    done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    seconds = time.perf_counter() - start
    # validate exits 1 when it finds issues: still a measured run.
    if done.returncode not in (0, 1):
        raise RuntimeError(f"{argv[:4]} failed: {done.stderr.decode(errors='replace')[-1000:]}")
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--files", type=int, default=60_000)
    parser.add_argument("--tree200k", action="store_true", help="run_all.py's 200,000-file tree")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--only",
        help="comma-separated contender names to run (default: all), e.g. "
        "'index content,reader 16 threads'",
    )
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("cold.py drops the page cache: run it as root", file=sys.stderr)
        return 2
    if args.tree200k:
        root = BENCH_DIR / "tree200k"
        generate = [str(root)]
    else:
        root = BENCH_DIR / f"cold-{args.files}"
        dirs = max(2, round(args.files * 0.0235))
        generate = [str(root), "--files", str(args.files), "--dirs", str(dirs)]
    subprocess.run([sys.executable, str(HERE / "gen_tree.py"), *generate], check=True)
    reader = build_reader()
    # As an installed package has them (pip writes them at install time):
    # without bytecode every run would compile phasekit's modules again
    # (~0.05 s), and this machine sets PYTHONDONTWRITEBYTECODE.
    import phasekit

    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(Path(phasekit.__file__).parent)], check=True
    )
    phasekit = str(Path(sys.executable).with_name("phasekit"))
    sys.path.insert(0, str(HERE))
    from run_all import proactive_reclaim_off

    with (
        tempfile.TemporaryDirectory(prefix="pk-cold-", dir=BENCH_DIR) as work,
        proactive_reclaim_off(True) as note,
    ):
        print(note, file=sys.stderr)
        indexed = Path(work) / "indexed"
        subprocess.run([phasekit, "--library", str(indexed), "index", str(root), "--mode",
                        "content"], check=True, stdout=subprocess.DEVNULL)  # fmt: skip

        def fresh(name: str) -> str:
            lib = Path(work) / name
            shutil.rmtree(lib, ignore_errors=True)
            return str(lib)

        def index(mode: str, *extra: str) -> list[str]:
            return [phasekit, "--library", fresh("lib"), "index", str(root), "--mode", mode,
                    *extra]  # fmt: skip

        def pk(lib: str, *rest: str) -> list[str]:
            return [phasekit, "--library", lib, *rest]

        contenders = {
            "index content": lambda: index("content"),
            "index content --threads 2": lambda: index("content", "--threads", "2"),
            "reader 16 threads": lambda: [reader, "16", str(root)],
            "reader 2 threads": lambda: [reader, "2", str(root)],
            "index shallow": lambda: index("shallow"),
            "find -printf": lambda: ["find", str(root), "-printf", "%s\n"],
            "dupes --walk": lambda: pk(fresh("walk"), "dupes", str(root), "--walk"),
            "validate integrity": lambda: pk(
                str(indexed), "validate", str(root), "--mode", "integrity"
            ),
        }
        if shutil.which("jdupes"):
            contenders["jdupes -r"] = lambda: ["jdupes", "-r", "-q", str(root)]
        if args.only:
            wanted = [name.strip() for name in args.only.split(",")]
            unknown = [name for name in wanted if name not in contenders]
            if unknown:
                print(f"unknown contenders {unknown}; known: {list(contenders)}", file=sys.stderr)
                return 2
            contenders = {name: contenders[name] for name in wanted}
        times: dict[str, list[float]] = {name: [] for name in contenders}
        for r in range(args.rounds):
            order = list(contenders)
            random.Random(r).shuffle(order)
            for name in order:
                times[name].append(timed(contenders[name]()))
                print(f"  round {r + 1} {name}: {times[name][-1]:.2f} s", file=sys.stderr)
    med = {name: statistics.median(t) for name, t in times.items() if t}
    print("| contender | median (cold) |")
    print("|---|---:|")
    for name, seconds in med.items():
        print(f"| {name} | {seconds:.2f} s |")
    pairs = [
        ("index content", "reader 16 threads"),
        ("index content --threads 2", "index content"),
        ("find -printf", "index shallow"),
        ("jdupes -r", "dupes --walk"),
    ]
    for slow, fast in pairs:
        if slow in med and fast in med:
            print(f"{slow} / {fast}: {med[slow] / med[fast]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
