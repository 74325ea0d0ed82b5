"""The indexer on the 200,000-file tree: phasekit against a careful pure-Python
indexer and updatedb.plocate, in one run::

    python -m pytest benches -o python_files='bench_*.py' --benchmark-only -k index

* ``shallow``: a new library, ``IndexJob`` in shallow mode through the job
  system (what ``phasekit index --mode shallow`` runs) against
  ``phasekit.reference.index_into_sqlite`` (os.walk + lstat + sqlite3
  executemany in batches of 1,000 into a WAL database with the same indices)
  and ``updatedb.plocate`` (a reference point: it stores names only).
* ``content``: the same with cas_ids (the twin uses the ``blake3`` package).
* ``reindex``: a second index of the unchanged tree (shallow, and content,
  which has no target: it shows that nothing is relinked).

Targets (reported, not asserted): shallow and content >= 4x the twin,
re-index >= 3x faster than the first shallow index.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import anyio
import pytest

from phasekit.indexing import IndexJob
from phasekit.jobs import JobStatus
from phasekit.library import Library
from phasekit.reference import index_into_sqlite

from conftest import MedianSummary

ROUNDS = 3
TARGET_FIRST = 4.0
TARGET_REINDEX = 3.0


@pytest.fixture(scope="module")
def summary(request: pytest.FixtureRequest) -> MedianSummary:
    return MedianSummary(
        "indexer figures (200,000-file tree, medians)",
        [
            ("python shallow", "phasekit shallow", TARGET_FIRST),
            ("python content", "phasekit content", TARGET_FIRST),
            ("phasekit shallow", "phasekit reindex", TARGET_REINDEX),
        ],
    ).register(request)


async def _index(library: Library, root: Path, mode: str) -> None:
    location = library.add_location(str(root), mode=mode)
    await _run(library, location.id)


async def _run(library: Library, location_id: int) -> None:
    async with library.jobs() as manager:
        handle = await manager.dispatch(IndexJob(location_id))
        status = await handle.wait()
        assert status is JobStatus.COMPLETED, manager.store.get_job(handle.id).error


def _fresh_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="phasekit-bench-index-"))


@pytest.mark.parametrize("mode", ["shallow", "content"])
@pytest.mark.benchmark(group="index")
def test_index_phasekit(benchmark, tree200k: Path, summary: MedianSummary, mode: str):
    folders: list[Path] = []

    def one() -> None:
        folders.append(_fresh_dir())
        with Library.open(folders[-1]) as library:
            anyio.run(_index, library, tree200k, mode)

    benchmark.pedantic(one, rounds=ROUNDS, iterations=1)
    summary.record(benchmark, f"phasekit {mode}")
    with Library.open(folders[-1]) as library:
        location = library.location(str(tree200k))
        benchmark.extra_info.update(entries=library.entry_count(location))
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.parametrize("mode", ["shallow", "content"])
@pytest.mark.benchmark(group="index")
def test_index_phasekit_reindex(benchmark, tree200k: Path, summary: MedianSummary, mode: str):
    folder = _fresh_dir()
    with Library.open(folder) as library:
        anyio.run(_index, library, tree200k, mode)
        location_id = library.location(str(tree200k)).id
        benchmark.pedantic(
            lambda: anyio.run(_run, library, location_id), rounds=ROUNDS, iterations=1
        )
    summary.record(benchmark, "phasekit reindex" + ("" if mode == "shallow" else f" {mode}"))
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.parametrize("mode", ["shallow", "content"])
@pytest.mark.benchmark(group="index")
def test_index_python(benchmark, tree200k: Path, summary: MedianSummary, mode: str):
    pytest.importorskip("blake3")
    folders: list[Path] = []

    def one() -> int:
        folders.append(_fresh_dir())
        return index_into_sqlite(tree200k, str(folders[-1] / "index.db"), cas_ids=mode == "content")

    rounds = 1 if mode == "content" else ROUNDS  # ~10 s a round: one is enough
    written = benchmark.pedantic(one, rounds=rounds, iterations=1)
    benchmark.extra_info.update(entries=written)
    summary.record(benchmark, f"python {mode}")
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.benchmark(group="index")
def test_index_updatedb_plocate(benchmark, tree200k: Path, summary: MedianSummary):
    updatedb = shutil.which("updatedb.plocate") or shutil.which("updatedb")
    if updatedb is None:
        pytest.skip("updatedb.plocate is not installed (apt-get install plocate)")
    folder = _fresh_dir()
    cmd = [updatedb, "-U", str(tree200k), "-o", str(folder / "plocate.db"), "-l", "no"]
    benchmark.pedantic(lambda: subprocess.run(cmd, check=True), rounds=ROUNDS, iterations=1)
    summary.record(benchmark, "updatedb.plocate")
    shutil.rmtree(folder, ignore_errors=True)
