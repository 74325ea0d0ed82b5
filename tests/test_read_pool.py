"""The reading pools: files are read many at once by default (sized for
storage latency, not cores), ``threads`` means exactly that many readers
(a page of files at a time on the reading pool, a hashing walk's directory at
a time on the I/O pool: see rust/core/src/pool.rs),
``PHASEKIT_READ_THREADS`` changes the default and a bad value is a clear
error before anything runs. Each case in a fresh process, since pools are
kept for the life of a process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from jobs_fixture import subprocess_env
from phasekit import fs
from test_bytes_paths import build_bytes_tree

# Counts the threads the reading pools started in this process (the Rust
# core names them), after hashing every file of a tree: the reading pool's
# for a list of files, the I/O pool's for a hashing walk.
_COUNT = """
import json, os, sys
from phasekit import fs

def named(prefix):
    names = []
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/comm") as f:
                names.append(f.read().strip())
        except FileNotFoundError:
            pass  # a thread that ended meanwhile
    return sum(name.startswith(prefix) for name in names)

import time
how, threads = sys.argv[1], None if sys.argv[2] == "none" else int(sys.argv[2])
pool = "phasekit-io-" if how == "walk" else "phasekit-read-"
out = {"default": fs.read_threads(), "before": named(pool)}
if how == "cas_ids":
    files = [os.fsencode(p) for p in sys.argv[3:]]
    out["ids"] = fs.cas_ids(files, threads=threads).values
else:
    with fs.walk(sys.argv[3], cas_ids=True, threads=threads) as walker:
        out["ids"] = [
            [os.fsencode(b.paths[i]).hex(), b.cas_ids[i]]
            for b in walker
            for i in range(len(b.paths))
            if b.cas_ids[i]
        ]
# A thread names itself once it runs: give the last ones a moment.
expected, deadline = threads or out["default"], time.monotonic() + 30
while named(pool) < expected and time.monotonic() < deadline:
    time.sleep(0.01)
time.sleep(0.05)  # and one more would show up too
out["after"] = named(pool)
out["other"] = named("phasekit-io-" if pool == "phasekit-read-" else "phasekit-read-")
print(json.dumps(out))
"""


def regular_files(root: Path) -> list[bytes]:
    files = []
    for dirpath, _dirs, names in os.walk(os.fsencode(root)):
        files += [os.path.join(dirpath, n) for n in names]
    return sorted(f for f in files if os.path.isfile(f) and not os.path.islink(f))


def clean_env(**extra: str) -> dict[str, str]:
    """The test environment without a PHASEKIT_READ_THREADS of its own."""
    env = subprocess_env()
    env.pop("PHASEKIT_READ_THREADS", None)
    return {**env, **extra}


def count_readers(
    threads: str, files: list[bytes], env: dict[str, str] | None = None, how: str = "cas_ids"
) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", _COUNT, how, threads, *map(os.fsdecode, files)],
        capture_output=True, text=True, timeout=120, check=False,
        env=clean_env(**(env or {})),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    out: dict[str, object] = json.loads(done.stdout)
    return out


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    root = tmp_path_factory.mktemp("read-pool") / "tree"
    build_bytes_tree(root)
    return regular_files(root)


def test_by_default_files_are_read_sixteen_at_once(tree):
    assert fs.READ_THREADS == 16
    out = count_readers("none", tree)
    assert out["default"] == 16
    assert (out["before"], out["after"]) == (0, 16)
    # Same ids as one file at a time, non-UTF-8 and newline names included.
    assert out["ids"] == [fs.cas_id(f) for f in tree]


@pytest.mark.parametrize("threads", [1, 3])
def test_a_thread_count_means_exactly_that_many_readers(tree, threads):
    out = count_readers(str(threads), tree)
    assert (out["before"], out["after"]) == (0, threads)
    assert out["ids"] == [fs.cas_id(f) for f in tree]


def test_a_hashing_walk_reads_its_files_on_the_io_pool(tree):
    root = os.path.commonpath(tree)
    default = count_readers("none", [root], how="walk")
    assert (default["before"], default["after"], default["other"]) == (0, 16, 0)
    three = count_readers("3", [root], how="walk")
    assert (three["before"], three["after"], three["other"]) == (0, 3, 0)
    assert sorted(three["ids"]) == sorted(default["ids"])
    hashed = {bytes.fromhex(path) for path, _ in default["ids"]}
    assert set(tree) <= hashed  # every regular file, odd names included
    for path, cas_id in default["ids"]:
        assert fs.cas_id(bytes.fromhex(path)) == cas_id


def test_the_environment_sets_the_default(tree):
    out = count_readers("none", tree, {"PHASEKIT_READ_THREADS": " 5 "})
    assert (out["default"], out["after"]) == (5, 5)


@pytest.mark.parametrize("value", ["0", "-2", "many", ""])
def test_a_bad_value_is_said_before_anything_runs(tmp_path, tree, value):
    env = clean_env(PHASEKIT_READ_THREADS=value)
    bad = subprocess.run(
        [sys.executable, "-c", "from phasekit import fs; fs.cas_ids([])"],
        capture_output=True, text=True, timeout=120, check=False, env=env,
    )  # fmt: skip
    assert bad.returncode == 1
    assert "InvalidInputError: PHASEKIT_READ_THREADS must be a whole number" in bad.stderr
    root = Path(os.fsdecode(os.path.dirname(tree[0])))
    lib = tmp_path / "lib"
    index = subprocess.run(
        [sys.executable, "-m", "phasekit", "--library", str(lib), "index", str(root)],
        capture_output=True, text=True, timeout=120, check=False, env=env,
    )  # fmt: skip
    assert index.returncode == 2, index.stderr
    assert index.stderr.startswith("phasekit: error: PHASEKIT_READ_THREADS must be"), index.stderr
    assert not lib.exists()  # nothing started, nothing written
    # The same value given as an argument is refused as well.
    with pytest.raises(ValueError, match="threads"):
        fs.cas_ids(tree, threads=0)
