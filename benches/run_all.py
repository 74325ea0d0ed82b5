#!/usr/bin/env python3
"""Run every benchmark in one go and write the combined table.

    python benches/run_all.py [--runs 5] [--skip-external] [--skip-rss]

1. makes the trees (``gen_tree.py``; idempotent) and warms the page cache;
2. runs the pytest-benchmark suite (Rust against the Python twins);
3. runs the external tools on the same tree (``compare_tools.py``, hyperfine);
4. measures peak RSS of walking the 1,000,000-entry tree (``walk_rss.py``);
5. writes ``results/summary.md`` (the README's performance table) and
   ``results/summary.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import json
import os
import platform
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
BENCH_DIR = Path(os.environ.get("PHASEKIT_BENCH_DIR", "/tmp/pk-bench"))


DAMON_STATES = "/sys/kernel/mm/damon/admin/kdamonds/*/state"


@contextlib.contextmanager
def proactive_reclaim_off(enabled: bool) -> Iterator[str]:
    """Pause DAMON proactive reclaim (if on) while benchmarking, then restore it.

    Some VMs run DAMON with a ``pageout`` scheme that evicts page-cache pages not
    touched for a while, so a "warm" tree goes partly cold between runs and the
    timings measure the disk. Yields a note for the report.
    """
    running = [p for p in glob.glob(DAMON_STATES) if Path(p).read_text().strip() == "on"]
    if not running:
        yield "no proactive reclaim (DAMON) running"
        return
    if not enabled:
        yield "DAMON proactive reclaim was running (page cache may go cold between runs)"
        return
    for p in running:
        Path(p).write_text("off")
    try:
        yield "DAMON proactive reclaim paused during the run"
    finally:
        for p in running:
            Path(p).write_text("on")


def sh(*cmd: str) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def pytest_medians(path: Path) -> dict[str, float]:
    data = json.loads(path.read_text())
    return {b["name"]: b["stats"]["median"] for b in data["benchmarks"]}


def external_medians(path: Path) -> dict[str, float | None]:
    data = json.loads(path.read_text())
    results = data.get("results", data)
    return {k: v.get("median_s") for k, v in results.items() if isinstance(v, dict)}


def fmt(x: float | None) -> str:
    return "—" if x is None else f"{x:.2f} s"


def ratio(a: float | None, b: float | None) -> str:
    return "—" if a is None or b is None else f"{b / a:.1f}x"


def build_table(
    ours: dict[str, float], ext: dict[str, float | None], rss: dict[str, object]
) -> str:
    def o(name: str) -> float | None:
        return ours.get(name)

    rows = []

    def row(
        work: str,
        rust: float | None,
        others: list[tuple[str, float | None]],
        target: str,
        met: bool | None,
    ) -> None:
        cells = "; ".join(f"{n} {fmt(t)} ({ratio(rust, t)})" for n, t in others)
        verdict = "—" if met is None else ("yes" if met else "**no**")
        rows.append(f"| {work} | {fmt(rust)} | {cells} | {target} | {verdict} |")

    def lt(a: float | None, b: float | None, k: float = 1.0) -> bool | None:
        return None if a is None or b is None else a * k <= b

    walk = o("test_walk_rust")
    oswalk = o("test_walk_oswalk_lstat")
    find, fd = ext.get("find"), ext.get("fd")
    row(
        "walk + stat every entry",
        walk,
        [
            ("Python twin", o("test_walk_twin")),
            ("os.walk+lstat", oswalk),
            ("find", find),
            ("fd -S", fd),
            ("updatedb.plocate", ext.get("updatedb.plocate")),
        ],
        "≥3x os.walk+lstat; < find, fd",
        None if walk is None else bool(lt(walk, oswalk, 3) and lt(walk, find) and lt(walk, fd)),
    )
    cas = o("test_cas_ids_rust")
    row(
        "cas_id of every file (walk included)",
        cas,
        [("Python twin", o("test_cas_ids_twin"))],
        "≥4x twin",
        lt(cas, o("test_cas_ids_twin"), 4),
    )
    ck = o("test_checksums_rust")
    b3 = ext.get("b3sum --no-mmap (xargs -P2)")
    row(
        "full BLAKE3 of every file",
        ck,
        [
            ("Python twin", o("test_checksums_twin")),
            ("b3sum --no-mmap x2", b3),
            ("b3sum mmap x2", ext.get("b3sum mmap (xargs -P2)")),
        ],
        "≤ b3sum x2",
        lt(ck, b3),
    )
    dup = o("test_find_duplicates_full_rust")
    others = [("Python twin", o("test_find_duplicates_full_twin"))] + [
        (n, ext.get(n))
        for n in ("jdupes", "fdupes", "rmlint (blake2b)", "rmlint -a paranoid", "fclones")
    ]
    fcl = ext.get("fclones")
    met = None
    if dup is not None:
        met = all(
            lt(dup, ext.get(n)) is not False for n in ("jdupes", "fdupes", "rmlint (blake2b)")
        )
        met = met and (fcl is None or dup <= 1.2 * fcl)
    row(
        "duplicates, byte-exact (walk included)",
        dup,
        others,
        "< jdupes, fdupes, rmlint; ≤1.2x fclones",
        met,
    )
    table = [
        "| work (200,000 files, 2.4 GB) | phasekit | others (phasekit's speed-up) | target | met |",
        "|---|---:|---|---|---|",
        *rows,
    ]
    if rss:
        peak = rss.get("peak_rss_mb")
        table.append(
            f"| walk 1,000,000 entries: peak RSS | {peak} MB | largest resume state "
            f"{rss.get('max_state_bytes')} bytes; {rss.get('seconds')} s | < 200 MB | "
            f"{'yes' if isinstance(peak, float) and peak < 200 else '**no**'} |"
        )
    return "\n".join(table)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="all benchmarks, one run")
    ap.add_argument("--runs", type=int, default=5, help="runs per external tool")
    ap.add_argument("--skip-external", action="store_true")
    ap.add_argument("--skip-rss", action="store_true")
    ap.add_argument("-k", default=None, help="pytest -k filter for the pytest-benchmark suite")
    ap.add_argument(
        "--keep-reclaim",
        action="store_true",
        help="leave DAMON proactive reclaim running (default: pause it, needs root)",
    )
    args = ap.parse_args(argv)
    with proactive_reclaim_off(not args.keep_reclaim) as cache_note:
        return run(args, cache_note)


def run(args: argparse.Namespace, cache_note: str) -> int:
    RESULTS.mkdir(exist_ok=True)
    tree = BENCH_DIR / "tree200k"
    sh(sys.executable, str(HERE / "gen_tree.py"), str(tree))

    with tempfile.TemporaryDirectory() as tmp:
        bench_json = Path(tmp) / "pytest.json"
        cmd = [
            sys.executable,
            "-m",
            "pytest",
            str(HERE),
            "-o",
            "python_files=bench_*.py",
            "-p",
            "no:randomly",
            "--benchmark-only",
            f"--benchmark-json={bench_json}",
            "--benchmark-columns=median,min,max,rounds",
            "-q",
        ]
        if args.k:
            cmd += ["-k", args.k]
        sh(*cmd)
        ours = pytest_medians(bench_json)
        (RESULTS / "pytest-benchmark.json").write_text(bench_json.read_text())

    ext: dict[str, float | None] = {}
    ext_json = RESULTS / "external.json"
    if not args.skip_external:
        sh(
            sys.executable,
            str(HERE / "compare_tools.py"),
            str(tree),
            "--runs",
            str(args.runs),
            "--out",
            str(ext_json),
            "--md",
            str(RESULTS / "external.md"),
        )
    if ext_json.exists():
        ext = external_medians(ext_json)

    rss: dict[str, object] = {}
    if not args.skip_rss:
        tree1m = BENCH_DIR / "tree1m"
        sh(
            sys.executable,
            str(HERE / "gen_tree.py"),
            str(tree1m),
            "--files",
            "1000000",
            "--dirs",
            "20000",
            "--empty",
        )
        out = subprocess.run(
            [sys.executable, str(HERE / "walk_rss.py"), str(tree1m)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        rss = json.loads(out)

    table = build_table(ours, ext, rss)
    header = (
        f"Measured {platform.platform()}, {os.cpu_count()} CPUs, page cache warm "
        f"({cache_note}); medians; pytest-benchmark for phasekit and its twins, hyperfine "
        "for the tools, all in one run of `benches/run_all.py`."
    )
    (RESULTS / "summary.md").write_text(header + "\n\n" + table + "\n")
    (RESULTS / "summary.json").write_text(
        json.dumps({"phasekit": ours, "external": ext, "rss": rss}, indent=1)
    )
    print("\n" + header + "\n\n" + table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
