"""A library kept in PostgreSQL (``Library.open("postgresql://...")``,
``phasekit --library URL``): what an application sees is what it sees of a
folder library. The same nasty tree (non-UTF-8 names first, last and in the
middle, a newline, a 255-byte name) indexed into both lists the same, finds
the same duplicates and validates the same, through the command line in
separate processes; the index's jobs are in the same database.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from jobs_fixture import subprocess_env
from phasekit.library import Library

BAD_FIRST = b"\x80first-not-utf8.bin"
BAD_LAST = b"zz-last-\xff.bin"


def nasty_tree(root: Path) -> Path:
    """Files and folders whose names are every hard case, with duplicates."""
    tree = root / "tree"
    (tree / "sub" / "deeper").mkdir(parents=True)
    raw = os.fsencode(tree)
    with open(raw + b"/" + BAD_FIRST, "wb") as f:
        f.write(b"same content " * 400)
    with open(raw + b"/sub/mid-\xfe\xfd.dat", "wb") as f:
        f.write(b"same content " * 400)
    (tree / "sub" / "new\nline.txt").write_bytes(b"other content")
    (tree / "sub" / ("n" * 251 + ".txt")).write_bytes(b"long name " * 50)
    for i in range(40):
        (tree / "sub" / "deeper" / f"f{i:02}.bin").write_bytes(os.urandom(100 + i * 97))
    (tree / "sub" / "deeper" / "copy-of-f03.bin").write_bytes(
        (tree / "sub" / "deeper" / "f03.bin").read_bytes()
    )
    (tree / "empty.txt").write_bytes(b"")
    with open(raw + b"/" + BAD_LAST, "wb") as f:
        f.write(b"last")
    return tree


def phasekit(library: str, *args: str | os.PathLike[str], env: dict[str, str] | None = None) -> Any:
    """Run the command line in another process; its stdout as bytes."""
    done = subprocess.run(
        [sys.executable, "-m", "phasekit", "--library", library, *map(os.fsdecode, args)],
        env=env or subprocess_env(),
        capture_output=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return done.stdout


def lines(output: bytes, drop: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in output.splitlines() if line.strip()]
    return [{k: v for k, v in row.items() if k not in drop} for row in rows]


def test_a_tree_indexed_into_postgresql_lists_finds_and_validates_as_in_sqlite(
    tmp_path: Path, pg_url: str
) -> None:
    tree = nasty_tree(tmp_path)
    folder = str(tmp_path / "sqlite-library")
    files = ("--files", str(tmp_path / "pg-files"))  # the database library's files
    stores = {folder: (), pg_url: files}
    for library, extra in stores.items():
        phasekit(library, *extra, "index", tree, "--mode", "content")
    listed = [lines(phasekit(lib, *extra, "ls", tree, "--json")) for lib, extra in stores.items()]
    assert listed[0] == listed[1]
    paths = {row["path"] for row in listed[0]}
    assert os.fsdecode(os.fsencode(tree) + b"/" + BAD_FIRST) in paths
    assert os.fsdecode(os.fsencode(tree) + b"/" + BAD_LAST) in paths
    assert str(tree / "sub" / "new\nline.txt") in paths
    dupes = [lines(phasekit(lib, *extra, "dupes", tree, "--json")) for lib, extra in stores.items()]
    assert dupes[0] == dupes[1]
    assert len(dupes[0]) >= 2  # the two groups of the tree
    checked = [
        lines(
            phasekit(lib, *extra, "validate", tree, "--json"),
            drop=("job_id", "run_id", "seconds"),
        )
        for lib, extra in stores.items()
    ]
    assert checked[0] == checked[1]
    history = lines(phasekit(pg_url, *files, "jobs", "history", "--json"))
    assert {row["name"] for row in history} >= {"phasekit.index"}
    assert (tmp_path / "pg-files").is_dir()
    assert not (tmp_path / "pg-files" / "jobs.db").exists()
    assert not (tmp_path / "pg-files" / "library.db").exists()


def test_a_postgresql_library_opens_with_its_files_apart(tmp_path: Path, pg_url: str) -> None:
    with Library.open(pg_url, files=tmp_path / "files") as library:
        assert library.database == pg_url
        assert library.path == tmp_path / "files"
        location = library.add_location(tmp_path)
        assert [loc.id for loc in library.locations()] == [location.id]
        assert repr(library).startswith("Library('postgresql://phasekit@")
    with Library.open(pg_url, files=tmp_path / "files") as again:
        assert [loc.path for loc in again.locations()] == [str(tmp_path)]


def test_an_unreachable_database_is_a_clear_error(tmp_path: Path) -> None:
    from phasekit.errors import LibraryError

    url = "postgresql://nobody:secret@127.0.0.1:1/none"
    with pytest.raises(LibraryError) as caught:
        Library.open(url, files=tmp_path / "files")
    assert "secret" not in str(caught.value)


def test_an_index_commits_its_steps_without_waiting_for_the_disk_and_a_scan_waits_by_default(
    tmp_path: Path, pg_server: str, pg_url: str
) -> None:
    """An index commits its scan's steps without waiting for the server's
    disk, its jobs in the library's database or elsewhere (it flushes the
    steps before each checkpoint: rust/core/tests/postgres.rs has a flush
    refused past a lost session); a scan through the API waits at every
    step unless told not to, and then flushes on demand. A statement
    trigger records the commit mode of every insert into ``entries``."""
    import psycopg

    from pg_server import new_database

    tree = nasty_tree(tmp_path)
    files = ("--files", str(tmp_path / "pg-files"))
    with Library.open(pg_url, files=tmp_path / "pg-files"):
        pass  # the schema, for the trigger
    with psycopg.connect(pg_url, autocommit=True) as conn:
        # The tests' server waits for no disk at all (tests/pg_server.py):
        # this database does, as a server does by default.
        conn.execute(f'ALTER DATABASE "{pg_url.rpartition("/")[2]}" SET synchronous_commit = on')
        conn.execute("CREATE TABLE commit_modes (mode TEXT)")
        conn.execute(
            "CREATE FUNCTION note_commit_mode() RETURNS trigger LANGUAGE plpgsql AS $$"
            " BEGIN INSERT INTO commit_modes"
            " VALUES (current_setting('synchronous_commit')); RETURN NULL; END $$"
        )
        conn.execute(
            "CREATE TRIGGER note_commit_mode AFTER INSERT ON entries"
            " FOR EACH STATEMENT EXECUTE FUNCTION note_commit_mode()"
        )

    def modes() -> list[str]:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            found = [r[0] for r in conn.execute("SELECT mode FROM commit_modes").fetchall()]
            conn.execute("DELETE FROM commit_modes")
        return found

    phasekit(pg_url, *files, "index", tree / "sub", "--mode", "shallow")
    assert set(modes()) == {"off"}

    jobs = new_database(pg_server)
    trees = []
    for name in ("two", "three", "four"):
        (tmp_path / name).mkdir()
        trees.append(nasty_tree(tmp_path / name))
    phasekit(pg_url, *files, "--jobs", jobs, "index", trees[0], "--mode", "shallow")
    assert set(modes()) == {"off"}

    with Library.open(pg_url, files=tmp_path / "pg-files") as library:
        location = library.add_location(trees[1], mode="shallow")
        with library.scan(location) as scan:
            for _ in scan:
                scan.flush()  # nothing to flush: every step waited
        assert set(modes()) == {"on"}
        location = library.add_location(trees[2], mode="shallow")
        with library.scan(location, durable_steps=False, batch_size=5) as scan:
            for _ in scan:
                scan.flush()
            scan.sweep()
        assert set(modes()) == {"off"}
        assert len(list(library.entries(location))) == len(list(library.entries(trees[1])))
    listed = lines(phasekit(pg_url, *files, "ls", tree / "sub", "--json"))
    assert str(tree / "sub" / "new\nline.txt") in {row["path"] for row in listed}


@pytest.mark.parametrize("attempt", range(3))
def test_an_index_cut_by_a_postgresql_crash_resumes_to_the_entries_of_a_clean_one(
    tmp_path: Path, attempt: int
) -> None:
    """PostgreSQL stopped at once (``-m immediate``: no shutdown, what its
    log had not written is lost, as in a crash) while an index writes: the
    command says the job was interrupted, not failed; once the server is
    back, ``phasekit resume`` ends it, and the location lists exactly as a
    clean index of the same tree into a folder library: nothing lost (a
    step committed without waiting for the disk is never behind a kept
    checkpoint), nothing twice. The index process is held (SIGSTOP) while
    the server goes down and comes back, so the crash lands mid-walk.
    Run several times: the process may be held in any of the index's
    writes or its checkpoints'."""
    import signal
    import tempfile
    import time

    import psycopg

    from pg_server import PgServer

    tree = nasty_tree(tmp_path)
    for d in range(40):  # enough to be cut mid-walk: 40 folders of 250 files
        folder = tree / "bulk" / f"d{d:02}"
        folder.mkdir(parents=True)
        for i in range(250):
            (folder / f"f{i:03}.bin").write_bytes(b"%d-%d" % (d, i))
    # Its own cluster (this test stops it), where its server user can reach.
    server = PgServer(Path(tempfile.mkdtemp(prefix="phasekit-pg-crash-")))
    try:
        from pg_server import new_database

        url = new_database(server.url())
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'ALTER DATABASE "{url.rpartition("/")[2]}" SET synchronous_commit = on')
        files = ("--files", str(tmp_path / "pg-files"))
        index = subprocess.Popen(
            [sys.executable, "-m", "phasekit", "--library", url, *files, "index", str(tree),
             "--mode", "shallow", "--batch-size", "50", "--checkpoint-every", "0.001"],
            env=subprocess_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )  # fmt: skip
        written = 0
        with psycopg.connect(url, autocommit=True) as conn:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and index.poll() is None:
                try:
                    written = conn.execute("SELECT count(*) FROM entries").fetchone()[0]
                except psycopg.errors.UndefinedTable:
                    written = 0
                if written > 0:
                    break
                time.sleep(0.005)
        assert written > 0, index.communicate()
        index.send_signal(signal.SIGSTOP)
        server.stop("immediate")
        server.start()
        index.send_signal(signal.SIGCONT)
        out, err = index.communicate(timeout=300)
        assert index.returncode != 0, out  # interrupted, not ended
        # Cut in a write of the library (the job queued again) or of its
        # job store (the job left to resume): interrupted either way.
        assert b"phasekit resume" in err, err
        assert b"failed" not in err, err
        phasekit(url, *files, "resume")
        folder_lib = str(tmp_path / "folder-library")
        phasekit(folder_lib, "index", tree, "--mode", "shallow")
        resumed = lines(phasekit(url, *files, "ls", tree, "--json"))
        clean = lines(phasekit(folder_lib, "ls", tree, "--json"))
        assert len(resumed) == len({row["path"] for row in resumed})  # nothing twice
        # Ids differ (the resumed walk gave its own): the rest is the same,
        # and every entry's parent is the entry of its folder.
        by_path = {row["path"]: row for row in resumed}
        by_id = {row["id"]: row["path"] for row in resumed}
        for row in resumed:
            parent = os.path.dirname(row["path"])  # None: the location's root
            assert by_id.get(row["parent_id"], str(tree)) == parent, row
        assert {p: _without_ids(r) for p, r in by_path.items()} == {
            r["path"]: _without_ids(r) for r in clean
        }  # nothing lost
        assert len(clean) > 10_000
    finally:
        server.close()


def _without_ids(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in ("id", "parent_id")}


def test_a_library_and_its_worker_go_on_after_postgresql_restarts(tmp_path: Path) -> None:
    """A library open in this process and a ``phasekit worker`` in another,
    both idle while PostgreSQL restarts: the library's reads go on at once
    (a read meeting the ended session runs again on a new one), and an
    index queued after the restart completes on the worker (its first run
    may be interrupted by the ended session, never failed)."""
    import tempfile
    import time

    from pg_server import PgServer, new_database
    from phasekit.indexing import IndexJob
    from phasekit.jobs import JobStatus
    from phasekit.jobs.postgres import PostgresJobStore

    server = PgServer(Path(tempfile.mkdtemp(prefix="phasekit-pg-restart-")))
    worker = None
    try:
        url = new_database(server.url())
        files = tmp_path / "pg-files"
        (tmp_path / "one").mkdir()
        (tmp_path / "two").mkdir()
        first, second = nasty_tree(tmp_path / "one"), nasty_tree(tmp_path / "two")
        worker = subprocess.Popen(
            [sys.executable, "-m", "phasekit", "--library", url, "--files", str(files), "worker"],
            env=subprocess_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )

        def finish(library: Library, tree: Path) -> JobStatus:
            location = library.add_location(tree, mode="content")
            job_id = library.submit(IndexJob(location.id)).job_ids[0]
            with PostgresJobStore(url) as store:
                deadline = time.monotonic() + 120
                while time.monotonic() < deadline:
                    status = store.status(job_id)
                    if status.finished:
                        return status
                    time.sleep(0.05)
            raise AssertionError(f"the index of {tree} did not end: {status}")

        with Library.open(url, files=files) as library:
            assert finish(library, first) is JobStatus.COMPLETED
            listed = [e.path for e in library.entries(library.location(first))]
            server.restart()
            assert [loc.path for loc in library.locations()] == [str(first)]
            assert [e.path for e in library.entries(library.location(first))] == listed
            assert finish(library, second) is JobStatus.COMPLETED
            assert len(list(library.entries(library.location(second)))) == len(listed)
        assert worker.poll() is None  # went on
    finally:
        if worker is not None:
            worker.terminate()
            _, err = worker.communicate(timeout=60)
            assert b"failed" not in err, err
        server.close()


def test_the_library_sessions_notice_a_cut_link_in_seconds(tmp_path: Path, pg_url: str) -> None:
    """The library's sessions ask the server for TCP keepalives every few
    seconds (as the job store's do): a host cut off inside a write would
    otherwise hold the location's row lock in the server for the kernel's
    two hours, and the worker that took its job over would wait as long. A
    trigger records the settings of the session that adds a location."""
    import psycopg

    with Library.open(pg_url, files=tmp_path / "files"):
        pass  # the schema, for the trigger
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE seen_settings (name TEXT, value TEXT)")
        conn.execute(
            "CREATE FUNCTION note_settings() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
            " INSERT INTO seen_settings SELECT name, setting FROM pg_settings WHERE name IN"
            " ('tcp_keepalives_idle', 'tcp_keepalives_interval', 'tcp_keepalives_count',"
            " 'tcp_user_timeout'); RETURN NULL; END $$"
        )
        conn.execute(
            "CREATE TRIGGER note_settings AFTER INSERT ON locations"
            " FOR EACH STATEMENT EXECUTE FUNCTION note_settings()"
        )
    with Library.open(pg_url, files=tmp_path / "files") as library:
        library.add_location(tmp_path)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        seen = dict(conn.execute("SELECT name, value FROM seen_settings").fetchall())
    assert seen == {
        "tcp_keepalives_idle": "5",
        "tcp_keepalives_interval": "2",
        "tcp_keepalives_count": "3",
        "tcp_user_timeout": "10000",
    }


def test_libpq_environment_takes_the_library_where_it_takes_the_jobs(
    tmp_path: Path, pg_url: str
) -> None:
    """A URL without a port (or host, user, database) is completed from the
    environment as libpq completes it, for the library's entries (made in
    Rust, without libpq) as for its jobs (psycopg, through libpq): with
    ``PGPORT`` and ``PGDATABASE`` set, both reach the same database."""
    import re

    match = re.fullmatch(r"postgresql://([^@]+)@([^:/]+):(\d+)/(.+)", pg_url)
    assert match, pg_url
    user, host, port, dbname = match.groups()
    bare = f"postgresql://{user}@{host}"
    env = {**subprocess_env(), "PGPORT": port, "PGDATABASE": dbname}
    tree = nasty_tree(tmp_path)
    files = ("--files", str(tmp_path / "pg-files"))
    phasekit(bare, *files, "index", tree, "--mode", "shallow", env=env)
    with Library.open(pg_url, files=tmp_path / "pg-files") as library:
        assert [loc.path for loc in library.locations()] == [str(tree)]
    listed = lines(phasekit(bare, *files, "ls", tree, "--json", env=env))
    assert str(tree / "sub" / "new\nline.txt") in {row["path"] for row in listed}
    jobs = phasekit(pg_url, *files, "jobs", "--all").decode()
    assert "phasekit.index" in jobs, jobs
    assert "completed" in jobs, jobs


def test_a_secure_connection_asked_for_by_the_environment_is_refused_not_skipped(
    tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``PGSSLMODE=require`` makes libpq (the jobs) refuse a connection
    without TLS; the library's connections have no TLS, so they refuse too,
    saying why, rather than send a password in the clear."""
    from phasekit.errors import InvalidInputError

    monkeypatch.setenv("PGSSLMODE", "require")
    with pytest.raises(InvalidInputError, match="PGSSLMODE=require"):
        Library.open(pg_url, files=tmp_path / "files")
    with Library.open(pg_url + "?sslmode=disable", files=tmp_path / "files") as library:
        assert library.locations() == []  # the URL's own word stands
