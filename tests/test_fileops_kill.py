"""kill -9 at chosen moments of a copy and of a cross-filesystem move of a
tree with small files and a 1 GiB file: inside the large file (twice: the
resumed run redoes it), and after it is in place. At every kill point every
file under its final name is whole, and a move has lost nothing; after
``phasekit resume`` the destination equals the source and no temporary file
is left."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from test_fileops import (
    COPIER,
    TEMP_SUFFIX,
    complete_or_absent,
    in_flight,
    job_statuses,
    snapshot,
)
from test_indexing import cli, subprocess_env

from conftest import kill_when, pattern, tmpfs

GIB = 1 << 30
BIG = "big\udcff.bin"  # a non-UTF-8 name, as os.fsdecode gives it


def tree_with_a_big_file(root: Path) -> None:
    """300 small files under odd names, and a 1 GiB file whose every MiB
    differs (a block copied to the wrong place would show)."""
    for i in range(300):
        folder = root / f"d{i % 7}" / ("caf\udce9" if i % 3 == 0 else "n\nl")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{i}.bin").write_bytes(pattern(500 + 61 * i, i))
    block = bytearray(pattern(1 << 20, 7))
    with open(root / BIG, "wb") as f:
        for mib in range(GIB >> 20):
            block[:8] = mib.to_bytes(8, "little")
            f.write(block)


def writing_at_least(folder: Path, size: int) -> Callable[[int], bool]:
    """True once the process writes a file of at least ``size`` bytes in
    ``folder`` (the large file, in flight)."""
    return lambda pid: in_flight(pid, folder) >= size


def copier(
    lib: Path,
    src: Path,
    dst: Path,
    operation: str,
    moment: Callable[[int], bool],
    conflict: str = "abort",
) -> bool:
    """Run the copy or move (joining the interrupted one) and SIGKILL it at
    ``moment``; False if it finished first."""
    argv = [sys.executable, "-c", COPIER, str(lib), str(src), str(dst), operation, conflict]
    return kill_when(argv, moment, env=subprocess_env())


def no_temporary_files(root: Path) -> None:
    for folder, _dirs, files in os.walk(root):
        assert not [f for f in files if f.endswith(TEMP_SUFFIX)], folder


def test_copy_killed_inside_a_one_gib_file_then_resumed(tmp_path):
    src, dst, lib = tmp_path / "src", tmp_path / "dst", tmp_path / "lib"
    tree_with_a_big_file(src)
    expected = snapshot(src)
    moments = [
        writing_at_least(dst, 256 << 20),
        writing_at_least(dst, 640 << 20),  # the resumed run starts the file over
        lambda _pid: (dst / BIG).exists(),  # in place; small files may be left
    ]
    killed = []
    for moment in moments:
        killed.append(copier(lib, src, dst, "copy", moment))
        complete_or_absent(src, dst)  # at every kill point
    assert killed[:2] == [True, True]
    done = cli("resume", library=lib)
    assert done.returncode == 0, done.stderr
    assert snapshot(dst) == expected
    no_temporary_files(dst)
    assert job_statuses(lib) == ["completed"]


def test_overwrite_killed_inside_a_one_gib_file_then_resumed(tmp_path):
    """Replacing files goes through temporary names (an unnamed file cannot
    replace one): a kill leaves strays, which the resume reuses or removes."""
    src, dst, lib = tmp_path / "src", tmp_path / "dst", tmp_path / "lib"
    tree_with_a_big_file(src)
    expected = snapshot(src)
    dst.mkdir()
    copied = dst / "src"
    subprocess.run(["cp", "-a", str(src), str(copied)], check=True)
    for folder, _dirs, files in os.walk(copied):
        for name in files:
            Path(folder, name).write_bytes(b"old")  # every name taken, by old data
    moments = [writing_at_least(copied, 256 << 20), writing_at_least(copied, 640 << 20)]
    for moment in moments:
        assert copier(lib, src, dst, "copy", moment, conflict="overwrite")
        strays = [f for f in os.listdir(copied) if f.endswith(TEMP_SUFFIX)]
        assert strays, "the large file was not written under a temporary name"
        # Every final name holds the old data or the whole new file.
        now = snapshot(copied)
        for rel, entry in now.items():
            if entry[0] == 0 and not rel.endswith(TEMP_SUFFIX.encode()):
                assert entry[3] == 3 or entry[4] == expected[rel][4], rel
    done = cli("resume", library=lib)
    assert done.returncode == 0, done.stderr
    assert snapshot(copied) == expected
    no_temporary_files(copied)


@pytest.fixture
def second_disk(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs big enough for the tree: another filesystem."""
    with tmpfs(tmp_path / "second", "1300m") as mount:
        yield mount


def test_move_across_filesystems_killed_inside_a_one_gib_file(tmp_path, second_disk):
    src, lib, dst = tmp_path / "src", tmp_path / "lib", second_disk / "moved"
    tree_with_a_big_file(src)
    expected = snapshot(src)
    files = {k for k, v in expected.items() if v[0] == 0}
    moments = [writing_at_least(dst, 256 << 20), writing_at_least(dst, 768 << 20)]
    for moment in moments:
        assert copier(lib, src, dst, "move", moment)
        # Nothing lost: each file is in one place or the other, whole under
        # a final name (both places only for a file in flight).
        in_src = {k for k, v in snapshot(src).items() if v[0] == 0}
        in_dst = set()
        if dst.exists():
            for name, entry in snapshot(dst).items():
                if entry[0] == 0 and not name.endswith(TEMP_SUFFIX.encode()):
                    in_dst.add(name)
                    assert entry[4] == expected[name][4], name
        assert files <= in_src | in_dst
        assert os.fsencode(BIG) in in_src - in_dst  # in flight: its source stays
        assert len(in_src & in_dst) <= 2
    done = cli("resume", library=lib)
    assert done.returncode == 0, done.stderr
    assert not src.exists()
    assert snapshot(dst) == expected
    no_temporary_files(dst)
