"""Shared fixtures: the nasty tree, helpers to collect walks, a non-root runner."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from phasekit.fs import FsError, WalkBatch
from phasekit.jobs import JobStore
from phasekit.library import Library
from worker_procs import Worker

KIB = 1024
#: A name with bytes that are not UTF-8: must round-trip exactly.
BAD_NAME = b"bad-\xff\xfe-name.bin"
NEWLINE_NAME = "line\nbreak.txt"
LONG_NAME = "n" * 251 + ".txt"  # 255 bytes, the most a name may have


@dataclass(frozen=True)
class Entry:
    kind: int
    size: int
    mtime_ns: int
    inode: int
    device: int
    mode: int
    nlink: int


@dataclass
class WalkResult:
    entries: dict[str, Entry]
    errors: list[FsError]
    batches: int
    paths_in_order: list[str]

    def error_paths(self) -> dict[str, int]:
        return {e.path: e.errno for e in self.errors}


def collect(batches: Iterable[WalkBatch]) -> WalkResult:
    entries: dict[str, Entry] = {}
    order: list[str] = []
    errors: list[FsError] = []
    count = 0
    for batch in batches:
        count += 1
        errors.extend(batch.errors)
        for i, path in enumerate(batch.paths):
            order.append(path)
            entries[path] = Entry(
                int(batch.kinds[i]),
                int(batch.sizes[i]),
                int(batch.mtimes_ns[i]),
                int(batch.inodes[i]),
                int(batch.devices[i]),
                int(batch.modes[i]),
                int(batch.nlinks[i]),
            )
    return WalkResult(entries, errors, count, order)


def pattern(size: int, seed: int) -> bytes:
    """Deterministic, non-repeating-looking content."""
    block = bytes((i * 131 + seed * 7 + (i >> 8)) & 0xFF for i in range(4096))
    return (block * (size // 4096 + 1))[:size]


def _make_deep(root: Path, levels: int, name: str) -> bytes:
    """Nested directories deeper than PATH_MAX, made one level at a time."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    path = os.fsencode(root)
    try:
        for _ in range(levels):
            os.mkdir(name, dir_fd=fd)
            nxt = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = nxt
            path += b"/" + name.encode()
        leaf = os.open("leaf.bin", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
        os.write(leaf, b"deep data")
        os.close(leaf)
    finally:
        os.close(fd)
    return path + b"/leaf.bin"


def build_nasty(root: Path) -> dict[str, bytes]:
    """The fixture tree with every hard case; returns notable paths (bytes)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "plain.txt").write_bytes(b"plain\n")
    sub = root / "sub" / "inner"
    sub.mkdir(parents=True)
    (sub / "a.txt").write_bytes(pattern(300, 1))
    (root / "sub" / ".hidden").write_bytes(b"hidden")
    (root / ".hiddendir").mkdir()
    (root / ".hiddendir" / "x").write_bytes(b"x")
    bad = os.fsencode(root) + b"/" + BAD_NAME
    with open(bad, "wb") as f:
        f.write(b"non-utf8 name")
    (root / NEWLINE_NAME).write_bytes(b"newline in name")
    (root / LONG_NAME).write_bytes(b"long name")
    os.symlink("loop", root / "loop")  # a symlink to itself
    os.symlink("..", sub / "up")  # back to an ancestor
    os.symlink("nowhere", root / "dangling")
    os.symlink("sub", root / "sublink")  # a good directory link
    os.mkfifo(root / "fifo")
    (root / "empty1").write_bytes(b"")
    (root / "sub" / "empty2").write_bytes(b"")
    (root / "hl_a").write_bytes(pattern(5000, 2))
    os.link(root / "hl_a", root / "sub" / "hl_b")
    (root / "exact100k").write_bytes(pattern(100 * KIB, 3))
    (root / "over100k").write_bytes(pattern(100 * KIB + 1, 4))
    (root / "exact16k").write_bytes(pattern(16 * KIB, 5))
    with open(root / "sparse", "wb") as f:
        f.truncate(8 * 1024 * KIB)
        f.seek(3 * 1024 * KIB)
        f.write(b"island of data")
    locked = root / "locked"
    locked.mkdir()
    (locked / "secret").write_bytes(b"secret")
    (root / "noread").write_bytes(b"no read permission")
    os.chmod(root / "noread", 0)
    os.chmod(locked, 0)
    deep = _make_deep(root, 25, "d" * 200)
    return {
        "bad": bad,
        "deep": deep,
        "fifo": os.fsencode(root / "fifo"),
        "locked": os.fsencode(locked),
    }


def _unlock(root: Path) -> None:
    for name in ("locked", "noread"):
        os.chmod(root / name, 0o755)


@pytest.fixture
def nasty(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, bytes]]]:
    # A world-traversable location so that tests can also run as `nobody`.
    base = Path(tempfile.mkdtemp(prefix="phasekit-nasty-"))
    base.chmod(0o755)
    root = base / "tree"
    notable = build_nasty(root)
    yield root, notable
    _unlock(root)
    # The deep chain is longer than PATH_MAX: rm -rf copes, shutil may not.
    subprocess.run(["rm", "-rf", str(base)], check=False)
    shutil.rmtree(base, ignore_errors=True)


def run_as_nobody(code: str) -> object:
    """Run Python code as an unprivileged user; it must print one JSON value.

    Tests run as root, which reads every file whatever its mode, so permission
    cases are only real when run as someone else.
    """
    if os.geteuid() != 0:
        proc = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=False
        )
    else:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.fail("setpriv (util-linux) is needed to test permissions as a non-root user")
        cmd = [
            setpriv,
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            sys.executable,
            "-c",
            code,
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd="/")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def mode_bits(entry: Entry) -> int:
    return stat.S_IMODE(entry.mode)


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Async job-system tests run under both anyio backends."""
    return str(request.param)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[JobStore]:
    """A fresh jobs.db."""
    with JobStore(tmp_path / "jobs.db") as s:
        yield s


@pytest.fixture
def library(tmp_path: Path) -> Path:
    """A new folder library (its jobs in its jobs.db unless $PHASEKIT_JOBS says)."""
    folder = tmp_path / "lib"
    with Library.open(folder):
        pass
    return folder


@pytest.fixture
def workers() -> Iterator[list[Worker]]:
    """The `phasekit worker` processes a test starts: killed at its end."""
    started: list[Worker] = []
    yield started
    for worker in started:
        worker.close()


@contextlib.contextmanager
def tmpfs(mount: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` (mount's syntax: 4m, 1300m) mounted at ``mount``
    (made), unmounted afterwards whatever happened; skips without root."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        if subprocess.run(["umount", str(mount)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs of our own."""
    with tmpfs(tmp_path / "small", "4m") as mount:
        yield mount


def kill_when(
    argv: list[str], moment: Callable[[int], bool], env: dict[str, str] | None = None
) -> bool:
    """Start ``argv`` (a process that prints "ready" once it is set up),
    then SIGKILL it as soon as ``moment(pid)`` is true. False if it
    finished first."""
    with subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=env) as proc:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        while proc.poll() is None:
            if moment(proc.pid):
                proc.kill()
                proc.wait()
                return True
            time.sleep(0.002)
        return False


def after(seconds: float) -> Callable[[int], bool]:
    """A :func:`kill_when` moment: ``seconds`` after it is first asked."""
    deadline: list[float] = []

    def due(_pid: int) -> bool:
        if not deadline:
            deadline.append(time.monotonic() + seconds)
        return time.monotonic() >= deadline[0]

    return due


def make_wide_tree(root: Path, files: int) -> None:
    """Many small files with long names: their rows cannot fit in 4 MiB."""
    for i in range(files):
        sub = root / f"dir-{i // 1000:02d}"
        if i % 1000 == 0:
            sub.mkdir(parents=True)
        name = f"{i:06d}-" + "a-rather-long-file-name-that-takes-room-in-library-db-" * 3
        (sub / name).write_bytes(b"%d" % i)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """The URL of a PostgreSQL server the tests may create databases on: a
    cluster of their own (tests/pg_server.py), or ``$PHASEKIT_TEST_PG``."""
    given = os.environ.get("PHASEKIT_TEST_PG")
    if given:
        yield given
        return
    from pg_server import PgServer

    server = PgServer(Path(tempfile.mkdtemp(prefix="phasekit-pg-")))
    try:
        yield server.url()
    finally:
        server.close()


@pytest.fixture
def pg_url(pg_server: str) -> str:
    """A new, empty PostgreSQL database for one test; its URL."""
    from pg_server import new_database

    return new_database(pg_server)
