"""Workers: `phasekit worker` processes sharing one library.

Each worker here is a separate process running the command line, as a
server would start them; the test queues jobs through jobs.db and watches.
A killed worker's job is resumed by another at once (its lock is free); a
stopped one (SIGSTOP) once its heartbeat is stale, and when it is continued
its late writes are refused by the lease epoch, so the job ends once.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from jobs_fixture import CountJob, RecordJob, subprocess_env
from phasekit.jobs import JobStatus, JobStore
from phasekit.library import Library
from worker_procs import (
    WAIT_S,
    Worker,
    done_items,
    owner_of,
    started_at,
    wait_for,
)


def count_job_under_way(
    store: JobStore, library: Path, fx: Path, n: int, workers: list[Worker]
) -> tuple[str, Worker]:
    """A CountJob of ``n`` items queued, and a worker that has run 40 of them."""
    job = CountJob(n, str(fx), every=20, delay_s=0.004)
    job_id = store.create_job("test.count", job.to_state())
    first = Worker(library, "--concurrency", "1")
    workers.append(first)
    wait_for("the worker to run the job", lambda: owner_of(store, job_id) == first.id)
    wait_for("some items done", lambda: done_items(fx) >= 40)
    return job_id, first


def test_a_killed_workers_job_is_resumed_by_another_at_once(
    library: Path, tmp_path: Path, workers: list[Worker]
) -> None:
    fx = tmp_path / "effects.db"
    with JobStore(library / "jobs.db") as store:
        job_id, first = count_job_under_way(store, library, fx, 600, workers)
        second = Worker(library, "--concurrency", "1")
        workers.append(second)
        first.proc.kill()
        first.proc.wait()
        # Its lock died with it: the second takes the job over without
        # waiting for a heartbeat to go stale (30 s by default).
        wait_for("the job to complete", lambda: store.status(job_id) is JobStatus.COMPLETED, 60)
        assert done_items(fx) == 600
        starts = started_at(fx)
        assert len(starts) == 2
        assert starts[1] > starts[0] == 0  # resumed, not restarted
        assert second.stop() == 0


def writable(path: Path) -> bool:
    """Whether a write transaction on the SQLite file can start now (no
    process holds its write lock)."""
    conn = sqlite3.connect(path, timeout=0.5)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.rollback()
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        conn.close()


def stop_between_writes(proc: subprocess.Popen[str], *databases: Path) -> None:
    """SIGSTOP ``proc`` at a moment it holds no write lock on these SQLite
    files: a process stopped inside a write would block every other writer
    of the file until it is continued (SQLite's locks are the file's)."""
    for _ in range(100):
        proc.send_signal(signal.SIGSTOP)
        if all(writable(path) for path in databases):
            return
        proc.send_signal(signal.SIGCONT)
        time.sleep(0.01)
    pytest.fail("the process always held a write lock")


def test_a_stalled_worker_is_taken_over_and_its_late_writes_are_refused(
    library: Path, tmp_path: Path, workers: list[Worker]
) -> None:
    fx = tmp_path / "effects.db"
    hold = tmp_path / "hold"
    hold.touch()
    with JobStore(library / "jobs.db") as store:
        job = CountJob(1500, str(fx), every=25, delay_s=0.004, hold_at=100, hold_path=str(hold))
        job_id = store.create_job("test.count", job.to_state())
        slow = Worker(library, "--concurrency", "1", "--stale-after", "2")
        workers.append(slow)
        wait_for("the worker to run the job", lambda: owner_of(store, job_id) == slow.id)
        wait_for("the job to hold at item 100", lambda: done_items(fx) == 100)
        # Its checkpoint at item 100 stored too (a loaded machine may stop it
        # between the two otherwise, and the job be resumed from item 75).
        saved = lambda: (store.load_checkpoint(job_id) or (0, None))[1] == {"next": 100}  # noqa: E731
        wait_for("the checkpoint at item 100", saved)
        lease_before = store.load_for_run(job_id).lease
        stop_between_writes(slow.proc, library / "jobs.db", fx)
        other = Worker(library, "--concurrency", "1", "--stale-after", "2")
        workers.append(other)
        # Alive (its lock is held) but silent: taken for dead once its
        # heartbeat is two seconds old, and the job claimed again.
        wait_for("the other worker to take the job over",
                 lambda: owner_of(store, job_id) == other.id)  # fmt: skip
        assert store.load_for_run(job_id).lease == lease_before + 1
        hold.unlink()  # both runs may go on
        wait_for("the job to go on", lambda: done_items(fx) >= 300)
        slow.signal(signal.SIGCONT)
        # Its run goes on until its next write or poll, which is refused:
        # it gives the job up, and the worker itself goes on.
        gave_up = f"gave up job {job_id}"
        wait_for("the stalled worker to give the job up", lambda: slow.said(gave_up))
        wait_for("the job to complete", lambda: store.status(job_id) is JobStatus.COMPLETED)
        assert slow.proc.poll() is None
        assert store.outcome(job_id)["output"] == {"count": 1500}
        assert done_items(fx) == 1500
        # Resumed from the checkpoint at item 100 by the other worker (and
        # only ever from a checkpoint: on a loaded machine a heartbeat may
        # come late and the job change hands again).
        starts = started_at(fx)
        assert starts[:2] == [0, 100]
        assert all(at >= 100 for at in starts[1:])
        history = store.history()
        assert [h.status for h in history if h.id == job_id] == [JobStatus.COMPLETED]
        assert slow.stop() == 0
        assert other.stop() == 0


def test_sigterm_hands_the_running_job_back_and_another_worker_finishes_it(
    library: Path, tmp_path: Path, workers: list[Worker]
) -> None:
    fx = tmp_path / "effects.db"
    with JobStore(library / "jobs.db") as store:
        job_id, first = count_job_under_way(store, library, fx, 800, workers)
        assert first.stop() == 0
        assert first.said("SIGTERM, handing its jobs back")
        assert store.status(job_id) is JobStatus.QUEUED
        assert owner_of(store, job_id) is None
        assert store.workers() == []  # it said goodbye
        second = Worker(library, "--concurrency", "1")
        workers.append(second)
        wait_for("the job to complete", lambda: store.status(job_id) is JobStatus.COMPLETED)
        assert done_items(fx) == 800
        starts = started_at(fx)
        assert len(starts) == 2
        assert starts[1] > starts[0] == 0
        assert second.stop() == 0


def test_a_worker_runs_only_its_types_within_its_limits(
    library: Path, tmp_path: Path, workers: list[Worker]
) -> None:
    log = str(tmp_path / "log.db")
    fx = str(tmp_path / "effects.db")
    with JobStore(library / "jobs.db") as store:
        count_id = store.create_job("test.count", CountJob(10, fx).to_state())
        records = [
            store.create_job("test.record", RecordJob(f"r{i}", log, duration_s=0.2).to_state())
            for i in range(4)
        ]
        worker = Worker(library, "--concurrency", "3", "--types", "test.record",
                        "--limit", "test.record=1")  # fmt: skip
        workers.append(worker)
        most = 0

        def all_done() -> bool:
            nonlocal most
            running = [j for j, _ in store.running_owners() if j in records]
            most = max(most, len(running))
            return all(store.status(r) is JobStatus.COMPLETED for r in records)

        wait_for("the records to complete", all_done)
        assert most == 1  # the per-type limit, though the worker could run 3
        assert store.status(count_id) is JobStatus.QUEUED  # not its type: left for another
        [listed] = store.workers()
        assert (listed.id, listed.pid) == (worker.id, worker.proc.pid)
        assert (listed.info["types"], listed.info["max_concurrency"]) == (["test.record"], 3)
        assert worker.stop() == 0


def test_jobs_workers_lists_the_workers_with_their_heartbeats(
    library: Path, workers: list[Worker]
) -> None:
    import json

    worker = Worker(library, "--stale-after", "5")
    workers.append(worker)
    out = subprocess.run(
        [sys.executable, "-m", "phasekit", "--library", str(library), "jobs", "workers", "--json"],
        env=subprocess_env(), capture_output=True, text=True, check=True,
    )  # fmt: skip
    [row] = [json.loads(line) for line in out.stdout.splitlines()]
    assert (row["id"], row["alive"], row["stale_after_s"]) == (worker.id, True, 5.0)
    assert (row["host"], row["pid"]) == (os.uname().nodename, worker.proc.pid)
    assert time.time() - row["heartbeat_at"] < 60
    worker.signal(signal.SIGSTOP)
    try:
        wait_for("the stopped worker to be listed stale", lambda: _listed_dead(library), 30)
    finally:
        worker.signal(signal.SIGCONT)
    assert worker.stop() == 0


def _listed_dead(library: Path) -> bool:
    import json

    out = subprocess.run(
        [sys.executable, "-m", "phasekit", "--library", str(library), "jobs", "workers", "--json"],
        env=subprocess_env(), capture_output=True, text=True, check=True,
    )  # fmt: skip
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    return bool(rows) and rows[0]["alive"] is False


def test_bad_worker_options_are_refused(library: Path) -> None:
    for bad in (["--concurrency", "0"], ["--limit", "nolimit"], ["--stale-after", "-1"],
                ["--import", "no_such_module_here"]):  # fmt: skip
        done = subprocess.run(
            [sys.executable, "-m", "phasekit", "--library", str(library), "worker", *bad],
            env=subprocess_env(), capture_output=True, text=True, timeout=WAIT_S,
        )  # fmt: skip
        assert done.returncode == 2, (bad, done.stderr)
        assert "error" in done.stderr


def test_four_workers_run_every_job_once_through_kills_and_stalls(
    library: Path, tmp_path: Path, workers: list[Worker]
) -> None:
    """500 jobs (450 checkpointing in steps, 30 of which fail; 50 parents of
    two children each) through 4 workers, while workers are killed (and
    replaced) and stopped for up to 1.5 s at random: every job ends, once,
    and every effect is there, once."""
    from collections import Counter

    from jobs_fixture import EffectJob, ParentJob, effect_log, read_log

    rng = random.Random(16)
    effects_db, records_db = str(tmp_path / "effects.db"), str(tmp_path / "records.db")
    effect_log(effects_db).close()
    with JobStore(library / "jobs.db") as store:
        expected: dict[str, JobStatus] = {}
        for i in range(500):
            if i % 10 == 9:
                parent = ParentJob(2, records_db, child_duration_s=0.01, prefix=f"p{i}.")
                expected[store.create_job("test.parent", parent.to_state())] = JobStatus.COMPLETED
                continue
            fails = i % 15 == 0
            steps = rng.randint(2, 6)
            fail_at = 1 if fails else -1
            job = EffectJob(f"k{i}", effects_db, steps=steps, delay_s=0.05, fail_at=fail_at)
            status = JobStatus.FAILED if fails else JobStatus.COMPLETED
            expected[store.create_job("test.effect", job.to_state())] = status
        options = ("--concurrency", "2", "--stale-after", "1")
        workers.extend(Worker(library, *options) for _ in range(4))
        live = list(workers)
        kills = stalls = 0

        def unfinished() -> int:
            return sum(1 for r in store.list_jobs() if not r.status.finished)

        deadline = time.monotonic() + 600
        while unfinished() and time.monotonic() < deadline:
            time.sleep(rng.uniform(0.2, 0.6))
            if kills + stalls >= 40:
                continue  # enough chaos: let the rest finish
            victim = rng.choice(live)
            if rng.random() < 0.3:
                victim.proc.kill()
                victim.proc.wait()
                live.remove(victim)
                replacement = Worker(library, *options)
                workers.append(replacement)
                live.append(replacement)
                kills += 1
            else:
                victim.signal(signal.SIGSTOP)
                time.sleep(rng.uniform(0.3, 1.5))
                victim.signal(signal.SIGCONT)
                stalls += 1
        assert unfinished() == 0, "jobs left unfinished"
        assert kills > 0
        assert stalls > 0
        for worker in live:
            assert worker.stop() == 0
        statuses = {r.id: r.status for r in store.list_jobs() if r.parent_id is None}
        assert statuses == expected
        children = [r for r in store.list_jobs() if r.parent_id is not None]
        assert len(children) == 100  # spawned once each, across resumes
        assert {r.status for r in children} == {JobStatus.COMPLETED}
        # Every job ended once: one history entry each, none finished twice.
        ends = Counter(h.id for h in store.history(limit=None))
        assert set(ends) == set(expected) | {r.id for r in children}
        assert set(ends.values()) == {1}
        taken_over = 0
        for job_id, status in expected.items():
            output = store.outcome(job_id)["output"]
            if status is not JobStatus.COMPLETED:
                continue
            if store.get_job(job_id).name == "test.parent":
                assert set(output.values()) == {"completed"}
                continue
            # The end recorded is the last claim's run's: a run whose job was
            # taken over (killed or stalled) never recorded one after it.
            last_claim = store.load_for_run(job_id).lease
            assert output["lease"] == last_claim, job_id
            taken_over += last_claim > 1
        assert taken_over > 0
    conn = effect_log(effects_db)
    try:
        steps = dict(conn.execute("SELECT key, COUNT(*) FROM step GROUP BY key").fetchall())
        finals = [row[0] for row in conn.execute("SELECT key FROM final")]
    finally:
        conn.close()
    completed_keys = {f"k{i}" for i in range(500) if i % 10 != 9 and i % 15 != 0}
    assert sorted(finals) == sorted(completed_keys)  # each effect once (keyed), none lost
    assert all(steps[key] >= 2 for key in completed_keys)
    assert {tag for tag, _, _ in read_log(records_db)} == {
        f"p{i}.{c}" for i in range(9, 500, 10) for c in range(2)
    }


def test_short_jobs_ended_in_groups_end_once_through_kills_and_stalls(
    library: Path, tmp_path: Path, workers: list[Worker]
) -> None:
    """3,000 jobs short enough that workers claim them eight at a time and
    write their ends in groups, while workers are killed and stopped: every
    job ends once, with the end of its last claim's run; a job whose end was
    kept for a group write when its worker died is run again (its key
    appears twice), never lost."""
    from collections import Counter

    from jobs_fixture import TickJob

    rng = random.Random(61)
    ticks = tmp_path / "ticks"
    with JobStore(library / "jobs.db") as store:
        keys = {
            store.create_job("test.tick", TickJob(f"t{i}", str(ticks)).to_state()): f"t{i}"
            for i in range(3000)
        }
        options = ("--concurrency", "1", "--stale-after", "1")
        workers.extend(Worker(library, *options) for _ in range(3))
        live = list(workers)
        for round_ in range(8):
            time.sleep(rng.uniform(0.05, 0.3))
            victim = rng.choice(live)
            if round_ % 2 == 0:
                victim.proc.kill()
                victim.proc.wait()
                live.remove(victim)
                workers.append(Worker(library, *options))
                live.append(workers[-1])
            else:
                victim.signal(signal.SIGSTOP)
                time.sleep(rng.uniform(0.2, 1.5))
                victim.signal(signal.SIGCONT)

        def unfinished() -> int:
            return sum(1 for r in store.list_jobs() if not r.status.finished)

        wait_for("every job", lambda: unfinished() == 0, timeout=600)
        for worker in live:
            assert worker.stop() == 0
        assert {r.status for r in store.list_jobs()} == {JobStatus.COMPLETED}
        ends = Counter(h.id for h in store.history(limit=None))
        assert set(ends) == set(keys)
        assert set(ends.values()) == {1}
        for job_id in keys:
            last_claim = store.load_for_run(job_id).lease
            assert store.outcome(job_id)["output"] == {"lease": last_claim}, job_id
    ran = Counter(ticks.read_text().split())
    assert set(ran) == set(keys.values())  # none lost


def test_jobs_claimed_ahead_of_a_long_run_go_back_to_the_queue(
    library: Path, tmp_path: Path, workers: list[Worker]
) -> None:
    """After a short job a worker claims the next jobs ahead of time; when
    the next of them turns out long, the others go back to the queue for
    another worker (here the long job waits for them: were they held back,
    it would fail)."""
    from jobs_fixture import GateJob, TickJob

    ticks = tmp_path / "ticks"
    with JobStore(library / "jobs.db") as store:
        store.create_job("test.tick", TickJob("first", str(ticks)).to_state())
        gate = store.create_job("test.gate", GateJob(str(ticks), lines=41).to_state())
        later = [
            store.create_job("test.tick", TickJob(f"t{i}", str(ticks)).to_state())
            for i in range(40)
        ]
        workers.append(Worker(library, "--concurrency", "1"))
        wait_for("the first job", lambda: ticks.exists())
        wait_for("the gate to run", lambda: store.progress(gate) is not None or store.status(
            gate) is JobStatus.RUNNING)  # fmt: skip
        workers.append(Worker(library, "--concurrency", "1"))
        wait_for("the gate", lambda: store.status(gate).finished)
        assert store.status(gate) is JobStatus.COMPLETED
        wait_for("the ticks", lambda: all(store.status(j).finished for j in later))
        assert {store.status(j) for j in later} == {JobStatus.COMPLETED}


class Lines:
    """The lines a process prints, read by a thread (a stalled process never
    blocks the test: ``next`` waits at most ``WAIT_S``)."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        import queue

        self.queue: queue.Queue[str | None] = queue.Queue()
        self.proc = proc
        self.thread = threading.Thread(target=self._pump, daemon=True)
        self.thread.start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.queue.put(line)
        self.queue.put(None)

    def next(self) -> str:
        line = self.queue.get(timeout=WAIT_S)
        if line is None:
            pytest.fail(f"the process ended (status {self.proc.wait()})")
        return line

    def close(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=WAIT_S)
        self.thread.join()
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        return code


def test_a_follower_in_another_process_sees_every_change_once_across_a_reconnect(
    library: Path, tmp_path: Path, workers: list[Worker]
) -> None:
    import json

    def follower(after: int) -> Lines:
        argv = [sys.executable, "-m", "phasekit", "--library", str(library), "events",
                "--follow", "--json", "--after", str(after)]  # fmt: skip
        proc = subprocess.Popen(argv, env=subprocess_env(), stdout=subprocess.PIPE, text=True)
        return Lines(proc)

    fx = str(tmp_path / "effects.db")
    followers: list[Lines] = []
    with JobStore(library / "jobs.db") as store:
        try:
            start = store.last_event_id()
            first = follower(start)
            followers.append(first)
            ids = [
                store.create_job("test.count", CountJob(80, fx, every=10, delay_s=0.004).to_state())
                for _ in range(10)
            ]
            workers.append(Worker(library, "--concurrency", "2"))
            seen = [json.loads(first.next()) for _ in range(15)]
            first.proc.kill()  # gone mid-stream, lines still in its pipe lost
            first.close()
            second = follower(seen[-1]["seq"])
            followers.append(second)
            wait_for("the jobs", lambda: all(store.status(i) is JobStatus.COMPLETED for i in ids))
            end = store.last_event_id()
            while seen[-1]["seq"] < end:
                seen.append(json.loads(second.next()))
            assert second.close() == 0
        finally:
            for proc in (f.proc for f in followers):
                if proc.poll() is None:  # the test failed with it running
                    proc.kill()
                    proc.wait()
    assert [e["seq"] for e in seen] == list(range(start + 1, end + 1))  # no gap, no repeat
    for job_id in ids:
        statuses = [e["status"] for e in seen if e["job_id"] == job_id and e["kind"] == "status"]
        assert statuses == ["queued", "running", "completed"]
        percents = [e["percent"] for e in seen if e["job_id"] == job_id and e["percent"]]
        assert percents == sorted(percents)
        assert percents[-1] == 100.0


DIRECT_RUN = """
import sys
from jobs_fixture import CountJob
from phasekit.library import Library

with Library.open(sys.argv[1]) as library:
    job = CountJob(600, sys.argv[2], every=25, delay_s=0.004, hold_at=100, hold_path=sys.argv[3])
    run = library.run(job)
    print(run.status.value, run.ran_here, flush=True)
"""


def test_a_direct_run_stopped_past_its_heartbeat_follows_its_job_to_the_worker(
    library: Path, tmp_path: Path, workers: list[Worker]
) -> None:
    """`library.run` (what each command that starts a job uses) stopped with
    SIGSTOP (Ctrl-Z) past its staleness: a worker takes the job over, and
    the run, continued, follows it there to its end instead of failing."""
    fx, hold = tmp_path / "effects.db", tmp_path / "hold"
    hold.touch()
    env = {**subprocess_env(), "PHASEKIT_STALE_AFTER_S": "1"}
    direct = subprocess.Popen(
        [sys.executable, "-c", DIRECT_RUN, str(library), str(fx), str(hold)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_for("the run to hold at item 100", lambda: done_items(fx) == 100)
        with JobStore(library / "jobs.db") as store:
            [job_id] = [j for j, _ in store.running_owners()]
            stop_between_writes(direct, library / "jobs.db", fx)
            worker = Worker(library, "--concurrency", "1")
            workers.append(worker)
            wait_for(
                "the worker to take the job over", lambda: owner_of(store, job_id) == worker.id
            )
            hold.unlink()
            direct.send_signal(signal.SIGCONT)
            out, err = direct.communicate(timeout=WAIT_S)
            assert direct.returncode == 0, err
            assert out.split() == ["completed", "False"]  # followed, not run twice
            assert store.status(job_id) is JobStatus.COMPLETED
            assert done_items(fx) == 600
            assert worker.stop() == 0
    finally:
        if direct.poll() is None:
            direct.send_signal(signal.SIGCONT)
            direct.kill()
            direct.communicate()


def test_a_job_enqueued_through_the_library_is_run_by_a_worker(
    library: Path, tmp_path: Path, workers: list[Worker]
) -> None:
    from phasekit.errors import InvalidInputError
    from phasekit.indexing import IndexJob

    from conftest import BAD_NAME, NEWLINE_NAME

    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    for name in (os.fsdecode(BAD_NAME), NEWLINE_NAME, "plain.txt"):
        (tree / name).write_bytes(b"x" * 10)
        (tree / "sub" / name).write_bytes(b"y" * 20)
    with Library.open(library) as lib:
        location = lib.add_location(tree, mode="content")
        job_id = lib.enqueue(IndexJob(location.id))
        # Asking again joins the unfinished job (its conflict key).
        assert lib.enqueue(IndexJob(location.id)) == job_id
        with pytest.raises(InvalidInputError, match=r"Library\.enqueue\(\) takes a job"):
            lib.enqueue("index")  # type: ignore[arg-type]
        with JobStore(library / "jobs.db") as store:
            assert store.status(job_id) is JobStatus.QUEUED  # nothing ran it here
            workers.append(Worker(library))
            wait_for("the index", lambda: store.status(job_id) is JobStatus.COMPLETED)
        paths = {os.fsencode(e.path) for e in lib.entries(location)}
    assert os.fsencode(tree / "sub" / os.fsdecode(BAD_NAME)) in paths
    assert len(paths) == 7  # sub and six files
