"""phasekit.library: locations, entries, the pipelined scan and its resume."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from phasekit import CancelledError, CancelToken, Kind, library
from phasekit.errors import LibraryClosed, LibraryError
from phasekit.library import Entry, Library

BAD = b"bad-\xff-name.bin"


def make_tree(root: Path) -> Path:
    """A small tree: nested dirs, files of several sizes, a symlink, a
    non-UTF-8 name and an empty file."""
    for d in ("a", "a/b", "c", "c/d/e"):
        (root / d).mkdir(parents=True)
    for i in range(12):
        (root / "a" / f"f{i}.TXT").write_bytes(b"x" * i)
        (root / "c/d/e" / f"g{i}").write_bytes(b"y" * (i * 100))
    (root / "a/b/same1").write_bytes(b"same content")
    (root / "a/b/same2").write_bytes(b"same content")
    (root / "empty").write_bytes(b"")
    os.symlink("a/f1.TXT", root / "link")
    with open(os.path.join(os.fsencode(root), BAD), "wb") as f:
        f.write(b"non-utf8")
    return root


def oracle(root: Path) -> dict[str, tuple[Kind, int, int, int]]:
    """os.walk + os.lstat: path -> (kind, size of files, mtime_ns, inode)."""
    out: dict[str, tuple[Kind, int, int, int]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            if stat.S_ISDIR(st.st_mode):
                kind = Kind.DIR
            elif stat.S_ISREG(st.st_mode):
                kind = Kind.FILE
            elif stat.S_ISLNK(st.st_mode):
                kind = Kind.SYMLINK
            else:
                kind = Kind.OTHER
            out[path] = (kind, st.st_size, st.st_mtime_ns, st.st_ino)
    return out


def indexed(lib: Library, loc: int) -> dict[str, tuple[Kind, int, int, int]]:
    """The library's view, in the oracle's shape (directories included)."""
    return {e.path: (e.kind, e.size, e.mtime_ns, e.inode) for e in lib.entries(loc)}


@pytest.fixture
def lib(tmp_path: Path) -> Library:
    with Library.open(tmp_path / "lib") as opened:
        yield opened


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return make_tree(tmp_path / "tree")


def run_scan(lib: Library, loc: int, **kw: object) -> library.ScanStats:
    with lib.scan(loc, **kw) as scan:  # type: ignore[arg-type]
        for step in scan:
            assert step.errors == []
        return scan.sweep()


def test_open_default_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PHASEKIT_LIBRARY", str(tmp_path / "env-lib"))
    with Library.open() as lib:
        assert lib.path == tmp_path / "env-lib"
        assert (lib.path / "library.db").is_file()
    monkeypatch.delenv("PHASEKIT_LIBRARY")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    if sys.platform != "darwin":
        assert library.default_library_path() == tmp_path / "xdg" / "phasekit"


def test_locations(lib: Library, tree: Path, tmp_path: Path) -> None:
    loc = lib.add_location(tree, mode="shallow", recursive=False)
    assert loc.path == str(tree)
    assert loc.mode == "shallow"
    assert not loc.recursive
    assert loc.indexed_at is None
    assert lib.locations() == [loc]
    assert lib.location(loc.id) == loc == lib.location(str(tree) + "/")
    assert lib.set_mode(loc, "deep").mode == "deep"
    with pytest.raises(FileNotFoundError):
        lib.add_location(tmp_path / "missing")
    with pytest.raises(NotADirectoryError):
        lib.add_location(tree / "empty")
    with pytest.raises(ValueError, match="already location"):
        lib.add_location(tree)
    with pytest.raises(ValueError, match="index mode"):
        lib.add_location(tree / "a", mode="everything")  # type: ignore[arg-type]
    with pytest.raises(KeyError):
        lib.location(9999)
    with pytest.raises(KeyError):
        lib.location(tmp_path / "elsewhere")
    with pytest.raises(KeyError):
        lib.remove_location(9999)
    assert lib.remove_location(loc) == 0
    assert lib.locations() == []


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "lib"
    Library.open(folder).close()
    # Bump the version from another process: library.db is never opened by
    # Python's sqlite3 and the Rust SQLite in one process.
    code = (
        "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
        "c.execute('PRAGMA user_version = 99'); c.commit(); c.close()"
    )
    subprocess.run([sys.executable, "-c", code, str(folder / "library.db")], check=True)
    with pytest.raises(LibraryError, match=r"schema version 99, newer than this phasekit"):
        Library.open(folder)


def test_closed_library(tmp_path: Path) -> None:
    lib = Library.open(tmp_path / "lib")
    lib.close()
    lib.close()
    assert lib.closed
    with pytest.raises(LibraryClosed, match="closed"):
        lib.locations()


def test_scan_matches_os_walk(lib: Library, tree: Path) -> None:
    loc = lib.add_location(tree)
    stats = run_scan(lib, loc.id, batch_size=4, threads=2)
    expected = oracle(tree)
    assert indexed(lib, loc.id) == expected
    assert stats.new == len(expected) == lib.entry_count(loc)
    assert (stats.files, stats.dirs, stats.symlinks) == (12 + 12 + 2 + 2, 5, 1)

    bad = os.fsdecode(os.path.join(os.fsencode(tree), BAD))
    entry = lib.entry(loc, bad)
    assert isinstance(entry, Entry)
    assert os.fsencode(entry.path) == os.path.join(os.fsencode(tree), BAD)
    assert entry.kind is Kind.FILE
    assert entry.extension == "bin"
    assert lib.entry(loc, os.fsencode(BAD)) == entry  # relative, as bytes
    f3 = lib.entry(loc, "a/f3.TXT")
    assert f3 is not None
    assert f3.extension == "txt"
    assert f3.name == "f3.TXT"
    a = lib.entry(loc, tree / "a")
    assert a is not None
    assert f3.parent_id == a.id
    assert a.parent_id is None
    assert lib.entry(loc, "nope") is None
    with pytest.raises(ValueError, match="not inside"):
        lib.entry(loc, "/elsewhere")


def test_index_content_and_aggregates(lib: Library, tree: Path) -> None:
    loc = lib.add_location(tree, mode="content")
    stats, errors = lib.index(loc)
    assert errors == []
    assert stats.new == len(oracle(tree))
    loc = lib.location(loc.id)
    sizes = [e.size for e in lib.entries(loc) if e.kind is Kind.FILE]
    assert loc.total_size == sum(sizes)
    assert loc.file_count == len(sizes)
    assert loc.indexed_at is not None
    a = lib.entry(loc, "a")
    assert a is not None
    assert a.agg_size == sum(range(12)) + 24
    assert a.file_count == 14
    same = lib.entry(loc, "a/b/same1")
    assert same is not None
    assert same.cas_id is not None
    assert same.checksum is None
    twins = lib.entries_by_cas_id(same.cas_id)
    assert sorted(e.name for e in twins) == ["same1", "same2"]
    ident = lib.content_identity(same.cas_id)
    assert ident is not None
    assert ident.size == len(b"same content")
    assert lib.content_identity("0" * 16) is None
    empty = lib.entry(loc, "empty")
    assert empty is not None
    assert empty.cas_id is None


def test_resume_from_every_batch_boundary(tmp_path: Path, tree: Path) -> None:
    with Library.open(tmp_path / "full") as full:
        loc = full.add_location(tree)
        run_scan(full, loc.id, batch_size=3)
        expected = indexed(full, loc.id)
    boundaries = 0
    i = 0
    while True:
        with Library.open(tmp_path / f"resume{i}") as lib:
            loc = lib.add_location(tree)
            state = None
            with lib.scan(loc, batch_size=3) as scan:
                for _ in range(i + 1):
                    step = scan.step()
                    if step is None:
                        break
                    state = step.state
            if step is None:
                break
            # The walker thread ran ahead of the writer; the state is the
            # one of the last batch written, so resuming loses nothing.
            run_scan(lib, loc.id, resume=state, batch_size=3)
            assert indexed(lib, loc.id) == expected, f"resumed after batch {i}"
            boundaries += 1
        i += 1
    assert boundaries > 5


def test_rescan_after_edits(lib: Library, tree: Path) -> None:
    loc = lib.add_location(tree, mode="shallow")
    run_scan(lib, loc.id)
    assert run_scan(lib, loc.id).unchanged == len(oracle(tree))
    (tree / "a/f1.TXT").write_bytes(b"longer now")
    (tree / "new").write_bytes(b"new")
    os.rename(tree / "c/d/e/g5", tree / "moved")
    for p in (tree / "a/b").iterdir():
        p.unlink()
    (tree / "a/b").rmdir()
    stats = run_scan(lib, loc.id)
    # "moved" counts once, as moved: not also as new and deleted.
    assert stats.new == 1  # "new"
    assert stats.deleted == 3  # a/b, a/b/same1, a/b/same2
    assert stats.moved == 1
    assert indexed(lib, loc.id) == oracle(tree)


def test_one_level_location(lib: Library, tree: Path) -> None:
    loc = lib.add_location(tree, recursive=False)
    run_scan(lib, loc.id)
    top = {os.fsencode(e.path) for e in lib.entries(loc)}
    assert top == {os.path.join(os.fsencode(tree), n) for n in os.listdir(os.fsencode(tree))}


def test_cancel_and_close(lib: Library, tree: Path) -> None:
    loc = lib.add_location(tree)
    cancel = CancelToken()
    scan = lib.scan(loc, batch_size=2, cancel=cancel)
    first = scan.step()
    assert first is not None
    assert first.entries == 2
    cancel.cancel()
    with pytest.raises(CancelledError):
        scan.step()
    scan.close()
    assert scan.stats.new == 2
    with pytest.raises(ValueError, match="finished"):
        scan.sweep()
    # Dropped mid-walk: the walker thread stops by itself.
    scan = lib.scan(loc, batch_size=1, resume=first.state)
    assert scan.step() is not None
    del scan
    run_scan(lib, loc.id, resume=first.state)
    assert indexed(lib, loc.id) == oracle(tree)


def test_fresh_scan_needs_an_empty_location(lib: Library, tree: Path) -> None:
    loc = lib.add_location(tree)
    run_scan(lib, loc.id)
    with pytest.raises(ValueError, match="fresh scan"):
        lib.scan(loc, fresh=True)
    # The default picks a re-scan for a location that has entries.
    assert run_scan(lib, loc.id).unchanged == len(oracle(tree))


def _content_tables(db: Path) -> tuple[set[tuple[str, int]], set[tuple[str, int]], set[str]]:
    """(cas_id, entry id) links, the same pairs from the entries, and the
    identities, read from another process (library.db is never opened by
    Python's sqlite3 and the Rust SQLite in one process)."""
    code = (
        "import json, sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
        "q = lambda s: [list(r) for r in c.execute(s)]; "
        "print(json.dumps([q('SELECT cas_id, entry_id FROM entry_content'), "
        "q('SELECT cas_id, id FROM entries WHERE cas_id IS NOT NULL'), "
        "q('SELECT cas_id FROM content_identities')]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(db)], check=True, capture_output=True, text=True
    ).stdout
    links, pairs, identities = json.loads(out)
    return {tuple(r) for r in links}, {tuple(r) for r in pairs}, {r[0] for r in identities}


def _sql(db: Path, *statements: str) -> None:
    code = (
        "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
        "[c.execute(s) for s in sys.argv[2:]]; c.commit(); c.close()"
    )
    subprocess.run([sys.executable, "-c", code, str(db), *statements], check=True)


def test_content_links_follow_edits_without_a_prune(tmp_path: Path, tree: Path) -> None:
    folder = tmp_path / "lib"
    with Library.open(folder) as lib:
        loc = lib.add_location(tree, mode="content")
        with lib.scan(loc, fresh=True, cas_ids=True) as scan:
            for _ in scan:
                pass
            scan.sweep()
        cas = {e.cas_id for e in lib.entries(loc) if e.cas_id is not None}
        assert _content_linked(folder / "library.db") == [0]  # stored, not linked
        assert lib.link_identities(loc) == len(cas)
        assert _content_linked(folder / "library.db") == [1]
        assert lib.link_identities(loc) == 0  # linked already: nothing to do
        twin = lib.entry(loc, "a/b/same1")
        assert twin is not None
        assert twin.cas_id is not None
        # Change one twin, delete the other, move a file, delete a subtree.
        (tree / "a/b/same1").write_bytes(b"other content, longer")
        (tree / "a/b/same2").unlink()
        os.rename(tree / "c/d/e/g5", tree / "moved")
        shutil.rmtree(tree / "c/d")
        stats, errors = lib.index(loc)
        assert errors == []
        assert (stats.modified, stats.moved) == (3, 1)  # same1, a/b and c (mtimes)
        assert lib.entries_by_cas_id(twin.cas_id) == []
        assert lib.content_identity(twin.cas_id) is None
        changed = lib.entry(loc, "a/b/same1")
        assert changed is not None
        assert changed.cas_id is not None
        assert [e.name for e in lib.entries_by_cas_id(changed.cas_id)] == ["same1"]
        moved = lib.entry(loc, "moved")
        assert moved is not None
        assert moved.cas_id is not None
        assert [e.name for e in lib.entries_by_cas_id(moved.cas_id)] == ["moved"]
    links, pairs, identities = _content_tables(folder / "library.db")
    assert links == pairs
    assert identities == {c for c, _ in pairs}
    # Removing the location unlinks everything it had.
    with Library.open(folder) as lib:
        lib.remove_location(lib.locations()[0])
    assert _content_tables(folder / "library.db") == (set(), set(), set())


def test_a_version_2_library_is_upgraded_and_its_stale_links_dropped(
    tmp_path: Path, tree: Path
) -> None:
    folder = tmp_path / "lib"
    with Library.open(folder) as lib:
        lib.index(lib.add_location(tree, mode="content"))
    db = folder / "library.db"
    _sql(
        db,
        "DROP TRIGGER entries_cas_changed",
        "DROP TRIGGER entries_cas_deleted",
        "ALTER TABLE locations DROP COLUMN content_linked",
        "DROP TABLE lost_links",
        # What version 2 left for a later prune: a link to a gone entry.
        "INSERT INTO entry_content VALUES ('00000000000000aa', 999999)",
        "INSERT INTO content_identities VALUES ('00000000000000aa', 1, 0)",
        "PRAGMA user_version = 2",
    )
    with Library.open(folder) as lib:
        assert lib._db.schema_version() == 6
        loc = lib.locations()[0]
        # Unknown whether a version 2 library linked everything: linking
        # again finds every identity present.
        assert lib.link_identities(loc) == 0
    links, pairs, identities = _content_tables(db)
    assert links == pairs
    assert pairs
    assert identities == {c for c, _ in pairs}


def _content_linked(db: Path) -> list[int]:
    code = (
        "import json, sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
        "print(json.dumps([r[0] for r in c.execute('SELECT content_linked FROM locations')]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(db)], check=True, capture_output=True, text=True
    ).stdout
    return list(json.loads(out))


def test_a_touched_file_keeps_its_identity_first_seen(tmp_path: Path, tree: Path) -> None:
    with Library.open(tmp_path / "lib") as lib:
        loc = lib.add_location(tree, mode="content")
        lib.index(loc)
        before = lib.entry(loc, "c/d/e/g7")
        assert before is not None
        assert before.cas_id is not None
        seen = lib.content_identity(before.cas_id)
        assert seen is not None
        # Same content, new mtime: the re-index clears the cas_id, hashing
        # sets it again; the identity is the same one, first seen before.
        st = os.stat(tree / "c/d/e/g7")
        os.utime(tree / "c/d/e/g7", ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
        stats, _ = lib.index(loc)
        assert stats.modified == 1
        after = lib.entry(loc, "c/d/e/g7")
        assert after is not None
        assert after.cas_id == before.cas_id
        assert after.mtime_ns != before.mtime_ns
        assert lib.content_identity(before.cas_id) == seen
        # Content that goes away takes its identity with it.
        (tree / "c/d/e/g7").write_bytes(b"new")
        lib.index(loc)
        assert lib.content_identity(before.cas_id) is None


def test_a_location_switched_to_content_mode_is_linked(tmp_path: Path) -> None:
    tree = tmp_path / "many"
    tree.mkdir()
    for i in range(1500):
        (tree / f"f{i:04}").write_bytes(f"file {i % 1200}".encode())
    folder = tmp_path / "lib"
    with Library.open(folder) as lib:
        loc = lib.add_location(tree, mode="shallow")
        lib.index(loc)
        lib.set_mode(loc, "content")
        # Hashed after the walk: linked as stored.
        first = lib.hash_missing(loc, limit=1000)
        assert first.hashed == 1000
        some = lib.entry(loc, "f0001")
        assert some is not None
        assert some.cas_id is not None
        assert [e.name for e in lib.entries_by_cas_id(some.cas_id)] == ["f0001"]
        stats, errors = lib.index(loc)
        assert (stats.unchanged, errors) == (1500, [])
        assert [e.name for e in lib.entries_by_cas_id(some.cas_id)] == ["f0001", "f1201"]
    links, pairs, identities = _content_tables(folder / "library.db")
    assert links == pairs
    assert len(pairs) == 1500
    assert identities == {c for c, _ in pairs}


def test_deferred_links_of_a_large_content_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An index job that hashes many files defers their links to one sorted
    pass at the end: the lookup then equals the entries' cas_ids, a later
    change of content is linked at once (the trigger still handles a cas_id
    replacing another), and a job killed in between is finished by the
    next index's pass."""
    from phasekit.indexing import IndexJob
    from phasekit.indexing import _job as index_job

    monkeypatch.setattr(index_job, "DEFER_LINKS_FROM", 1)
    tree = tmp_path / "many"
    tree.mkdir()
    for i in range(700):
        (tree / f"f{i:04}").write_bytes(f"file {i % 500}".encode())
    folder = tmp_path / "lib"
    with Library.open(folder) as lib:
        loc = lib.add_location(tree, mode="shallow")
        assert lib.run(IndexJob(loc.id)).status.value == "completed"
        lib.set_mode(loc, "content")
        # A store of cas_ids in an undeferred location links them at once.
        first = lib.hash_missing(loc, limit=300)
        some = lib.entry(loc, "f0001")
        assert first.hashed == 300
        assert some is not None
        assert some.cas_id is not None
        assert [e.name for e in lib.entries_by_cas_id(some.cas_id)] == ["f0001"]
        assert lib.run(IndexJob(loc.id)).status.value == "completed"
        assert [e.name for e in lib.entries_by_cas_id(some.cas_id)] == ["f0001", "f0501"]
    assert _content_linked(folder / "library.db") == [1]
    links, pairs, identities = _content_tables(folder / "library.db")
    assert links == pairs
    assert len(pairs) == 700
    assert identities == {c for c, _ in pairs}
    # Deferred, then content replaced before the pass: linked at once.
    with Library.open(folder) as lib:
        old = lib.entry(loc, "f0002")
        assert old is not None
        assert old.cas_id is not None
        lib.defer_links(loc)
        (tree / "f0002").write_bytes(b"something else entirely")
        lib.index(loc)
        new = lib.entry(loc, "f0002")
        assert new is not None
        assert new.cas_id not in (None, old.cas_id)
        assert [e.name for e in lib.entries_by_cas_id(new.cas_id)] == ["f0002"]
        assert [e.name for e in lib.entries_by_cas_id(old.cas_id)] == ["f0502"]
    links, pairs, identities = _content_tables(folder / "library.db")
    assert links == pairs
    assert identities == {c for c, _ in pairs}


def test_identities_of_a_location_waiting_for_its_links_are_kept(tmp_path: Path) -> None:
    """While one location's hashing defers its links, another location's
    link pass does not drop an identity the first one still uses (its
    first_seen is kept), and an index in any mode, or a duplicate search,
    leaves no location waiting."""
    from phasekit.dupes import DupesJob
    from phasekit.indexing import IndexJob

    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "x.bin").write_bytes(b"shared content X" * 10)
    (b / "y.bin").write_bytes(b"other" * 10)
    with Library.open(tmp_path / "lib") as lib:
        l1 = lib.add_location(a, mode="content")
        l2 = lib.add_location(b, mode="content")
        lib.index(l1)
        lib.index(l2)
        assert not lib.links_pending()
        x = lib.entry(l1, "x.bin")
        assert x is not None
        assert x.cas_id is not None
        seen = lib.content_identity(x.cas_id)
        # Touched (same content), rescanned and hashed with links deferred.
        st = os.stat(a / "x.bin")
        os.utime(a / "x.bin", ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
        lib.defer_links(l1)
        with lib.scan(l1, fresh=False) as scan:
            for _ in scan:
                pass
            scan.sweep()
        assert lib.hash_missing(l1).hashed == 1
        assert lib.links_pending()
        lib.index(l2)  # another location's link pass
        assert lib.content_identity(x.cas_id) == seen
        lib.link_identities(l1)
        assert lib.content_identity(x.cas_id) == seen
        assert [e.name for e in lib.entries_by_cas_id(x.cas_id)] == ["x.bin"]
        assert not lib.links_pending()

    # A content step that stopped leaves the location deferred: a shallow
    # index, or a duplicate search, links it.
    c = tmp_path / "c"
    c.mkdir()
    (c / "p").write_bytes(b"q" * 5000)
    (c / "r").write_bytes(b"q" * 5000)
    with Library.open(tmp_path / "lib2") as lib:
        loc = lib.add_location(c, mode="shallow")
        assert lib.run(IndexJob(loc.id)).status.value == "completed"
        lib.defer_links(loc)
        assert lib.run(IndexJob(loc.id)).status.value == "completed"
        assert not lib.links_pending()
        lib.defer_links(loc)
        assert lib.run(DupesJob(location_id=loc.id, mode="content")).status.value == "completed"
        p = lib.entry(loc, "p")
        assert p is not None
        assert p.cas_id is not None
        assert sorted(e.name for e in lib.entries_by_cas_id(p.cas_id)) == ["p", "r"]
        assert not lib.links_pending()
