"""The library's errors are typed: a missing location, a closed library, bad
input and a full disk each raise their class of ``phasekit.errors``, from the
Rust core as from the Python facade."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from phasekit import _core
from phasekit.errors import (
    InvalidInputError,
    LibraryClosed,
    LibraryError,
    LibraryFullError,
    LocationNotFound,
    NotFoundError,
    PhasekitError,
    StorageFullError,
)
from phasekit.library import Library

from conftest import make_wide_tree


@pytest.fixture
def lib(tmp_path: Path) -> Iterator[Library]:
    with Library.open(tmp_path / "lib") as library:
        yield library


def test_unknown_location_is_location_not_found(lib: Library, tmp_path: Path) -> None:
    for ask in (
        lambda: lib.location(9999),
        lambda: lib.location(tmp_path / "elsewhere"),
        lambda: lib.remove_location(9999),
        lambda: lib.entry_count(9999),
        lambda: lib.set_mode(9999, "deep"),
    ):
        with pytest.raises(LocationNotFound) as info:
            ask()
        # Still a KeyError, for code written before the tree; the message
        # reads plainly (KeyError would quote it).
        assert isinstance(info.value, NotFoundError | KeyError | PhasekitError)
        assert isinstance(info.value, KeyError)
        assert str(info.value).startswith("no location ")
    # From the Rust core directly, too.
    with pytest.raises(LocationNotFound, match="no location with id 42"):
        _core.LibraryDb.in_memory().location(42)


def test_bad_input_is_invalid_input(lib: Library, tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    loc = lib.add_location(tree)
    with pytest.raises(InvalidInputError, match="already location"):
        lib.add_location(tree)  # from the Rust core
    with pytest.raises(InvalidInputError, match="index mode"):
        lib.add_location(tmp_path, mode="everything")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="page must be"):
        next(lib.entries(loc, page=0))
    with pytest.raises(InvalidInputError, match="is not inside location"):
        lib.entry(loc, tmp_path / "other")
    with pytest.raises(InvalidInputError, match="threads must be at least 1"):
        lib.hash_missing(loc, threads=0)
    with pytest.raises(InvalidInputError) as info:
        _core.LibraryDb.in_memory().set_location_mode(1, "everything")
    # A ValueError as well, as these were before.
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, PhasekitError)


def test_closed_library_is_library_closed(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    lib = Library.open(tmp_path / "lib")
    loc = lib.add_location(tree)
    lib.close()
    for ask in (
        lib.locations,
        lambda: lib.location(loc.id),
        lambda: lib.location(tree),
        lambda: lib.index(loc.id),
        lambda: lib.scan(loc.id),
        lambda: lib.aggregate(loc.id),
    ):
        with pytest.raises(LibraryClosed, match="this library is closed"):
            ask()


def _snapshot(lib: Library, root: Path) -> dict[str, tuple[object, ...]]:
    loc = lib.location(root)
    return {
        e.path: (
            e.kind,
            e.size,
            e.mtime_ns,
            e.inode,
            e.mode,
            e.cas_id,
            e.checksum,
            e.agg_size,
            e.file_count,
        )
        for e in lib.entries(loc)
    }


def test_full_disk_is_library_full_and_loses_nothing(small_disk: Path, tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    make_wide_tree(tree, 30_000)
    with Library.open(small_disk / "lib") as lib:
        loc = lib.add_location(tree, mode="content")
        with pytest.raises(LibraryFullError) as info:
            lib.index(loc)
        error = info.value
        assert isinstance(error, LibraryError)
        assert isinstance(error, StorageFullError)
        message = str(error)
        assert os.fspath(small_disk / "lib" / "library.db") in message
        assert "disk (or quota) is full" in message
        assert "Nothing is lost" in message
        assert "Free some space, then resume" in message
        # The library still answers, with what it kept.
        kept = lib.entry_count(loc)
        assert 0 < kept < 30_000

        subprocess.run(
            ["mount", "-o", "remount,size=64m", str(small_disk)], check=True, capture_output=True
        )
        stats, errors = lib.index(loc)
        assert errors == []
        assert stats.files == 30_000
        after_full = _snapshot(lib, tree)
        totals = lib.location(loc.id)

    with Library.open(tmp_path / "roomy") as roomy:
        roomy.add_location(tree, mode="content")
        roomy.index(tree)
        assert after_full == _snapshot(roomy, tree)
        expected = roomy.location(tree)
        assert (totals.total_size, totals.file_count) == (
            expected.total_size,
            expected.file_count,
        )
    assert len(after_full) == 30_000 + 30
