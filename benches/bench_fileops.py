#!/usr/bin/env python3
"""Copy and delete against the classic tools, on the same trees, same run.

    python benches/bench_fileops.py [--rounds 3] [--only copy,copy-big,delete]
                                    [--tree PATH] [--big-dir PATH]

* ``copy``: the 200,000-file tree (``gen_tree.py``) to a new folder on the
  same filesystem: ``phasekit copy`` (new library) against ``cp -a``,
  ``xcp -r``, ``cpz`` and ``shutil.copytree(symlinks=True)``.
* ``copy-big``: a folder of 4 x 1 GiB files, the same contenders.
* ``delete``: that tree, copied fresh (outside the timing) before each
  contender: ``phasekit delete --permanent`` against ``rm -rf``, ``rmz`` and
  ``shutil.rmtree``.
* ``--baseline PATH``: the ``phasekit`` executable of another build (an
  earlier commit, installed in its own venv) runs as one more contender,
  "baseline build", for a before/after in the same rounds.

Every round runs each contender once, in a new random order, as a new
process; the destination is removed and the removal synced before each
copy, outside the timing. Figures are medians; ratios are medians of
per-round ratios (other / phasekit: above 1, phasekit is faster). Tools
that are not installed (``cargo install xcp cpz rmz``) are left out and
said so. Nothing is asserted.
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

from conftest import BENCH_DIR, ensure_tree, warm

GIB = 1 << 30
COPYTREE = "import shutil, sys; shutil.copytree(sys.argv[1], sys.argv[2], symlinks=True)"


def _phasekit() -> str:
    return str(Path(sys.executable).with_name("phasekit"))


def copy_contenders(lib: Path, baseline: str | None) -> dict[str, list[str] | None]:
    py = sys.executable
    return {
        "phasekit copy": [_phasekit(), "--library", str(lib), "copy", "{src}", "{dst}"],
        "baseline build": [baseline, "--library", f"{lib}-b", "copy", "{src}", "{dst}"]
        if baseline
        else None,
        "cp -a": ["cp", "-a", "{src}", "{dst}"],
        "xcp -r": ["xcp", "-r", "{src}", "{dst}"] if shutil.which("xcp") else None,
        "cpz": ["cpz", "{src}", "{dst}"] if shutil.which("cpz") else None,
        "shutil.copytree": [py, "-c", COPYTREE, "{src}", "{dst}"],
    }


def delete_contenders(lib: Path, baseline: str | None) -> dict[str, list[str] | None]:
    py = sys.executable
    return {
        "baseline build": [baseline, "--library", f"{lib}-b", "delete", "--permanent", "{dst}"]
        if baseline
        else None,
        "phasekit delete --permanent": [
            _phasekit(),
            "--library",
            str(lib),
            "delete",
            "--permanent",
            "{dst}",
        ],
        "rm -rf": ["rm", "-rf", "{dst}"],
        "rmz": ["rmz", "{dst}"] if shutil.which("rmz") else None,
        "shutil.rmtree": [py, "-c", "import shutil, sys; shutil.rmtree(sys.argv[1])", "{dst}"],
    }


def _argv(template: list[str], src: Path, dst: Path) -> list[str]:
    return [a.replace("{src}", str(src)).replace("{dst}", str(dst)) for a in template]


def _clear(path: Path) -> None:
    subprocess.run(["rm", "-rf", str(path)], check=True)
    os.sync()


def _timed(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def big_tree(folder: Path) -> Path:
    """4 x 1 GiB files of incompressible data, made once."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(4):
        path = folder / f"big{i}.bin"
        if path.exists() and path.stat().st_size == GIB:
            continue
        with open(path, "wb") as f:
            block = os.urandom(1 << 20)
            for j in range(1024):
                f.write(block[j % 7 :] + block[: j % 7])
    return folder


def run(
    kind: str, src: Path, rounds: int, work: Path, baseline: str | None = None
) -> dict[str, object]:
    lib = work / "library"
    table = (delete_contenders if kind == "delete" else copy_contenders)(lib, baseline)
    missing = [name for name, argv in table.items() if argv is None and name != "baseline build"]
    contenders = {name: argv for name, argv in table.items() if argv is not None}
    times: dict[str, list[float]] = {name: [] for name in contenders}
    dst = work / "dst"
    for r in range(rounds):
        order = list(contenders)
        random.shuffle(order)
        line = []
        for name in order:
            _clear(dst)
            if kind == "delete":
                # A real copy (not hard links): removing the last link frees data.
                subprocess.run(["cp", "-a", str(src), str(dst)], check=True)
                os.sync()
            argv = _argv(contenders[name], src, dst)
            seconds = _timed(argv)
            times[name].append(seconds)
            line.append(f"{name} {seconds * 1000:.0f} ms")
        print(f"{kind} round {r + 1}: " + ", ".join(line), flush=True)
    _clear(dst)
    ours = next(name for name in contenders if name.startswith("phasekit"))
    out: dict[str, object] = {"missing": missing}
    for name, values in times.items():
        median, low = statistics.median(values), min(values)
        out[name] = {"median_s": round(median, 3), "min_s": round(low, 3)}
        if name != ours:
            ratios = [o / p for o, p in zip(values, times[ours], strict=True)]
            out[f"{name} / {ours}"] = round(statistics.median(ratios), 2)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", default="copy,copy-big,delete")
    parser.add_argument("--tree", type=Path, default=None)
    parser.add_argument("--big-dir", type=Path, default=BENCH_DIR / "big4x1g")
    parser.add_argument("--baseline", default=None, help="phasekit executable of another build")
    args = parser.parse_args(argv)
    tree = args.tree or ensure_tree("tree200k")
    warm(tree)
    results: dict[str, object] = {}
    work = Path(tempfile.mkdtemp(prefix="pk-fileops-", dir=tree.parent))
    try:
        for kind in args.only.split(","):
            if kind == "copy":
                results["copy tree200k"] = run("copy", tree, args.rounds, work, args.baseline)
            elif kind == "copy-big":
                big = big_tree(args.big_dir)
                warm(big)
                results["copy 4 x 1 GiB"] = run("copy", big, args.rounds, work, args.baseline)
            elif kind == "delete":
                results["delete tree200k"] = run("delete", tree, args.rounds, work, args.baseline)
            else:
                parser.error(f"unknown benchmark {kind!r}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
