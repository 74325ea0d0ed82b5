"""Indexing into PostgreSQL against indexing into library.db, as a user does it.

Run from the repository root, with the venv active, as root (the server runs
as ``nobody``) or as a user who may run PostgreSQL's programs::

    python benches/bench_pg_index.py --tree /tmp/pk-bench/tree200k --rounds 3

Each round, for each mode (``shallow``, ``content``), in alternating order:

* SQLite: ``phasekit --library NEW_FOLDER index TREE --mode MODE``;
* PostgreSQL: ``phasekit --library postgresql://.../NEW_DB index TREE --mode
  MODE`` (the library's index and jobs in a new database on one server
  started here, at PostgreSQL's default durability, on loopback).

Wall time of the whole command (start-up included), page cache warm (one
untimed walk first). Every run starts from the same state: dirty pages
written out (``sync``), the server checkpointed and its autovacuum idle (the
databases of earlier runs were vacuumed and analyzed by it after each run,
and a run that shared the machine with that work took up to twice as long;
each run's database is now dropped after it). The table gives medians and the ratio PostgreSQL /
SQLite; ``--json`` keeps every round. The library store alone, step by step,
is timed by ``rust/core/examples/library_bench.rs``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from pg_server import PgServer, new_database  # noqa: E402  (the tests' server helper)


class BenchServer(PgServer):
    """The tests' server at PostgreSQL's default durability (the tests turn
    fsync off; a benchmark must not)."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        conf = self.data / "postgresql.conf"
        text = conf.read_text()
        for line in ("fsync = off\n", "synchronous_commit = off\n", "full_page_writes = off\n"):
            text = text.replace(line, "")
        conf.write_text(text)
        self.restart()


def settle(server_url: str) -> None:
    """Dirty pages out, the server checkpointed, its autovacuum idle (up to
    two minutes): what earlier runs left behind does not fall on this one."""
    import psycopg

    subprocess.run(["sync"], check=True)
    with psycopg.connect(server_url, autocommit=True) as conn:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            busy = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autovacuum worker'"
            ).fetchone()
            if not busy or busy[0] == 0:
                break
            time.sleep(0.2)
        conn.execute("CHECKPOINT")
    subprocess.run(["sync"], check=True)


def drop_database(server_url: str, library: str) -> None:
    """Drop a run's database: left there, autovacuum works through its
    200,000 new rows while the next runs are timed."""
    import psycopg

    name = library.rpartition("/")[2]
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def index(library: str, tree: Path, mode: str) -> float:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "phasekit", "--library", library, "index", str(tree),
         "--mode", mode],
        capture_output=True,
        check=False,
        env={**os.environ, "PHASEKIT_LIBRARY_FILES": tempfile.mkdtemp(prefix="pk-files-")},
    )  # fmt: skip
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"phasekit index failed: {done.stderr.decode(errors='replace')}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--modes", default="shallow,content")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    subprocess.run(["find", str(args.tree), "-printf", ""], check=True)  # warm the cache
    scratch = Path(tempfile.mkdtemp(prefix="pk-pg-index-"))
    server = BenchServer(Path(tempfile.mkdtemp(prefix="pk-pg-server-")))  # its own: chowned
    times: dict[str, dict[str, list[float]]] = {}
    try:
        for r in range(args.rounds):
            for mode in args.modes.split(","):
                order = ["sqlite", "postgresql"] if r % 2 == 0 else ["postgresql", "sqlite"]
                for store in order:
                    if store == "sqlite":
                        library = str(scratch / f"lib-{r}-{mode}")
                    else:
                        library = new_database(server.url())
                    settle(server.url())
                    took = index(library, args.tree, mode)
                    times.setdefault(mode, {}).setdefault(store, []).append(took)
                    print(f"round {r} {mode:8} {store:10} {took:6.2f} s", flush=True)
                    if store == "sqlite":
                        shutil.rmtree(library, ignore_errors=True)
                    else:
                        drop_database(server.url(), library)
    finally:
        server.close()
        shutil.rmtree(scratch, ignore_errors=True)
    print("\n| mode | SQLite | PostgreSQL | ratio |\n|---|---:|---:|---:|")
    summary: dict[str, Any] = {}
    for mode, by_store in times.items():
        sq, pg = statistics.median(by_store["sqlite"]), statistics.median(by_store["postgresql"])
        summary[mode] = {"sqlite_s": sq, "postgresql_s": pg, "ratio": pg / sq, "rounds": by_store}
        print(f"| {mode} | {sq:.2f} s | {pg:.2f} s | {pg / sq:.2f}x |")
    if args.json:
        args.json.write_text(json.dumps({"tree": str(args.tree), **summary}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
