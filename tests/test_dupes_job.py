"""The dupes job: over walked paths and library locations, every mode, the
same groups as jdupes and the one-call pipeline, resumable without hashing
a file twice, and the ``phasekit dupes`` command."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from phasekit import fs
from phasekit.dupes import DupesJob, DupesProgress, DupesSummary
from phasekit.jobs import JobControl, JobHandle, JobProgress, JobStatus, JobStore
from phasekit.library import Library
from test_dupes import build_planted, by_inode
from test_indexing import cli, kill_while_running

from conftest import pattern

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benches"))
from jdupes_groups import inode_groups, jdupes_groups

MODES = ("size", "name_size", "content", "full")


@pytest.fixture
def planted(tmp_path: Path) -> Path:
    build_planted(tmp_path / "tree")
    return tmp_path / "tree"


async def run_job(library: Library, job: DupesJob) -> DupesSummary:
    async with library.jobs() as manager:
        handle = await manager.dispatch(job)
        status = await handle.wait()
        assert status is JobStatus.COMPLETED, manager.store.get_job(handle.id).error
        summary = handle.output()
    assert isinstance(summary, DupesSummary)
    return summary


def search(library: Library, **fields: Any) -> DupesSummary:
    return anyio.run(run_job, library, DupesJob(**fields))


def shallow_location(library: Library, root: Path) -> int:
    location = library.add_location(root, mode="shallow")
    library.index(location)
    return location.id


@pytest.mark.parametrize("mode", MODES)
def test_walked_paths_equal_the_one_call_pipeline(planted, tmp_path, mode):
    with Library.open(tmp_path / "lib") as library:
        summary = search(library, paths=[str(planted)], mode=mode)
    expected = fs.find_duplicates(planted, mode=mode)
    assert summary.groups == expected.groups
    assert summary.links == expected.links
    assert summary.wasted == expected.wasted
    assert summary.roots == [str(planted)]
    assert summary.location_id is None
    assert summary.errors == 0
    # The digest file of a walked search goes when it completes.
    assert not list((tmp_path / "lib" / "scratch").glob("dupes-*"))


@pytest.mark.parametrize("location", [False, True], ids=["walked", "location"])
def test_full_mode_equals_jdupes(planted, tmp_path, location):
    with Library.open(tmp_path / "lib") as library:
        if location:
            summary = search(library, location_id=shallow_location(library, planted), mode="full")
        else:
            summary = search(library, paths=[str(planted)], mode="full")
    assert by_inode(summary) == inode_groups(jdupes_groups(str(planted)))  # type: ignore[arg-type]


def test_location_search_stores_digests_and_reuses_them(planted, tmp_path):
    with Library.open(tmp_path / "lib") as library:
        loc = shallow_location(library, planted)
        content = search(library, location_id=loc, mode="content")
        assert content.groups == fs.find_duplicates(planted, mode="content").groups
        # Only files sharing a size with another file were hashed, and their
        # cas_ids are stored on the entries now.
        assert content.hashed == content.size_candidates - 1  # one pair is a hard link
        big = library.entry(loc, planted / "a" / "big1")
        assert big is not None
        assert big.cas_id == fs.cas_id(planted / "a" / "big1")
        lone = library.entry(loc, planted / "a" / "same-size-1")
        assert lone is not None
        assert lone.cas_id is not None

        full = search(library, location_id=loc, mode="full")
        # The cas_ids came from the library; only full checksums were read.
        assert full.reused == content.hashed
        assert full.hashed > 0
        assert big.path
        assert library.entry(loc, big.path).checksum == fs.checksum(big.path)
        again = search(library, location_id=loc, mode="full")
        assert again.hashed == 0
        assert [g.paths for g in again.groups] == [g.paths for g in full.groups]
        # Keys differ from a walk's for small files (a library's cas_ids keep
        # 64 bits, so small files are confirmed by checksum), the groups do not.
        walked = fs.find_duplicates(planted, mode="full")
        assert [g.paths for g in full.groups] == [g.paths for g in walked.groups]


def test_content_groups_unsampled_difference_full_separates(planted, tmp_path):
    unsampled = str(planted / "b" / "c" / "big-unsampled")
    big1 = str(planted / "a" / "big1")
    with Library.open(tmp_path / "lib") as library:
        loc = shallow_location(library, planted)
        for where in ({"paths": [str(planted)]}, {"location_id": loc}):
            content = search(library, mode="content", **where)
            full = search(library, mode="full", **where)
            in_content = next(g for g in content.groups if big1 in g.paths)
            in_full = next(g for g in full.groups if big1 in g.paths)
            assert unsampled in in_content.paths
            assert unsampled not in in_full.paths
            assert len(in_full.copies) == 2


def test_hard_links_and_empty_files(planted, tmp_path):
    with Library.open(tmp_path / "lib") as library:
        summary = search(library, paths=[str(planted)], mode="full")
        linked = next(g for g in summary.groups if str(planted / "a" / "linked") in g.paths)
        assert len(linked.copies) == 2
        assert linked.wasted == 3000
        assert [g.paths for g in summary.links] == [
            (str(planted / "a" / "lonely"), str(planted / "b" / "lonely-link"))
        ]
        assert not any(str(planted / "a" / "empty") in g.paths for g in summary.groups)
        with_empty = search(library, paths=[str(planted)], mode="full", min_size=0)
    empty = next(g for g in with_empty.groups if str(planted / "a" / "empty") in g.paths)
    assert empty.size == 0
    assert empty.wasted == 0


def test_filters(planted, tmp_path):
    (planted / ".hidden").mkdir()
    (planted / ".hidden" / "dup0-copy.bin").write_bytes(pattern(1000, 0))
    with Library.open(tmp_path / "lib") as library:
        every = search(library, paths=[str(planted)], mode="full")
        dup0 = next(g for g in every.groups if g.size == 1000)
        assert str(planted / ".hidden" / "dup0-copy.bin") in dup0.paths
        visible = search(library, paths=[str(planted)], mode="full", hidden=False)
        dup0 = next(g for g in visible.groups if g.size == 1000)
        assert not any("/.hidden/" in p for p in dup0.paths)
        bins = search(library, paths=[str(planted)], mode="full", extensions=["BIN"])
        assert bins.groups
        assert all(p.endswith(".bin") for g in bins.groups for p in g.paths)
        small = search(library, paths=[str(planted)], mode="full", max_size=2000)
        assert small.groups
        assert all(g.size <= 2000 for g in small.groups)
        loc = shallow_location(library, planted)
        hidden_off = search(library, location_id=loc, mode="full", hidden=False)
    assert [g.paths for g in hidden_off.groups] == [g.paths for g in visible.groups]


def test_bad_input_is_refused_clearly(planted, tmp_path):
    with pytest.raises(ValueError, match="either location_id or paths"):
        DupesJob()
    with pytest.raises(ValueError, match="either location_id or paths"):
        DupesJob(location_id=1, paths=[str(planted)])
    with pytest.raises(ValueError, match="mode must be one of"):
        DupesJob(paths=[str(planted)], mode="fuzzy")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="min_size <= max_size"):
        DupesJob(paths=[str(planted)], min_size=10, max_size=5)

    async def failed(library: Library, job: DupesJob) -> str | None:
        async with library.jobs() as manager:
            handle = await manager.dispatch(job)
            assert await handle.wait() is JobStatus.FAILED
            return manager.store.get_job(handle.id).error

    with Library.open(tmp_path / "lib") as library:
        error = anyio.run(failed, library, DupesJob(paths=[str(tmp_path / "missing")]))
        assert error is not None
        assert "does not exist" in error
        error = anyio.run(failed, library, DupesJob(location_id=99))
        assert error is not None
        assert "location 99 does not exist" in error


def test_vanished_file_is_a_non_critical_error(planted, tmp_path):
    async def main(library: Library) -> tuple[DupesSummary, JobStatus]:
        async with library.jobs() as manager:
            handle = await manager.dispatch(DupesJob(location_id=loc, mode="full"))
            status = await handle.wait()
            return handle.output(), status

    with Library.open(tmp_path / "lib") as library:
        loc = shallow_location(library, planted)
        (planted / "a" / "big1").unlink()  # indexed, gone before the search
        summary, status = anyio.run(main, library)
    assert status is JobStatus.COMPLETED_WITH_ERRORS
    assert summary.errors == 1
    assert not any(str(planted / "a" / "big1") in g.paths for g in summary.groups)


def many_duplicates(root: Path, groups: int = 300, copies: int = 3, size: int = 2000) -> None:
    """Enough same-size files that hashing them takes many pages. Groups of
    files over 8 KiB get a stranger of their size whose first byte differs:
    the prefix stage drops it, and hashes the others' first 4 KiB first."""
    for g in range(groups):
        folder = root / f"d{g % 17}"
        folder.mkdir(parents=True, exist_ok=True)
        data = pattern(size + g, g)
        for c in range(copies):
            (folder / f"g{g}-{c}").write_bytes(data)
        if size > 8 * 1024:
            (folder / f"g{g}-stranger").write_bytes(bytes([data[0] ^ 1]) + data[1:])


def digests(stats: fs.DuplicateStats) -> int:
    """Digests a search computes: first 4 KiB, cas_id and full checksums."""
    return stats.prefix_hashed + stats.partial_hashed + stats.full_hashed


async def until_analysed(handle: JobHandle, files: int) -> None:
    """Until the analyse phase has hashed ``files`` files (or the job ended)."""
    async for update in handle.updates():
        phase = update.progress.phase if update.progress else None
        if phase is not None and phase.name == "analyse" and phase.done >= files:
            return


@pytest.mark.parametrize("size", [2000, 9000], ids=["small", "prefixed"])
def test_pause_during_analysis_then_resume_hashes_nothing_twice(tmp_path, size):
    root = tmp_path / "tree"
    many_duplicates(root, groups=1500 if size < 8192 else 400, size=size)
    expected = fs.find_duplicates(root, mode="full")
    assert (expected.stats.prefix_hashed > 0) == (size > 8192)

    async def main(library: Library) -> tuple[DupesSummary, int]:
        async with library.jobs() as manager:
            handle = await manager.dispatch(
                DupesJob(paths=[str(root)], mode="full", page_files=10, threads=1)
            )
            await until_analysed(handle, 30)
            await handle.pause()
            assert await handle.wait() is JobStatus.PAUSED
            before = manager.store.load_checkpoint(handle.id)
            assert before is not None
            await handle.resume()
            assert await handle.wait() is JobStatus.COMPLETED
            return handle.output(), before[1]["shared"]["hashed"]

    with Library.open(tmp_path / "lib") as library:
        summary, hashed_before = anyio.run(main, library)
    assert hashed_before >= 30
    assert summary.groups == expected.groups
    # Every file was hashed once over both runs: the resumed run took the
    # first run's digests from the digest file (for larger files, the
    # digests of their first 4 KiB too).
    assert summary.hashed == digests(expected.stats)
    assert summary.reused == hashed_before


def test_a_search_paused_among_its_cas_ids_resumes_without_reading_ruled_out_files(tmp_path):
    """Paused once every first 4 KiB is hashed and the first cas_ids are: the
    resumed search must split its size groups by those stored prefixes again,
    or it reads the files they ruled out. The pause is asked for from the
    job's own progress report, at the checkpoint that reports it, so it lands
    there however fast or loaded the machine is."""
    root = tmp_path / "tree"
    many_duplicates(root, groups=400, size=9000)
    expected = fs.find_duplicates(root, mode="full")
    assert expected.stats.prefix_hashed > 0
    job = DupesJob(paths=[str(root)], mode="full", page_files=10, threads=1)
    control = JobControl()

    def pause_among_cas_ids(progress: JobProgress) -> None:
        data = progress.data
        if isinstance(data, DupesProgress) and data.hashed > expected.stats.prefix_hashed:
            control.pause()

    with Library.open(tmp_path / "lib") as library:
        first = library.run(job, control=control, on_progress=pause_among_cas_ids)
        assert first.status is JobStatus.PAUSED
        with JobStore(tmp_path / "lib" / "jobs.db") as store:
            before = store.load_checkpoint(first.record.id)
        assert before is not None
        hashed_before = before[1]["shared"]["hashed"]
        assert expected.stats.prefix_hashed < hashed_before < digests(expected.stats)
        again = library.run(job)  # joins the paused search and resumes it
        assert again.status is JobStatus.COMPLETED
        summary = again.output()
    assert summary.groups == expected.groups
    assert summary.hashed == digests(expected.stats)
    assert summary.reused == hashed_before


def test_sigkill_during_analysis_then_resume(tmp_path):
    root = tmp_path / "tree"
    many_duplicates(root, groups=2500)
    expected = fs.find_duplicates(root, mode="full")
    rng = random.Random(7)
    kills = reused = 0
    for trial in range(3):
        lib = tmp_path / f"lib{trial}"
        args = ["dupes", str(root), "--json", "--page-files", "2", "--threads", "1"]
        kills += kill_while_running(args, lib, rng.uniform(0.05, 0.5))
        done = cli("resume", "--json", library=lib)
        assert done.returncode == 0, done.stderr
        groups = [json.loads(line) for line in done.stdout.splitlines()]
        if not groups:  # finished before the kill
            continue
        # `resume` prints the groups as `dupes --json` does.
        assert [tuple(g["paths"]) for g in groups] == [g.paths for g in expected.groups]
        (record,) = [
            json.loads(x) for x in cli("jobs", "--all", "--json", library=lib).stdout.splitlines()
        ]
        shown = json.loads(cli("jobs", "show", record["id"], "--json", library=lib).stdout)
        output = DupesSummary.from_mapping(shown["output"])
        assert [g.paths for g in output.groups] == [g.paths for g in expected.groups]
        assert output.hashed == digests(expected.stats)
        reused += output.reused
        assert not list((lib / "scratch").glob("dupes-*"))
    assert kills >= 2, "the search finished before it could be killed: make the tree bigger"
    assert reused > 0, "no resumed run took digests from the digest file"


def test_cli_json_and_text(planted, tmp_path):
    lib = tmp_path / "lib"
    as_json = cli("dupes", str(planted), "--json", library=lib)
    assert as_json.returncode == 0, as_json.stderr
    groups = [json.loads(line) for line in as_json.stdout.splitlines()]
    expected = fs.find_duplicates(planted, mode="full")
    assert [(g["size"], tuple(g["paths"])) for g in groups] == [
        (g.size, g.paths) for g in expected.groups
    ]
    text = cli("dupes", str(planted), "--mode", "size", library=lib)
    assert text.returncode == 0, text.stderr
    assert f"{len(fs.find_duplicates(planted, mode='size').groups)} groups" in text.stdout
    missing = cli("dupes", str(tmp_path / "nope"), library=lib)
    assert missing.returncode == 2
    assert "does not exist" in missing.stderr
    # An indexed location is searched through the library.
    assert cli("index", str(planted), "--mode", "shallow", library=lib).returncode == 0
    located = cli("dupes", str(planted), "--mode", "content", "--json", library=lib)
    assert located.returncode == 0, located.stderr
    content = fs.find_duplicates(planted, mode="content")
    assert [tuple(json.loads(x)["paths"]) for x in located.stdout.splitlines()] == [
        g.paths for g in content.groups
    ]


def test_cancel_during_analysis_removes_the_digest_file(tmp_path):
    root = tmp_path / "tree"
    many_duplicates(root, groups=1500)

    async def main(library: Library) -> None:
        async with library.jobs() as manager:
            handle = await manager.dispatch(
                DupesJob(paths=[str(root)], mode="full", page_files=10, threads=1)
            )
            await until_analysed(handle, 30)
            assert list((tmp_path / "lib" / "scratch").glob("dupes-*"))
            await handle.cancel()
            assert await handle.wait() is JobStatus.CANCELLED

    with Library.open(tmp_path / "lib") as library:
        anyio.run(main, library)
    assert not list((tmp_path / "lib" / "scratch").glob("dupes-*"))


def test_a_search_stopped_after_its_last_phase_still_reports_its_groups(planted, tmp_path):
    """Resumed from a checkpoint taken after every phase ran (a pause or a
    kill right at the end), the search rebuilds its output instead of
    failing for want of a finished hashing pass."""
    expected = fs.find_duplicates(planted, mode="full")
    with Library.open(tmp_path / "lib") as library:
        job = DupesJob(paths=[str(planted)], mode="full")

        async def main() -> tuple[JobStatus, DupesSummary | None]:
            async with library.jobs() as manager:
                first = await manager.dispatch(job)
                assert await first.wait() is JobStatus.COMPLETED
                saved = manager.store.load_checkpoint(first.id)
                assert saved is not None
                assert saved[1]["at"] is None  # taken after the last phase
                again = manager.store.create_job(job.job_name, job.to_state())
                manager.store.save_checkpoint(again, saved[1])
                handle = manager.handle(again)
                await manager.resume(again)  # queued already: nothing to do
                return await handle.wait(), handle.output()

        status, summary = anyio.run(main)
    assert status is JobStatus.COMPLETED
    assert summary is not None
    assert [g.paths for g in summary.groups] == [g.paths for g in expected.groups]
