"""A library in PostgreSQL indexed by workers on two hosts (network
namespaces: see tests/test_postgres_hosts.py, whose hosts and server this
module uses): a host cut off inside one of the index's writes, holding the
location's row lock in the server, has its job taken over by the other
host, which goes on once the server has given the cut-off session up
(seconds, by the library's keepalives), and the index ends as a clean one.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jobs_fixture import subprocess_env
from pg_server import PgServer
from phasekit.indexing import IndexJob
from phasekit.jobs import JobStatus
from phasekit.jobs.postgres import PostgresJobStore
from phasekit.library import Library
from test_postgres_hosts import (  # noqa: F401  (fixtures)
    Host,
    hosts,
    server,
    sessions,
    stop_inside_a_write,
    wait_for,
)
from worker_procs import WorkerProcess, owner_of

FILES = 60_000  # a walk long enough to be caught inside one of its writes


class LibraryWorker(WorkerProcess):
    """`phasekit worker` on ``host`` over the library in PostgreSQL (its
    jobs in the same database)."""

    def __init__(self, host: Host, url: str, files: Path, log: Path) -> None:
        self.host = host
        argv = host.argv(
            sys.executable, "-m", "phasekit", "--library", url, "--files", str(files),
            "worker", "--maintenance-every", "0", "--concurrency", "1", "--stale-after", "2",
        )  # fmt: skip
        super().__init__(argv, f"a worker to start on host {host.label}", log)

    def output(self) -> str:
        return f"worker {self.id} on host {self.host.label}:\n{''.join(self.lines[-40:])}"


@pytest.fixture
def workers() -> Iterator[list[LibraryWorker]]:
    started: list[LibraryWorker] = []
    try:
        yield started
    finally:
        for worker in started:
            worker.close()


def big_tree(root: Path) -> Path:
    """FILES files in 120 folders, non-UTF-8 names first and last."""
    tree = root / "tree"
    raw = os.fsencode(tree)
    for d in range(120):
        folder = tree / f"d{d:03}"
        folder.mkdir(parents=True)
        for i in range(FILES // 120):
            (folder / f"f{i:04}.bin").write_bytes(b"%d" % i)
    with open(raw + b"/\x80first.bin", "wb") as f:
        f.write(b"first")
    with open(raw + b"/d060/new\nline-\xff.bin", "wb") as f:
        f.write(b"mid")
    return tree


def ls(library: str, tree: Path, files: Path) -> list[dict[str, Any]]:
    done = subprocess.run(
        [sys.executable, "-m", "phasekit", "--library", library, "--files", str(files), "ls",
         str(tree), "--json"],
        env=subprocess_env(), capture_output=True, check=True,
    )  # fmt: skip
    return [json.loads(line) for line in done.stdout.splitlines()]


#: The library session of a worker (by its host's address) inside a
#: transaction: a scan step, the location's row locked in the server.
LIBRARY_WRITE = (
    "SELECT pid FROM pg_stat_activity WHERE client_addr = %s"
    " AND application_name = 'phasekit library' AND xact_start IS NOT NULL"
)


def test_a_host_cut_off_inside_an_index_write_is_taken_over_and_the_index_ends_whole(
    hosts: list[Host],  # noqa: F811
    server: PgServer,  # noqa: F811
    workers: list[LibraryWorker],
    tmp_path: Path,
) -> None:
    a, b = hosts
    url = server.create_database()
    dbname = url.rpartition("/")[2]
    files = tmp_path / "library-files"
    tree = big_tree(tmp_path)
    with Library.open(url, files=files) as library:
        location = library.add_location(tree, mode="shallow")
        job_id = library.submit(IndexJob(location.id)).job_ids[0]
    cut_off = LibraryWorker(a, server.url(dbname, host=a.server_ip), files, tmp_path / "a.log")
    workers.append(cut_off)

    def states() -> str:
        return f"{sessions(server, dbname)}\n" + "\n".join(w.output() for w in workers)

    with PostgresJobStore(url) as store:
        wait_for("the worker on A to run the index", lambda: owner_of(store, job_id) == cut_off.id)
        stop_inside_a_write(cut_off, server, dbname, LIBRARY_WRITE)
        other = LibraryWorker(b, server.url(dbname, host=b.server_ip), files, tmp_path / "b.log")
        workers.append(other)
        try:
            a.cut()
            cut_off.signal(signal.SIGCONT)
            wait_for("the worker on B to take the index over",
                     lambda: owner_of(store, job_id) == other.id, explain=states)  # fmt: skip
            # B waits for the location's row, held by A's session until the
            # server gives that session up.
            completed = lambda: store.status(job_id) is JobStatus.COMPLETED  # noqa: E731
            wait_for("the index to complete", completed, explain=states)
        finally:
            a.mend()
    clean = str(tmp_path / "folder-library")
    with Library.open(clean) as folder:
        folder.index(folder.add_location(tree, mode="shallow"))
    indexed, expected = ls(url, tree, files), ls(clean, tree, files)
    assert len(indexed) == len({row["path"] for row in indexed})  # nothing twice
    by_id = {row["id"]: row["path"] for row in indexed}
    for row in indexed:  # every entry under the entry of its folder
        assert by_id.get(row["parent_id"], str(tree)) == os.path.dirname(row["path"]), row
    drop = ("id", "parent_id")
    assert {r["path"]: {k: v for k, v in r.items() if k not in drop} for r in indexed} == {
        r["path"]: {k: v for k, v in r.items() if k not in drop} for r in expected
    }  # nothing lost
    assert len(expected) == FILES + 120 + 2
