"""Workers on several hosts sharing one PostgreSQL job store.

Each "host" is a network namespace joined to the root namespace by a veth
pair; the PostgreSQL server runs in the root namespace and listens on the
root-side address of each pair, so a worker started with ``ip netns exec``
talks to it over TCP as another machine would (the filesystem is shared, as
a library on a network disk would be: the jobs' effect logs live there). A
host's link can be cut (its root-side end set down), and the server
restarted, under running workers.

The SQLite versions of these tests are in tests/test_workers.py. Root only
(network namespaces); PostgreSQL from Debian's packages: a server of the
module's own (tests/pg_server.py), whatever $PHASEKIT_TEST_PG says, since
the tests restart it and it must listen on the hosts' links. The workers'
stderr and the server's log are left in each test's folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from jobs_fixture import EffectJob, ParentJob, effect_log, read_log, subprocess_env
from pg_server import PgServer
from phasekit.jobs import JobStatus
from phasekit.jobs.postgres import PostgresJobStore
from phasekit.library import Library
from worker_procs import WorkerProcess, done_items, owner_of, started_at

#: Generous waits: the suite must pass on a loaded machine.
WAIT_S = 180.0
#: Names of this module's namespaces and links: the prefix, the test
#: process's pid and the host's letter (``r``/``n`` for the link's root and
#: namespace ends), so that parallel sessions do not meet and a session
#: cleans up what a dead one left.
PREFIX = "pkh"
_OURS = re.compile(rf"{PREFIX}(\d+)([a-z])[rn]?")


def wait_for(
    what: str,
    check: Callable[[], object],
    timeout: float = WAIT_S,
    explain: Callable[[], str] | None = None,
) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}" + (f"\n{explain()}" if explain else ""))


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done


# --- hosts: network namespaces ------------------------------------------------------


@dataclass
class Host:
    """A network namespace with a veth pair to the root namespace: the host
    is ``ip``, the server is reached at ``server_ip`` (the root side)."""

    label: str
    subnet: int

    @property
    def netns(self) -> str:
        return f"{PREFIX}{os.getpid()}{self.label}"

    @property
    def link(self) -> str:
        """The root namespace's end of the pair (the "switch port")."""
        return f"{self.netns}r"

    @property
    def inner(self) -> str:
        return f"{self.netns}n"

    @property
    def server_ip(self) -> str:
        return f"10.77.{self.subnet}.1"

    @property
    def ip(self) -> str:
        return f"10.77.{self.subnet}.2"

    @property
    def network(self) -> str:
        return f"10.77.{self.subnet}.0/24"

    def create(self) -> None:
        ip("netns", "add", self.netns)
        ip("link", "add", self.link, "type", "veth", "peer", "name", self.inner)
        ip("link", "set", self.inner, "netns", self.netns)
        ip("addr", "add", f"{self.server_ip}/24", "dev", self.link)
        ip("link", "set", self.link, "up")
        ip("-n", self.netns, "addr", "add", f"{self.ip}/24", "dev", self.inner)
        ip("-n", self.netns, "link", "set", self.inner, "up")
        ip("-n", self.netns, "link", "set", "lo", "up")
        self._pin_neighbours()

    def _pin_neighbours(self) -> None:
        """Each end knows the other's link-layer address for good: while the
        link is down, packets are lost as in a network, not held in the
        kernel's queue of packets awaiting address resolution, which sends
        them once the link is back (stale segments of connections given up
        meanwhile included, which the server would answer, then be reset)."""

        def mac(*netns: str, dev: str) -> str:
            shown = ip(*netns, "-j", "link", "show", "dev", dev).stdout
            return str(json.loads(shown)[0]["address"])

        root_mac, inner_mac = mac(dev=self.link), mac("-n", self.netns, dev=self.inner)
        ip("-n", self.netns, "neigh", "replace", self.server_ip, "lladdr", root_mac, "dev",
           self.inner, "nud", "permanent")  # fmt: skip
        ip("neigh", "replace", self.ip, "lladdr", inner_mac, "dev", self.link, "nud", "permanent")

    def remove(self) -> None:
        # The namespace goes lazily with its end of the pair: the root end
        # is deleted explicitly (which deletes both).
        ip("link", "del", self.link, check=False)
        ip("netns", "del", self.netns, check=False)

    def argv(self, *argv: str) -> list[str]:
        """``argv`` run on this host (``ip netns exec`` execs it: same pid)."""
        return ["ip", "netns", "exec", self.netns, *argv]

    def cut(self) -> None:
        """The host's link goes down: its packets go nowhere (no reset: the
        connections time out), as with a cable pulled."""
        ip("link", "set", self.link, "down")

    def mend(self) -> None:
        ip("link", "set", self.link, "up")
        self._pin_neighbours()  # the root end's went with its link

    def connections(self, port: int) -> list[str]:
        """This host's established TCP connections to ``port``."""
        done = subprocess.run(
            self.argv("ss", "-Htn", "state", "established", f"( dport = :{port} )"),
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        return done.stdout.splitlines()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stale(name: str) -> bool:
    """A namespace or link of this module left by a dead test process (or
    by this one: a pid reused)."""
    match = _OURS.fullmatch(name)
    return match is not None and (int(match[1]) == os.getpid() or not _alive(int(match[1])))


def clear_stale_hosts() -> None:
    for line in ip("netns", "list").stdout.splitlines():
        name = line.split(" ")[0]
        if _stale(name):
            ip("netns", "del", name, check=False)
    for line in ip("-o", "link", "show").stdout.splitlines():
        name = line.split(":")[1].strip().split("@")[0]
        if name.startswith(PREFIX) and _stale(name):
            ip("link", "del", name, check=False)


def free_subnets(count: int) -> list[int]:
    """``count`` numbers N such that no address of the root namespace is in
    10.77.N.0/24 (another session's hosts, or anything else's)."""
    used = {int(n) for n in re.findall(r"inet 10\.77\.(\d+)\.", ip("-o", "-4", "addr").stdout)}
    start = os.getpid() % 125 * 2
    found = [n for k in range(254) if (n := (start + k) % 254 + 1) not in used]
    return found[:count]


@pytest.fixture(scope="module")
def hosts() -> Iterator[list[Host]]:
    """Host A and host B."""
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    if shutil.which("ip") is None or shutil.which("ss") is None:
        pytest.skip("ip and ss (iproute2) are needed")
    clear_stale_hosts()
    made: list[Host] = []
    try:
        for label, subnet in zip("ab", free_subnets(2), strict=True):
            made.append(Host(label, subnet))
            made[-1].create()
        yield made
    finally:
        for host in made:
            host.remove()


@pytest.fixture(scope="module")
def server(hosts: list[Host]) -> Iterator[PgServer]:
    """A cluster of this module's own (the tests restart it), listening on
    the loopback and on each host's link."""
    psycopg = pytest.importorskip("psycopg")
    root = Path(tempfile.mkdtemp(prefix="phasekit-pg-hosts-"))
    started = PgServer(
        root,
        listen=("127.0.0.1", *(h.server_ip for h in hosts)),
        allow=[h.network for h in hosts],
    )
    try:
        with psycopg.connect(started.url(), autocommit=True) as conn:
            # Sessions in the log (root/log, copied to each test's folder).
            for setting in ("log_connections", "log_disconnections"):
                conn.execute(f"ALTER SYSTEM SET {setting} = on")
            conn.execute("ALTER SYSTEM SET log_line_prefix = '%m [%p] %h '")
            conn.execute("SELECT pg_reload_conf()")
        for host in hosts:
            reach = f"import psycopg; psycopg.connect({started.url(host=host.server_ip)!r}).close()"
            done = subprocess.run(
                host.argv(sys.executable, "-c", reach), capture_output=True, text=True,
                env=subprocess_env(), timeout=WAIT_S, check=False,
            )  # fmt: skip
            assert done.returncode == 0, f"host {host.label} cannot reach the server: {done.stderr}"
        yield started
    finally:
        started.close()


@pytest.fixture
def db(server: PgServer, tmp_path: Path) -> Iterator[str]:
    """A new database's name; the server's log is copied to the test's
    folder afterwards (with the workers' logs: evidence when it fails)."""
    url = server.create_database()
    yield url.rpartition("/")[2]
    with contextlib.suppress(OSError):
        shutil.copy(server.root / "log", tmp_path / "postgresql.log")


@pytest.fixture
def library(tmp_path: Path) -> Path:
    folder = tmp_path / "lib"
    with Library.open(folder):
        pass
    return folder


# --- workers ------------------------------------------------------------------------


class Worker(WorkerProcess):
    """A `phasekit worker` process on ``host`` whose jobs are in PostgreSQL;
    its stderr lines are collected (and written to ``log``)."""

    def __init__(self, host: Host, library: Path, url: str, log: Path, *extra: str) -> None:
        self.host = host
        # No maintenance schedule (it would be one more job in every listing).
        argv = host.argv(
            sys.executable, "-m", "phasekit", "--library", str(library), "--jobs", url,
            "worker", "--import", "jobs_fixture", "--import", "hosts_jobs",
            "--maintenance-every", "0", *extra,
        )  # fmt: skip
        super().__init__(argv, f"a worker to start on host {host.label}", log)

    def output(self) -> str:
        return f"worker {self.id} on host {self.host.label}:\n{''.join(self.lines[-40:])}"


class Workers:
    """Starts workers on the hosts against one database; kills those left."""

    def __init__(self, server: PgServer, dbname: str, library: Path, logs: Path) -> None:
        self.server, self.dbname, self.library, self.logs = server, dbname, library, logs
        self.started: list[Worker] = []

    def start(self, host: Host, *extra: str) -> Worker:
        url = self.server.url(self.dbname, host=host.server_ip)
        log = self.logs / f"worker-{len(self.started)}-{host.label}.log"
        worker = Worker(host, self.library, url, log, *extra)
        self.started.append(worker)
        return worker

    def output(self) -> str:
        return "\n".join(w.output() for w in self.started)

    def close(self) -> None:
        for worker in self.started:
            worker.close()


@pytest.fixture
def workers(server: PgServer, db: str, library: Path, tmp_path: Path) -> Iterator[Workers]:
    made = Workers(server, db, library, tmp_path)
    try:
        yield made
    finally:
        made.close()


@pytest.fixture
def store(server: PgServer, db: str) -> Iterator[PostgresJobStore]:
    """The test's own view of the jobs (from the root namespace)."""
    with PostgresJobStore(server.url(db)) as opened:
        yield opened


def unfinished(store: PostgresJobStore) -> int:
    return sum(1 for r in store.list_jobs() if not r.status.finished)


def check_ended_once(store: PostgresJobStore, expected: dict[str, JobStatus]) -> int:
    """Every job (``expected``, and their children) ended once, as expected;
    a completed job's output is its last claim's run's. How many completed
    jobs changed hands (claimed more than once)."""
    statuses = {r.id: r.status for r in store.list_jobs() if r.parent_id is None}
    assert statuses == expected
    children = [r for r in store.list_jobs() if r.parent_id is not None]
    assert {r.status for r in children} <= {JobStatus.COMPLETED}
    ends = Counter(h.id for h in store.history(limit=None))
    assert set(ends) == set(expected) | {r.id for r in children}
    assert set(ends.values()) == {1}, [job for job, n in ends.items() if n > 1]
    # The history keeps a row per job (a later end replaces it): the event
    # log says whether a job reached a finished status more than once.
    finished: Counter[str] = Counter()
    after = 0
    while batch := store.events(after=after, limit=1000):
        finished.update(e.job_id for e in batch if e.kind == "status" and e.status.finished)
        after = batch[-1].seq
    assert finished == ends, [job for job, n in finished.items() if n > 1]
    changed_hands = 0
    for job_id, status in expected.items():
        if status is not JobStatus.COMPLETED:
            continue
        output = store.outcome(job_id)["output"]
        if store.get_job(job_id).name == "test.parent":
            assert set(output.values()) == {"completed"}
            continue
        # The end recorded is the last claim's run's: a run whose job was
        # taken over (killed, stalled, cut off) never recorded one after it.
        last_claim = store.load_for_run(job_id).lease
        assert output["lease"] == last_claim, job_id
        changed_hands += last_claim > 1
    return changed_hands


def read_effects(path: str) -> tuple[dict[str, int], list[str], list[tuple[str, int]]]:
    """An EffectJob log: steps recorded per key, the keys ended, and each
    run's (key, pid)."""
    conn = effect_log(path)
    try:
        steps = dict(conn.execute("SELECT key, COUNT(*) FROM step GROUP BY key").fetchall())
        finals = [row[0] for row in conn.execute("SELECT key FROM final")]
        attempts = [(r[0], int(r[1])) for r in conn.execute("SELECT key, pid FROM attempts")]
    finally:
        conn.close()
    return steps, finals, attempts


def sessions(server: PgServer, dbname: str) -> str:
    """What the server holds: the sessions of the database (what each waits
    for, and the sessions blocking it), and the advisory locks held (a
    worker's, see phasekit/jobs/postgres/_owners.py, with its id)."""
    import psycopg

    with psycopg.connect(server.url(dbname), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid, client_addr, backend_start, state, xact_start, wait_event_type,"
            " wait_event, pg_blocking_pids(pid), left(query, 70) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            " ORDER BY client_addr, backend_start"
        ).fetchall()
        locks = conn.execute(
            "SELECT l.pid, l.classid, l.objid, w.id FROM pg_locks l LEFT JOIN workers w"
            " ON w.lock_key::oid = l.objid WHERE l.locktype = 'advisory' AND l.granted"
            " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        ).fetchall()
    lines = ["sessions (pid, client, since, state, transaction since, waiting for, blocked by):"]
    for pid, client, since, state, xact, wait_type, wait, blockers, query in rows:
        xact_at = "-" if xact is None else f"{xact:%H:%M:%S}"
        lines.append(
            f"  {pid} {client} {since:%H:%M:%S} {state} {xact_at} {wait_type}/{wait}"
            f" {blockers}: {query}"
        )
    lines += ["advisory locks (session pid, keys, worker):"] + [f"  {r}" for r in locks]
    return "\n".join(lines)


#: A worker's job session inside a write transaction (see stop_inside_a_write).
JOB_WRITE = (
    "SELECT pid, xact_start FROM pg_stat_activity WHERE client_addr = %s"
    " AND state = 'idle in transaction' AND backend_xid IS NOT NULL"
    " AND query NOT LIKE '%%workers%%' AND query NOT LIKE '%%pg_backend_pid%%'"
)


def stop_inside_a_write(
    worker: Any, server: PgServer, dbname: str, inside: str = JOB_WRITE
) -> None:
    """SIGSTOP ``worker`` (on a host) at a moment one of its sessions is
    inside a write transaction (``inside``: the query finding it by the
    host's address; default: a checkpoint or a progress write, the job's
    row locked, the transaction open in the server), as
    test_workers.stop_between_writes stops one outside them; and leave it
    stopped until the server has acknowledged all it sent (then nothing of
    the session is in flight)."""
    import psycopg

    rng = random.Random(5)
    with psycopg.connect(server.url(dbname), autocommit=True) as conn:
        for _ in range(2000):
            worker.signal(signal.SIGSTOP)
            # What it sent just before it stopped (its COMMIT, say) lands first.
            time.sleep(0.05)
            caught = conn.execute(inside, (worker.host.ip,)).fetchall()
            if caught:
                time.sleep(0.5)  # its kernel acknowledges what the server sent
                if conn.execute(inside, (worker.host.ip,)).fetchall() == caught:
                    return
            worker.signal(signal.SIGCONT)
            time.sleep(rng.uniform(0, 0.05))
    pytest.fail("the worker was never caught inside a write")


# --- the tests ----------------------------------------------------------------------


def test_four_workers_on_two_hosts_run_every_job_once_through_kills_and_stalls(
    hosts: list[Host], store: PostgresJobStore, workers: Workers, tmp_path: Path
) -> None:
    """tests/test_workers.py's exactly-once test with the jobs in PostgreSQL
    and two workers on each of two hosts: 500 jobs (450 checkpointing in
    steps, 30 of which fail; 50 parents of two children each), while workers
    are killed (and replaced on their host) and stopped for up to 1.5 s at
    random: every job ends, once, and every effect is there, once."""
    rng = random.Random(16)
    effects_db, records_db = str(tmp_path / "effects.db"), str(tmp_path / "records.db")
    effect_log(effects_db).close()
    expected: dict[str, JobStatus] = {}
    for i in range(500):
        if i % 10 == 9:
            parent = ParentJob(2, records_db, child_duration_s=0.01, prefix=f"p{i}.")
            expected[store.create_job("test.parent", parent.to_state())] = JobStatus.COMPLETED
            continue
        fails = i % 15 == 0
        steps = rng.randint(2, 6)
        job = EffectJob(f"k{i}", effects_db, steps=steps, delay_s=0.05, fail_at=1 if fails else -1)
        status = JobStatus.FAILED if fails else JobStatus.COMPLETED
        expected[store.create_job("test.effect", job.to_state())] = status
    options = ("--concurrency", "2", "--stale-after", "1")
    live = [workers.start(host, *options) for host in hosts for _ in range(2)]
    kills = stalls = 0
    while unfinished(store) and kills + stalls < 40:
        time.sleep(rng.uniform(0.2, 0.6))
        victim = rng.choice(live)
        if rng.random() < 0.3:
            victim.proc.kill()
            victim.proc.wait()
            live.remove(victim)
            live.append(workers.start(victim.host, *options))  # on the same host
            kills += 1
        else:
            victim.signal(signal.SIGSTOP)
            time.sleep(rng.uniform(0.3, 1.5))
            victim.signal(signal.SIGCONT)
            stalls += 1
    wait_for("every job to end", lambda: unfinished(store) == 0, 900, workers.output)
    print(f"{kills} workers killed, {stalls} stopped")
    assert kills > 0
    assert stalls > 0
    for worker in live:
        assert worker.stop() == 0, worker.output()
    children = [r for r in store.list_jobs() if r.parent_id is not None]
    assert len(children) == 100  # spawned once each, across resumes
    assert {r.status for r in children} == {JobStatus.COMPLETED}
    assert check_ended_once(store, expected) > 0  # some were taken over
    steps, finals, _ = read_effects(effects_db)
    completed_keys = {f"k{i}" for i in range(500) if i % 10 != 9 and i % 15 != 0}
    assert sorted(finals) == sorted(completed_keys)  # each effect once (keyed), none lost
    assert all(steps[key] >= 2 for key in completed_keys)
    assert {tag for tag, _, _ in read_log(records_db)} == {
        f"p{i}.{c}" for i in range(9, 500, 10) for c in range(2)
    }


@pytest.mark.parametrize(
    "outage",
    [
        "brief",
        "long",
        "mid-write",
    ],
)
def test_a_host_cut_off_mid_job_is_taken_over_and_its_late_writes_are_refused(
    outage: str,
    hosts: list[Host],
    server: PgServer,
    db: str,
    store: PostgresJobStore,
    workers: Workers,
    tmp_path: Path,
) -> None:
    """Host A's link is cut while its worker runs a job: a worker on host B
    resumes the job from its checkpoint once A's heartbeat is stale; when
    the link comes back A's late writes are refused (lease epochs), it gives
    the job up, and goes on as a live worker running other jobs.

    The server keeps A's sessions (and what they hold: A's owner lock, row
    locks of an open transaction) until it learns that their connections
    are gone, which, with nothing to send them, takes the server kernel's
    keepalive time (over two hours by default). ``brief``: the link comes
    back as soon as B took the job (A's connections survive); ``long``:
    once A's kernel gave up every connection to the server (TCP user
    timeout), so that A connects again; ``mid-write``: as ``long``, the cut
    landing while A's job was inside a write transaction (the job's row
    locked in the server)."""
    a, b = hosts
    fx, hold = tmp_path / "effects.db", tmp_path / "hold"
    from hosts_jobs import LeasedCountJob

    held = outage != "mid-write"  # that one is cut while it writes
    if held:
        hold.touch()
    n = 1500 if held else 6000  # long enough to be caught writing
    job = LeasedCountJob(n, str(fx), every=25, delay_s=0.004, hold_at=100, hold_path=str(hold))
    job_id = store.create_job("test.hosts.count", job.to_state())
    options = ("--concurrency", "1", "--stale-after", "2")
    cut_off = workers.start(a, *options)
    wait_for("the worker on A to run the job", lambda: owner_of(store, job_id) == cut_off.id)
    if held:
        wait_for("the job to hold at item 100", lambda: done_items(fx) == 100)
        # Its checkpoint at item 100 stored too (a loaded machine may stop
        # it between the two otherwise, and the job be resumed from 75).
        at_100 = lambda: (store.load_checkpoint(job_id) or (0, None))[1] == {"next": 100}  # noqa: E731
        wait_for("the checkpoint at item 100", at_100)
    else:
        wait_for("the job to pass item 100", lambda: done_items(fx) >= 100)
    lease_before = store.load_for_run(job_id).lease
    other = workers.start(b, *options)

    def states() -> str:
        now = time.time()
        beats = {w: f"{now - at:.1f}s ago" for w, (at, _) in store.heartbeats().items()}
        return f"heartbeats: {beats}\n{sessions(server, db)}\n{workers.output()}"

    try:
        # The cut lands while A is held still (SIGSTOP), long enough for its
        # kernel to acknowledge what the server sent: a session the server
        # still has a reply in flight for would be reset by its retransmission
        # once the link is back, an idle one lives on in the server.
        if outage == "mid-write":
            stop_inside_a_write(cut_off, server, db)
        else:
            cut_off.signal(signal.SIGSTOP)
            time.sleep(0.5)
        a.cut()
        cut_off.signal(signal.SIGCONT)
        # A's sessions (and its lock) may live on in the server: A is taken
        # for dead once its heartbeat is two seconds old.
        wait_for("the worker on B to take the job over",
                 lambda: owner_of(store, job_id) == other.id, explain=states)  # fmt: skip
        assert store.load_for_run(job_id).lease == lease_before + 1
        if outage != "brief":
            wait_for(f"host A's connections to port {server.port} to break",
                     lambda: not a.connections(server.port), explain=states)  # fmt: skip
        if held:
            hold.unlink()  # both runs may go on
        wait_for("the job to go on", lambda: done_items(fx) >= 300 or store.status(job_id).finished)
    finally:
        a.mend()
    # A's run goes on at its next read or write, which is refused: it gives
    # the job up, and the worker itself goes on.
    gave_up = f"gave up job {job_id}"
    wait_for("the worker on A to give the job up", lambda: cut_off.said(gave_up), explain=states)
    wait_for("the job to complete", lambda: store.status(job_id) is JobStatus.COMPLETED,
             explain=states)  # fmt: skip
    assert cut_off.proc.poll() is None
    last_claim = store.load_for_run(job_id).lease
    assert store.outcome(job_id)["output"] == {
        "count": n, "lease": last_claim, "pid": other.proc.pid
    }  # fmt: skip
    assert done_items(fx) == n
    # Resumed from a checkpoint (item 100 when held there) by B, and only
    # ever from a checkpoint: on a loaded machine a heartbeat may come late
    # and the job change hands again.
    starts = started_at(fx)
    assert starts[0] == 0
    assert starts[1] == 100 if held else starts[1] > 0
    assert all(at % 25 == 0 and at >= starts[1] for at in starts[1:])
    history = store.history(limit=None)
    assert [h.status for h in history if h.id == job_id] == [JobStatus.COMPLETED]
    # A is a live worker again, in everyone's eyes: its heartbeat is fresh.
    wait_for("the worker on A to be live again", lambda: cut_off.id in store.live_owners(),
             explain=states)  # fmt: skip
    # A and B share the jobs queued now, each running longer than the
    # staleness: none changes hands (A is not taken for dead), and A gives
    # nothing more up.
    log = str(tmp_path / "after.db")
    effect_log(log).close()
    later = [EffectJob(f"after{i}", log, steps=3, delay_s=1.0) for i in range(4)]
    after = [store.create_job("test.effect", job.to_state()) for job in later]
    wait_for("the jobs queued after", lambda: all(store.status(j).finished for j in after),
             explain=states)  # fmt: skip
    # Only the job taken from A changed hands.
    assert check_ended_once(store, dict.fromkeys([job_id, *after], JobStatus.COMPLETED)) == 1
    _, finals, attempts = read_effects(log)
    assert sorted(finals) == sorted(f"after{i}" for i in range(4))
    assert cut_off.proc.pid in {pid for _, pid in attempts}  # A ran some
    assert sum("gave up job" in line for line in cut_off.lines) == 1, cut_off.output()
    # Its run was interrupted by the store it lost, it did not fail.
    assert not cut_off.said("failed: JobStoreError"), cut_off.output()
    assert other.stop() == 0, other.output()
    assert cut_off.stop() == 0, cut_off.output()


#: More than twice as long as a store tries to reach a server that went
#: away (phasekit/jobs/postgres/_connect.py: RECONNECT_S, 30 s): the threads
#: of a worker waiting for its connection give up in turn.
LONG_STOP_S = 75.0


@pytest.mark.parametrize(
    "outage",
    [
        "restarts",
        "long-stop",
    ],
)
def test_workers_on_two_hosts_go_on_through_postgresql_restarts(
    outage: str,
    hosts: list[Host],
    server: PgServer,
    db: str,
    store: PostgresJobStore,
    workers: Workers,
    tmp_path: Path,
) -> None:
    """PostgreSQL restarted under four workers (two per host), then stopped
    for a few seconds and started again (``restarts``), or stopped for
    longer than a store waits for a server to come back (``long-stop``):
    the workers reconnect and go on, and every job ends once with its
    effects, none lost, none twice."""
    rng = random.Random(3)
    effects_db = str(tmp_path / "effects.db")
    effect_log(effects_db).close()
    keys: dict[str, str] = {}
    for i in range(200):
        job = EffectJob(f"e{i}", effects_db, steps=rng.randint(3, 6), delay_s=0.1)
        keys[store.create_job("test.effect", job.to_state())] = f"e{i}"
    options = ("--concurrency", "2", "--stale-after", "2")
    started = [workers.start(host, *options) for host in hosts for _ in range(2)]

    def completed() -> int:
        return sum(1 for r in store.list_jobs() if r.status is JobStatus.COMPLETED)

    def states() -> str:
        return f"{sessions(server, db)}\n{workers.output()}"

    wait_for("some jobs to complete", lambda: completed() >= 30, explain=states)
    if outage == "restarts":
        server.restart()
        wait_for("more jobs to complete", lambda: completed() >= 90, explain=states)
        server.stop()
        time.sleep(4)
        server.start()
    else:
        server.stop()
        time.sleep(LONG_STOP_S)  # nothing here reads the store meanwhile
        server.start()
    wait_for("every job to end", lambda: unfinished(store) == 0, 600, states)
    for worker in started:
        assert worker.proc.poll() is None, worker.output()  # went on
    ids = {w.id for w in started}
    wait_for("every worker to be live", lambda: ids <= set(store.live_owners()), explain=states)
    failures = {
        j: r.error for j in keys if (r := store.get_job(j)).status is not JobStatus.COMPLETED
    }
    assert not failures, failures
    # Nor did a run fail for the store's absence and its end happen to be
    # refused (its job resumed meanwhile): a run is interrupted by a store
    # that went away, it does not fail.
    for worker in started:
        assert not worker.said("failed: JobStoreError"), worker.output()
    check_ended_once(store, dict.fromkeys(keys, JobStatus.COMPLETED))
    steps, finals, _ = read_effects(effects_db)
    assert sorted(finals) == sorted(keys.values())  # each effect once (keyed), none lost
    for job_id, key in keys.items():
        assert steps[key] == store.outcome(job_id)["output"]["steps"], key
    for worker in started:
        assert worker.stop() == 0, worker.output()


def test_a_tree_indexed_with_postgresql_jobs_lists_as_with_sqlite(
    hosts: list[Host],
    server: PgServer,
    db: str,
    store: PostgresJobStore,
    nasty: tuple[Path, dict[str, bytes]],
    tmp_path: Path,
) -> None:
    """`phasekit --jobs URL index TREE` run on host A (its job in
    PostgreSQL, the catalogue in the library's library.db) lists the tree,
    non-UTF-8 names, a newline and a 255-byte name included, exactly as a
    plain SQLite library does."""
    from conftest import BAD_NAME, LONG_NAME, NEWLINE_NAME

    root, _ = nasty
    a = hosts[0]

    def phasekit(library: Path, *args: str, host: Host | None = None) -> bytes:
        argv = [sys.executable, "-m", "phasekit", "--library", str(library), *args]
        done = subprocess.run(
            host.argv(*argv) if host else argv, env=subprocess_env(), capture_output=True,
            timeout=WAIT_S, check=False,
        )  # fmt: skip
        assert done.returncode in (0, 1), done.stderr.decode(errors="replace")
        return done.stdout

    url = server.url(db, host=a.server_ip)
    in_postgres, in_sqlite = tmp_path / "pg-lib", tmp_path / "sqlite-lib"
    indexed = json.loads(phasekit(in_postgres, "--jobs", url, "index", str(root), "--json", host=a))
    plain = json.loads(phasekit(in_sqlite, "index", str(root), "--json"))
    assert not (in_postgres / "jobs.db").exists()  # its jobs are in PostgreSQL
    [ran] = store.history(limit=None)
    assert (ran.name, ran.status) == ("phasekit.index", JobStatus.COMPLETED)
    timing = {"job_id", "seconds"}
    assert {k: v for k, v in indexed.items() if k not in timing} == {
        k: v for k, v in plain.items() if k not in timing
    }
    listed = phasekit(in_postgres, "--jobs", url, "ls", str(root), "--json", host=a)
    rows = entries(listed)
    assert rows == entries(phasekit(in_sqlite, "ls", str(root), "--json"))
    for name in (BAD_NAME, NEWLINE_NAME.encode(), LONG_NAME.encode()):
        assert os.fsencode(root) + b"/" + name in rows


def entries(listing: bytes) -> dict[bytes, dict[str, object]]:
    """The lines of ``ls --json`` by path (bytes), each with its parent's
    path instead of the ids, which the walk's threads number in the order
    they happen to come."""
    rows = [json.loads(line) for line in listing.splitlines()]
    paths = {row["id"]: os.fsencode(row["path"]) for row in rows}
    found = {}
    for row in rows:
        parent = row.pop("parent_id")
        row["parent"] = None if parent is None else paths[parent]
        del row["id"]
        found[os.fsencode(row["path"])] = row
    assert len(found) == len(rows)
    return found
