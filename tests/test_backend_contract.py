"""The job storage contract: what every JobBackend must do, through the
protocol's methods only (phasekit/jobs/_backend.py). Each test runs once per
backend in BACKENDS; a new backend joins the list and must pass unchanged.

Values are stored exactly (odd names included), changes are atomic and
compare-and-set, owners die with their process, and a JobManager runs jobs
over the backend."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import anyio
import pytest

from jobs_fixture import CountJob, subprocess_env
from phasekit.errors import ClosedError, JobNotFound, LeaseLostError
from phasekit.jobs import JobBackend, JobManager, JobProgress, JobStatus, JobStore

ODD = os.fsdecode(b"caf\xe9\nnew-line.jpg")


def _sqlite(folder: Path) -> tuple[JobBackend, str]:
    """A SQLite backend in ``folder``, and the Python code that opens the
    same one in another process (as ``backend``)."""
    path = folder / "jobs.db"
    return JobStore(path), f"from phasekit.jobs import JobStore\nbackend = JobStore({str(path)!r})"


def _postgres(url: str) -> tuple[JobBackend, str]:
    """A PostgreSQL backend on a new database, and the code opening it."""
    from phasekit.jobs.postgres import PostgresJobStore

    return PostgresJobStore(url), (
        f"from phasekit.jobs.postgres import PostgresJobStore\nbackend = PostgresJobStore({url!r})"
    )


#: Every implementation of JobBackend, by name: a function of a test's folder
#: (SQLite) or of a new database's URL (PostgreSQL).
BACKENDS: dict[str, Callable[[pytest.FixtureRequest, Path], tuple[JobBackend, str]]] = {
    "sqlite": lambda request, folder: _sqlite(folder),
    "postgresql": lambda request, folder: _postgres(request.getfixturevalue("pg_url")),
}


@pytest.fixture(params=sorted(BACKENDS))
def opened(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[JobBackend, str]]:
    backend, opener = BACKENDS[request.param](request, tmp_path)
    try:
        yield backend, opener
    finally:
        backend.close()


@pytest.fixture
def backend(opened: tuple[JobBackend, str]) -> JobBackend:
    return opened[0]


def test_a_job_is_stored_exactly_and_listed_in_dispatch_order(backend):
    low = backend.create_job("noop", {"path": ODD, "n": 1})
    high = backend.create_job("noop", {"path": ODD, "n": 2}, priority=5)
    assert [r.id for r in backend.list_jobs()] == [high, low]
    record = backend.get_job(low)
    assert (record.name, record.status, record.input()) == (
        "noop",
        JobStatus.QUEUED,
        {"path": ODD, "n": 1},
    )
    assert backend.status(high) is JobStatus.QUEUED
    assert [r.id for r in backend.list_jobs(JobStatus.QUEUED, limit=1)] == [high]
    with pytest.raises(JobNotFound):
        backend.get_job("no-such-job")
    with pytest.raises(JobNotFound):
        backend.status("no-such-job")


def test_a_job_is_claimed_once(backend):
    job_id = backend.create_job("noop", {})
    assert [j[0] for j in backend.ready(limit=10)] == [job_id]
    assert backend.claim([job_id], "owner-a") == [job_id]
    assert backend.claim([job_id], "owner-b") == []  # running already
    assert backend.status(job_id) is JobStatus.RUNNING
    assert backend.running_owners() == [(job_id, "owner-a")]
    assert backend.ready(limit=10) == []


def test_an_end_is_stored_exactly_and_goes_to_the_history(backend):
    job_id = backend.create_job("noop", {})
    backend.claim([job_id], "owner")
    output = {"paths": [ODD], "sizes": (1, 2)}
    backend.finish(
        job_id,
        JobStatus.COMPLETED_WITH_ERRORS,
        output=output,
        warnings=[f"odd name {ODD}"],
        errors=[{"message": "gone", "path": ODD, "errno": 2}],
        metrics={"items": 3},
    )
    outcome = backend.outcome(job_id)
    assert outcome["output"] == {"paths": [ODD], "sizes": [1, 2]}
    assert outcome["warnings"] == [f"odd name {ODD}"]
    assert outcome["errors"][0]["path"] == ODD
    assert backend.status(job_id) is JobStatus.COMPLETED_WITH_ERRORS
    (entry,) = backend.history(limit=10)
    assert (entry.id, entry.status, entry.error_count) == (job_id, backend.status(job_id), 1)
    assert entry.output() == outcome["output"]


def test_a_failure_keeps_its_message_and_traceback(backend):
    job_id = backend.create_job("noop", {})
    backend.claim([job_id])
    backend.finish(job_id, JobStatus.FAILED, error="ValueError: boom", traceback="Traceback ...")
    assert backend.get_job(job_id).error == "ValueError: boom"
    assert backend.traceback(job_id) == "Traceback ..."


def test_checkpoints_and_progress_are_what_a_run_starts_from(backend):
    job_id = backend.create_job("noop", {})
    assert backend.load_checkpoint(job_id) is None
    first = backend.save_checkpoint(job_id, {"after": ODD})
    second = backend.save_checkpoint(job_id, {"after": ODD + "2"})
    assert second > first
    assert backend.load_checkpoint(job_id) == (second, {"after": ODD + "2"})
    backend.set_progress(job_id, JobProgress(message=ODD, explicit_percent=40.0).to_dict())
    progress = backend.progress(job_id)
    assert progress is not None
    assert (progress.percent, progress.message) == (40.0, ODD)
    start = backend.load_for_run(job_id)
    assert (start.record.id, start.checkpoint, start.percent) == (
        job_id,
        (second, {"after": ODD + "2"}),
        40.0,
    )
    status, progress = backend.status_and_progress(job_id)
    assert status is JobStatus.QUEUED
    assert progress is not None


def test_an_end_and_the_next_claim_are_one_write(backend):
    first = backend.create_job("noop", {})
    nxt = backend.create_job("noop", {})
    backend.save_checkpoint(nxt, {"next": 5})
    backend.claim([first], "owner")
    (start,) = backend.finish_and_claim(first, JobStatus.COMPLETED, {"output": 1}, [nxt], "owner")
    assert start.record.id == nxt
    assert start.checkpoint is not None
    assert start.checkpoint[1] == {"next": 5}
    assert backend.status(first) is JobStatus.COMPLETED
    assert backend.running_owners() == [(nxt, "owner")]


def test_status_changes_are_compare_and_set(backend):
    job_id = backend.create_job("noop", {})
    assert backend.move(job_id, JobStatus.PAUSED, only_from=(JobStatus.QUEUED,))
    assert not backend.move(job_id, JobStatus.PAUSED, only_from=(JobStatus.QUEUED,))
    assert backend.move(job_id, JobStatus.QUEUED, only_from=(JobStatus.PAUSED,))
    backend.claim([job_id], "owner-a")
    # Only the owner's own change goes through.
    assert not backend.move(job_id, JobStatus.QUEUED, owner="owner-b")
    assert backend.move(job_id, JobStatus.QUEUED, owner="owner-a")


def test_a_stop_request_reaches_a_running_job_only(backend):
    job_id = backend.create_job("noop", {})
    assert not backend.request_stop(job_id, "pause")  # queued: nothing runs it
    backend.claim([job_id], "owner")
    assert backend.request_stop(job_id, "pause")
    assert backend.stop_request(job_id) == "pause"


def test_an_identical_job_joins_the_unfinished_one(backend):
    a, created = backend.create_or_join("noop", {"n": 1}, "location:1")
    assert created
    assert backend.create_or_join("noop", {"n": 1}, "location:1") == (a, False)
    backend.claim([a])
    backend.finish(a, JobStatus.COMPLETED)
    b, created = backend.create_or_join("noop", {"n": 1}, "location:1")
    assert created
    assert b != a


def test_children_are_queued_once_per_key(backend):
    parent = backend.create_job("parent", {})
    child, created = backend.create_child(parent, "part-1", "noop", {"path": ODD})
    assert created
    assert backend.create_child(parent, "part-1", "noop", {"path": ODD}) == (child, False)
    assert backend.children(parent) == {child: JobStatus.QUEUED}
    assert backend.descendants(parent) == [child]
    assert [r.id for r in backend.list_jobs(parent_id=parent)] == [child]


def test_a_job_whose_dependency_failed_fails(backend):
    first = backend.create_job("noop", {})
    second = backend.create_job("noop", {}, depends_on=first)
    assert [j[0] for j in backend.ready(limit=10)] == [first]  # second waits for first
    backend.claim([first])
    backend.finish(first, JobStatus.FAILED, error="boom")
    assert backend.fail_blocked() == [second]
    assert backend.status(second) is JobStatus.FAILED


def test_a_planned_job_is_ready_when_due(backend):
    now = time.time()
    later = backend.create_job("noop", {}, next_run_at=now + 3600)
    assert backend.ready(limit=10, now=now) == []
    assert backend.next_due(now) == pytest.approx(now + 3600)
    assert [j[0] for j in backend.ready(limit=10, now=now + 3601)] == [later]


def test_a_cancelled_job_cancels_its_waiting_children(backend):
    parent = backend.create_job("parent", {})
    child, _ = backend.create_child(parent, "part-1", "noop", {})
    grandchild, _ = backend.create_child(child, "part-1", "noop", {})
    backend.claim([parent], "owner")
    backend.finish(parent, JobStatus.CANCELLED)
    assert backend.status(child) is JobStatus.CANCELLED
    assert backend.status(grandchild) is JobStatus.CANCELLED
    assert backend.descendants(parent) == []


def test_a_scheduled_job_queues_its_next_occurrence_when_it_ends(backend):
    now = time.time()
    first = backend.create_job("noop", {"path": ODD}, run_every_s=60.0, next_run_at=now)
    backend.claim([first], "owner")
    backend.finish(first, JobStatus.COMPLETED)
    schedule = backend.get_job(first).schedule_id or first
    done, nxt = backend.occurrences(schedule)
    assert done.id == first
    assert (nxt.status, nxt.run_every_s, nxt.input()) == (JobStatus.QUEUED, 60.0, {"path": ODD})
    assert nxt.next_run_at is not None
    assert nxt.next_run_at > now
    assert backend.next_due(now) == nxt.next_run_at


def test_history_is_pruned_by_age(backend):
    job_id = backend.create_job("noop", {})
    backend.claim([job_id])
    backend.finish(job_id, JobStatus.COMPLETED)
    assert backend.prune_history(3600) == (0, 0)  # finished just now: kept
    time.sleep(0.01)
    assert backend.prune_history(0) == (1, 1)
    assert backend.history(limit=None) == []
    with pytest.raises(JobNotFound):
        backend.get_job(job_id)


def test_an_owner_lives_as_long_as_its_lease(backend):
    lease = backend.register_owner()
    assert lease.id in backend.live_owners()
    assert lease.alive(lease.id)
    assert not lease.alive(None)  # claimed outside any manager
    other = backend.register_owner()
    assert other.alive(lease.id)
    lease.close()
    assert lease.id not in backend.live_owners()
    assert not other.alive(lease.id)
    other.close()


def owner_process(opener: str, options: str = "") -> subprocess.Popen[str]:
    """A process that registers an owner (``register_owner(options)``) on the
    backend ``opener`` opens, prints its id, and sleeps."""
    code = opener + textwrap.dedent(f"""
        lease = backend.register_owner({options})
        print(lease.id, flush=True)
        import time
        time.sleep(600)
    """)
    return subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=subprocess_env()
    )


def test_an_owner_killed_with_its_process_is_dead(opened):
    backend, opener = opened
    with owner_process(opener) as proc:
        try:
            assert proc.stdout is not None
            owner = proc.stdout.readline().strip()
            assert owner in backend.live_owners()
        finally:
            os.kill(proc.pid, signal.SIGKILL)  # a failure above must not wait for it
            proc.wait()
    # Dead as soon as the store sees it: at once for SQLite's lock files; for
    # PostgreSQL once the server has ended the killed process's session
    # (milliseconds: it reads the closed socket), well before any heartbeat
    # goes stale (30 s here).
    deadline = time.monotonic() + 20
    while owner in backend.live_owners() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert owner not in backend.live_owners()
    lease = backend.register_owner()
    assert not lease.alive(owner)
    lease.close()


def test_each_claim_fences_the_writes_of_the_runs_before_it(backend):
    from phasekit.errors import LeaseLostError

    job_id = backend.create_job("noop", {"path": ODD})
    [first] = backend.claim_runs([job_id], owner=None)
    assert first.record.id == job_id
    backend.set_progress(job_id, {"done": 1}, lease=first.lease)
    assert backend.save_checkpoint(job_id, {"at": ODD}, lease=first.lease) == 1
    assert backend.stop_request(job_id, lease=first.lease) is None
    # Its worker is taken for dead: the job is queued again, then claimed by
    # another run, which gets the next epoch.
    assert backend.move(job_id, JobStatus.QUEUED, only_from=(JobStatus.RUNNING,))
    with pytest.raises(LeaseLostError):  # queued: no run may write
        backend.set_progress(job_id, {"done": 2}, lease=first.lease)
    [second] = backend.claim_runs([job_id], owner=None)
    assert second.lease > first.lease
    assert second.checkpoint == (1, {"at": ODD})
    late = [
        lambda: backend.set_progress(job_id, {"done": 99}, lease=first.lease),
        lambda: backend.save_checkpoint(job_id, {"at": "late"}, lease=first.lease),
        lambda: backend.create_child(job_id, "k", "noop", {}, lease=first.lease),
        lambda: backend.stop_request(job_id, lease=first.lease),
        lambda: backend.finish(job_id, JobStatus.COMPLETED, output="late", lease=first.lease),
        lambda: backend.finish_and_claim(
            job_id, JobStatus.COMPLETED, {"output": "late", "lease": first.lease}, [], "x"
        ),
    ]
    for write in late:
        with pytest.raises(LeaseLostError, match="no longer this run's"):
            write()
    # Nothing of the stalled run landed; the current run writes as usual.
    assert backend.status(job_id) is JobStatus.RUNNING
    assert backend.load_checkpoint(job_id) == (1, {"at": ODD})
    assert backend.children(job_id) == {}
    assert backend.progress(job_id).to_dict()["done"] == 1
    backend.set_progress(job_id, {"done": 3}, lease=second.lease)
    backend.finish(job_id, JobStatus.COMPLETED, output=ODD, lease=second.lease)
    assert backend.outcome(job_id)["output"] == ODD
    with pytest.raises(LeaseLostError):  # finished: no run may write
        backend.set_progress(job_id, {"done": 4}, lease=second.lease)


def test_writes_without_a_lease_are_not_fenced(backend):
    job_id = backend.create_job("noop", {})
    backend.claim([job_id])
    backend.set_progress(job_id, {"done": 1})  # a command acting from outside
    backend.finish(job_id, JobStatus.CANCELLED)
    assert backend.status(job_id) is JobStatus.CANCELLED


def test_a_live_owner_whose_heartbeat_is_stale_counts_as_dead(opened):
    backend, opener = opened
    with owner_process(opener, 'stale_after_s=2.0, info={"role": "test"}') as proc:
        try:
            assert proc.stdout is not None
            owner = proc.stdout.readline().strip()
            watcher = backend.register_owner()
            try:
                assert watcher.alive(owner)
                [listed] = [w for w in backend.workers() if w.id == owner]
                assert (listed.pid, listed.stale_after_s, listed.info) == (
                    proc.pid,
                    2.0,
                    {"role": "test"},
                )
                os.kill(proc.pid, signal.SIGSTOP)  # alive, lock held, silent
                deadline = time.monotonic() + 60
                while watcher.alive(owner) and time.monotonic() < deadline:
                    time.sleep(0.05)
                assert not watcher.alive(owner)
                assert owner not in backend.live_owners()
                os.kill(proc.pid, signal.SIGCONT)  # beats again: alive again
                deadline = time.monotonic() + 60
                while not watcher.alive(owner) and time.monotonic() < deadline:
                    time.sleep(0.05)
                assert watcher.alive(owner)
            finally:
                watcher.close()
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


def test_a_bad_staleness_is_refused(backend):
    from phasekit.errors import InvalidInputError

    for bad in (0, -1, float("nan"), "10", True, 10**9):
        with pytest.raises(InvalidInputError, match="stale_after_s"):
            backend.register_owner(stale_after_s=bad)
    assert backend.workers() == []


def test_recovery_honours_a_stop_asked_while_the_owner_was_gone(backend):
    from phasekit.jobs._recovery import recover_dead

    gone = backend.register_owner()
    jobs = {how: backend.create_job("noop", {"how": how}) for how in ("pause", "cancel", "none")}
    assert backend.claim(list(jobs.values()), owner=gone.id) == list(jobs.values())
    backend.request_stop(jobs["pause"], "pause")
    backend.request_stop(jobs["cancel"], "cancel")
    gone.close()  # as if its process died: the requests were never seen
    watcher = backend.register_owner()
    try:
        assert recover_dead(backend, watcher) == [jobs["none"]]
    finally:
        watcher.close()
    assert backend.status(jobs["pause"]) is JobStatus.PAUSED
    assert backend.status(jobs["cancel"]) is JobStatus.CANCELLED
    assert backend.status(jobs["none"]) is JobStatus.QUEUED
    # Out of running, a job is nobody's: the dead owner's id matches no move.
    assert not backend.move(jobs["pause"], JobStatus.QUEUED, owner=gone.id)
    assert backend.running_owners() == []


def test_an_owner_that_cannot_register_holds_nothing(backend):
    from pathlib import Path

    from phasekit.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="worker info"):
        backend.register_owner(info={"path": Path("/x")})
    assert backend.live_owners() == []
    assert backend.workers() == []


def test_every_change_is_logged_in_the_order_it_committed(backend):
    start = backend.last_event_id()
    job_id = backend.create_job("noop", {"path": ODD})
    [run] = backend.claim_runs([job_id], owner=None)
    backend.set_progress(job_id, {"done": 1, "total": 2, "message": ODD}, lease=run.lease)
    backend.set_progress(job_id, {"done": 1, "total": 2, "message": ODD}, lease=run.lease)
    child, _ = backend.create_child(job_id, "c", "noop", {}, lease=run.lease)
    backend.finish(job_id, JobStatus.COMPLETED, progress={"done": 2, "total": 2}, lease=run.lease)
    assert backend.move(child, JobStatus.CANCELLED, only_from=(JobStatus.QUEUED,))
    events = backend.events(after=start)
    assert [e.seq for e in events] == list(range(start + 1, start + 7))
    assert [(e.job_id, e.kind, e.status) for e in events] == [
        (job_id, "status", JobStatus.QUEUED),
        (job_id, "status", JobStatus.RUNNING),
        (job_id, "progress", JobStatus.RUNNING),  # the same value again: not logged twice
        (child, "status", JobStatus.QUEUED),
        (job_id, "status", JobStatus.COMPLETED),
        (child, "status", JobStatus.CANCELLED),
    ]
    assert events[2].progress is not None
    assert events[2].progress.message == ODD
    assert events[3].parent_id == job_id
    assert events[4].progress is not None
    assert events[4].progress.percent == 100.0
    assert backend.last_event_id() == start + 6
    assert backend.events(after=start + 4) == events[4:]
    assert backend.events(after=start, limit=2) == events[:2]
    # A refused write logs nothing.
    with pytest.raises(LeaseLostError):
        backend.set_progress(job_id, {"done": 9}, lease=run.lease)
    assert backend.last_event_id() == start + 6


def test_the_event_log_keeps_the_newest_and_a_follower_is_told_of_a_gap(backend):
    from phasekit.errors import JobStateError
    from phasekit.jobs import follow_events

    for i in range(5):
        backend.create_job("noop", {"i": i})
    last = backend.last_event_id()
    assert backend.prune_events(keep=2) == last - 2
    assert [e.seq for e in backend.events(after=0)] == [last - 1, last]

    async def follow(after: int | None, n: int) -> list[int]:
        seen: list[int] = []
        async for event in follow_events(backend, after=after, poll_s=0.01):
            seen.append(event.seq)
            if len(seen) == n:
                break
        return seen

    assert anyio.run(follow, last - 2, 2) == [last - 1, last]
    with pytest.raises(JobStateError, match="pruned"):
        anyio.run(follow, 1, 1)

    async def from_now() -> list[int]:
        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                seen: list[int] = []

                async def reader() -> None:
                    async for event in follow_events(backend, poll_s=0.01):
                        seen.append(event.seq)
                        tg.cancel_scope.cancel()

                tg.start_soon(reader)
                await anyio.sleep(0.1)
                backend.create_job("noop", {"late": True})
            return seen

    assert anyio.run(from_now) == [last + 1]


def _keys(record):
    return (record.priority, record.created_at, record.id)


def test_a_listing_reads_the_unfinished_jobs_in_pages(backend):
    ids = [backend.create_job("noop", {"n": n}, priority=n % 3) for n in range(9)]
    runs = backend.claim_runs(ids[:5], "owner")
    for run in runs[:4]:
        status = JobStatus.FAILED if run.record.id == ids[1] else JobStatus.COMPLETED
        backend.finish(run.record.id, status, lease=run.lease)
    assert backend.move(ids[6], JobStatus.PAUSED, only_from=(JobStatus.QUEUED,))
    every = backend.list_jobs()
    expected = [r for r in every if not r.status.finished]
    assert [r.id for r in expected] == [r.id for r in every if r.id in ids[4:]]
    assert backend.list_jobs(unfinished=True) == expected
    assert backend.list_jobs(JobStatus.QUEUED, unfinished=True) == [
        r for r in expected if r.status is JobStatus.QUEUED
    ]
    assert backend.list_jobs(JobStatus.COMPLETED, unfinished=True) == []
    # Pages of two, each after the last job of the one before, make the
    # whole listing, in its order, with nothing twice.
    for unfinished, whole in ((True, expected), (False, every)):
        pages, after = [], None
        while True:
            page = backend.list_jobs(unfinished=unfinished, limit=2, after=after)
            pages += page
            if len(page) < 2:
                break
            after = _keys(page[-1])
        assert pages == whole
    # A cursor stays good when its job has finished since (or is gone).
    middle = expected[1]
    backend.set_status(middle.id, JobStatus.CANCELLED)
    assert backend.list_jobs(unfinished=True, after=_keys(middle)) == expected[2:]
    assert backend.list_jobs(after=(99, 0.0, "")) == backend.list_jobs()  # before the first
    assert backend.list_jobs(after=(-99, 0.0, "")) == []  # after the last


def test_statuses_and_progress_of_a_page_of_jobs_are_read_together(backend):
    from phasekit.jobs.sql._listing import IDS_PER_READ

    ids = [backend.create_job("noop", {"n": n}) for n in range(IDS_PER_READ + 7)]
    runs = backend.claim_runs(ids[:3], "owner")
    backend.set_progress(ids[0], JobProgress(done=3, total=4, message=ODD).to_dict(),
                         lease=runs[0].lease)  # fmt: skip
    backend.finish(ids[1], JobStatus.COMPLETED, progress=JobProgress(done=9, total=9).to_dict(),
                   lease=runs[1].lease)  # fmt: skip
    backend.move(ids[-1], JobStatus.PAUSED, only_from=(JobStatus.QUEUED,))
    asked = [ids[-1], "no-such-job", *ids, ids[0]]
    found = backend.statuses_and_progress(asked)
    assert set(found) == set(ids)  # every id once; the unknown one left out
    for job_id in ids:
        assert found[job_id] == backend.status_and_progress(job_id)
    assert found[ids[0]][0] is JobStatus.RUNNING
    assert found[ids[0]][1] == JobProgress(done=3, total=4, message=ODD)
    assert found[ids[1]] == (JobStatus.COMPLETED, JobProgress(done=9, total=9))
    assert found[ids[-1]] == (JobStatus.PAUSED, None)
    assert backend.statuses_and_progress([]) == {}


def test_the_history_is_read_in_pages(backend):
    ids = [backend.create_job("noop", {"n": n}, tenant="acme" if n % 2 else "zeta")
           for n in range(7)]  # fmt: skip
    for job_id in ids[:3]:  # one at a time
        (run,) = backend.claim_runs([job_id], "owner")
        backend.finish(job_id, JobStatus.COMPLETED, lease=run.lease)
        time.sleep(0.002)
    # A busy worker's ends, in one write with its next claim.
    runs = backend.claim_runs(ids[3:6], "owner")
    ends = [(r.record.id, JobStatus.COMPLETED, {"lease": r.lease}) for r in runs]
    backend.finish_many_and_claim(ends, [ids[6]], "owner")
    whole = backend.history(limit=None)
    assert [h.id for h in whole] == [h.id for h in sorted(
        whole, key=lambda h: (h.finished_at, h.id), reverse=True)]  # fmt: skip
    assert {h.id for h in whole} == set(ids[:6])
    for tenant in (None, "acme"):
        expected = backend.history(limit=None, tenant=tenant)
        pages, before = [], None
        while True:
            page = backend.history(limit=2, tenant=tenant, before=before)
            pages += page
            if len(page) < 2:
                break
            before = (page[-1].finished_at, page[-1].id)
        assert [h.id for h in pages] == [h.id for h in expected]
    last = whole[-1]
    assert backend.history(limit=10, before=(last.finished_at, last.id)) == []
    assert [h.id for h in backend.history(limit=10, before=(whole[0].finished_at, whole[0].id))
            ] == [h.id for h in whole[1:]]  # fmt: skip


def test_a_manager_runs_jobs_over_the_backend(opened, tmp_path):
    backend, _ = opened

    async def main() -> None:
        async with JobManager(backend=backend) as manager:
            assert manager.store is backend
            handle = await manager.dispatch(CountJob(n=20, effects_db=str(tmp_path / "fx.db")))
            assert await handle.wait() is JobStatus.COMPLETED
            (record,) = [r for r in backend.history(limit=10) if r.name == "test.count"]
            assert record.status is JobStatus.COMPLETED
        # The manager closed the backend it was given, as it closes its own.
        with pytest.raises(ClosedError):
            backend.status(handle.id)

    anyio.run(main)


def test_a_manager_takes_a_path_or_a_backend(tmp_path):
    from phasekit.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="jobs_db"):
        JobManager()
    store = JobStore(tmp_path / "jobs.db")
    try:
        with pytest.raises(InvalidInputError, match="not both"):
            JobManager(tmp_path / "other.db", backend=store)
    finally:
        store.close()
