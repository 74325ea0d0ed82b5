"""Benchmark fixtures: the generated trees, built on first use, page cache warmed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
#: Where the trees live; override with PHASEKIT_BENCH_DIR.
BENCH_DIR = Path(os.environ.get("PHASEKIT_BENCH_DIR", "/tmp/pk-bench"))


def ensure_tree(name: str, *args: str) -> Path:
    """Generate a tree with gen_tree.py unless it is already there (idempotent)."""
    dest = BENCH_DIR / name
    subprocess.run([sys.executable, str(HERE / "gen_tree.py"), str(dest), *args], check=True)
    return dest


def warm(tree: Path) -> None:
    """Read every file once so that the page cache is warm for every contender."""
    for dirpath, _, files in os.walk(tree):
        for name in files:
            try:
                with open(os.path.join(dirpath, name), "rb") as f:
                    while f.read(1 << 20):
                        pass
            except OSError:
                pass


@pytest.fixture(scope="session")
def tree200k() -> Path:
    tree = ensure_tree("tree200k")
    warm(tree)
    return tree


@pytest.fixture(scope="session")
def files200k(tree200k: Path) -> list[str]:
    """Every regular file of the tree (collected once, outside the timings)."""
    from phasekit import fs

    out: list[str] = []
    for batch in fs.walk(tree200k):
        out += [batch.paths[i] for i in batch.files().nonzero()[0]]
    return out


class MedianSummary:
    """Medians a bench module records, printed after the run with each
    ``(slow, fast, target)`` ratio and whether it meets its target."""

    def __init__(self, title: str, ratios: list[tuple[str, str, float]]) -> None:
        self.title = title
        self.ratios = ratios
        self.medians: dict[str, float] = {}

    def record(self, benchmark: Any, name: str) -> None:
        if benchmark.stats:
            self.medians[name] = benchmark.stats.stats.median

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        m = self.medians
        if not m:
            return
        terminalreporter.write_sep("-", self.title)
        for name, value in m.items():
            terminalreporter.write_line(f"{name:>28}: {value:7.2f} s")
        for slow, fast, target in self.ratios:
            if slow in m and fast in m:
                ratio = m[slow] / m[fast]
                verdict = "met" if ratio >= target else "NOT met"
                terminalreporter.write_line(
                    f"{slow} / {fast}: {ratio:.2f}x (target >= {target:g}x: {verdict})"
                )

    def register(self, request: pytest.FixtureRequest) -> MedianSummary:
        """Print this summary at the end of the session."""
        request.config.pluginmanager.register(self, f"phasekit-bench-{id(self)}")
        return self
