"""The command line: `phasekit scan`, the commands' parts and fast start, progress on a terminal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

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


def _loaded_after(code: str) -> set[str]:
    """The modules a fresh interpreter holds after running ``code``."""
    probe = (
        f"import sys\ntry:\n    {code}\nexcept SystemExit:\n    pass\nprint(sorted(sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return set(eval(proc.stdout.strip().splitlines()[-1]))  # a list literal we printed


HEAVY = {"anyio", "asyncio", "numpy", "sqlite3", "msgpack", "typing", "tqdm", "json"}
JOB_SYSTEM = {"phasekit.jobs", "phasekit.library", "phasekit.fs", "phasekit.indexing"}


def test_version_and_help_load_no_job_system_and_nothing_heavy():
    for argv in (["--version"], ["--help"], ["index", "--help"], ["dupes", "--help"]):
        loaded = _loaded_after(f"from phasekit.cli import main; main({argv!r})")
        assert not (loaded & (HEAVY | JOB_SYSTEM)), (argv, loaded & (HEAVY | JOB_SYSTEM))
    # The Rust core only when the version is asked for (it holds it).
    assert "phasekit._core" not in _loaded_after("from phasekit.cli import main; main(['-h'])")
    assert "phasekit._core" in _loaded_after("from phasekit.cli import main; main(['--version'])")


def test_import_phasekit_is_lazy_and_its_names_still_work():
    loaded = _loaded_after("import phasekit")
    assert {m for m in loaded if m.startswith("phasekit")} == {"phasekit"}
    import phasekit

    assert phasekit.fs.walk is fs.walk
    assert phasekit.Kind.FILE == 0
    assert phasekit.__version__
    assert phasekit.errors.PhasekitError is phasekit.PhasekitError  # subpackages load too
    assert "jobs" in dir(phasekit)
    with pytest.raises(AttributeError, match="no_such_name"):
        phasekit.no_such_name  # noqa: B018


def test_every_command_has_the_same_parts_and_names_its_job_type():
    from phasekit.cli import COMMANDS, build_parser
    from phasekit.dupes import DupesJob
    from phasekit.indexing import IndexJob
    from phasekit.validation import ValidateJob

    for command in COMMANDS:
        assert isinstance(command.NAME, str)
        assert isinstance(command.HELP, str)
        assert callable(command.arguments)
        assert callable(command.run)
    names = {c.NAME: c for c in COMMANDS}
    assert IndexJob.job_name == names["index"].JOB_NAME
    assert DupesJob.job_name == names["dupes"].JOB_NAME
    assert ValidateJob.job_name == names["validate"].JOB_NAME
    # Built for one command, the parser still parses that command in full.
    args = build_parser("dupes").parse_args(["dupes", "/x", "--mode", "size"])
    assert args.mode == "size"
    assert args.run is names["dupes"].run


def test_the_library_option_value_is_not_taken_for_the_command(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # a library folder named like a command: ./index
    for argv in (
        ["--library", "index", "jobs"],
        ["--library=index", "jobs"],
        ["--lib", "index", "jobs"],  # argparse takes an abbreviation
        ["--libr", "index", "scan", str(tmp_path)],
    ):
        assert cli.main(argv) == 0, argv
    with pytest.raises(SystemExit):
        cli.main(["--library", "index", "no-such-command"])
    assert "invalid choice" in capsys.readouterr().err


def test_modes_are_real_literal_types_at_run_time():
    import typing

    from phasekit.dupes import DUPLICATE_MODES, DuplicateMode
    from phasekit.library import INDEX_MODES, IndexMode
    from phasekit.validation import VALIDATION_MODES, ValidationMode

    assert typing.get_args(IndexMode) == INDEX_MODES
    assert typing.get_args(DuplicateMode) == DUPLICATE_MODES
    assert typing.get_args(ValidationMode) == VALIDATION_MODES


@pytest.mark.parametrize(
    ("size", "text"),
    [(0, "0 B"), (999, "999 B"), (1000, "1.00 KB"), (1234, "1.23 KB"), (99_949, "99.9 KB"),
     (99_950, "100 KB"), (999_499, "999 KB"), (999_500, "1.00 MB"), (2_500_000_000, "2.50 GB")],
)  # fmt: skip
def test_sizes_for_people_have_three_significant_digits(size, text):
    from phasekit.cli._common import human

    assert human(size) == text


def test_a_command_on_a_terminal_draws_progress_and_loads_no_event_loop(
    small_tree, tmp_path_factory
):
    """``phasekit index`` and ``dupes`` with stderr on a terminal (a pty): the
    job runs in the command's own thread, its progress drawn as a bar from
    the values the run hears; anyio and asyncio are never loaded."""
    import fcntl
    import pty
    import struct
    import termios

    lib = tmp_path_factory.mktemp("lib")  # apart from the tree it indexes
    commands = (
        ["index", str(small_tree), "--batch-size", "1"],
        ["index", str(small_tree), "--json"],  # its report reads the job's errors too
        ["dupes", str(small_tree)],
    )
    for argv in commands:
        probe = (
            "import sys\nfrom phasekit import cli\ncode = cli.main(sys.argv[1:])\n"
            "print(sorted(m for m in sys.modules if m in ('anyio', 'asyncio')), code)"
        )
        leader, follower = pty.openpty()
        # 24 rows of 80 columns: a new pty has none, and a bar fits in none.
        fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
        drawn = bytearray()

        def read_terminal(fd: int = leader, into: bytearray = drawn) -> None:
            # Read while the command runs: Linux drops what a terminal holds
            # once its last writer is gone.
            while True:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:  # EIO: the terminal's other end is closed
                    return
                if not chunk:
                    return
                into.extend(chunk)

        reader = threading.Thread(target=read_terminal)
        reader.start()
        try:
            proc = subprocess.run(
                [sys.executable, "-c", probe, "--library", str(lib), *argv],
                stdout=subprocess.PIPE,
                stderr=follower,
                text=True,
                timeout=120,
            )
        finally:
            os.close(follower)
            reader.join(30)
            os.close(leader)
        assert proc.returncode == 0, drawn
        assert proc.stdout.strip().splitlines()[-1] == "[] 0"
        assert b"phasekit." in drawn  # the bar's description: the job's name
        assert b"phase=" in drawn  # progress values the run heard, drawn
        assert b"Traceback" not in drawn
