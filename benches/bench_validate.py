"""Validation of the indexed 200,000-file tree: phasekit against its
pure-Python twin, in one run::

    python -m pytest benches -o python_files='bench_*.py' --benchmark-only -k validate

The tree is indexed once (content mode) into a library in a temporary
folder. ``ValidateJob`` runs through the job system (what ``phasekit
validate`` runs) in ``basic`` and ``integrity`` mode; the twin
(``phasekit.reference.validate_entries``: ``os.lstat`` per entry, the
``blake3`` package for cas_ids, one thread) gets the entries already read
from the library, so only its checks are timed.

Target (reported, not asserted): integrity >= 4x the twin.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from phasekit.indexing import IndexJob
from phasekit.jobs import JobStatus
from phasekit.library import Entry, Library
from phasekit.reference import validate_entries
from phasekit.validation import ValidateJob

from conftest import MedianSummary

ROUNDS = 3
TARGET = 4.0


@pytest.fixture(scope="module")
def summary(request: pytest.FixtureRequest) -> MedianSummary:
    return MedianSummary(
        "validation figures (200,000-file tree, medians)",
        [(f"python {mode}", f"phasekit {mode}", TARGET) for mode in ("basic", "integrity")],
    ).register(request)


async def _index(library: Library, root: Path) -> int:
    location = library.add_location(str(root), mode="content")
    async with library.jobs() as manager:
        handle = await manager.dispatch(IndexJob(location.id))
        assert await handle.wait() is JobStatus.COMPLETED
    return location.id


async def _validate(library: Library, location_id: int, mode: str) -> int:
    async with library.jobs() as manager:
        handle = await manager.dispatch(ValidateJob(location_id, mode=mode))
        status = await handle.wait()
        assert status is JobStatus.COMPLETED, manager.store.get_job(handle.id).error
        issues: int = handle.output().issues
        return issues


@pytest.fixture(scope="module")
def indexed(tree200k: Path) -> Iterator[tuple[Library, int]]:
    folder = Path(tempfile.mkdtemp(prefix="phasekit-bench-validate-"))
    with Library.open(folder) as library:
        location_id = anyio.run(_index, library, tree200k)
        yield library, location_id
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def entries(indexed: tuple[Library, int]) -> list[Entry]:
    library, location_id = indexed
    return list(library.entries(location_id))


@pytest.mark.parametrize("mode", ["basic", "integrity"])
@pytest.mark.benchmark(group="validate")
def test_validate_phasekit(benchmark, indexed, summary: MedianSummary, mode: str):
    library, location_id = indexed
    issues = benchmark.pedantic(
        lambda: anyio.run(_validate, library, location_id, mode), rounds=ROUNDS, iterations=1
    )
    benchmark.extra_info.update(entries=library.entry_count(location_id), issues=issues)
    summary.record(benchmark, f"phasekit {mode}")


@pytest.mark.parametrize("mode", ["basic", "integrity"])
@pytest.mark.benchmark(group="validate")
def test_validate_python(benchmark, tree200k: Path, entries, summary: MedianSummary, mode: str):
    pytest.importorskip("blake3")
    result = benchmark.pedantic(
        lambda: validate_entries(tree200k, entries, mode),  # type: ignore[arg-type]
        rounds=ROUNDS,
        iterations=1,
    )
    benchmark.extra_info.update(entries=result.checked, issues=len(result.issues))
    summary.record(benchmark, f"python {mode}")
