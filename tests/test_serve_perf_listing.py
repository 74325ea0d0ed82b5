"""What the dashboard's listings and event streams cost the job store, over
a real library on disk: a listing reads the jobs it shows (not the whole
history) and their statuses and progress in one call; the jobs and the
history come in pages that make the command line's listing exactly; every
event stream of a server shares one reader of the event log, and each
still resumes from its own last id with no gap and nothing twice."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from starlette.testclient import TestClient

from jobs_fixture import subprocess_env
from phasekit.jobs import JobProgress, JobStatus, JobStore
from phasekit.library import Library
from phasekit.serve import _sse, create_app, parse_tokens
from phasekit.serve._server import Server

ACME = "acme-token-0123456789abcdef"
OPERATOR = "operator-token-0123456789"
TOKENS = parse_tokens([OPERATOR, f"acme={ACME}"])
#: A loopback address: an open server answers requests addressed to it only.
BASE = "http://127.0.0.1:8765"


def make_library(folder: Path, finished: int, waiting: int) -> list[str]:
    """A library with ``finished`` jobs in its history (a few failed) and
    ``waiting`` unfinished ones of two tenants and three priorities, one
    running with progress; the unfinished jobs' ids."""
    with Library.open(folder):
        pass
    with JobStore(folder / "jobs.db") as store:
        ids = [store.create_job("bench.none", {"n": n}, priority=n % 3) for n in range(finished)]
        for run in store.claim_runs(ids, "owner"):
            n = run.record.input()["n"]
            status = JobStatus.FAILED if n % 7 == 0 else JobStatus.COMPLETED
            error = "gone" if status is JobStatus.FAILED else None
            store.finish(run.record.id, status, error=error, lease=run.lease)
        waiting_ids = [
            store.create_job("bench.none", {"w": n}, priority=n % 3,
                             tenant="acme" if n % 2 else "default")
            for n in range(waiting)
        ]  # fmt: skip
        (run,) = store.claim_runs(waiting_ids[:1], "owner")
        progress = JobProgress(done=1, total=4, message="hashing")
        store.set_progress(run.record.id, progress.to_dict(), lease=run.lease)
        store.move(waiting_ids[1], JobStatus.PAUSED, only_from=(JobStatus.QUEUED,))
    return waiting_ids


def cli_json(folder: Path, *argv: str) -> list[Any]:
    done = subprocess.run(
        [sys.executable, "-m", "phasekit", "--library", str(folder), *argv, "--json"],
        capture_output=True, text=True, env=subprocess_env(), check=True, timeout=120,
    )  # fmt: skip
    return [json.loads(line) for line in done.stdout.splitlines() if line]


def pages(c: TestClient, path: str, name: str) -> tuple[list[Any], int]:
    """Every row of ``path`` read page by page, following ``X-Next-Cursor``
    (checked against the ``Link`` header); and the number of pages."""
    rows: list[Any] = []
    count = 0
    url = path
    while True:
        response = c.get(url)
        assert response.status_code == 200, response.text
        rows += response.json()
        count += 1
        cursor = response.headers.get("x-next-cursor")
        if cursor is None:
            assert "link" not in response.headers
            return rows, count
        joiner = "&" if "?" in path else "?"
        url = f"{path}{joiner}{name}={cursor}"
        assert response.headers["link"].endswith('>; rel="next"')
        assert f"{name}={cursor}" in response.headers["link"]


@pytest.fixture
def library(tmp_path: Path) -> tuple[Path, list[str]]:
    folder = tmp_path / "lib"
    return folder, make_library(folder, finished=40, waiting=13)


def test_pages_of_jobs_and_history_make_the_clis_listings(
    library: tuple[Path, list[str]],
) -> None:
    folder, waiting = library
    # The command line lists one tenant's jobs (``default`` unless told).
    with TestClient(create_app(folder), base_url=BASE) as c:
        unfinished, count = pages(c, "/api/jobs?limit=2&tenant=default", "after")
        assert count == 4  # 7 jobs: 2 + 2 + 2 + 1
        every, _ = pages(c, "/api/jobs?all=true&limit=7&tenant=default", "after")
        searched, _ = pages(c, "/api/jobs?all=true&limit=3&q=gone", "after")
        history, count = pages(c, "/api/history?limit=9&tenant=default", "before")
        assert count == 5  # 40 entries: 4 pages of 9 and one of 4
        acme, _ = pages(c, "/api/jobs?limit=4&tenant=acme", "after")
        whole = c.get("/api/jobs?tenant=default").json()
    assert unfinished == whole == cli_json(folder, "jobs", "list")
    assert {row["id"] for row in unfinished} == set(waiting[::2])
    assert every == cli_json(folder, "jobs", "list", "--all")
    assert len(every) == 47
    assert searched == [row for row in every if row["error"] == "gone"]
    assert len(searched) == 6
    assert history == cli_json(folder, "jobs", "history", "--limit", "1000")
    assert acme == cli_json(folder, "jobs", "list", "--tenant", "acme")
    assert {row["id"] for row in acme} == set(waiting[1::2])


def test_a_cursor_the_api_did_not_hand_out_is_refused(library: tuple[Path, list[str]]) -> None:
    folder, _ = library
    with TestClient(create_app(folder), base_url=BASE) as c:
        good = c.get("/api/jobs?limit=1").headers["x-next-cursor"]
        for path in (
            "/api/jobs?after=not-a-cursor",
            "/api/jobs?after=WzEsMl0",  # [1,2]: a list of the wrong length
            f"/api/history?before={good}",  # a jobs cursor given to the history
            "/api/history?before=WyJ4IiwieSJd",  # ["x","y"]: the wrong types
        ):
            response = c.get(path)
            assert response.status_code == 400, path
            assert "cursor" in response.json()["error"]["message"]


def counting(store: Any, monkeypatch: pytest.MonkeyPatch, name: str) -> list[Any]:
    """Record what each call of ``store.<name>`` returns."""
    calls: list[Any] = []
    real: Callable[..., Any] = getattr(store, name)

    def counted(*args: Any, **kwargs: Any) -> Any:
        value = real(*args, **kwargs)
        calls.append(value)
        return value

    monkeypatch.setattr(store, name, counted)
    return calls


def test_a_listing_reads_the_jobs_it_lists_not_the_history(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "lib"
    waiting = make_library(folder, finished=300, waiting=5)
    app = create_app(folder)
    store = app.state.dashboard.store
    listed = counting(store, monkeypatch, "list_jobs")
    batched = counting(store, monkeypatch, "statuses_and_progress")
    one_by_one = counting(store, monkeypatch, "status_and_progress")
    with TestClient(app, base_url=BASE) as c:
        rows = c.get("/api/jobs").json()
        assert {row["id"] for row in rows} == set(waiting)
        assert sum(len(records) for records in listed) == 5  # none of the 300 finished
        assert len(batched) == 1
        assert one_by_one == []
        listed.clear()
        page = c.get("/api/jobs?all=true&limit=20")
        assert len(page.json()) == 20
        assert sum(len(records) for records in listed) == 20
        history = c.get("/api/history?limit=10")
        assert len(history.json()) == 10
        assert "x-next-cursor" in history.headers


# ---- the event streams ------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serving(folder: Path, tokens: dict[str, str | None] | None = None) -> Iterator[tuple[str, Any]]:
    """The dashboard served by uvicorn in a thread: its base URL and job store."""
    port = free_port()
    app = create_app(folder, tokens=tokens)
    server = Server(app, "127.0.0.1", port)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx2.get(f"{base}/api/openapi.json", timeout=2)
            break
        except httpx2.TransportError:
            assert time.monotonic() < deadline, "the server never answered"
            time.sleep(0.05)
    try:
        yield base, app.state.dashboard.store
    finally:
        server.stop()
        thread.join(30)
        assert not thread.is_alive()


class Reader(threading.Thread):
    """One event stream read in a thread: the ids of its job events."""

    def __init__(self, url: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.headers = headers or {}
        self.ids: list[int] = []
        self.tenants: set[str] = set()
        self.opened = threading.Event()
        self.done = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            timeout = httpx2.Timeout(30, read=30)
            with httpx2.stream("GET", self.url, headers=self.headers, timeout=timeout) as r:
                assert r.status_code == 200
                self.opened.set()
                for line in r.iter_lines():
                    if line.startswith("data: "):
                        data = json.loads(line[6:])
                        self.ids.append(data["seq"])
                        self.tenants.add(data["tenant"])
                    if self.done.is_set():
                        return
        except BaseException as exc:  # the test asserts there was none
            self.error = exc
        finally:
            self.opened.set()


def wait_until(check: Callable[[], bool], seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def change(folder: Path, job_id: str, times: int) -> None:
    """Pause and resume a queued job ``times`` times (two events each), as
    another process would."""
    with JobStore(folder / "jobs.db") as store:
        for _ in range(times):
            assert store.move(job_id, JobStatus.PAUSED, only_from=(JobStatus.QUEUED,))
            assert store.move(job_id, JobStatus.QUEUED, only_from=(JobStatus.PAUSED,))


def test_every_stream_of_a_server_shares_one_reader_of_the_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "lib"
    waiting = make_library(folder, finished=3, waiting=4)
    with serving(folder) as (base, store):
        reads = counting(store, monkeypatch, "events")
        readers = [Reader(f"{base}/api/events") for _ in range(8)]
        for reader in readers:
            reader.start()
        for reader in readers:
            assert reader.opened.wait(20)
        time.sleep(0.3)  # every stream waits for news
        reads.clear()
        quiet = time.monotonic()
        time.sleep(2.0)
        polls = len(reads) / (time.monotonic() - quiet)
        change(folder, waiting[2], 3)
        with JobStore(folder / "jobs.db") as own:
            last = own.last_event_id()
        wait_until(lambda: all(r.ids and r.ids[-1] == last for r in readers))
        for reader in readers:
            reader.done.set()
    # One read per poll for the eight streams together, not one per stream
    # (eight streams polling on their own read the log 80 times a second).
    assert polls <= 1.5 / _sse.FOLLOW_POLL_S
    for reader in readers:
        assert reader.error is None
        assert reader.ids == list(range(last - 5, last + 1))


def test_each_stream_resumes_from_its_own_id_with_no_gap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The follower keeps few events: streams further behind read their own
    # way up from the store, then join the shared reader.
    monkeypatch.setattr(_sse, "KEPT", 3)
    folder = tmp_path / "lib"
    waiting = make_library(folder, finished=5, waiting=6)
    with JobStore(folder / "jobs.db") as store:
        start = store.last_event_id()
    change(folder, waiting[2], 4)  # 8 events, then more while streams read
    with serving(folder, TOKENS) as (base, _):
        operator = {"Authorization": f"Bearer {OPERATOR}"}
        acme = {"Authorization": f"Bearer {ACME}"}
        readers = [
            Reader(f"{base}/api/events?after={start}", operator),
            Reader(f"{base}/api/events", {**operator, "Last-Event-ID": str(start + 5)}),
            Reader(f"{base}/api/events?after={start + 8}", operator),
            Reader(f"{base}/api/events?after={start}", acme),
        ]
        for reader in readers:
            reader.start()
        for n in range(6):  # a job of each tenant, in turn
            change(folder, waiting[2 + n % 2], 2)
            time.sleep(0.05 * (n % 3))
        with JobStore(folder / "jobs.db") as store:
            last = store.last_event_id()
            mine = [e.seq for e in store.events(after=start, limit=1000, tenant="acme")]
        wait_until(lambda: all(r.ids and r.ids[-1] in (last, mine[-1]) for r in readers))
        time.sleep(0.3)  # nothing more comes
        for reader in readers:
            reader.done.set()
    for reader, after in zip(readers[:3], (start, start + 5, start + 8), strict=True):
        assert reader.error is None
        assert reader.ids == list(range(after + 1, last + 1))
    assert readers[3].ids == mine
    assert readers[3].tenants == {"acme"}
    assert len(mine) == 12
