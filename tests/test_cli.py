"""The `phasekit scan` command."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from phasekit import cli, fs

from conftest import pattern


@pytest.fixture
def small_tree(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "a.bin").write_bytes(pattern(1000, 1))
    (tmp_path / "d" / "a-copy.bin").write_bytes(pattern(1000, 1))
    (tmp_path / "d" / "b.bin").write_bytes(pattern(2000, 2))
    (tmp_path / "empty").write_bytes(b"")
    os.symlink("a.bin", tmp_path / "link")
    return tmp_path


def test_scan_json_summary(small_tree, capsys):
    assert cli.main(["scan", str(small_tree), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out == {
        "roots": [str(small_tree)],
        "files": 4,
        "dirs": 1,
        "symlinks": 1,
        "other": 0,
        "bytes": 4000,
        "errors": 0,
    }


def test_scan_hash_summarises_duplicates(small_tree, capsys):
    assert cli.main(["scan", str(small_tree), "--hash", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["hashed"] == 3  # the empty file has no cas_id
    assert out["distinct_contents"] == 2
    assert out["duplicate_groups"] == 1
    assert out["wasted_bytes"] == 1000


def test_scan_list_prints_cas_ids(small_tree, capsys):
    assert cli.main(["scan", str(small_tree), "--hash", "--list", "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    files = {row["path"]: row for row in lines[:-1]}
    assert files[str(small_tree / "a.bin")]["cas_id"] == fs.cas_id(small_tree / "a.bin")
    assert files[str(small_tree / "empty")]["cas_id"] is None


def test_scan_human_output_and_errors(small_tree, capsys):
    missing = small_tree.parent / f"{small_tree.name}-missing"
    # The missing root is reported, the rest scanned, and the exit status
    # says something was missing.
    assert cli.main(["scan", str(small_tree), str(missing), "--hash"]) == 1
    captured = capsys.readouterr()
    assert "4 files, 1 dirs, 1 symlinks" in captured.out
    assert "1 duplicate groups" in captured.out
    assert "No such file or directory" in captured.err


def test_bad_arguments_exit_nonzero(small_tree, capsys):
    # Refused while the command line is parsed (argparse exits 2), before
    # any work or job starts.
    with pytest.raises(SystemExit) as exited:
        cli.main(["scan", str(small_tree), "--threads", "0"])
    assert exited.value.code == 2
    assert "--threads: must be at least 1" in capsys.readouterr().err


def test_console_script_runs():
    proc = subprocess.run(
        [sys.executable, "-m", "phasekit", "--version"], capture_output=True, text=True, check=True
    )
    assert proc.stdout.startswith("phasekit ")
