"""A real PostgreSQL server for the tests, from Debian's packages: a cluster
created in a temporary folder, started on a loopback port as a non-root user
(``nobody`` when the tests run as root, since PostgreSQL refuses root), and
stopped at the end of the session. Each test gets a database of its own.

``$PHASEKIT_TEST_PG`` (a ``postgresql://`` URL of a server the tests may
create databases on) uses that server instead.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

#: The user the server runs as when the tests run as root.
SERVER_USER = "nobody"
_databases = itertools.count(1)


def bindir() -> Path:
    """The newest installed PostgreSQL's programs (``.ci/run`` installs them)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_version)
    if not found:
        raise RuntimeError(
            "PostgreSQL is not installed (apt-get install postgresql): the PostgreSQL job"
            " store's tests need a real server"
        )
    return Path(found[-1]).parent


def _version(path: str) -> int:
    return int(Path(path).parent.parent.name.split(".")[0])


def _run_as(root: Path) -> list[str]:
    """The prefix running the server's programs: as SERVER_USER (owning
    ``root``) when the tests run as root, since PostgreSQL refuses root."""
    if os.geteuid() != 0:
        return []
    user = pwd.getpwnam(SERVER_USER)
    os.chown(root, user.pw_uid, user.pw_gid)
    return ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PgServer:
    """One cluster in ``root``, running on ``127.0.0.1:port``.

    ``listen``: the addresses it listens on (default: loopback only; they
    must exist when it starts); ``allow``: networks (CIDR) whose clients are
    trusted besides the loopback ones, for clients on other hosts (network
    namespaces: tests/test_postgres_hosts.py)."""

    def __init__(
        self, root: Path, listen: Sequence[str] = ("127.0.0.1",), allow: Sequence[str] = ()
    ) -> None:
        self.root = root
        self.listen = tuple(listen)
        self.data = root / "data"
        self.port = _free_port()
        self.bin = bindir()
        self._as: list[str] = []
        if os.geteuid() == 0:
            user = pwd.getpwnam(SERVER_USER)
            os.chown(root, user.pw_uid, user.pw_gid)
            self._as = [
                "setpriv",
                f"--reuid={user.pw_uid}",
                f"--regid={user.pw_gid}",
                "--clear-groups",
            ]
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            "phasekit",
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
        )
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"port = {self.port}\nlisten_addresses = '{', '.join(self.listen)}'\n"
                f"unix_socket_directories = '{root}'\nmax_connections = 300\n"
                # A test server: durability is not what is tested here (the
                # benchmarks run with the defaults).
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
            )
        if allow:
            with (self.data / "pg_hba.conf").open("a") as hba:
                hba.writelines(f"host all all {network} trust\n" for network in allow)
        self.start()

    def _run(self, program: str, *args: str) -> None:
        subprocess.run(
            [*self._as, str(self.bin / program), *args],
            check=True,
            stdout=subprocess.DEVNULL,
            cwd=self.root,
        )

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "log"), "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def restart(self) -> None:
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.root / "log"),
            "-m",
            "fast",
            "-w",
            "restart",
        )

    def url(self, dbname: str = "postgres", host: str = "127.0.0.1") -> str:
        return f"postgresql://phasekit@{host}:{self.port}/{dbname}"

    def create_database(self) -> str:
        """A new empty database; its URL."""
        return new_database(self.url())

    def close(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


def new_database(server_url: str) -> str:
    """A new empty database on the server at ``server_url``; its URL."""
    import psycopg

    name = f"phasekit_test_{os.getpid()}_{next(_databases)}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = server_url.rpartition("/")
    return f"{base}/{name}"


def main(argv: list[str]) -> int:
    """``python tests/pg_server.py start DIR``: start a server in the new
    folder DIR (created) and print its URL (for ``$PHASEKIT_TEST_PG``);
    ``python tests/pg_server.py stop DIR``: stop it and remove DIR. What
    .ci/run does around the Rust tests and pytest."""
    if len(argv) != 2 or argv[0] not in ("start", "stop"):
        print("usage: pg_server.py start|stop DIR", file=sys.stderr)
        return 2
    root = Path(argv[1])
    if argv[0] == "start":
        try:
            root.mkdir(parents=True)
        except FileExistsError:
            print(f"pg_server.py: {root} exists: stop it first, or give a new folder",
                  file=sys.stderr)  # fmt: skip
            return 2
        print(PgServer(root).url())
        return 0
    if not root.is_dir():
        return 0  # stopped and removed already (a second stop, an EXIT trap)
    prefix: list[str] = []
    if os.geteuid() == 0:
        user = pwd.getpwnam(SERVER_USER)
        prefix = ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups"]
    subprocess.run(
        [*prefix, str(bindir() / "pg_ctl"), "-D", str(root / "data"), "-m", "immediate", "-w",
         "stop"],
        check=False,
        stdout=subprocess.DEVNULL,
        cwd=root,
    )  # fmt: skip
    shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
