"""Copy, move and delete jobs, through the public API and the command line:
exact trees (odd names, paths over PATH_MAX, links, modes, mtimes), the
conflict policies, refusals before anything is written, kill -9 and resume
with no half file ever under a final name, moves across filesystems, and
deletes that never follow a symlink out of their target."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import anyio
import pytest

from phasekit import fs
from phasekit.errors import InvalidInputError
from phasekit.fileops import CopyJob, DeleteJob, DeleteSummary, MoveJob, TransferSummary
from phasekit.jobs import JobStatus
from phasekit.library import Library
from test_indexing import cli

from conftest import BAD_NAME, after, kill_when, pattern, run_as_nobody

TEMP_SUFFIX = ".pktmp"
re_number = re.compile(rb" \(1\)(\.[a-z]+)?$")


def in_flight(pid: int, folder: Path) -> int:
    """The size of the largest file process ``pid`` is writing in ``folder``
    (-1: none): an unnamed one (``O_TMPFILE``, shown by the kernel as
    ``folder/#inode (deleted)``) or one under a temporary name."""
    largest = -1
    fds = f"/proc/{pid}/fd"
    try:
        names = os.listdir(fds)
    except FileNotFoundError:
        return largest
    prefix = os.fsencode(folder) + b"/"
    for name in names:
        try:
            link = os.readlink(os.fsencode(f"{fds}/{name}"))
            if not link.startswith(prefix) or b"/" in link[len(prefix) :]:
                continue
            if link.endswith(b" (deleted)") or link.endswith(TEMP_SUFFIX.encode()):
                largest = max(largest, os.stat(f"{fds}/{name}").st_size)
        except (FileNotFoundError, PermissionError):
            continue
    return largest


def snapshot(root: Path | bytes) -> dict[bytes, tuple[object, ...]]:
    """Every entry below ``root``: kind, mode, mtime, size, content digest
    or link target, and which other names share its inode."""
    root_b = os.fsencode(root)
    out: dict[bytes, tuple[object, ...]] = {}
    inodes: dict[tuple[int, int], list[bytes]] = {}
    for batch in fs.walk(root_b):
        for i, path in enumerate(batch.paths):
            raw = os.fsencode(path)
            rel = raw[len(root_b) + 1 :]
            kind = int(batch.kinds[i])
            what: object = None
            if kind == 0:
                what = fs.checksum(raw)
                inodes.setdefault((int(batch.devices[i]), int(batch.inodes[i])), []).append(rel)
            elif kind == 2:
                what = _readlink(raw)
            mtime = int(batch.mtimes_ns[i])
            out[rel] = (
                kind,
                int(batch.modes[i]) & 0o7777,
                mtime,
                int(batch.sizes[i]) if kind == 0 else 0,
                what,
            )
    for names in inodes.values():
        for name in names:
            out[name] += (tuple(sorted(names)),)
    return out


def _readlink(path: bytes) -> bytes:
    parent, name = path.rsplit(b"/", 1)
    fd = os.open(parent if len(parent) < 4000 else b".", os.O_RDONLY | os.O_DIRECTORY)
    try:
        return os.readlink(name, dir_fd=fd)
    finally:
        os.close(fd)


def odd_tree(root: Path) -> None:
    """Non-UTF-8 names first, last and inside, a newline, long names, links,
    a read-only folder, old mtimes, a FIFO."""
    r = os.fsencode(root)
    os.makedirs(r + b"/\x01first\xff/sub\nline", exist_ok=True)
    os.makedirs(r + b"/mid/" + b"L" * 250 + b"/" + b"M" * 250, exist_ok=True)
    files = {
        b"/\x01first\xff/a": pattern(10, 1),
        b"/\x01first\xff/sub\nline/" + BAD_NAME: pattern(70_000, 2),
        b"/mid/" + b"L" * 250 + b"/" + b"M" * 250 + b"/deep.bin": pattern(300_000, 3),
        b"/mid/caf\xe9.txt": b"",
        b"/zz\xfe\xfflast": pattern(5000, 4),
    }
    for name, data in files.items():
        with open(r + name, "wb") as f:
            f.write(data)
    os.link(r + b"/zz\xfe\xfflast", r + b"/mid/hard\xe9")
    os.symlink(b"../\x01first\xff", r + b"/mid/up\xfe")
    os.symlink(b"/etc", r + b"/outside")
    os.mkfifo(r + b"/mid/fifo")
    os.chmod(r + b"/mid/caf\xe9.txt", 0o640)
    os.utime(r + b"/mid/caf\xe9.txt", ns=(0, 946_684_800_123_456_789))
    os.chmod(r + b"/\x01first\xff/sub\nline", 0o555)
    os.utime(r + b"/mid", ns=(0, 1_000_000_000_000_000_000))


def without_fifo(snap: dict[bytes, tuple[object, ...]]) -> dict[bytes, tuple[object, ...]]:
    return {k: v for k, v in snap.items() if not k.endswith(b"fifo")}


def test_copy_is_exact_and_skips_special_files(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    odd_tree(src)
    with Library.open(tmp_path / "lib") as library:
        run = library.run(CopyJob(sources=[src], dest=dst))
        assert run.status is JobStatus.COMPLETED_WITH_ERRORS
        summary = run.output()
        errors = run.errors()
    assert isinstance(summary, TransferSummary)
    assert without_fifo(snapshot(src)) == snapshot(dst)
    assert [os.fsencode(e.path) for e in errors] == [os.fsencode(src / "mid" / "fifo")]
    assert "special file" in errors[0].message
    assert (summary.files, summary.links, summary.symlinks) == (5, 1, 2)
    assert summary.targets == [str(dst)]
    assert not [p for b in fs.walk(dst) for p in b.paths if p.endswith(TEMP_SUFFIX)]


def test_nasty_tree_with_paths_over_path_max(nasty, tmp_path):
    root, notable = nasty
    dst = tmp_path / "copy"
    with Library.open(tmp_path / "lib") as library:
        run = library.run(CopyJob(sources=[root], dest=dst, verify=True))
    assert run.status is JobStatus.COMPLETED_WITH_ERRORS  # the FIFO
    assert without_fifo(snapshot(root)) == snapshot(dst)
    deep = os.fsencode(dst) + notable["deep"][len(os.fsencode(root)) :]
    assert fs.checksum(deep) == fs.checksum(notable["deep"])


@pytest.mark.parametrize("policy", ["abort", "skip", "overwrite", "rename"])
def test_conflict_policies(tmp_path, policy):
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "d").mkdir(parents=True)
    (src / "d" / "same.txt").write_bytes(b"new content")
    (src / "d" / "fresh.txt").write_bytes(b"fresh")
    (src / "file-vs-dir").write_bytes(b"a file")
    (src / "dir-vs-file" / "deeper").mkdir(parents=True)
    (src / "dir-vs-file" / "deeper" / "x").write_bytes(b"x")
    (src / "f.txt").write_bytes(b"source f")
    (src / "f (1).txt").write_bytes(b"source f (1)")
    (dst / "src" / "d").mkdir(parents=True)
    (dst / "src" / "d" / "same.txt").write_bytes(b"old")
    (dst / "src" / "file-vs-dir").mkdir()
    (dst / "src" / "dir-vs-file").write_bytes(b"a file in the way")
    (dst / "src" / "f.txt").write_bytes(b"old f")
    before = snapshot(dst)
    with Library.open(tmp_path / "lib") as library:
        run = library.run(CopyJob(sources=[src], dest=dst, conflict=policy))
        error = run.error
    target = dst / "src" / "d"
    if policy == "abort":
        assert run.status is JobStatus.FAILED
        assert "4 destination names are taken" in (error or "")
        assert snapshot(dst) == before  # nothing written
        return
    assert run.status is JobStatus.COMPLETED
    assert (target / "fresh.txt").read_bytes() == b"fresh"
    assert (dst / "src" / "file-vs-dir").is_dir()  # a file never replaces a folder
    assert (dst / "src" / "dir-vs-file").read_bytes() == b"a file in the way"
    same = (target / "same.txt").read_bytes()
    if policy == "skip":
        assert same == b"old"
        assert (dst / "src" / "f.txt").read_bytes() == b"old f"
    elif policy == "overwrite":
        assert same == b"new content"
        assert (dst / "src" / "f.txt").read_bytes() == b"source f"
    else:
        assert same == b"old"
        assert (target / "same (1).txt").read_bytes() == b"new content"
        assert (dst / "src" / "file-vs-dir (1)").read_bytes() == b"a file"
        # A folder under a new name keeps its contents.
        assert (dst / "src" / "dir-vs-file (1)" / "deeper" / "x").read_bytes() == b"x"
        # "f (1).txt" is a source's own name: the renamed f.txt takes the next.
        assert (dst / "src" / "f.txt").read_bytes() == b"old f"
        assert (dst / "src" / "f (1).txt").read_bytes() == b"source f (1)"
        assert (dst / "src" / "f (2).txt").read_bytes() == b"source f"


def test_refused_before_anything_is_written(tmp_path):
    src = tmp_path / "src"
    (src / "inner").mkdir(parents=True)
    (src / "f").write_bytes(b"x")
    with Library.open(tmp_path / "lib") as library:
        for job, words in [
            (CopyJob(sources=[src], dest=src / "inner"), "inside"),
            (CopyJob(sources=[src / "f"], dest=src / "f"), "same"),
            (CopyJob(sources=[tmp_path / "nope"], dest=tmp_path / "x"), "does not exist"),
            (CopyJob(sources=[src / "f", src / "inner"], dest=tmp_path / "new"), "not a folder"),
            (MoveJob(sources=[src], dest=src / "inner" / "deeper"), "inside"),
        ]:
            run = library.run(job)
            assert run.status is JobStatus.FAILED, job
            assert words in (run.error or ""), run.error
    assert sorted(os.listdir(src)) == ["f", "inner"]
    assert os.listdir(src / "inner") == []
    assert not (tmp_path / "new").exists()


COPIER = textwrap.dedent(
    """
    import sys
    from phasekit.fileops import CopyJob, MoveJob
    from phasekit.library import Library
    kind = MoveJob if sys.argv[4] == "move" else CopyJob
    conflict = sys.argv[5] if len(sys.argv) > 5 else "abort"
    with Library.open(sys.argv[1]) as library:
        print("ready", flush=True)
        library.run(kind(sources=[sys.argv[2]], dest=sys.argv[3], page_files=3,
                         page_bytes=1 << 20, threads=2, conflict=conflict))
    """
)


def kill_copy(lib: Path, src: Path, dst: Path, delay: float, operation: str = "copy") -> None:
    kill_when([sys.executable, "-c", COPIER, str(lib), str(src), str(dst), operation], after(delay))


def many_files(root: Path, count: int = 600) -> None:
    for i in range(count):
        folder = root / f"d{i % 13}" / ("caf\udce9" if i % 5 == 0 else "plain")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{i}\n.bin").write_bytes(pattern(1000 + 37 * i, i))
    (root / "big.bin").write_bytes(pattern(48 * 1024 * 1024, 9))


def complete_or_absent(src: Path, dst: Path) -> None:
    """Every file under its final name in ``dst`` is whole (equals its
    source); temporary files may be there."""
    for batch in fs.walk(dst):
        for i, path in enumerate(batch.paths):
            if batch.kinds[i] != 0 or path.endswith(TEMP_SUFFIX):
                continue
            source = os.fsencode(src) + os.fsencode(path)[len(os.fsencode(dst)) :]
            assert fs.checksum(path) == fs.checksum(source), path


def job_statuses(lib: Path) -> list[str]:
    listed = cli("jobs", "--all", "--json", library=lib).stdout
    return [json.loads(line)["status"] for line in listed.splitlines()]


def test_kill_during_copy_then_resume(tmp_path):
    src, dst, lib = tmp_path / "src", tmp_path / "dst", tmp_path / "lib"
    many_files(src, count=2000)
    rng = random.Random(3)
    kills = 0
    for _ in range(10):
        kill_copy(lib, src, dst, rng.uniform(0.05, 0.6))
        if dst.exists():
            complete_or_absent(src, dst)
        statuses = job_statuses(lib)
        if not statuses:
            continue  # killed before its job was stored: nothing to resume
        if "completed" in statuses:
            # Finished before the kill: start over (a new run would copy
            # into dst/src, dst being a folder now).
            subprocess.run(["rm", "-rf", str(dst), str(lib)], check=True)
            continue
        kills += 1
        if kills == 3:
            break
    assert kills >= 1, "the copy always finished before it could be killed: make the tree bigger"
    done = cli("resume", library=lib)
    assert done.returncode == 0, done.stderr
    assert snapshot(src) == snapshot(dst)
    assert job_statuses(lib) == ["completed"]


def small_tree(root: Path) -> None:
    for i in range(400):
        folder = root / f"d{i % 7}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / os.fsdecode(b"f%d\xe9" % i)).write_bytes(pattern(2000 + i, i))


def test_move_across_filesystems_killed_then_resumed(tmp_path, small_disk):
    src, lib, dst = tmp_path / "src", tmp_path / "lib", small_disk / "moved"
    small_tree(src)
    expected = snapshot(src)
    files = {k for k, v in expected.items() if v[0] == 0}
    rng = random.Random(5)
    for _ in range(10):
        kill_copy(lib, src, dst, rng.uniform(0.05, 0.5), operation="move")
        statuses = job_statuses(lib)
        if not statuses:
            continue  # killed before its job was stored: nothing moved yet
        if "completed" not in statuses:
            break
        subprocess.run(["rm", "-rf", str(dst), str(lib)], check=True)
        small_tree(src)
        expected = snapshot(src)  # new files, new mtimes
    else:
        pytest.fail("the move always finished before it could be killed")
    # Nothing lost: each file is in one place or the other (or, for the one
    # whose copy was in place when the kill came, both: the resume removes
    # its source).
    in_src = {k for k, v in snapshot(src).items() if v[0] == 0} if src.exists() else set()
    in_dst = set()
    if dst.exists():
        for name, entry in snapshot(dst).items():
            if entry[0] == 0 and not name.endswith(TEMP_SUFFIX.encode()):
                in_dst.add(name)
                assert entry[4] == expected[name][4], name  # whole, never half
    assert files <= in_src | in_dst
    assert len(in_src & in_dst) <= 2  # at most the files in flight (2 threads)
    done = cli("resume", library=lib)
    assert done.returncode == 0, done.stderr
    assert not src.exists()
    assert snapshot(dst) == expected


def test_same_filesystem_move_is_one_rename(tmp_path):
    src = tmp_path / "src"
    odd_tree(src)
    expected = snapshot(src)
    inode = os.stat(src).st_ino
    with Library.open(tmp_path / "lib") as library:
        run = library.run(MoveJob(sources=[src], dest=tmp_path / "moved"))
        summary = run.output()
    assert run.status is JobStatus.COMPLETED
    assert isinstance(summary, TransferSummary)
    assert summary.renamed == 1
    assert os.stat(tmp_path / "moved").st_ino == inode
    assert snapshot(tmp_path / "moved") == expected
    assert not src.exists()


def test_permanent_delete_never_follows_links_out(tmp_path):
    outside = tmp_path / "outside"
    (outside / "keep").mkdir(parents=True)
    (outside / "keep" / "precious").write_bytes(b"precious")
    target = tmp_path / "target"
    odd_tree(target)
    os.symlink(outside, target / "link-to-outside")
    os.symlink(outside / "keep" / "precious", target / "mid" / "file-link")
    with Library.open(tmp_path / "lib") as library:
        run = library.run(DeleteJob(paths=[target], mode="permanent"))
        summary = run.output()
    assert run.status is JobStatus.COMPLETED
    assert isinstance(summary, DeleteSummary)
    assert summary.files >= 8
    assert not os.path.lexists(target)
    assert (outside / "keep" / "precious").read_bytes() == b"precious"


def test_delete_refusals(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    tree = tmp_path / "area" / "tree"
    tree.mkdir(parents=True)
    (tmp_path / "lib").mkdir()
    with Library.open(tmp_path / "lib") as library:
        library.add_location(tree, mode="shallow")
        for path, why in [
            ("/", "the root folder"),
            (tmp_path / "home", "the home folder"),
            (tree, "a location root"),
            (tmp_path / "lib", "the library's folder"),
            (tmp_path, "a folder holding"),  # the home folder, a location, the library
            (tmp_path / "area", "a folder holding a location root"),
            (tmp_path / "missing", "does not exist"),
        ]:
            run = library.run(DeleteJob(paths=[path], mode="permanent"))
            assert run.status is JobStatus.FAILED
            assert why in (run.error or ""), run.error
    assert tree.is_dir()
    assert (tmp_path / "home").is_dir()


def test_delete_to_trash_and_restore_by_the_cli(tmp_path):
    trash_home = tmp_path / "xdg"
    env_path = tmp_path / "photos"
    env_path.mkdir()
    (env_path / "caf\udce9.jpg").write_bytes(b"jpeg")
    env = {**os.environ, "XDG_DATA_HOME": str(trash_home)}
    done = subprocess.run(
        [sys.executable, "-m", "phasekit", "--library", str(tmp_path / "lib"), "delete",
         str(env_path), "--json"],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert not env_path.exists()
    info = (trash_home / "Trash" / "info" / "photos.trashinfo").read_bytes()
    assert b"Path=" + os.fsencode(env_path).replace(b"/", b"/") in info
    assert (trash_home / "Trash" / "files" / "photos" / "caf\udce9.jpg").read_bytes() == b"jpeg"


def test_permission_errors_are_per_file_as_nobody(tmp_path_factory):
    base = Path(tempfile.mkdtemp(prefix="phasekit-perm-"))
    try:
        base.chmod(0o777)
        src = base / "src"
        (src / "open").mkdir(parents=True)
        (src / "open" / "readable").write_bytes(b"fine")
        # Copies are created with their final mode where they can be: a
        # read-only one must still be written (and a group-writable one,
        # masked by the umask, get its mode afterwards).
        (src / "open" / "read-only").write_bytes(b"ro")
        (src / "open" / "read-only").chmod(0o444)
        (src / "open" / "shared").write_bytes(b"rw")
        (src / "open" / "shared").chmod(0o664)
        (src / "secret").write_bytes(b"no")
        (src / "secret").chmod(0)
        (src / "locked").mkdir()
        (src / "locked" / "inside").write_bytes(b"x")
        (src / "locked").chmod(0)
        for folder in (src, src / "open"):
            folder.chmod(0o755)
        code = textwrap.dedent(
            f"""
            import json
            from phasekit.fileops import CopyJob
            from phasekit.library import Library
            with Library.open({str(base / "lib")!r}) as library:
                run = library.run(CopyJob(sources=[{str(src)!r}], dest={str(base / "dst")!r}))
                print(json.dumps({{"status": run.status.value,
                                   "errors": [[e.path, e.errno] for e in run.errors()]}}))
            """
        )
        result = run_as_nobody(code)
        assert isinstance(result, dict)
        assert result["status"] == "completed_with_errors"
        assert sorted(result["errors"]) == [
            [str(src / "locked"), 13],
            [str(src / "secret"), 13],
        ]
        assert (base / "dst" / "open" / "readable").read_bytes() == b"fine"
        assert (base / "dst" / "open" / "read-only").read_bytes() == b"ro"
        assert (base / "dst" / "open" / "read-only").stat().st_mode & 0o7777 == 0o444
        assert (base / "dst" / "open" / "shared").stat().st_mode & 0o7777 == 0o664
        assert not (base / "dst" / "secret").exists()
    finally:
        for path in (base / "src" / "locked", base / "src" / "secret"):
            if path.exists():
                path.chmod(0o755)
        shutil.rmtree(base, ignore_errors=True)


def test_full_destination_stops_resumable_then_completes(tmp_path, small_disk):
    """A copy onto a full disk stops with one clear error (exit 75), leaves no
    partial file under a final name, and completes once space is freed."""
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    for i in range(6):
        (src / "sub" / f"part{i}\xe9.bin").write_bytes(pattern(512 * 1024, i))
    filler = small_disk / "filler"
    filler.write_bytes(b"f" * (2 * 1024 * 1024))
    dst = small_disk / "copy"
    lib = tmp_path / "lib"
    done = cli("copy", str(src), str(dst), library=lib)
    assert done.returncode == 75, done.stderr
    assert "no space left on the destination's disk" in done.stderr
    assert "Traceback" not in done.stderr
    complete_or_absent(src, dst)
    assert job_statuses(lib) == ["paused"]
    filler.unlink()
    resumed = cli("resume", library=lib)
    assert resumed.returncode == 0, resumed.stderr
    assert snapshot(src) == snapshot(dst)
    assert not [p for b in fs.walk(dst) for p in b.paths if p.endswith(TEMP_SUFFIX)]


def test_pause_lands_inside_a_large_file_then_resume(tmp_path):
    """A pause asked while one large file is copied stops inside it (no
    temporary file left, no final name), and the resume completes it."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    (src / "small.txt").write_bytes(b"small")
    with open(src / "large\xe9.bin", "wb") as f:
        for i in range(192):
            f.write(pattern(1024 * 1024, i))

    async def main(library: Library) -> tuple[JobStatus, bool, JobStatus]:
        async with library.jobs() as manager:
            handle = await manager.dispatch(
                CopyJob(sources=[src], dest=dst, verify=True, page_files=1, threads=1)
            )
            # Until the large file is being written.
            while in_flight(os.getpid(), dst) < 1:
                if handle.status.finished:
                    pytest.fail("the copy ended before the large file was started")
                await anyio.sleep(0.005)
            await handle.pause()
            paused = await handle.wait()
            inside = not (dst / "large\xe9.bin").exists() and not [
                p for p in dst.iterdir() if p.name.endswith(TEMP_SUFFIX)
            ]
            await handle.resume()
            return paused, inside, await handle.wait()

    with Library.open(tmp_path / "lib") as library:
        paused, inside, finished = anyio.run(main, library)
    assert paused is JobStatus.PAUSED
    assert inside, "the pause waited for the large file"
    assert finished is JobStatus.COMPLETED
    assert snapshot(src) == snapshot(dst)


def test_permanent_delete_of_a_tree_deeper_than_the_soft_open_files_limit(tmp_path):
    """A removal holds a folder handle per level; the CLI, started with the
    common soft limit of 1024 open files, still removes 3,000 levels."""
    import resource

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 4000:
        pytest.skip(f"the hard limit on open files ({hard}) is below the depth")
    deep = tmp_path / "deep\xff"
    deep.mkdir()
    fd = os.open(deep, os.O_RDONLY)
    for _ in range(3000):
        os.mkdir("d\n", dir_fd=fd)
        inner = os.open("d\n", os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = inner
    os.close(os.open(BAD_NAME, os.O_CREAT | os.O_WRONLY, dir_fd=fd))
    os.close(fd)
    done = subprocess.run(
        ["prlimit", f"--nofile=1024:{hard if hard != resource.RLIM_INFINITY else 'unlimited'}",
         sys.executable, "-m", "phasekit", "--library", str(tmp_path / "lib"), "delete",
         "--permanent", str(deep)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "removed 1 files and 3,001 folders" in done.stdout
    assert not os.path.lexists(deep)


def test_rename_policy_fits_names_of_255_bytes(tmp_path):
    """'name (1).ext' of a 255-byte name is shortened to fit, never cutting
    a character, instead of failing with "File name too long"."""
    names = [b"x" * 251 + b".jpg", b"\xc3\xa9" * 125 + b"\xff.png", b"\xfe" * 255]
    for side, content in (("src", b"new"), ("dst/src", b"old")):
        (tmp_path / side).mkdir(parents=True)
        for name in names:
            (tmp_path / side / os.fsdecode(name)).write_bytes(content)
    with Library.open(tmp_path / "lib") as library:
        run = library.run(CopyJob(sources=[tmp_path / "src"], dest=tmp_path / "dst",
                                  conflict="rename"))  # fmt: skip
    assert run.status is JobStatus.COMPLETED, run.errors()
    got = sorted(os.listdir(os.fsencode(tmp_path / "dst" / "src")))
    assert len(got) == 6
    assert all(len(name) <= 255 for name in got)
    renamed = [n for n in got if n not in names]
    assert [bool(re_number.search(n)) for n in renamed] == [True] * 3
    for name in renamed:
        assert (tmp_path / "dst" / "src" / os.fsdecode(name)).read_bytes() == b"new"
    assert b"\xc3\xa9" * 10 in b"".join(renamed)
    assert any(n.endswith(b" (1).jpg") for n in renamed)


@pytest.mark.parametrize("verify", [False, True])
def test_access_times_kept_when_asked(tmp_path, verify):
    src = tmp_path / "src"
    src.mkdir()
    for i, name in enumerate(["a\xff", "b"]):
        (src / name).write_bytes(pattern(100_000 * i + 10, i))
        os.utime(src / name, ns=(1_000_000_000_123_456_789 + i, 1_100_000_000_000_000_000))
    with Library.open(tmp_path / "lib") as library:
        kept = library.run(CopyJob(sources=[src], dest=tmp_path / "kept", atime=True,
                                   verify=verify))  # fmt: skip
        plain = library.run(CopyJob(sources=[src], dest=tmp_path / "plain", verify=verify))
        with pytest.raises(InvalidInputError):
            CopyJob(sources=[src], dest=tmp_path / "x", atime="yes")  # type: ignore[arg-type]
    assert kept.status is plain.status is JobStatus.COMPLETED
    for i, name in enumerate(["a\xff", "b"]):
        assert os.stat(tmp_path / "kept" / name).st_atime_ns == 1_000_000_000_123_456_789 + i
        assert os.stat(tmp_path / "plain" / name).st_atime_ns != 1_000_000_000_123_456_789 + i
        assert os.stat(tmp_path / "kept" / name).st_mtime_ns == 1_100_000_000_000_000_000


def test_roots_longer_than_path_max_are_refused_clearly(nasty, tmp_path):
    root, notable = nasty
    deep = os.fsdecode(os.path.dirname(notable["deep"]))
    assert len(os.fsencode(deep)) >= 4096
    with Library.open(tmp_path / "lib") as library:
        for job in (
            CopyJob(sources=[deep], dest=tmp_path / "out"),
            CopyJob(sources=[root], dest=deep + "/x"),
            DeleteJob(paths=[deep], mode="permanent"),
        ):
            run = library.run(job)
            assert run.status is JobStatus.FAILED
            assert "more than the kernel takes in one path" in (run.error or "")
    assert fs.checksum(notable["deep"])  # nothing removed (read beneath folder handles)
