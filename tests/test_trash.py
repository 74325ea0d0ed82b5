"""The freedesktop.org trash: home trash, per-mount trashes, refusals, restore."""

from __future__ import annotations

import errno
import json
import os
import re
import stat
import subprocess
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from phasekit.fileops._trash import (
    TrashedItem,
    TrashError,
    home_trash_dir,
    list_trash,
    restore,
    trash,
)

DATE = re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")
# RFC 2396 section 2.3 "unreserved" characters, written out independently of
# the module (which leans on urllib).
UNRESERVED = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!~*'()")


def encoded(path: bytes) -> bytes:
    return b"".join(bytes([c]) if c in UNRESERVED or c == ord("/") else b"%%%02X" % c for c in path)


def b(path: Path | str) -> bytes:
    return os.fsencode(path)


def snapshot(path: bytes) -> object:
    """Everything restore must bring back: kinds, names, bytes, links, modes, inodes."""
    st = os.lstat(path)
    base = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_ino, st.st_mtime_ns)
    if stat.S_ISLNK(st.st_mode):
        return (*base, os.readlink(path))
    if stat.S_ISDIR(st.st_mode):
        names = sorted(os.listdir(path))
        return (*base, {n: snapshot(os.path.join(path, n)) for n in names})
    with open(path, "rb") as f:
        return (*base, f.read())


def info_lines(item: TrashedItem) -> tuple[bytes, bytes]:
    """The Path= value and DeletionDate= value, checking the exact layout."""
    with open(item.info, "rb") as f:
        text = f.read()
    m = re.fullmatch(rb"\[Trash Info\]\nPath=([^\n]*)\nDeletionDate=([^\n]*)\n", text)
    assert m is not None, text
    assert DATE.fullmatch(m[2]), m[2]
    return m[1], m[2]


def check_pair(item: TrashedItem, trash_dir: bytes) -> None:
    """files/X and info/X.trashinfo match, with the spec's modes."""
    name = os.path.basename(item.trashed)
    assert item.trashed == os.path.join(trash_dir, b"files", name)
    assert item.info == os.path.join(trash_dir, b"info", name + b".trashinfo")
    assert len(os.path.basename(item.info)) <= 255
    assert stat.S_IMODE(os.lstat(item.info).st_mode) == 0o600
    for sub in (b"files", b"info"):
        st = os.lstat(os.path.join(trash_dir, sub))
        assert stat.S_ISDIR(st.st_mode)
        assert stat.S_IMODE(st.st_mode) == 0o700


def round_trip(path: bytes, trash_dir: bytes, home: bytes) -> TrashedItem:
    """Trash ``path`` into ``trash_dir``, check, restore it, check it is identical."""
    before = snapshot(path)
    item = trash(path, home_trash=home)
    assert not os.path.lexists(path)
    assert item.original == path
    check_pair(item, trash_dir)
    assert snapshot(item.trashed) == before
    assert item in list_trash(trash_dir)
    assert restore(item) == path
    assert snapshot(path) == before
    assert not os.path.lexists(item.info)
    assert not os.path.lexists(item.trashed)
    return item


@pytest.fixture
def home(tmp_path: Path) -> bytes:
    """A home trash that does not exist yet (trash creates it)."""
    return b(tmp_path / "data" / "Trash")


@pytest.fixture
def src(tmp_path: Path) -> bytes:
    (tmp_path / "src").mkdir()
    return b(tmp_path / "src")


def write(path: bytes, data: bytes = b"data") -> bytes:
    with open(path, "wb") as f:
        f.write(data)
    return path


def run(*cmd: str) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.fail(f"`{' '.join(cmd)}` failed ({done.stderr.strip()}): these tests need root")


@pytest.fixture
def mount(tmp_path: Path) -> Iterator[bytes]:
    """A tmpfs of our own: a second filesystem, not the home trash's."""
    top = tmp_path / "mnt"
    top.mkdir()
    run("mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(top))
    try:
        top.chmod(0o755)
        yield b(top)
    finally:
        subprocess.run(["umount", "-l", str(top)], check=False)


# --- the home trash ---------------------------------------------------------


def test_file_goes_to_home_trash_with_exact_info(home: bytes, src: bytes) -> None:
    path = write(os.path.join(src, b"a file.txt"), b"hello\n")
    item = trash(path, home_trash=home)
    assert item.trashed == os.path.join(home, b"files", b"a file.txt")
    check_pair(item, home)
    assert stat.S_IMODE(os.stat(home).st_mode) == 0o700
    path_value, date = info_lines(item)
    assert path_value == encoded(path)
    assert path_value.endswith(b"/a%20file.txt")
    assert path_value.startswith(b"/")
    assert item.deleted_at == datetime.fromisoformat(date.decode())
    assert item.deleted_at.tzinfo is None
    assert item.deleted_at.microsecond == 0
    assert list_trash(home) == [item]
    assert restore(item) == path
    with open(path, "rb") as f:
        assert f.read() == b"hello\n"
    assert list_trash(home) == []


def test_accepts_str_bytes_and_pathlike(home: bytes, src: bytes) -> None:
    for i, kind in enumerate((os.fsdecode, bytes, lambda p: Path(os.fsdecode(p)))):
        path = write(os.path.join(src, b"f%d" % i))
        item = trash(kind(path), home_trash=kind(home))
        assert item.original == path
        restore(item)


def test_relative_path_is_made_absolute(home: bytes, src: bytes, monkeypatch) -> None:
    write(os.path.join(src, b"rel"))
    monkeypatch.chdir(src)
    item = trash("rel", home_trash=home)
    assert item.original == os.path.join(src, b"rel")
    assert info_lines(item)[0] == encoded(item.original)
    restore(item)


def test_folder_tree_moves_in_one_rename(home: bytes, src: bytes) -> None:
    top = os.path.join(src, b"tree")
    os.makedirs(os.path.join(top, b"a", b"b"))
    os.mkdir(os.path.join(top, b"empty"))
    write(os.path.join(top, b"a", b"b", b"deep.bin"), bytes(range(256)) * 10)
    write(os.path.join(top, b"top.txt"))
    os.symlink(b"a/b", os.path.join(top, b"link"))
    os.chmod(os.path.join(top, b"top.txt"), 0o640)
    item = round_trip(top, home, home)
    assert os.path.basename(item.trashed) == b"tree"


def test_symlink_moves_not_its_target(home: bytes, src: bytes, tmp_path: Path) -> None:
    outside = b(tmp_path / "outside")
    os.mkdir(outside)
    write(os.path.join(outside, b"keep"), b"keep me")
    target_before = snapshot(outside)
    link = os.path.join(src, b"link")
    os.symlink(outside, link)
    item = trash(link, home_trash=home)
    assert os.path.islink(item.trashed)
    assert os.readlink(item.trashed) == outside
    assert snapshot(outside) == target_before
    restore(item)
    assert os.readlink(link) == outside
    assert snapshot(outside) == target_before


def test_trailing_slash_on_a_link_still_trashes_the_link(
    home: bytes, src: bytes, tmp_path: Path
) -> None:
    outside = b(tmp_path / "outside")
    os.mkdir(outside)
    link = os.path.join(src, b"link")
    os.symlink(outside, link)
    item = trash(link + b"/", home_trash=home)
    assert item.original == link
    assert os.path.isdir(outside)
    restore(item)


@pytest.mark.parametrize(
    ("name", "escaped"),
    [
        (b"caf\xe9", b"caf%E9"),  # not UTF-8
        ("café".encode(), b"caf%C3%A9"),
        (b"line\nbreak", b"line%0Abreak"),
        (b"50% off #1?&=+;[x]", b"50%25%20off%20%231%3F%26%3D%2B%3B%5Bx%5D"),
        (b"it's (fine)!~*", b"it's%20(fine)!~*"),
    ],
)
def test_names_round_trip(home: bytes, src: bytes, name: bytes, escaped: bytes) -> None:
    path = write(os.path.join(src, name), name)
    item = trash(path, home_trash=home)
    assert os.path.basename(item.trashed) == name
    path_value, _ = info_lines(item)
    assert path_value == encoded(path)
    assert path_value.endswith(b"/" + escaped)
    assert list_trash(home)[0].original == path
    restore(os.fsdecode(item.info))  # restore by the info path too
    with open(path, "rb") as f:
        assert f.read() == name


@pytest.mark.parametrize(
    "name",
    [b"n" * 246 + b".txt", "é".encode() * 125, b"\xff" * 250],
    ids=["ascii", "utf8", "not-utf8"],
)
def test_long_names_get_a_shorter_trash_name(home: bytes, src: bytes, name: bytes) -> None:
    assert len(name) == 250  # with ".trashinfo" the info name would be 260 bytes
    path = write(os.path.join(src, name))
    first = trash(path, home_trash=home)
    write(path)
    second = trash(path, home_trash=home)
    for item in (first, second):
        check_pair(item, home)
        assert info_lines(item)[0] == encoded(path)
    short = os.path.basename(first.trashed)
    assert name.startswith(short)
    assert len(short) + len(b".trashinfo") <= 255
    assert os.path.basename(second.trashed).endswith(b".2")
    if name.startswith(b"\xc3"):
        short.decode("utf-8")  # not cut inside a character
    restore(second)
    os.rename(path, os.path.join(src, b"other"))
    restore(first)
    assert os.path.exists(path)


def test_same_name_gets_distinct_trash_names(home: bytes, src: bytes) -> None:
    items = []
    for sub in (b"one", b"two", b"three"):
        os.mkdir(os.path.join(src, sub))
        items.append(trash(write(os.path.join(src, sub, b"x.txt"), sub), home_trash=home))
    names = [os.path.basename(i.trashed) for i in items]
    assert names == [b"x.txt", b"x.txt.2", b"x.txt.3"]
    for item in items:
        check_pair(item, home)
    assert sorted(list_trash(home), key=lambda i: i.info) == sorted(items, key=lambda i: i.info)
    for item, sub in zip(items, (b"one", b"two", b"three"), strict=True):
        restore(item)
        with open(item.original, "rb") as f:
            assert f.read() == sub


def test_orphan_in_files_is_not_overwritten(home: bytes, src: bytes) -> None:
    os.makedirs(os.path.join(home, b"files"))
    orphan = write(os.path.join(home, b"files", b"y"), b"orphan")
    item = trash(write(os.path.join(src, b"y"), b"new"), home_trash=home)
    assert os.path.basename(item.trashed) == b"y.2"
    assert not os.path.exists(os.path.join(home, b"info", b"y.trashinfo"))
    with open(orphan, "rb") as f:
        assert f.read() == b"orphan"
    restore(item)


def test_restore_refuses_to_overwrite(home: bytes, src: bytes) -> None:
    path = write(os.path.join(src, b"f"), b"old")
    item = trash(path, home_trash=home)
    write(path, b"newer")
    with pytest.raises(TrashError) as exc:
        restore(item)
    assert exc.value.errno == errno.EEXIST
    assert exc.value.filename == path
    assert "move it away" in str(exc.value)
    assert os.path.exists(item.info)
    assert os.path.exists(item.trashed)
    with open(path, "rb") as f:
        assert f.read() == b"newer"


def test_restore_into_a_vanished_folder_fails_cleanly(home: bytes, src: bytes) -> None:
    os.mkdir(os.path.join(src, b"gone"))
    item = trash(write(os.path.join(src, b"gone", b"f")), home_trash=home)
    os.rmdir(os.path.join(src, b"gone"))
    with pytest.raises(TrashError) as exc:
        restore(item)
    assert exc.value.errno == errno.ENOENT
    assert "create its folder again" in str(exc.value)
    assert list_trash(home) == [item]


def test_list_trash_skips_malformed_info(home: bytes, src: bytes) -> None:
    item = trash(write(os.path.join(src, b"ok")), home_trash=home)
    write(os.path.join(home, b"info", b"bad.trashinfo"), b"[Trash Info]\nPath=/x\n")
    write(os.path.join(home, b"info", b"evil.trashinfo"), b"[Trash Info]\nPath=../x\n")
    write(os.path.join(home, b"info", b"notinfo"), b"")
    assert list_trash(home) == [item]
    assert list_trash(os.path.join(home, b"nowhere")) == []
    with pytest.raises(TrashError) as exc:
        restore(os.path.join(home, b"info", b"bad.trashinfo"))
    assert exc.value.errno == errno.EINVAL


def test_list_trash_reads_other_writers(home: bytes) -> None:
    # Other tools write comments, extra keys and spaces; relative paths in the
    # home trash are from $XDG_DATA_HOME.
    os.makedirs(os.path.join(home, b"info"))
    write(
        os.path.join(home, b"info", b"z.trashinfo"),
        b"# a comment\n[Trash Info]\nPath = docs/z%20z\nDeletionDate=2004-08-31T22:32:08\n"
        b"X-Other=1\n[Other]\nPath=/nope\n",
    )
    [item] = list_trash(home)
    assert item.original == os.path.join(os.path.dirname(home), b"docs/z z")
    assert item.trashed == os.path.join(home, b"files", b"z")
    assert item.deleted_at == datetime(2004, 8, 31, 22, 32, 8)


def test_to_dict_is_json_ready(home: bytes, src: bytes) -> None:
    item = trash(write(os.path.join(src, b"caf\xe9")), home_trash=home)
    d = item.to_dict()
    assert os.fsencode(d["original"]) == item.original
    assert os.fsencode(d["trashed"]) == item.trashed
    assert os.fsencode(d["info"]) == item.info
    assert d["deleted_at"] == info_lines(item)[1].decode()
    json.dumps(d)


def test_home_trash_dir_follows_xdg(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert home_trash_dir() == b(tmp_path / "xdg" / "Trash")
    monkeypatch.setenv("XDG_DATA_HOME", "relative/is/ignored")
    assert home_trash_dir() == b(tmp_path / ".local" / "share" / "Trash")
    monkeypatch.delenv("XDG_DATA_HOME")
    assert home_trash_dir() == b(tmp_path / ".local" / "share" / "Trash")


# --- refusals ---------------------------------------------------------------


def refused(path: bytes | str, home: bytes, code: int) -> TrashError:
    with pytest.raises(TrashError) as exc:
        trash(path, home_trash=home)
    assert exc.value.errno == code
    assert str(exc.value)
    return exc.value


def test_refuses_root(home: bytes) -> None:
    for root in ("/", b"/", "//", "/."):
        refused(root, home, errno.EINVAL)
    assert not os.path.exists(home)


def test_refuses_missing_path(home: bytes, src: bytes) -> None:
    err = refused(os.path.join(src, b"missing"), home, errno.ENOENT)
    assert err.filename == os.path.join(src, b"missing")
    assert isinstance(err, OSError)
    refused(os.path.join(src, b"no", b"such"), home, errno.ENOENT)
    refused(b"", home, errno.ENOENT)


def test_refuses_the_trash_and_what_is_in_it(home: bytes, src: bytes) -> None:
    item = trash(write(os.path.join(src, b"f")), home_trash=home)
    before = snapshot(home)
    for path in (home, item.trashed, item.info, os.path.join(home, b"files")):
        refused(path, home, errno.EINVAL)
    # ... and a folder holding it: that would put the trash inside itself.
    refused(os.path.dirname(home), home, errno.EINVAL)
    assert snapshot(home) == before


def test_refuses_a_mount_top(home: bytes, mount: bytes) -> None:
    refused(mount, home, errno.EBUSY)
    refused(mount + b"/", home, errno.EBUSY)
    assert os.listdir(mount) == []


def test_refuses_topdir_trashes(home: bytes, mount: bytes) -> None:
    item = trash(write(os.path.join(mount, b"f")), home_trash=home)
    os.mkdir(os.path.join(mount, b".Trash"), 0o1777)
    os.mkdir(os.path.join(mount, b".Trash-1234"))
    for path in (
        os.path.join(mount, b".Trash-0"),
        item.trashed,
        item.info,
        os.path.join(mount, b".Trash"),
        os.path.join(mount, b".Trash-1234"),
    ):
        refused(path, home, errno.EINVAL)
    restore(item)


# --- per-mount trashes ------------------------------------------------------


def test_other_filesystem_uses_dot_trash_uid(home: bytes, mount: bytes) -> None:
    assert os.geteuid() == 0
    os.mkdir(os.path.join(mount, b"sub"))
    path = write(os.path.join(mount, b"sub", b"caf\xe9 x"))
    own = os.path.join(mount, b".Trash-0")
    item = trash(path, home_trash=home)
    assert item.trashed.startswith(own + b"/files/")
    st = os.lstat(own)
    assert stat.S_ISDIR(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o700
    assert info_lines(item)[0] == b"sub/caf%E9%20x"  # relative to the mount's top
    assert list_trash(own) == [item]
    assert not os.path.exists(home)
    restore(item)
    round_trip(path, own, home)


def test_sticky_shared_trash_is_preferred(home: bytes, mount: bytes) -> None:
    shared = os.path.join(mount, b".Trash")
    os.mkdir(shared)
    os.chmod(shared, 0o1777)
    path = write(os.path.join(mount, b"f"))
    mine = os.path.join(shared, b"0")
    item = trash(path, home_trash=home)
    check_pair(item, mine)
    assert info_lines(item)[0] == b"f"  # relative to the mount's top, not to .Trash
    assert stat.S_IMODE(os.lstat(mine).st_mode) == 0o700
    assert not os.path.exists(os.path.join(mount, b".Trash-0"))
    assert list_trash(mine) == [item]
    restore(item)
    round_trip(path, mine, home)


@pytest.mark.parametrize("kind", ["not-sticky", "symlink", "file"])
def test_unsafe_shared_trash_is_ignored(home: bytes, mount: bytes, kind: str) -> None:
    shared = os.path.join(mount, b".Trash")
    if kind == "not-sticky":
        os.mkdir(shared)
        os.chmod(shared, 0o777)
    elif kind == "symlink":
        real = os.path.join(mount, b"real")
        os.mkdir(real)
        os.chmod(real, 0o1777)
        os.symlink(real, shared)
    else:
        write(shared)
    before = snapshot(shared)
    path = write(os.path.join(mount, b"f"))
    item = round_trip(path, os.path.join(mount, b".Trash-0"), home)
    assert item.trashed.startswith(os.path.join(mount, b".Trash-0/files/"))
    assert snapshot(shared) == before  # no "0" made inside it, or behind the link


@pytest.mark.parametrize("kind", ["symlink", "other-owner"])
def test_untrusted_dot_trash_uid_is_refused(home: bytes, mount: bytes, kind: str) -> None:
    own = os.path.join(mount, b".Trash-0")
    if kind == "symlink":
        os.mkdir(os.path.join(mount, b"elsewhere"))
        os.symlink(b"elsewhere", own)
    else:
        os.mkdir(own, 0o700)
        os.chown(own, 65534, 65534)
    path = write(os.path.join(mount, b"f"))
    err = refused(path, home, errno.EPERM)
    assert err.filename == own
    assert os.path.exists(path)
    if kind == "symlink":
        assert os.listdir(os.path.join(mount, b"elsewhere")) == []


def test_rename_failure_leaves_no_info_file(home: bytes, mount: bytes, tmp_path: Path) -> None:
    # A bind mount shares the device number but rename across it fails with
    # EXDEV: the home trash is picked, and the move must fail without copying.
    os.mkdir(os.path.join(mount, b"a"))
    bound = tmp_path / "bound"
    bound.mkdir()
    run("mount", "--bind", os.fsdecode(os.path.join(mount, b"a")), str(bound))
    try:
        home_on_mount = os.path.join(mount, b"Trash")
        path = write(os.path.join(b(bound), b"f"), b"stay")
        assert os.stat(path).st_dev == os.stat(mount).st_dev
        with pytest.raises(TrashError) as exc:
            trash(path, home_trash=home_on_mount)
        assert exc.value.errno == errno.EXDEV
        assert exc.value.filename == path
        assert "--permanent" in str(exc.value)
        assert os.listdir(os.path.join(home_on_mount, b"info")) == []
        assert os.listdir(os.path.join(home_on_mount, b"files")) == []
        with open(path, "rb") as f:
            assert f.read() == b"stay"
    finally:
        subprocess.run(["umount", "-l", str(bound)], check=False)


def test_unwritable_mount_top_is_a_clear_error(home: bytes, mount: bytes) -> None:
    path = write(os.path.join(mount, b"f"))
    run("mount", "-o", "remount,ro", os.fsdecode(mount))
    err = refused(path, home, errno.EROFS)
    assert "--permanent" in str(err)
    assert os.path.exists(path)
