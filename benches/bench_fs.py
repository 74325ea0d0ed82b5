"""Rust core against its pure-Python twin on the 200,000-file tree.

Run through ``benches/run_all.py`` (which also times the external tools in the
same run), or alone::

    python -m pytest benches -o python_files='bench_*.py' --benchmark-only
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from phasekit import fs, reference

pytestmark = pytest.mark.benchmark(min_rounds=3, warmup=False)


def run(benchmark, fn, rounds: int = 5):
    return benchmark.pedantic(fn, rounds=rounds, iterations=1, warmup_rounds=1)


# --- walk + stat of every entry ---------------------------------------------


@pytest.mark.benchmark(group="walk")
def test_walk_rust(benchmark, tree200k: Path):
    n = run(benchmark, lambda: sum(len(b) for b in fs.walk(tree200k)))
    assert n > 200_000


@pytest.mark.benchmark(group="walk")
def test_walk_twin(benchmark, tree200k: Path):
    n = run(benchmark, lambda: sum(len(b) for b in reference.walk(tree200k)), rounds=3)
    assert n > 200_000


@pytest.mark.benchmark(group="walk")
def test_walk_oswalk_lstat(benchmark, tree200k: Path):
    """What most Python code does: os.walk + os.lstat of every entry."""

    def by_hand() -> int:
        n = 0
        for dirpath, dirnames, filenames in os.walk(tree200k):
            for name in dirnames + filenames:
                os.lstat(os.path.join(dirpath, name))
                n += 1
        return n

    assert run(benchmark, by_hand, rounds=3) > 200_000


# --- cas_id of every file (walk included) ---------------------------------------


def _cas_while_walking(impl, tree: Path) -> int:
    return sum(sum(v is not None for v in b.cas_ids or ()) for b in impl.walk(tree, cas_ids=True))


@pytest.mark.benchmark(group="cas_id")
def test_cas_ids_rust(benchmark, tree200k: Path):
    assert run(benchmark, lambda: _cas_while_walking(fs, tree200k)) > 190_000


@pytest.mark.benchmark(group="cas_id")
def test_cas_ids_twin(benchmark, tree200k: Path):
    assert run(benchmark, lambda: _cas_while_walking(reference, tree200k), rounds=3) > 190_000


@pytest.mark.benchmark(group="cas_id")
def test_cas_ids_by_path_rust(benchmark, tree200k: Path):
    """Walk, then hash by full path (what a two-pass indexer would do)."""

    def two_pass() -> int:
        hashed = 0
        for batch in fs.walk(tree200k):
            paths = [batch.paths[i] for i in batch.files().nonzero()[0]]
            hashed += sum(v is not None for v in fs.cas_ids(paths).values)
        return hashed

    assert run(benchmark, two_pass) > 190_000


# --- full checksum of every file (file list given) ------------------------------


@pytest.mark.benchmark(group="checksum")
def test_checksums_rust(benchmark, files200k: list[str]):
    result = run(benchmark, lambda: fs.checksums(files200k))
    assert not result.errors


@pytest.mark.benchmark(group="checksum")
def test_checksums_twin(benchmark, files200k: list[str]):
    result = run(benchmark, lambda: reference.checksums(files200k), rounds=2)
    assert not result.errors


# --- duplicates, byte-exact, unindexed tree (walk included) ---------------------


@pytest.mark.benchmark(group="duplicates")
def test_find_duplicates_full_rust(benchmark, tree200k: Path):
    report = run(benchmark, lambda: fs.find_duplicates(tree200k, mode="full"))
    assert len(report.groups) >= 7000


@pytest.mark.benchmark(group="duplicates")
def test_find_duplicates_full_twin(benchmark, tree200k: Path):
    report = run(benchmark, lambda: reference.find_duplicates(tree200k, mode="full"), rounds=3)
    assert len(report.groups) >= 7000
