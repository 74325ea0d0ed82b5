#!/usr/bin/env python3
"""Peak memory and checkpoint sizes of ``phasekit index`` on a large tree.

Usage: ``python benches/index_rss.py TREE [--mode shallow|content|deep]``.
Runs ``phasekit index TREE`` into a fresh library in a child process, reads
the child's peak RSS when it ends (``ru_maxrss`` of the reaped child), and
meanwhile samples jobs.db (Python's own database, safe to read) for the
largest checkpoint stored. Prints one JSON object. Targets for 1,000,000
files: peak RSS under 300 MB, every checkpoint under 1 MB.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def largest_checkpoint(jobs_db: Path) -> int:
    if not jobs_db.exists():
        return 0
    conn = sqlite3.connect(f"file:{jobs_db}?mode=ro", uri=True, timeout=30)
    try:
        row = conn.execute("SELECT MAX(LENGTH(data)) FROM job_checkpoints").fetchone()
        return int(row[0] or 0)
    except sqlite3.OperationalError:
        return 0  # tables not created yet
    finally:
        conn.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("tree")
    ap.add_argument("--mode", choices=("shallow", "content", "deep"), default="shallow")
    args = ap.parse_args(argv)
    library = Path(tempfile.mkdtemp(prefix="phasekit-index-rss-"))
    cmd = [sys.executable, "-m", "phasekit", "--library", str(library),
           "index", args.tree, "--mode", args.mode, "--json"]  # fmt: skip
    start = time.perf_counter()
    biggest = 0
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) as proc:
        while proc.poll() is None:
            biggest = max(biggest, largest_checkpoint(library / "jobs.db"))
            time.sleep(0.05)
        out = proc.stdout.read() if proc.stdout else ""
    seconds = time.perf_counter() - start
    biggest = max(biggest, largest_checkpoint(library / "jobs.db"))
    # The largest reaped child's peak: the index process (the only child).
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    summary = json.loads(out) if out.strip() else {}
    print(json.dumps({
        "tree": args.tree,
        "mode": args.mode,
        "entries": summary.get("files", 0) + summary.get("dirs", 0),
        "status": summary.get("status"),
        "seconds": round(seconds, 2),
        "peak_rss_mb": round(peak_mb, 1),
        "largest_checkpoint_bytes": biggest,
    }))  # fmt: skip
    shutil.rmtree(library, ignore_errors=True)
    return 0 if summary.get("status") == "completed" else 1


if __name__ == "__main__":
    sys.exit(main())
