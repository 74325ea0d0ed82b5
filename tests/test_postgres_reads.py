"""Reading a library kept in PostgreSQL as an application does: a location
listed page by page reads each of its rows once (the planner kept to the
primary key, not scanning and sorting the rest of the table for every
page), ``phasekit ls`` neither loads the job store's client nor names
anything but the database in its errors, and a tree indexed again after
changes (its stored rows read a level of folders at a time) lists as in a
folder library."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psycopg

from jobs_fixture import subprocess_env
from phasekit.indexing import IndexJob
from phasekit.library import Library

BAD = b"\xff-not-utf8"


def _tree(root: Path, files: int) -> Path:
    tree = root / "tree"
    raw = os.fsencode(tree)
    for i in range(files):
        folder = raw + b"/d%02d" % (i % 30) + (BAD if i % 30 == 7 else b"")
        os.makedirs(folder, exist_ok=True)
        with open(folder + b"/f%04d\nx" % i, "wb") as f:
            f.write(b"x")
    return tree


def _rows_read(url: str) -> int:
    """Rows the server read from ``entries`` so far (by scans and indexes)."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT COALESCE(seq_tup_read, 0) + COALESCE(idx_tup_fetch, 0)"
            " FROM pg_stat_user_tables WHERE relname = 'entries'"
        ).fetchone()
    assert row is not None
    return int(row[0])


def _settled(url: str, before: int) -> int:
    """The count once a closed session's statistics reached the server
    (a backend sends them as it exits): changed from ``before``, then
    steady."""
    last = before
    for _ in range(200):
        now = _rows_read(url)
        if now != before and now == last:
            return now
        last = now
        time.sleep(0.05)
    raise AssertionError(f"the server's statistics did not settle ({before} -> {last})")


def test_a_location_listed_page_by_page_reads_each_row_once(tmp_path: Path, pg_url: str) -> None:
    tree = _tree(tmp_path, 3000)
    files = tmp_path / "files"
    with Library.open(pg_url, files=files) as library:
        location = library.add_location(tree, mode="shallow")
        library.index(location)
        count = library.entry_count(location)
    assert count == 3030  # the files and 30 folders (one of them not UTF-8)
    before = _settled(pg_url, -1)
    with Library.open(pg_url, files=files) as library:
        lines = b"".join(library.entries_lines(location, page=50)).splitlines()
        listed = list(library.entries(location, page=50))
    assert len(lines) == len(listed) == count
    assert any(BAD in os.fsencode(e.path) for e in listed)
    read = _settled(pg_url, before) - before
    # Two listings of 61 pages: each row read once (6,060 here). Pages that
    # scanned and sorted the rest of the table read 20,960.
    assert read <= 2 * count * 1.2, read


def test_ls_of_a_database_library_leaves_the_job_stores_client_unloaded(
    tmp_path: Path, pg_url: str
) -> None:
    tree = _tree(tmp_path, 40)
    files = str(tmp_path / "files")
    with Library.open(pg_url, files=files) as library:
        library.index(library.add_location(tree, mode="shallow"))
    script = (
        "import sys; from phasekit.cli import main\n"
        f"code = main(['--library', {pg_url!r}, '--files', {files!r}, 'ls', {str(tree)!r}])\n"
        "assert code == 0, code\n"
        "print('psycopg' in sys.modules, file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], env=subprocess_env(), capture_output=True, check=False
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    assert done.stderr.strip().splitlines()[-1] == b"False"
    assert done.stdout.count(b"\n") >= 40 + 30


def test_ls_of_a_path_that_is_no_location_names_the_database_without_its_password(
    tmp_path: Path, pg_url: str
) -> None:
    base, _, name = pg_url.rpartition("/")
    scheme, _, rest = base.partition("://")
    user, _, host = rest.partition("@")
    with_password = f"{scheme}://{user}:s3cret-word@{host}/{name}"
    done = subprocess.run(
        [sys.executable, "-m", "phasekit", "--library", with_password,
         "--files", str(tmp_path / "files"), "ls", str(tmp_path)],
        env=subprocess_env(), capture_output=True, check=False,
    )  # fmt: skip
    message = done.stderr.decode(errors="replace")
    assert done.returncode != 0
    assert f"is not a location of postgresql://{user}@" in message, message
    assert name in message, message
    assert "s3cret-word" not in message, message


def _listing(library: str, files: str | None, tree: Path) -> list[tuple[object, ...]]:
    where = ["--library", library] + (["--files", files] if files else [])
    done = subprocess.run(
        [sys.executable, "-m", "phasekit", *where, "ls", str(tree), "--json"],
        env=subprocess_env(), capture_output=True, check=True,
    )  # fmt: skip
    keys = ("path", "kind", "size", "cas_id", "agg_size", "file_count")
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    return sorted(tuple(row[k] for k in keys) for row in rows)


def test_a_changed_tree_indexed_again_lists_as_in_sqlite(tmp_path: Path, pg_url: str) -> None:
    # Re-indexing reads the stored rows of a batch's folders a level at a
    # time (the folders met in the same batch included): new, changed,
    # moved and removed entries, and a folder become a file, must come out
    # as library.db has them.
    tree = _tree(tmp_path, 600)
    raw = os.fsencode(tree)
    stores = {str(tmp_path / "folder-library"): None, pg_url: str(tmp_path / "files")}
    for library, files in stores.items():
        with Library.open(library, files=files) as lib:
            lib.run(IndexJob(lib.add_location(tree, mode="content").id))
    os.remove(raw + b"/d03/f0003\nx")
    with open(raw + b"/d04/f0004\nx", "ab") as f:
        f.write(b"grown")
    os.rename(raw + b"/d05/f0005\nx", raw + b"/d06/f0005-moved")
    os.makedirs(raw + b"/new\xfe/deeper")
    for i in range(30):
        with open(raw + b"/new\xfe/deeper/n%02d" % i, "wb") as f:
            f.write(b"%d" % i)
    shutil.rmtree(raw + b"/d09")
    with open(raw + b"/d09", "wb") as f:
        f.write(b"a file now")
    for library, files in stores.items():
        with Library.open(library, files=files) as lib:
            run = lib.run(IndexJob(lib.location(tree).id))
            assert run.status.value == "completed", run.error
    listed = [_listing(library, files, tree) for library, files in stores.items()]
    assert listed[0] == listed[1]
    paths = {row[0] for row in listed[0]}
    assert os.fsdecode(raw + b"/new\xfe/deeper/n07") in paths
    assert os.fsdecode(raw + b"/d06/f0005-moved") in paths
    assert os.fsdecode(raw + b"/d03/f0003\nx") not in paths
