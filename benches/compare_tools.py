#!/usr/bin/env python3
"""Time external tools on a benchmark tree (page cache warm) with hyperfine.

Usage::

    python benches/compare_tools.py TREE [--runs 5] [--warmup 1]
        [--out benches/results/external.json] [--md benches/results/external.md]
        [--only NAME,NAME] [--merge] [--no-warm] [--wait-idle SECONDS]

Every command runs through ``hyperfine --warmup W --runs N --export-json`` (shell
``sh -c``, whose spawn time hyperfine subtracts) in a scratch directory, so nothing
is written into the caller's cwd (rmlint's default ``rmlint.sh``/``rmlint.json``
are replaced by ``-o fdupes`` to stdout anyway; never ``-o fdupes:/dev/null``: rmlint
renames an existing output file to a timestamped backup, which would replace the
/dev/null device with a regular file). Before timing, every file of the
tree is read once so the page cache is warm. Missing tools are reported and skipped.

Choices that make the duplicate finders comparable (see each note in the output):

* Empty files are excluded everywhere: jdupes does so by default (``-z`` would
  include them), fdupes needs ``-n``, rmlint ``-T df`` reports duplicates only and its
  default ``--size 1`` skips empty files, fclones' default ``--min`` is 1 byte.
* jdupes, fdupes and ``rmlint -a paranoid`` confirm matches byte by byte; rmlint's
  default is the blake2b hash (both are timed); fclones is hash-only (metro128).
* Hard links: jdupes/fdupes treat names of one inode as non-duplicates (one name per
  inode is listed); rmlint and fclones list hard links in the groups.
* ``updatedb.plocate`` gets an empty prune list (Debian prunes /tmp), no visibility
  checks, and a ``--prepare`` step that deletes its database, because it otherwise
  reuses entries of unchanged directories from the previous database.
* The project's VMs report their virtio disk as rotational, so rmlint reads extents
  (FIEMAP, plus an fsync per file) to order reads and fclones uses its HDD thread
  pool. Two extra rows show the SSD-like settings (``--without-fiemap``, ``-t hdd:2``).

Warm cache and noise: the host pages out page-cache pages left untouched for ~30 s,
so "warm" holds only while a tree is in use; hyperfine's warm-up run re-reads the
tree right before each tool's timed runs. Other work on the machine skews timings:
each record has ``busy_before`` (share of all CPUs busy in the second before) and
``others_cpu_s`` (machine CPU time during the timing minus the commands' own user +
system time: other processes, plus kernel threads working for the tool, e.g. the
writeback that rmlint's per-file fsync causes, so it is a hint, not proof);
``--wait-idle S`` waits up to S seconds for a quiet machine first.

Output: JSON ``{name: {median_s, mean_s, min_s, max_s, runs: [...], command,
category, version, note, busy_before, others_cpu_s}}``; a skipped tool has
``median_s: null`` and ``skipped``.
A Markdown table goes to stdout and to ``--md``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

HERE = os.path.dirname(os.path.abspath(__file__))
#: The ``phasekit`` command of the running environment.
PHASEKIT = os.path.join(os.path.dirname(sys.executable), "phasekit")
PY_WALK = (
    "import os, sys; print(sum(os.lstat(os.path.join(d, f)).st_size"
    " for d, _, fs in os.walk(sys.argv[1]) for f in fs))"
)


@dataclass
class Bench:
    """One timed command."""

    name: str
    category: str
    tool: str  # executable that must be on PATH
    command: str  # shell command line
    note: str = ""
    prepare: str | None = None


def benches(tree: str, scratch: str) -> list[Bench]:
    """The command lines to time, for ``tree`` and a scratch directory."""
    t = shlex.quote(tree)
    db = shlex.quote(os.path.join(scratch, "plocate.db"))
    lib = shlex.quote(os.path.join(scratch, "phasekit-library"))
    files0 = f"find {t} -type f -print0 | xargs -0 -P2 -n 2000"
    return [
        Bench(
            "find",
            "walk+stat",
            "find",
            f"find {t} -printf '%s\\n' > /dev/null",
            "GNU find, lstat per entry for %s",
        ),
        Bench(
            "fd",
            "walk+stat",
            "fdfind",
            f"fdfind -u -t f -S +0b . {t} > /dev/null",
            "-S forces a statx per file; -u = hidden + no ignore files; all cores",
        ),
        Bench(
            "python os.walk+lstat",
            "walk+stat",
            sys.executable,
            f"{shlex.quote(sys.executable)} -c {shlex.quote(PY_WALK)} {t} > /dev/null",
            "one thread, interpreter start-up included",
        ),
        Bench(
            "updatedb.plocate",
            "walk+stat",
            "updatedb.plocate",
            f"updatedb.plocate -U {t} -o {db} -l no --prunepaths '' --prunefs '' --prunenames ''",
            "reference only: names, no per-file stat; db deleted before each run",
            prepare=f"rm -f {db}",
        ),
        Bench(
            "b3sum --no-mmap (xargs -P2)",
            "checksum",
            "b3sum",
            f"{files0} b3sum --no-mmap > /dev/null",
            "2 processes, read() I/O",
        ),
        Bench(
            "b3sum mmap (xargs -P2)",
            "checksum",
            "b3sum",
            f"{files0} b3sum > /dev/null",
            "same, default mmap (multithreaded hashing of large files)",
        ),
        Bench(
            "jdupes",
            "duplicates",
            "jdupes",
            f"jdupes -r -q {t} > /dev/null",
            "byte-exact; empty files skipped by default; hard links not dupes",
        ),
        Bench(
            "phasekit dupes",
            "duplicates",
            PHASEKIT,
            f"{shlex.quote(PHASEKIT)} --library {lib} dupes {t} --mode full > /dev/null",
            "the resumable job from the CLI: byte-exact (size, cas_id, full BLAKE3), "
            "empty files skipped, hard links not dupes; start-up and a new library "
            "(jobs.db, checkpoints) included",
            prepare=f"rm -rf {lib}",
        ),
        Bench(
            "fdupes",
            "duplicates",
            "fdupes",
            f"fdupes -r -q -n {t} > /dev/null",
            "md5 + byte-exact; -n skips empty files; hard links not dupes",
        ),
        Bench(
            "rmlint (blake2b)",
            "duplicates",
            "rmlint",
            f"rmlint -T df -o fdupes {t} > /dev/null",
            "default blake2b hash, duplicates only (-T df), size >= 1",
        ),
        Bench(
            "rmlint -a paranoid",
            "duplicates",
            "rmlint",
            f"rmlint -T df -a paranoid -o fdupes {t} > /dev/null",
            "byte-by-byte comparison, duplicates only, size >= 1",
        ),
        Bench(
            "fclones",
            "duplicates",
            "fclones",
            f"fclones group {t} > /dev/null",
            "hash only (metro128), --min 1 by default",
        ),
        Bench(
            "rmlint (blake2b) --without-fiemap",
            "duplicates (variant)",
            "rmlint",
            f"rmlint -T df --without-fiemap -o fdupes {t} > /dev/null",
            "as rmlint (blake2b), no extent lookup (the disk claims to be rotational)",
        ),
        Bench(
            "fclones -t hdd:2",
            "duplicates (variant)",
            "fclones",
            f"fclones group -t hdd:2 {t} > /dev/null",
            "as fclones, 2 I/O threads for the 'hdd' the disk claims to be",
        ),
    ]


def tool_version(tool: str) -> str:
    """``tool X.Y.Z`` from ``tool --version`` (empty if it fails)."""
    try:
        p = subprocess.run([tool, "--version"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    m = re.search(r"\d+\.\d+(\.\d+)?", p.stdout or p.stderr)
    return f"{os.path.basename(tool)} {m.group(0)}" if m else ""


def cpu_times() -> tuple[float, float]:
    """Machine-wide (busy, total) CPU seconds from /proc/stat (zeros if unavailable)."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = [int(x) for x in f.readline().split()[1:9]]
    except OSError:
        return 0.0, 0.0
    hz = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields) - idle) / hz, sum(fields) / hz


def busy_share(seconds: float = 1.0) -> float:
    """Share of all CPUs that were busy during the next ``seconds``."""
    b0, t0 = cpu_times()
    time.sleep(seconds)
    b1, t1 = cpu_times()
    return (b1 - b0) / (t1 - t0) if t1 > t0 else 0.0


def wait_idle(limit_s: float, below: float = 0.15) -> float:
    """Wait up to ``limit_s`` seconds for CPU use under ``below``; return the last share."""
    deadline = time.monotonic() + limit_s
    share = busy_share()
    while share >= below and time.monotonic() < deadline:
        share = busy_share(2.0)
    return share


def rotational(path: str) -> str:
    """'1'/'0' from sysfs for the block device holding ``path`` ('?' if unknown)."""
    dev = os.stat(path).st_dev
    base = f"/sys/dev/block/{os.major(dev)}:{os.minor(dev)}"
    for p in (f"{base}/queue/rotational", f"{base}/../queue/rotational"):
        try:
            with open(p, encoding="ascii") as f:
                return f.read().strip()
        except OSError:
            continue
    return "?"


def warm_cache(tree: str) -> tuple[int, int, float]:
    """Read every regular file once; return (files, bytes, seconds)."""
    t0, n, total = time.perf_counter(), 0, 0
    buf = bytearray(1 << 20)
    for d, _, names in os.walk(tree):
        for name in names:
            path = os.path.join(d, name)
            if not os.path.isfile(path) or os.path.islink(path):
                continue
            with open(path, "rb", buffering=0) as f:
                while k := f.readinto(buf):
                    total += k
            n += 1
    return n, total, time.perf_counter() - t0


def run_bench(
    b: Bench, runs: int, warmup: int, scratch: str, idle_wait: float = 0.0
) -> dict[str, object]:
    """Time one command with hyperfine and return its result record."""
    shown = b.command.replace(scratch, "$SCRATCH")
    rec: dict[str, object] = {"command": shown, "category": b.category, "note": b.note}
    if shutil.which(b.tool) is None:
        rec.update(median_s=None, skipped=f"{b.tool} not found on PATH")
        return rec
    rec["version"] = tool_version(b.tool)
    out = os.path.join(scratch, "hyperfine.json")
    cmd = [
        "hyperfine",
        "--style",
        "basic",
        "--warmup",
        str(warmup),
        "--runs",
        str(runs),
        "--export-json",
        out,
        "-n",
        b.name,
    ]
    if b.prepare:
        cmd += ["--prepare", b.prepare]
    rec["busy_before"] = round(wait_idle(idle_wait) if idle_wait else busy_share(), 3)
    busy0, _ = cpu_times()
    p = subprocess.run([*cmd, b.command], cwd=scratch, capture_output=True, text=True)
    busy1, _ = cpu_times()
    if p.returncode != 0:
        rec.update(median_s=None, skipped=f"failed: {p.stderr.strip()[-500:]}")
        return rec
    with open(out, encoding="utf-8") as f:
        res = json.load(f)["results"][0]
    times = res["times"]
    own = (res["user"] + res["system"]) * (runs + warmup)
    rec["others_cpu_s"] = round(max(0.0, busy1 - busy0 - own), 2)
    rec.update(
        median_s=round(statistics.median(times), 4),
        mean_s=round(statistics.mean(times), 4),
        min_s=round(min(times), 4),
        max_s=round(max(times), 4),
        runs=[round(x, 4) for x in times],
    )
    return rec


def save_json(path: str, results: dict[str, dict[str, object]]) -> None:
    """Write ``results`` to ``path`` atomically (temp file + rename)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(results, f, indent=1)
    os.replace(tmp, path)


def markdown(results: dict[str, dict[str, object]], header: list[str]) -> str:
    """Render the results as a Markdown report with one table."""
    lines = [
        *header,
        "",
        "| category | tool | median s | min s | max s | runs | other CPU s | version | note |",
        "|---|---|---:|---:|---:|---:|---:|---|---|",
    ]
    for name, r in results.items():
        if r.get("median_s") is None:
            lines.append(f"| {r['category']} | {name} | — | | | 0 | | | skipped: {r['skipped']} |")
            continue
        lines.append(
            f"| {r['category']} | {name} | {r['median_s']:.3f} | {r['min_s']:.3f} | "
            f"{r['max_s']:.3f} | {len(r['runs'])} | {r['others_cpu_s']:.1f} | "
            f"{r.get('version', '')} | {r['note']} |"
        )
    lines += ["", "Commands (TREE = the tree above):", ""]
    lines += [f"- {name}: `{r['command']}`" for name, r in results.items()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("tree")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--out", default=os.path.join(HERE, "results", "external.json"))
    ap.add_argument("--md", default=None, help="also write the Markdown here")
    ap.add_argument("--only", default="", help="comma-separated bench names to run")
    ap.add_argument("--no-warm", action="store_true", help="skip reading the tree first")
    ap.add_argument(
        "--wait-idle", type=float, default=0.0, help="wait up to S s per tool for idle CPUs"
    )
    ap.add_argument("--merge", action="store_true", help="update --out instead of replacing it")
    a = ap.parse_args(argv)
    tree = os.path.abspath(a.tree)
    if not os.path.isdir(tree):
        ap.error(f"{tree} is not a directory")
    if shutil.which("hyperfine") is None:
        ap.error("hyperfine is required (apt-get install hyperfine)")
    if not a.no_warm:
        n, total, secs = warm_cache(tree)
        print(f"warm-up read: {n} files, {total / 1e9:.2f} GB in {secs:.1f} s", file=sys.stderr)
    only = {s.strip() for s in a.only.split(",") if s.strip()}
    results: dict[str, dict[str, object]] = {}
    if a.merge and os.path.isfile(a.out):
        with open(a.out, encoding="utf-8") as f:
            results = json.load(f)
    rank = {b.name: i for i, b in enumerate(benches(tree, "$SCRATCH"))}
    with tempfile.TemporaryDirectory(prefix="pk-compare-") as scratch:
        for b in benches(tree, scratch):
            if only and b.name not in only:
                continue
            print(f"timing {b.name} ...", file=sys.stderr, flush=True)
            results[b.name] = run_bench(b, a.runs, a.warmup, scratch, a.wait_idle)
            results = dict(sorted(results.items(), key=lambda kv: rank.get(kv[0], len(rank))))
            save_json(a.out, results)  # after every tool, so an interrupted run keeps them
            r = results[b.name]
            print(
                f"  median {r['median_s']} s"
                if r["median_s"] is not None
                else f"  SKIPPED: {r['skipped']}",
                file=sys.stderr,
                flush=True,
            )
        leftovers = sorted(set(os.listdir(scratch)) - {"hyperfine.json", "plocate.db"})
    if leftovers:
        print(f"note: tools wrote {leftovers} into the scratch dir", file=sys.stderr)

    header = [
        "# External tools on the benchmark tree",
        "",
        f"- tree: `{a.tree}`",
        f"- date: {datetime.date.today().isoformat()}; {platform.platform()}; "
        f"{os.cpu_count()} CPUs; page cache warm; hyperfine --warmup {a.warmup} --runs {a.runs}",
        f"- disk rotational flag: {rotational(tree)}; 'other CPU s' = CPU time of other "
        "processes and kernel threads while a tool was timed (large values: skewed figures, "
        "or kernel work the tool caused)",
    ]
    marker = os.path.join(tree, ".gen_tree_done")
    if os.path.isfile(marker):
        with open(marker, encoding="utf-8") as f:
            s = json.load(f)["summary"]
        header.append(
            f"- gen_tree: {s.get('files')} files (+ marker), {s.get('dirs')} dirs, "
            f"{s.get('bytes', 0) / 1e9:.2f} GB, {s.get('dup_groups')} planted dup groups"
        )
    md = markdown(results, header)
    print(md)
    if a.md:
        with open(a.md, "w", encoding="utf-8") as f:
            f.write(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
