"""The PostgreSQL job store's own promises, beyond the contract suite
(tests/test_backend_contract.py runs that on both backends): what holds
because of how it uses PostgreSQL. Finished jobs leave the hot partition;
events are numbered in commit order however many processes write at once;
no two jobs of one conflict key run at once when claimers race; a broken
session is opened again; a queued job wakes listeners; text PostgreSQL
cannot hold is refused clearly. Against a real server (tests/pg_server.py).
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Iterator

import psycopg
import pytest

from phasekit.errors import InvalidInputError
from phasekit.jobs import JobStatus
from phasekit.jobs.postgres import PostgresJobStore


@pytest.fixture
def store(pg_url: str) -> Iterator[PostgresJobStore]:
    opened = PostgresJobStore(pg_url)
    try:
        yield opened
    finally:
        opened.close()


def count(url: str, table: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()
        assert row is not None
        return int(row[0])


def test_a_finished_job_leaves_the_hot_partition(store: PostgresJobStore, pg_url: str) -> None:
    ids = [store.create_job("noop", {"i": i}) for i in range(3)]
    assert (count(pg_url, "jobs_active"), count(pg_url, "jobs_done")) == (3, 0)
    [run] = store.claim_runs(ids[:1], owner=None)
    store.finish(ids[0], JobStatus.COMPLETED, output="done", lease=run.lease)
    store.move(ids[1], JobStatus.CANCELLED, only_from=(JobStatus.QUEUED,))
    assert (count(pg_url, "jobs_active"), count(pg_url, "jobs_done")) == (1, 2)
    # Set back to queued (a retry), a job comes back; its history row keeps
    # the output it stands for.
    store.set_status(ids[0], JobStatus.QUEUED)
    assert (count(pg_url, "jobs_active"), count(pg_url, "jobs_done")) == (2, 1)
    [entry] = [h for h in store.history() if h.id == ids[0]]
    assert entry.output() == "done"
    assert store.get_job(ids[0]).status is JobStatus.QUEUED


def test_events_are_numbered_in_commit_order_under_concurrent_writers(pg_url: str) -> None:
    """Four writers (each its own session) change jobs while two readers
    follow the log: every reader sees consecutive numbers, no event twice or
    missing, and each job's changes in the order they were made."""
    writers, per_writer = 4, 60
    stores = [PostgresJobStore(pg_url) for _ in range(writers + 2)]
    start = stores[0].last_event_id()
    done = threading.Event()
    made: dict[int, list[tuple[str, str]]] = {}
    seen: dict[int, list[tuple[int, str, str]]] = defaultdict(list)
    failures: list[BaseException] = []

    def write(n: int) -> None:
        try:
            backend, log = stores[n], []
            for i in range(per_writer):
                job_id = backend.create_job("noop", {"w": n, "i": i})
                log.append((job_id, "queued"))
                [run] = backend.claim_runs([job_id], owner=None)
                log.append((job_id, "running"))
                backend.set_progress(job_id, {"done": 1, "total": 2}, lease=run.lease)
                log.append((job_id, "progress"))
                backend.finish(job_id, JobStatus.COMPLETED, lease=run.lease)
                log.append((job_id, "completed"))
            made[n] = log
        except BaseException as exc:
            failures.append(exc)

    def read(n: int) -> None:
        try:
            backend, after = stores[writers + n], start
            while True:
                finished = done.is_set()  # read on after the writers end
                page = backend.events(after=after, limit=50)
                for event in page:
                    what = event.kind if event.kind == "progress" else event.status.value
                    seen[n].append((event.seq, event.job_id, what))
                    after = event.seq
                # Every write committed: a page short of its limit means all
                # are read (a reader behind by more than a page, the machine
                # loaded, still has pages to read).
                if finished and len(page) < 50:
                    return
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    readers = [threading.Thread(target=read, args=(n,)) for n in range(2)]
    try:
        for thread in threads + readers:
            thread.start()
        for thread in threads:
            thread.join()
        done.set()
        for thread in readers:
            thread.join()
    finally:
        for backend in stores:
            backend.close()
    assert failures == []
    total = writers * per_writer * 4
    for n in range(2):
        numbers = [seq for seq, _, _ in seen[n]]
        assert numbers == list(range(start + 1, start + 1 + total))
        by_job: dict[str, list[str]] = defaultdict(list)
        for _, job_id, what in seen[n]:
            by_job[job_id].append(what)
        for log in made.values():
            for job_id, _ in log[::4]:
                assert by_job[job_id] == ["queued", "running", "progress", "completed"]
    assert seen[0] == seen[1]


def test_racing_claimers_never_run_two_jobs_of_one_conflict_key(pg_url: str) -> None:
    rounds = 40
    claimers = [PostgresJobStore(pg_url) for _ in range(3)]
    try:
        for r in range(rounds):
            ids = [
                claimers[0].create_job("noop", {"r": r, "i": i}, conflict_key=f"key-{r}")
                for i in range(3)
            ]
            barrier = threading.Barrier(3)
            claimed: list[list[str]] = [[] for _ in claimers]

            def claim(
                n: int,
                ids: list[str] = ids,
                barrier: threading.Barrier = barrier,
                claimed: list[list[str]] = claimed,
            ) -> None:
                barrier.wait()
                claimed[n] = claimers[n].claim([ids[n], ids[(n + 1) % 3]], owner=f"o{n}")

            threads = [threading.Thread(target=claim, args=(n,)) for n in range(3)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            running = [j for j in ids if claimers[0].status(j) is JobStatus.RUNNING]
            assert len(running) == 1, (r, claimed)
            assert sum(len(c) for c in claimed) == 1
            claimers[0].finish(running[0], JobStatus.COMPLETED)
    finally:
        for backend in claimers:
            backend.close()


def test_a_broken_session_is_opened_again(store: PostgresJobStore, pg_url: str) -> None:
    job_id = store.create_job("noop", {})
    pid = store.connection.run(
        lambda cur: cur.execute("SELECT pg_backend_pid()").fetchone(), write=False
    )[0]
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    # The next write finds the session gone before it began: it reconnects
    # and writes, once.
    other = store.create_job("noop", {"after": True})
    assert {r.id for r in store.list_jobs()} == {job_id, other}


def test_a_queued_job_wakes_a_listener(store: PostgresJobStore, pg_url: str) -> None:
    heard = threading.Event()
    stop = store.watch(heard.set)
    try:
        assert heard.wait(60)  # the first wake-up says: look, in case
        heard.clear()
        with PostgresJobStore(pg_url) as other:
            other.create_job("noop", {})
        assert heard.wait(60)
    finally:
        stop()


@pytest.mark.parametrize(
    ("field", "value"),
    [("tenant", "bad\0tenant"), ("scope", "caf\udce9"), ("name", "nul\0name")],
)
def test_text_postgresql_cannot_hold_is_refused(
    store: PostgresJobStore, field: str, value: str
) -> None:
    args = {"name": "noop", "tenant": "default", "scope": None, field: value}
    name = args.pop("name")
    with pytest.raises(InvalidInputError, match=r"UTF-8|NUL"):
        store.create_job(name, {}, **args)
    assert store.list_jobs() == []


def test_odd_errors_and_keys_round_trip(store: PostgresJobStore) -> None:
    odd = "caf\udce9\nnul\0.jpg"  # not UTF-8, a newline, a NUL
    parent = store.create_job("noop", {}, conflict_key=odd)
    child, created = store.create_child(parent, odd, "noop", {"p": odd}, conflict_key=odd)
    assert created
    assert store.create_child(parent, odd, "noop", {"p": odd}) == (child, False)
    store.finish(parent, JobStatus.FAILED, error=odd, traceback=odd)
    record = store.get_job(parent)
    assert (record.error, record.conflict_key) == (odd, odd)
    assert store.traceback(parent) == odd
    assert store.get_job(child).child_key == odd
    [entry] = [h for h in store.history() if h.id == parent]
    assert entry.error == odd


def test_an_owner_analyzes_the_hot_partition_as_it_opens(
    store: PostgresJobStore, pg_url: str
) -> None:
    """A queue fills faster than autovacuum looks: every owner analyzes the
    hot partition as it opens (on its upkeep thread, so that a run's claim
    does not wait for it), whatever the server's counts say."""

    def analyzed() -> int:
        with psycopg.connect(pg_url) as conn:
            row = conn.execute(
                "SELECT analyze_count FROM pg_stat_user_tables"
                " WHERE relid = 'jobs_active'::regclass"
            ).fetchone()
            assert row is not None
            return int(row[0])

    before = analyzed()
    lease = store.register_owner()
    try:
        # The server publishes its counts within a second or so; a generous
        # bound keeps a loaded machine from failing this.
        deadline = time.monotonic() + 60
        while analyzed() == before and time.monotonic() < deadline:
            time.sleep(0.1)
        assert analyzed() > before
    finally:
        lease.close()
