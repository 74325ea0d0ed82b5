"""Progress that can drive a UI: the whole job's percent never goes back
(within a job, across phases, across pause, resume and a kill), is None
while nothing measurable is known, ends at 100 with the job complete;
updates come several times a second, and follow a job across a pause;
manager.events() carries every job's changes."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import anyio
import pytest

from jobs_fixture import listening
from phasekit.indexing import IndexJob
from phasekit.jobs import (
    JobEvent,
    JobManager,
    JobStatus,
    JobStore,
    JobUpdate,
    Phase,
    PhaseContext,
    PhasedJob,
    PhaseResult,
    Phases,
    job,
)
from phasekit.library import Library
from test_indexing import kill_while_running, make_tree


@job("test.weighted")
class Weighted(PhasedJob[int]):
    """Two phases of ``n`` units each, the second weighted three times the
    first; ``delay_s`` per unit, a checkpoint every ``every`` units."""

    n: int = 40
    delay_s: float = 0.01
    every: int = 5

    def phases(self) -> Phases:
        return [
            Phase("light", self.work, weight=1, initial_state=lambda: {"i": 0}),
            Phase("heavy", self.work, weight=3, initial_state=lambda: {"i": 0}),
        ]

    def work(self, ctx: PhaseContext) -> PhaseResult:
        for i in range(ctx.state["i"], self.n):
            time.sleep(self.delay_s)
            ctx.units(i + 1, self.n)
            if (i + 1) % self.every == 0:
                ctx.checkpoint({"i": i + 1})
        return None

    def output(self, shared: dict[str, Any]) -> int:
        return self.n


def percents(items: list[Any]) -> list[float | None]:
    return [u.progress.percent for u in items if u.progress is not None]


def assert_never_back(values: list[float | None]) -> None:
    known = [v for v in values if v is not None]
    assert known == sorted(known), known
    # Once known it stays known.
    first = next((i for i, v in enumerate(values) if v is not None), len(values))
    assert all(v is not None for v in values[first:]), values


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_weighted_phases_pause_and_resume_in_one_update_stream(tmp_path, backend):
    async def main() -> list[JobUpdate]:
        async with JobManager(tmp_path / "jobs.db") as manager:
            handle = await manager.dispatch(Weighted(n=40, delay_s=0.01))
            seen: list[JobUpdate] = []
            paused_once = False
            async for update in handle.updates():
                seen.append(update)
                percent = update.progress.percent if update.progress else None
                if not paused_once and percent is not None and percent > 40:
                    paused_once = True
                    await handle.pause()
                if update.status is JobStatus.PAUSED:
                    await handle.resume()  # the stream goes on after a pause
            return seen

    seen = anyio.run(main, backend=backend)
    statuses = [u.status for u in seen]
    assert JobStatus.PAUSED in statuses
    assert statuses[-1] is JobStatus.COMPLETED
    assert statuses.index(JobStatus.PAUSED) < len(statuses) - 1
    assert_never_back(percents(seen))
    assert seen[-1].progress is not None
    assert seen[-1].progress.percent == 100.0
    # The light phase is a quarter of the work: while it ran, never beyond 25 %.
    light = [
        u.progress.percent
        for u in seen
        if u.progress and u.progress.phase and u.progress.phase.name == "light"
    ]
    assert light
    assert max(p for p in light if p is not None) <= 25.0 + 1e-9


def test_a_reader_that_falls_behind_sees_how_each_phase_ended(tmp_path):
    async def main() -> list[JobEvent]:
        async with JobManager(tmp_path / "jobs.db") as manager:  # noqa: SIM117 (events() needs an open manager)
            async with manager.events() as stream:
                handle = await manager.dispatch(Weighted(n=20, delay_s=0.001, every=5))
                await handle.wait()  # nobody reads meanwhile
                seen: list[JobEvent] = []
                async for event in stream:
                    seen.append(event)
                    if event.kind == "status" and event.status.finished:
                        return seen
        raise AssertionError("the stream ended before the job")

    seen = anyio.run(main)
    progress = [e.progress for e in seen if e.kind == "progress" and e.progress is not None]
    # One progress per phase waited (the newest), each phase's last count.
    ends = {p.phase.name: (p.phase.done, p.phase.total) for p in progress if p.phase is not None}
    assert ends == {"light": (20, 20), "heavy": (20, 20)}
    assert len(progress) == 2
    seqs = [e.seq for e in seen]
    assert seqs == sorted(seqs)


def test_updates_come_several_times_a_second_and_are_bounded(tmp_path):
    async def main() -> tuple[list[JobEvent], float]:
        async with JobManager(tmp_path / "jobs.db") as manager:
            async with listening(manager) as events:
                started = time.monotonic()
                handle = await manager.dispatch(Weighted(n=60, delay_s=0.01, every=1000))
                await handle.wait()
                elapsed = time.monotonic() - started
            return events, elapsed

    events, elapsed = anyio.run(main)
    progress = [e for e in events if e.kind == "progress"]
    # ~1.2 s of work or more: a write every 0.2 s at most, and one at least
    # every time the job reported after 0.2 s without a write.
    assert len(progress) >= 3
    assert len(progress) <= elapsed / 0.2 + 3
    kinds = [(e.kind, e.status) for e in events if e.kind == "status"]
    assert kinds[0] == ("status", JobStatus.QUEUED)
    assert ("status", JobStatus.RUNNING) in kinds
    assert kinds[-1] == ("status", JobStatus.COMPLETED)
    seqs = [e.seq for e in events]
    assert seqs == sorted(seqs)


async def _index_with_events(library: Library, job: IndexJob) -> list[JobEvent]:
    async with library.jobs() as manager, listening(manager) as events:
        handle = await manager.dispatch(job)
        assert await handle.wait() is JobStatus.COMPLETED
    # The index's own (a deep one's thumbnail child has its own events).
    return [e for e in events if e.job_id == handle.id]


def test_an_index_is_indeterminate_until_it_knows_then_never_goes_back(tmp_path):
    root = tmp_path / "tree"
    make_tree(root, dirs=30, files_per_dir=30)
    with Library.open(tmp_path / "lib") as library:
        location = library.add_location(root, mode="shallow")
        job = IndexJob(location.id, batch_size=20, checkpoint_every_s=0.001)
        first = anyio.run(_index_with_events, library, job)
        values = percents(first)
        assert_never_back(values)
        # A first index does not know how many entries it will find: no
        # frozen 0 while it walks.
        walking = [
            e.progress.percent
            for e in first
            if e.progress and e.progress.phase and e.progress.phase.name == "discovery"
        ]
        assert walking
        assert all(p is None for p in walking)
        assert [e.status for e in first if e.kind == "status"][-1] is JobStatus.COMPLETED
        assert values[-1] == 100.0

        # A re-index expects the entries it had: determinate from the start.
        again = anyio.run(_index_with_events, library, job)
        walking = [
            e.progress.percent
            for e in again
            if e.progress and e.progress.phase and e.progress.phase.name == "discovery"
        ]
        assert walking
        assert all(p is not None for p in walking)
        assert_never_back(percents(again))

        # Switched to deep: the content phase hashes every file with a count,
        # a rate and an ETA.
        library.set_mode(location, "deep")
        deep = anyio.run(
            _index_with_events, library, IndexJob(location.id, batch_size=20, threads=1)
        )
        hashing = [
            e.progress
            for e in deep
            if e.progress and e.progress.phase and e.progress.phase.name == "content"
            and e.progress.total
        ]  # fmt: skip
        assert hashing
        files = sum(1 for e in library.entries(location) if int(e.kind) == 0 and e.size > 0)
        assert {p.total for p in hashing} == {files}
        assert hashing[-1].done == files
        assert_never_back(percents(deep))


def test_the_percent_after_a_kill_never_goes_below_the_percent_before(tmp_path):
    root = tmp_path / "tree"
    make_tree(root, dirs=150, files_per_dir=60)
    lib = tmp_path / "lib"
    args = ["index", str(root), "--mode", "shallow", "--batch-size", "10",
            "--checkpoint-every", "0.001", "--threads", "1"]  # fmt: skip
    # Index once, so the second index (the one killed) knows its total.
    with Library.open(lib) as library:
        location = library.add_location(root, mode="shallow")
        library.index(location)
    before = None
    # The window between the first stored percent and the end is short on
    # a fast machine: kills at many moments, until one lands in it.
    for delay in (0.3, 0.15, 0.05, 0.1, 0.2, 0.02, 0.01, 0.04, 0.07, 0.03, 0.005) * 2:
        if kill_while_running(args, lib, delay):
            with JobStore(lib / "jobs.db") as store:
                unfinished = [r for r in store.list_jobs() if not r.status.finished]
                if unfinished:
                    progress = store.progress(unfinished[0].id)
                    before = None if progress is None else progress.percent
            if before:
                break
    assert before, "every index finished before a percent was recorded: make the tree bigger"
    with Library.open(lib) as library:

        async def main() -> list[JobUpdate]:
            async with library.jobs() as manager:
                (record,) = [r for r in manager.jobs() if not r.status.finished]
                handle = manager.handle(record.id)
                return [u async for u in handle.updates()]

        after = anyio.run(main)
    values = [p for p in percents(after) if p is not None]
    assert values
    assert min(values) >= before
    assert values[-1] == 100.0


def test_events_cover_every_job_of_the_manager(tmp_path: Path):
    async def main() -> list[JobEvent]:
        async with JobManager(tmp_path / "jobs.db", max_concurrency=2) as manager:
            async with listening(manager) as events:
                a = await manager.dispatch(Weighted(n=10, delay_s=0.005))
                b = await manager.dispatch(Weighted(n=12, delay_s=0.005))
                c = await manager.dispatch(Weighted(n=500, delay_s=0.005))
                await manager.cancel(c.id)
                await a.wait()
                await b.wait()
            return events

    events = anyio.run(main)
    by_job: dict[str, list[JobStatus]] = {}
    for event in events:
        if event.kind == "status":
            by_job.setdefault(event.job_id, []).append(event.status)
    ends = sorted(statuses[-1].value for statuses in by_job.values())
    assert ends == ["cancelled", "completed", "completed"]
    assert all(statuses[0] is JobStatus.QUEUED for statuses in by_job.values())
    assert all(e.to_dict()["job_id"] for e in events)
