"""Empty files have neither a cas_id nor a checksum, however they are indexed
(a fresh deep index hashing as it walks, or a shallow index switched to deep),
validated, or stored by an older phasekit."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import anyio

from phasekit.jobs import JobStatus
from phasekit.library import Library
from phasekit.validation import ValidateJob, ValidationSummary
from test_indexing import index as index_job

BAD_EMPTY = b"caf\xe9-empty"
#: What validation finds in the tree: the non-UTF-8 name, as a name.
NAME_ONLY = {"problematic_name": 1}


def make_tree(root: Path) -> Path:
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "empty").write_bytes(b"")
    (root / "sub" / "empty.txt").write_bytes(b"")
    (root / "sub" / "deeper" / "zero").write_bytes(b"")
    with open(os.path.join(os.fsencode(root), BAD_EMPTY), "wb"):
        pass
    (root / "small").write_bytes(b"small")
    (root / "sub" / "big").write_bytes(os.urandom(300_000))
    (root / "sub" / "deeper" / "one").write_bytes(b"1")
    return root


Digests = dict[str, tuple[int, str | None, str | None]]


def digests(lib: Library, root: Path) -> Digests:
    """Every file's (size, cas_id, checksum), by path."""
    loc = lib.location(root)
    return {e.path: (e.size, e.cas_id, e.checksum) for e in lib.entries(loc) if e.kind == 0}


def check_rule(found: Digests) -> None:
    assert len(found) == 7
    for path, (size, cas, checksum) in found.items():
        if size == 0:
            assert (cas, checksum) == (None, None), path
        else:
            assert cas is not None, path
            assert checksum is not None, path


def test_a_deep_index_stores_no_digest_for_empty_files_either_way(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "tree")
    with Library.open(tmp_path / "fresh") as lib:
        lib.index(lib.add_location(tree, mode="deep"))  # hashes while walking
        fresh = digests(lib, tree)
    with Library.open(tmp_path / "switched") as lib:
        loc = lib.add_location(tree, mode="shallow")
        lib.index(loc)
        lib.set_mode(loc, "deep")
        lib.index(loc)  # hash_missing after the walk
        switched = digests(lib, tree)
    check_rule(fresh)
    assert fresh == switched


def test_the_index_job_agrees_both_ways(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "tree")

    async def go() -> tuple[Digests, Digests]:
        with Library.open(tmp_path / "fresh") as lib:
            await index_job(lib, tree, mode="deep")
            fresh = digests(lib, tree)
        with Library.open(tmp_path / "switched") as lib:
            await index_job(lib, tree, mode="shallow")
            lib.set_mode(tree, "deep")
            await index_job(lib, tree)
            switched = digests(lib, tree)
        return fresh, switched

    fresh, switched = anyio.run(go)
    check_rule(fresh)
    assert fresh == switched


def test_complete_validation_neither_stores_nor_reports_for_empty_files(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "tree")

    async def validate(lib: Library, location_id: int) -> ValidationSummary:
        async with lib.jobs() as manager:
            handle = await manager.dispatch(ValidateJob(location_id, mode="complete"))
            assert await handle.wait() is JobStatus.COMPLETED
            return handle.output()  # type: ignore[no-any-return]

    async def go() -> None:
        with Library.open(tmp_path / "lib") as lib:
            await index_job(lib, tree, mode="content")
            loc = lib.location(tree)
            # The index has no checksums: complete mode stores one for each
            # non-empty file, none for the empty ones, and reports nothing
            # about them (the non-UTF-8 name is reported, as a name).
            first = await validate(lib, loc.id)
            assert (first.unverified, first.checksums_stored) == (0, 3)
            assert first.by_category == NAME_ONLY
            check_rule(digests(lib, tree))
            again = await validate(lib, loc.id)
            assert (again.unverified, again.checksums_stored) == (0, 0)
            assert again.by_category == NAME_ONLY
        with Library.open(tmp_path / "deep") as lib:
            await index_job(lib, tree, mode="deep")
            deep = await validate(lib, lib.location(tree).id)
            assert (deep.unverified, deep.checksums_stored) == (0, 0)
            assert deep.by_category == NAME_ONLY

    anyio.run(go)


def test_a_version_3_library_loses_the_checksums_of_its_empty_files(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "tree")
    folder = tmp_path / "lib"
    with Library.open(folder) as lib:
        lib.index(lib.add_location(tree, mode="deep"))
        before = digests(lib, tree)
    # What version 3 stored for an empty file hashed while walked: the
    # checksum of no bytes. Written from another process (library.db is
    # never opened by Python's sqlite3 and the Rust SQLite in one process).
    code = (
        "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
        "c.execute(\"UPDATE entries SET checksum = 'af1349b9f5f9a1a6a0404dea36dcc949"
        "9bcb25c9adc112b7cc9a93cae41f3262' WHERE kind = 0 AND size = 0\"); "
        "c.execute('PRAGMA user_version = 3'); c.commit(); c.close()"
    )
    subprocess.run([sys.executable, "-c", code, str(folder / "library.db")], check=True)
    with Library.open(folder) as lib:
        assert lib._db.schema_version() == 6
        after = digests(lib, tree)
    check_rule(after)
    assert after == before
