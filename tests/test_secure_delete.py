"""Secure delete, on a real ext4 filesystem in a loop-mounted image: after
``--secure`` the files' data is nowhere in the image, while a permanent
delete leaves it there (so the test can tell); hard links outside the
deleted tree keep their data; the CLI says what a secure delete cannot
promise."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from phasekit.fileops import SECURE_CAVEAT, DeleteJob, DeleteSummary
from phasekit.jobs import JobStatus
from phasekit.library import Library
from test_indexing import subprocess_env

from conftest import BAD_NAME, run_as_nobody


@pytest.fixture
def ext4() -> Iterator[tuple[Path, Path]]:
    """A 32 MiB ext4 image, loop-mounted: ``(mount point, image)``, in a
    folder anyone can traverse (a test runs as nobody there)."""
    if os.geteuid() != 0:
        pytest.skip("loop-mounting an image needs root")
    base = Path(tempfile.mkdtemp(prefix="phasekit-ext4-"))
    base.chmod(0o755)
    image = base / "disk.img"
    with open(image, "wb") as f:
        f.truncate(32 << 20)
    made = subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], capture_output=True, check=False)
    if made.returncode != 0:
        pytest.skip(f"mkfs.ext4 failed: {made.stderr.decode(errors='replace').strip()}")
    mount = base / "mnt"
    mount.mkdir()
    done = subprocess.run(["mount", "-o", "loop", str(image), str(mount)],
                          capture_output=True, check=False)  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot loop-mount here: {done.stderr.decode(errors='replace').strip()}")
    try:
        yield mount, image
    finally:
        if subprocess.run(["umount", str(mount)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(mount)], check=False)
        shutil.rmtree(base, ignore_errors=True)


def secret(i: int) -> bytes:
    return b"PHASEKIT-SECRET-%04d;" % i


def plant(root: Path) -> list[bytes]:
    """Files holding recognisable data (odd names, a deep folder, a link);
    returns the markers, once they are on the device."""
    r = os.fsencode(root)
    os.makedirs(r + b"/\x01first\xff/sub\nline/" + b"L" * 200, exist_ok=True)
    names = [
        b"/a",
        b"/\x01first\xff/" + BAD_NAME,
        b"/\x01first\xff/sub\nline/" + b"L" * 200 + b"/z\xfe",
    ]
    markers = []
    for i, name in enumerate(names):
        with open(r + name, "wb") as f:
            f.write(secret(i) * (100_000 // len(secret(i)) + i))
        markers.append(secret(i))
    os.symlink(b"/etc/passwd", r + b"/link")
    os.sync()
    return markers


def image_holds(image: Path, mount: Path, marker: bytes) -> bool:
    os.sync()
    subprocess.run(["umount", str(mount)], check=True)
    try:
        return marker in image.read_bytes()
    finally:
        subprocess.run(["mount", "-o", "loop", str(image), str(mount)], check=True)


@pytest.mark.parametrize("mode", ["secure", "permanent"])
def test_secure_delete_leaves_no_data_on_the_device(tmp_path, ext4, mode):
    mount, image = ext4
    markers = plant(mount / "tree")
    assert all(image_holds(image, mount, m) for m in markers)
    with Library.open(tmp_path / "lib") as library:
        run = library.run(DeleteJob(paths=[mount / "tree"], mode=mode, passes=2))
        summary = run.output()
        assert run.status is JobStatus.COMPLETED, run.errors()
        assert isinstance(summary, DeleteSummary)
        assert summary.files == 4
        assert (run.warnings() == [SECURE_CAVEAT]) == (mode == "secure")
    assert not (mount / "tree").exists()
    found = [m for m in markers if image_holds(image, mount, m)]
    # A permanent delete frees the blocks and leaves their data: that is
    # what a secure delete is for (and shows this check can fail).
    assert found == ([] if mode == "secure" else markers)


def test_hard_links_outside_keep_their_data(tmp_path, ext4):
    mount, image = ext4
    markers = plant(mount / "tree")
    os.link(mount / "tree" / "a", mount / "kept")
    with Library.open(tmp_path / "lib") as library:
        run = library.run(DeleteJob(paths=[mount / "tree"], mode="secure"))
        assert run.status is JobStatus.COMPLETED_WITH_ERRORS
        [error] = run.errors()
        assert "hard links outside what was deleted" in error.message
        assert error.path == str(mount / "tree" / "a")
    assert not (mount / "tree").exists()
    assert (mount / "kept").read_bytes().startswith(markers[0])
    assert [m for m in markers if image_holds(image, mount, m)] == markers[:1]


def test_cli_warns_and_checks_its_flags(tmp_path, ext4):
    mount, _image = ext4
    plant(mount / "tree")

    def cli(*args: object) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "phasekit", "--library", str(tmp_path / "lib"), "delete",
             *map(str, args)],
            capture_output=True, text=True, env=subprocess_env(), timeout=120, check=False,
        )  # fmt: skip

    root = cli("/", "--secure")  # refused by the job: "could not run"
    assert root.returncode == 2
    assert "refusing to delete /" in root.stderr
    refused = cli(mount / "tree", "--passes", "3")
    assert refused.returncode == 2
    assert "--passes goes with --secure" in refused.stderr
    both = cli(mount / "tree", "--secure", "--permanent")
    assert both.returncode == 2
    assert (mount / "tree" / "a").exists()
    done = cli(mount / "tree", "--secure", "--passes", "3")
    assert done.returncode == 0, done.stderr
    assert SECURE_CAVEAT in done.stderr
    assert "overwrote and removed 4 files" in done.stdout
    assert not (mount / "tree").exists()


def test_hard_links_inside_the_tree_are_overwritten_once_all_names_go(tmp_path, ext4):
    """Two names of one file in sibling folders (removed side by side):
    whoever removes the last name overwrites the data."""
    mount, image = ext4
    markers = plant(mount / "tree")
    (mount / "tree" / "s1").mkdir()
    (mount / "tree" / "s2").mkdir()
    os.rename(mount / "tree" / "a", mount / "tree" / "s1" / "a")
    os.link(mount / "tree" / "s1" / "a", mount / "tree" / "s2" / "b")
    with Library.open(tmp_path / "lib") as library:
        run = library.run(DeleteJob(paths=[mount / "tree"], mode="secure"))
        assert run.status is JobStatus.COMPLETED, run.errors()
    assert [m for m in markers if image_holds(image, mount, m)] == []


def test_a_file_mounted_into_the_tree_is_left_alone(tmp_path, ext4):
    """A bind mount over a file of the tree (as containers do for
    /etc/hosts): its data belongs to another filesystem, never overwritten."""
    mount, _image = ext4
    plant(mount / "tree")
    outside = tmp_path / "hosts"
    outside.write_bytes(b"127.0.0.1 localhost\n")
    (mount / "tree" / "hosts").write_bytes(b"")
    subprocess.run(["mount", "--bind", str(outside), str(mount / "tree" / "hosts")], check=True)
    try:
        with Library.open(tmp_path / "lib") as library:
            alone = library.run(DeleteJob(paths=[mount / "tree" / "hosts"], mode="secure"))
            assert alone.status is JobStatus.COMPLETED_WITH_ERRORS
            assert "another filesystem" in alone.errors()[0].message
            run = library.run(DeleteJob(paths=[mount / "tree"], mode="secure"))
            assert run.status is JobStatus.COMPLETED_WITH_ERRORS
            assert str(mount / "tree" / "hosts") in {e.path for e in run.errors()}
    finally:
        subprocess.run(["umount", str(mount / "tree" / "hosts")], check=False)
    assert outside.read_bytes() == b"127.0.0.1 localhost\n"


def test_read_only_files_of_ours_are_overwritten_as_nobody(tmp_path, ext4):
    mount, image = ext4
    markers = plant(mount / "tree")
    subprocess.run(["chown", "-R", "nobody", str(mount / "tree")], check=True)
    subprocess.run(["chown", "nobody", str(mount)], check=True)  # the tree's folder
    for folder, _dirs, files in os.walk(mount / "tree"):
        for name in files:
            os.chmod(os.path.join(folder, name), 0o444)
    lib = mount / "lib"  # where nobody can write
    lib.mkdir()
    subprocess.run(["chown", "nobody", str(lib)], check=True)
    result = run_as_nobody(
        "import json\n"
        "from phasekit.fileops import DeleteJob\n"
        "from phasekit.library import Library\n"
        f"with Library.open({str(lib)!r}) as library:\n"
        f"    run = library.run(DeleteJob(paths=[{str(mount / 'tree')!r}], mode='secure'))\n"
        "    print(json.dumps([run.status.value, [e.message for e in run.errors()]]))\n"
    )
    assert result == ["completed", []]
    assert not (mount / "tree").exists()
    assert [m for m in markers if image_holds(image, mount, m)] == []


def test_one_file_given_alone(tmp_path, ext4):
    mount, image = ext4
    markers = plant(mount / "tree")
    with Library.open(tmp_path / "lib") as library:
        run = library.run(DeleteJob(paths=[mount / "tree" / "a"], mode="secure"))
        assert run.status is JobStatus.COMPLETED, run.errors()
    assert not (mount / "tree" / "a").exists()
    assert [m for m in markers if image_holds(image, mount, m)] == markers[1:]
