"""A careful pure-Python indexer: the twin of the indexer job.

``os.walk`` + ``os.lstat``, rows written with ``sqlite3.executemany`` in
batches of 1,000, one transaction each, into a WAL database with the same
tables and indices as library.db (``entries`` with its (location, parent,
name) key; ``content_identities`` and ``entry_content``, filled in cas_id
order after the walk), cas_ids from the ``blake3`` package. It is the test
oracle (what an index must contain) and the benchmark baseline. It writes
its own file, never a phasekit library.db (docs/ARCHITECTURE.md, invariant 7: one
SQLite library per database file).
"""

from __future__ import annotations

import os
import sqlite3
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass

from ._content import cas_id as reference_cas_id

BATCH = 1000

SCHEMA = """
CREATE TABLE IF NOT EXISTS content_identities (
    cas_id TEXT PRIMARY KEY, size INTEGER NOT NULL, first_seen REAL NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS entry_content (
    cas_id TEXT NOT NULL, entry_id INTEGER NOT NULL,
    PRIMARY KEY (cas_id, entry_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS entries (
    id INTEGER PRIMARY KEY, location_id INTEGER NOT NULL, path BLOB NOT NULL,
    parent_id INTEGER NOT NULL, name BLOB NOT NULL, extension TEXT, kind INTEGER NOT NULL,
    size INTEGER NOT NULL, agg_size INTEGER, file_count INTEGER,
    mtime_ns INTEGER NOT NULL, ctime_ns INTEGER NOT NULL, inode INTEGER NOT NULL,
    device INTEGER NOT NULL, mode INTEGER NOT NULL, cas_id TEXT, checksum TEXT,
    indexed_at REAL NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS entries_name ON entries(location_id, parent_id, name);
"""


@dataclass(frozen=True, slots=True)
class IndexedEntry:
    """What an index holds for one entry, in the form tests compare."""

    kind: str
    size: int
    mtime_ns: int
    inode: int
    cas_id: str | None


def _kind(mode: int) -> tuple[int, str]:
    if stat.S_ISREG(mode):
        return 0, "file"
    if stat.S_ISDIR(mode):
        return 1, "dir"
    if stat.S_ISLNK(mode):
        return 2, "symlink"
    return 3, "other"


def _entries(root: bytes, cas_ids: bool) -> Iterator[tuple[bytes, os.stat_result, str | None]]:
    """Every entry under ``root`` (not the root itself), lstat-ed, with its
    cas_id when asked (regular, non-empty files; None if unreadable)."""
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            cas = None
            if cas_ids and stat.S_ISREG(st.st_mode) and st.st_size > 0:
                try:
                    cas = reference_cas_id(path)
                except OSError:
                    cas = None
            yield path, st, cas


def scan_tree(root: str | bytes, *, cas_ids: bool = False) -> dict[str, IndexedEntry]:
    """What a complete index of ``root`` holds, by absolute ``os.fsdecode`` path."""
    out = {}
    for path, st, cas in _entries(os.fsencode(root), cas_ids):
        out[os.fsdecode(path)] = IndexedEntry(
            _kind(st.st_mode)[1], st.st_size, st.st_mtime_ns, st.st_ino, cas
        )
    return out


def index_into_sqlite(root: str | bytes, db_path: str, *, cas_ids: bool = False) -> int:
    """Index ``root`` into a fresh SQLite file at ``db_path`` the careful
    pure-Python way; returns the number of entries written."""
    root_b = os.fsencode(os.path.abspath(os.fsdecode(root)))
    prefix = root_b.rstrip(b"/") + b"/"
    conn = sqlite3.connect(db_path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.executescript(SCHEMA)
        now = time.time()
        # Ids are assigned here (INTEGER PRIMARY KEY), so a directory's id is
        # known before its children are written, without reading it back.
        dir_ids: dict[bytes, int] = {}
        rows: list[tuple[object, ...]] = []
        written = 0

        def flush() -> None:
            conn.execute("BEGIN")
            conn.executemany(
                "INSERT INTO entries (id, location_id, path, parent_id, name, extension, kind,"
                " size, mtime_ns, ctime_ns, inode, device, mode, cas_id, indexed_at)"
                " VALUES (?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            conn.execute("COMMIT")
            rows.clear()

        for path, st, cas in _entries(root_b, cas_ids):
            written += 1
            rel = path[len(prefix) :]
            cut = rel.rfind(b"/")
            parent = dir_ids[rel[:cut]] if cut >= 0 else 0
            name = rel[cut + 1 :]
            kind = _kind(st.st_mode)[0]
            dot = name.rfind(b".")
            ext = (
                name[dot + 1 :].decode("utf-8", "replace").lower()
                if kind == 0 and 0 < dot < len(name) - 1
                else None
            )
            rows.append((written, rel, parent, name, ext, kind, st.st_size, st.st_mtime_ns,
                         st.st_ctime_ns, st.st_ino, st.st_dev, st.st_mode, cas, now))  # fmt: skip
            if kind == 1:
                dir_ids[rel] = written
            if len(rows) >= BATCH:
                flush()
        if rows:
            flush()
        if cas_ids:
            conn.execute("BEGIN")
            conn.execute(
                "INSERT OR IGNORE INTO content_identities (cas_id, size, first_seen)"
                " SELECT cas_id, MIN(size), ? FROM entries WHERE cas_id IS NOT NULL"
                " GROUP BY cas_id",
                (now,),
            )
            conn.execute(
                "INSERT OR IGNORE INTO entry_content (cas_id, entry_id)"
                " SELECT cas_id, id FROM entries WHERE cas_id IS NOT NULL ORDER BY cas_id, id"
            )
            conn.execute("COMMIT")
        return written
    finally:
        conn.close()
