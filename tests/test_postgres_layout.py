"""The tables a library in PostgreSQL makes as it opens: its own, and the job
store's when the jobs share its database (made by the library's connection
while psycopg loads; the job store then finds them current), and the room
left in the entries' pages for updates that need no new index entries (a
storage setting: the layout's version stays)."""

from __future__ import annotations

from pathlib import Path

import psycopg

from pg_server import new_database
from phasekit.indexing import IndexJob
from phasekit.jobs.postgres import SCHEMA_VERSION as JOBS_SCHEMA_VERSION
from phasekit.library import Library


def _scalar(url: str, sql: str) -> object:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(sql).fetchone()
    return None if row is None else row[0]


def test_a_new_database_has_the_job_stores_tables_once_the_library_is_open(
    tmp_path: Path, pg_url: str
) -> None:
    with Library.open(pg_url, files=tmp_path / "files") as library:
        # No job store opened yet: the library's own connection made them.
        assert _scalar(pg_url, "SELECT version FROM phasekit_jobs_schema") == (JOBS_SCHEMA_VERSION)
        assert _scalar(pg_url, "SELECT to_regclass('jobs') IS NOT NULL") is True
        written = _scalar(pg_url, "SELECT xmin::text FROM phasekit_jobs_schema")
        tree = tmp_path / "tree"
        tree.mkdir()
        (tree / "a.txt").write_bytes(b"a")
        location = library.add_location(tree, mode="shallow")
        run = library.run(IndexJob(location.id))
        assert run.status.value == "completed"
        # The job store found the layout current: the version row is the
        # one the library wrote (a migration rewrites it).
        assert _scalar(pg_url, "SELECT xmin::text FROM phasekit_jobs_schema") == written


def test_jobs_in_another_database_leave_the_librarys_without_job_tables(
    tmp_path: Path, pg_url: str, pg_server: str
) -> None:
    jobs_url = new_database(pg_server)
    with Library.open(pg_url, jobs=jobs_url, files=tmp_path / "files"):
        pass
    assert _scalar(pg_url, "SELECT to_regclass('phasekit_jobs_schema') IS NULL") is True
    assert _scalar(pg_url, "SELECT to_regclass('entries') IS NOT NULL") is True


def test_the_entries_pages_keep_room_for_updates_beside_their_rows(
    tmp_path: Path, pg_url: str
) -> None:
    with Library.open(pg_url, files=tmp_path / "files"):
        pass
    options = _scalar(pg_url, "SELECT reloptions FROM pg_class WHERE relname = 'entries'")
    assert options == ["fillfactor=95"]
    # A storage setting, not a new layout: workers of an older phasekit
    # sharing the database still open it.
    assert _scalar(pg_url, "SELECT max(version) FROM phasekit_library_schema") == 1
