"""A full disk under the library, from the command line: one clear message
(which file, that the disk is full, what to do), a non-zero exit, no
traceback, the job left interrupted; once space is freed, `phasekit resume`
completes it and nothing is lost."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from phasekit.jobs import JobStatus, JobStore
from phasekit.library import Library
from test_indexing import cli

from conftest import make_wide_tree


def test_index_on_a_full_disk_stops_with_one_message_and_resumes(small_disk: Path, tmp_path):
    tree = tmp_path / "tree"
    make_wide_tree(tree, 30_000)
    lib = small_disk / "lib"
    full = cli("index", str(tree), library=lib)
    assert full.returncode == 75, (full.stdout, full.stderr)
    err = full.stderr
    assert "Traceback" not in err
    assert "ExceptionGroup" not in err
    assert "full" in err
    assert "phasekit resume" in err
    assert str(small_disk / "lib") in err  # names the file that cannot grow
    assert len(err.strip().splitlines()) <= 3, err
    with JobStore(lib / "jobs.db") as store:
        (record,) = store.list_jobs()
        # Interrupted, never failed: paused with the reason, or (when jobs.db
        # itself could not record the end) still marked running by a
        # process that is gone, which the next manager resumes.
        assert record.status in (JobStatus.PAUSED, JobStatus.RUNNING), record
        assert record.status is not JobStatus.FAILED

    subprocess.run(
        ["mount", "-o", "remount,size=64m", str(small_disk)], check=True, capture_output=True
    )
    done = cli("resume", "--json", library=lib)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.splitlines()[-1])
    assert summary["status"] == "completed"

    listing = cli("ls", str(tree), "--json", library=lib)
    got = {json.loads(line)["path"] for line in listing.stdout.splitlines()}
    with Library.open(tmp_path / "roomy") as roomy:
        location = roomy.add_location(tree)
        roomy.index(location)
        expected = {e.path for e in roomy.entries(location)}
    assert got == expected
