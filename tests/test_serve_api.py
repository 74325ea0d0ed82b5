"""The web dashboard's API (``phasekit serve``), against the real app over a
real library on disk: an indexed tree with names that are not UTF-8 (first,
middle and last byte), a newline, and a path that spells
``<script>alert(1)</script>``; a finished duplicate search over it; queued
jobs of two tenants.

Every route answers in the shape of the command line's ``--json`` (compared
with the command's own output); every route is in the OpenAPI document;
tenants see and act on their own jobs only; bad input is a clear 4xx that
changes nothing; actions need their CSRF token and come from this origin;
a server on a non-loopback address needs a token; the event stream resumes
after ``Last-Event-ID`` with no gap, across a restart of the server.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest
from starlette.routing import Route
from starlette.testclient import TestClient

from jobs_fixture import CountJob, subprocess_env
from phasekit.dupes import DupesJob
from phasekit.indexing import IndexJob
from phasekit.jobs import JobStatus, JobStore, TaskDefinition
from phasekit.library import Library
from phasekit.serve import create_app, parse_tokens
from phasekit.serve._api import DUPES_PAGE
from phasekit.serve._openapi import DOCUMENT
from phasekit.serve._server import GRACE_S, Server

from conftest import BAD_NAME, NEWLINE_NAME

#: Names that are not UTF-8 at their first, a middle and their last byte.
FIRST = b"\xff\xfe-first.bin"
MIDDLE = b"mid-\xff-dle.bin"
LAST = b"last.bin\xfe"
#: A path whose text is a script tag: a directory ``<script>alert(1)<``
#: holding ``script>`` (a name cannot hold ``/`` itself).
SCRIPT_DIR = "<script>alert(1)<"
SCRIPT_FILE = "script>"
#: The content every one of those files shares: one duplicate group.
SAME = b"the same bytes in every copy\n" * 10

OPERATOR = "operator-token-0123456789"
ACME = "acme-token-0123456789abcdef"
ZETA = "zeta-token-0123456789abcdef"
TOKENS = parse_tokens([OPERATOR, f"acme={ACME}", f"zeta={ZETA}"])
BASE = "http://127.0.0.1:8765"


@dataclass
class Lib:
    """The test library: its folder, tree, location and notable jobs."""

    path: Path
    root: Path
    location_id: int
    index_id: str
    dupes_id: str
    acme_id: str
    zeta_id: str
    task_id: str

    def store(self) -> JobStore:
        return JobStore(self.path / "jobs.db")

    def snapshot(self) -> tuple[list[tuple[str, str, str]], int]:
        """Every job's id, status and tenant, and the newest event id: what
        a refused request must leave as it was."""
        with self.store() as store:
            jobs = sorted((r.id, r.status.value, r.tenant) for r in store.list_jobs())
            return jobs, store.last_event_id()


def add_names(root: Path) -> list[bytes]:
    """The page's hard names, each a copy of :data:`SAME`; their paths."""
    base = os.fsencode(root)
    paths = [base + b"/" + name for name in (FIRST, MIDDLE, LAST)]
    paths.append(base + b"/dup\n" + NEWLINE_NAME.encode())
    (root / SCRIPT_DIR).mkdir()
    paths.append(os.fsencode(root / SCRIPT_DIR / SCRIPT_FILE))
    for path in paths:
        with open(path, "wb") as f:
            f.write(SAME)
    return paths


@pytest.fixture
def lib(nasty: tuple[Path, dict[str, bytes]], tmp_path: Path) -> Lib:
    root, _ = nasty
    add_names(root)
    folder = tmp_path / "lib"
    with Library.open(folder) as library:
        location = library.add_location(root)
        index = library.run(IndexJob(location.id))
        assert index.status in (JobStatus.COMPLETED, JobStatus.COMPLETED_WITH_ERRORS)
        dupes = library.run(DupesJob(location_id=location.id))
        assert dupes.status in (JobStatus.COMPLETED, JobStatus.COMPLETED_WITH_ERRORS)
        acme = library.enqueue(IndexJob(location.id), tenant="acme")
        zeta = library.enqueue(IndexJob(location.id), tenant="zeta")
        definition = TaskDefinition.from_dict(
            {"name": "refresh", "steps": [{"job": "phasekit.index"}, {"job": "phasekit.dupes"}]}
        )
        task = library.start_task(definition, location=location.id, tenant="zeta")
        assert task.task_id is not None
    return Lib(folder, root, location.id, index.id, dupes.id, acme, zeta, task.task_id)


@contextlib.contextmanager
def client(lib: Lib, tokens: dict[str, str | None] | None = None) -> Iterator[TestClient]:
    app = create_app(lib.path, tokens=tokens)
    with TestClient(app, base_url=BASE) as c:
        yield c


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def csrf(c: TestClient, **headers: str) -> dict[str, str]:
    """The CSRF header of the caller ``headers`` authenticate (none: open)."""
    token = c.get("/api/session", headers=headers).json()["csrf_token"]
    return {"X-CSRF-Token": token}


def cli_json(lib: Lib, *argv: str) -> list[Any]:
    """What ``phasekit ... --json`` prints, a value per line."""
    done = subprocess.run(
        [sys.executable, "-m", "phasekit", "--library", str(lib.path), *argv, "--json"],
        capture_output=True, text=True, env=subprocess_env(), check=True, timeout=120,
    )  # fmt: skip
    return [json.loads(line) for line in done.stdout.splitlines() if line]


# ---- the OpenAPI document ---------------------------------------------------


def test_the_openapi_document_lists_every_api_route(lib: Lib) -> None:
    app = create_app(lib.path)
    with TestClient(app, base_url=BASE) as c:
        served = c.get("/api/openapi.json")
    assert served.status_code == 200
    assert served.json() == json.loads(json.dumps(DOCUMENT))
    routes = {
        (route.path, method.lower())
        for route in app.routes
        if isinstance(route, Route) and route.path.startswith("/api/")
        for method in route.methods or ()
        if method != "HEAD"
    }
    documented = {
        (path, method) for path, operations in DOCUMENT["paths"].items() for method in operations
    }
    assert routes == documented
    assert len(routes) >= 13


# ---- shapes: the command line's --json --------------------------------------


def test_jobs_list_is_the_clis_json(lib: Lib) -> None:
    with client(lib) as c:
        listed = c.get("/api/jobs", params={"tenant": "default", "all": "true"}).json()
        unfinished = c.get("/api/jobs").json()
    assert listed == cli_json(lib, "jobs", "list", "--all", "--tenant", "default")
    assert {row["id"] for row in listed} == {lib.index_id, lib.dupes_id}
    # Without all: the unfinished jobs of every tenant (the operator's view).
    assert {lib.acme_id, lib.zeta_id} <= {row["id"] for row in unfinished}
    assert all(not JobStatus(row["status"]).finished for row in unfinished)
    assert {row["tenant"] for row in unfinished} == {"acme", "zeta"}


def test_jobs_filter_by_status_type_tenant_scope_task_and_search(lib: Lib) -> None:
    with client(lib) as c:

        def ids(**params: str) -> set[str]:
            answer = c.get("/api/jobs", params=params)
            assert answer.status_code == 200, answer.text
            return {row["id"] for row in answer.json()}

        assert ids(status="completed") == {lib.index_id, lib.dupes_id}
        assert ids(type="phasekit.dupes", all="1") - ids(tenant="zeta") == {lib.dupes_id}
        assert ids(tenant="acme") == {lib.acme_id}
        assert ids(scope=f"location:{lib.location_id}", tenant="acme") == {lib.acme_id}
        assert ids(scope="global") == set()
        task_jobs = ids(task=lib.task_id)
        assert len(task_jobs) == 2
        assert lib.zeta_id not in task_jobs
        assert ids(q=lib.acme_id[-10:].upper()) == {lib.acme_id}
        assert ids(q="dupes", all="true") >= {lib.dupes_id}
        assert len(c.get("/api/jobs", params={"all": "1", "limit": "1"}).json()) == 1


def test_job_detail_is_the_clis_show(lib: Lib) -> None:
    with client(lib) as c:
        detail = c.get(f"/api/jobs/{lib.dupes_id}").json()
        with_trace = c.get(f"/api/jobs/{lib.dupes_id}", params={"debug": "true"}).json()
    (shown,) = cli_json(lib, "jobs", "show", lib.dupes_id)
    assert detail == shown
    assert "traceback" in with_trace
    assert "traceback" not in detail
    # Phases with their history, progress, output, timing.
    assert [p["status"] for p in detail["phases"]]
    assert all(p["started_at"] is not None for p in detail["phases"] if p["status"] == "completed")
    assert detail["percent"] == 100.0
    assert detail["output"]["wasted"] > 0
    assert detail["created_at"] <= detail["updated_at"]


def test_history_tasks_and_workers_are_the_clis(lib: Lib) -> None:
    with lib.store() as store:
        lease = store.register_owner(info={"concurrency": 2})
        try:
            with client(lib) as c:
                history = c.get("/api/history", params={"tenant": "default"}).json()
                tasks = c.get("/api/tasks", params={"tenant": "zeta"}).json()
                task = c.get(f"/api/tasks/{lib.task_id}").json()
                workers = c.get("/api/workers").json()
            cli_workers = cli_json(lib, "jobs", "workers")
        finally:
            lease.close()
    assert history == cli_json(lib, "jobs", "history", "--tenant", "default")
    assert [h["id"] for h in history] == [lib.dupes_id, lib.index_id]
    assert tasks == cli_json(lib, "tasks", "list", "--tenant", "zeta")
    assert task == cli_json(lib, "tasks", "show", lib.task_id, "--tenant", "zeta")[0]
    assert len(task["jobs"]) == 2
    (worker,) = workers
    assert worker["id"] == lease.id
    assert worker["alive"] is True
    assert worker["info"] == {"concurrency": 2}
    for field in ("host", "pid", "heartbeat_at", "stale_after_s", "jobs"):
        assert worker[field] == cli_workers[0][field]


def test_locations_carry_their_totals(lib: Lib) -> None:
    with client(lib) as c:
        (location,) = c.get("/api/locations").json()
    with Library.open(lib.path) as library:
        (known,) = library.locations()
    assert location["id"] == lib.location_id
    assert location["path"] == str(lib.root)
    assert location["file_count"] == known.file_count > 0
    assert location["total_size"] == known.total_size > 0
    assert location["indexed_at"] == known.indexed_at


def test_a_locations_duplicates_report_is_found_behind_newer_searches(
    lib: Lib, tmp_path: Path
) -> None:
    """More newer searches over paths than one page of the history holds
    (see _api.DUPES_PAGE): the location's report is still the answer for
    the location, and the newest search the answer without one."""
    other = tmp_path / "other"
    other.mkdir()
    for name in ("a", "b"):
        (other / name).write_bytes(b"twin")
    with Library.open(lib.path) as library:
        newest = ""
        for _ in range(DUPES_PAGE + 3):
            run = library.run(DupesJob(paths=[str(other)]))
            assert run.status is JobStatus.COMPLETED
            newest = run.id
    with client(lib) as c:
        of_location = c.get("/api/duplicates", params={"location": str(lib.location_id)})
        latest = c.get("/api/duplicates")
    assert of_location.status_code == 200
    assert of_location.json()["job_id"] == lib.dupes_id
    assert latest.json()["job_id"] == newest
    assert latest.json()["wasted"] == len(b"twin")


def test_the_duplicates_report_renders_every_hard_name_exactly(lib: Lib) -> None:
    with client(lib) as c:
        answer = c.get("/api/duplicates")
        of_location = c.get("/api/duplicates", params={"location": str(lib.location_id)})
        of_other = c.get("/api/duplicates", params={"location": "999"})
    assert answer.status_code == 200
    assert of_location.json() == answer.json()
    assert of_other.status_code == 404
    report = answer.json()
    assert report["job_id"] == lib.dupes_id
    # A name that is not UTF-8 is a surrogate escape, as `phasekit dupes --json` writes it.
    assert "\\udcff\\udcfe-first.bin" in answer.text
    assert "mid-\\udcff-dle.bin" in answer.text
    assert "last.bin\\udcfe" in answer.text
    (group,) = [g for g in report["groups"] if g["size"] == len(SAME)]
    paths = {os.fsencode(p) for p in group["paths"]}
    assert paths == set(add_names_paths(lib.root))
    assert group["wasted"] == len(SAME) * 4
    assert report["wasted"] == sum(g["wasted"] for g in report["groups"])
    assert report["duplicates"] == sum(len(g["copies"]) - 1 for g in report["groups"])
    # The JSON is ASCII: the newline is escaped, so a line-based reader is safe.
    assert answer.content.isascii()
    assert b"dup\\nline" in answer.content
    assert str(lib.root / SCRIPT_DIR / SCRIPT_FILE) in group["paths"]


def add_names_paths(root: Path) -> list[bytes]:
    base = os.fsencode(root)
    return [
        *(base + b"/" + name for name in (FIRST, MIDDLE, LAST)),
        base + b"/dup\n" + NEWLINE_NAME.encode(),
        os.fsencode(root / SCRIPT_DIR / SCRIPT_FILE),
    ]


def test_a_job_input_holding_bad_bytes_round_trips(lib: Lib) -> None:
    bad = os.fsdecode(os.fsencode(lib.root) + b"/" + BAD_NAME)
    with Library.open(lib.path) as library:
        job_id = library.enqueue(DupesJob(paths=[bad]))
    with client(lib) as c:
        answer = c.get(f"/api/jobs/{job_id}")
    assert answer.status_code == 200
    assert answer.json()["input"]["paths"] == [bad]
    assert os.fsencode(answer.json()["input"]["paths"][0]).endswith(BAD_NAME)


# ---- actions ----------------------------------------------------------------


def status_of(lib: Lib, job_id: str) -> JobStatus:
    with lib.store() as store:
        return store.status(job_id)


def test_pause_resume_cancel_and_retry_go_through_the_store(lib: Lib) -> None:
    with client(lib) as c:
        headers = csrf(c)
        paused = c.post(f"/api/jobs/{lib.acme_id}/pause", headers=headers)
        assert paused.status_code == 200, paused.text
        assert paused.json() == {"job_id": lib.acme_id, "result": "paused", "status": "paused"}
        assert status_of(lib, lib.acme_id) is JobStatus.PAUSED
        resumed = c.post(f"/api/jobs/{lib.acme_id}/resume", headers=headers)
        assert resumed.json()["status"] == "queued"
        assert status_of(lib, lib.acme_id) is JobStatus.QUEUED
        cancelled = c.post(f"/api/jobs/{lib.acme_id}/cancel", headers=headers)
        assert cancelled.json()["status"] == "cancelled"
        assert status_of(lib, lib.acme_id) is JobStatus.CANCELLED
        retried = c.post(f"/api/jobs/{lib.acme_id}/retry", headers=headers)
        assert retried.status_code == 200, retried.text
        new_id = retried.json()["job_id"]
    assert new_id != lib.acme_id
    assert retried.json()["retry_of"] == lib.acme_id
    with lib.store() as store:
        old, new = store.get_job(lib.acme_id), store.get_job(new_id)
    assert new.status is JobStatus.QUEUED
    assert old.status is JobStatus.CANCELLED
    assert (new.name, new.tenant, new.scope, new.input()) == (
        old.name, old.tenant, old.scope, old.input(),
    )  # fmt: skip


def wait_status(lib: Lib, job_id: str, wanted: JobStatus, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while status_of(lib, job_id) is not wanted:
        assert time.monotonic() < deadline, f"{job_id} never became {wanted.value}"
        time.sleep(0.02)


def test_a_job_a_worker_runs_is_paused_resumed_and_retried_through_the_api(
    lib: Lib, tmp_path: Path
) -> None:
    """The actions reach a job running in another process (a `phasekit
    worker`): a pause is asked for and taken at its next safe point; a
    failed job is retried as a new one, which the worker runs."""
    hold = tmp_path / "hold"
    hold.touch()
    effects_db = str(tmp_path / "effects.db")
    with Library.open(lib.path) as library:
        held = library.enqueue(CountJob(n=20, effects_db=effects_db, hold_at=5,
                                        hold_path=str(hold)))  # fmt: skip
        failing = library.enqueue(CountJob(n=10, effects_db=effects_db, fail_at=3))
    # Only the test jobs: the fixture's queued indexes stay where they are.
    worker = subprocess.Popen(
        [sys.executable, "-m", "phasekit", "--library", str(lib.path), "worker",
         "--import", "jobs_fixture", "--types", "test.count", "--maintenance-every", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=subprocess_env(),
    )  # fmt: skip
    try:
        with client(lib) as c:
            headers = csrf(c)
            wait_status(lib, held, JobStatus.RUNNING)
            asked = c.post(f"/api/jobs/{held}/pause", headers=headers)
            assert asked.json() == {"job_id": held, "result": "pause requested",
                                    "status": "running"}  # fmt: skip
            wait_status(lib, held, JobStatus.PAUSED)
            assert c.get(f"/api/jobs/{held}").json()["percent"] == 25.0
            resumed = c.post(f"/api/jobs/{held}/resume", headers=headers)
            assert resumed.json()["result"] == "queued"
            wait_status(lib, held, JobStatus.RUNNING)
            hold.unlink()
            wait_status(lib, held, JobStatus.COMPLETED)
            assert c.get(f"/api/jobs/{held}").json()["output"] == {"count": 20}

            wait_status(lib, failing, JobStatus.FAILED)
            detail = c.get(f"/api/jobs/{failing}", params={"debug": "1"}).json()
            assert "item 3 is broken" in detail["error"]
            assert "RuntimeError" in detail["traceback"]
            retried = c.post(f"/api/jobs/{failing}/retry", headers=headers)
            assert retried.status_code == 200, retried.text
            again = retried.json()["job_id"]
            wait_status(lib, again, JobStatus.FAILED)
    finally:
        worker.terminate()
        worker.communicate(timeout=60)
    with lib.store() as store:
        assert store.get_job(again).input() == store.get_job(failing).input()


def test_a_pause_a_cli_process_reads(lib: Lib) -> None:
    """The action is the store's: `phasekit jobs` in another process sees it."""
    with client(lib) as c:
        c.post(f"/api/jobs/{lib.zeta_id}/pause", headers=csrf(c))
    listed = cli_json(lib, "jobs", "list", "--tenant", "zeta")
    (row,) = [r for r in listed if r["id"] == lib.zeta_id]
    assert row["status"] == "paused"


def test_index_of_a_location_is_queued_for_the_workers(lib: Lib) -> None:
    with client(lib) as c:
        answer = c.post(f"/api/locations/{lib.location_id}/index", headers=csrf(c))
        again = c.post(f"/api/locations/{lib.location_id}/index", headers=csrf(c))
    assert answer.status_code == 202, answer.text
    body = answer.json()
    assert body["tenant"] == "default"
    assert body["status"] == "queued"
    # An index of the location already waiting is joined, not doubled.
    assert again.json()["job_id"] == body["job_id"]
    with lib.store() as store:
        record = store.get_job(body["job_id"])
    assert record.name == "phasekit.index"
    assert record.scope == f"location:{lib.location_id}"
    assert record.input()["location_id"] == lib.location_id


BAD_REQUESTS: list[tuple[str, str, dict[str, Any], int]] = [
    # (method, path, request options, expected status)
    ("POST", "/api/jobs/no-such-job/pause", {}, 404),
    ("POST", "/api/jobs/{acme}/explode", {}, 404),
    ("POST", "/api/jobs/{acme}/pause", {"content": b"{not json", "json_type": True}, 400),
    ("POST", "/api/jobs/{acme}/pause", {"json": [1, 2]}, 400),
    ("POST", "/api/jobs/{acme}/pause", {"json": {"force": True}}, 400),
    ("POST", "/api/jobs/{acme}/pause", {"content": b"x=1", "type": "text/plain"}, 415),
    ("POST", "/api/jobs/{acme}/pause", {"content": b" " * 70_000, "json_type": True}, 413),
    ("POST", "/api/jobs/{acme}/resume", {}, 409),
    ("POST", "/api/jobs/{index}/pause", {}, 409),
    ("POST", "/api/jobs/{index}/retry", {}, 409),
    ("POST", "/api/jobs/{task_job}/cancel", {"json": {"cascade": 1}}, 400),
    ("POST", "/api/locations/999/index", {}, 404),
    ("POST", "/api/locations/abc/index", {}, 404),
    ("POST", "/api/locations/\u00b2/index", {}, 404),
    ("POST", "/api/locations/" + "9" * 5000 + "/index", {}, 404),
    ("POST", "/api/locations/0/index", {}, 404),
    ("POST", "/api/locations/{location}/index", {"json": {"priority": "high"}}, 400),
    ("POST", "/api/locations/{location}/index", {"json": {"tenant": "not a name"}}, 400),
    ("GET", "/api/jobs/no-such-job", {}, 404),
    ("GET", "/api/tasks/no-such-task", {}, 404),
    ("GET", "/api/jobs?status=sleeping", {}, 400),
    ("GET", "/api/jobs?scope=location:abc", {}, 400),
    ("GET", "/api/jobs?limit=0", {}, 400),
    ("GET", "/api/jobs?limit=many", {}, 400),
    ("GET", "/api/jobs?limit=" + "9" * 5000, {}, 400),
    ("GET", "/api/jobs?limit=\u00b3", {}, 400),
    ("GET", "/api/jobs?all=perhaps", {}, 400),
    ("GET", "/api/history?limit=-1", {}, 400),
    ("GET", "/api/duplicates?location=x", {}, 400),
    ("GET", "/api/no-such-route", {}, 404),
    ("DELETE", "/api/jobs/{acme}", {}, 405),
]


def test_bad_input_is_a_clear_4xx_and_changes_nothing(lib: Lib) -> None:
    with lib.store() as store:
        task_job = store.list_jobs(task_id=lib.task_id)[0].id
    names = {"acme": lib.acme_id, "index": lib.index_id, "task_job": task_job,
             "location": str(lib.location_id)}  # fmt: skip
    before = lib.snapshot()
    with client(lib) as c:
        headers = csrf(c)
        for method, path, options, expected in BAD_REQUESTS:
            options = dict(options)
            sent = dict(headers)
            if options.pop("json_type", False):
                sent["Content-Type"] = "application/json"
            if "type" in options:
                sent["Content-Type"] = options.pop("type")
            answer = c.request(method, path.format(**names), headers=sent, **options)
            assert answer.status_code == expected, (method, path, answer.text)
            error = answer.json()["error"]
            assert error["status"] == expected, (path, error)
            assert error["message"], (path, error)
    assert lib.snapshot() == before


def test_an_unknown_id_and_another_tenants_job_read_the_same(lib: Lib) -> None:
    with client(lib, TOKENS) as c:
        theirs = c.get(f"/api/jobs/{lib.zeta_id}", headers=bearer(ACME))
        missing = c.get("/api/jobs/0123456789abcdef", headers=bearer(ACME))
    assert theirs.status_code == missing.status_code == 404
    assert theirs.json()["error"]["message"] == f"no job with id {lib.zeta_id!r}"
    assert missing.json()["error"]["message"] == "no job with id '0123456789abcdef'"


# ---- CSRF and origins ---------------------------------------------------------


def test_actions_without_their_csrf_token_or_from_elsewhere_are_refused(lib: Lib) -> None:
    before = lib.snapshot()
    path = f"/api/jobs/{lib.acme_id}/pause"
    with client(lib) as c:
        good = csrf(c)
        refusals = [
            c.post(path),
            c.post(path, headers={"X-CSRF-Token": "0" * 64}),
            c.post(path, headers={**good, "Origin": "http://evil.example"}),
            c.post(path, headers={**good, "Origin": "http://127.0.0.1:9999"}),
            c.post(path, headers={**good, "Sec-Fetch-Site": "cross-site"}),
            c.post(path, headers={**good, "Sec-Fetch-Site": "same-site"}),
            # An open server answers only to loopback names (DNS rebinding).
            c.post(path, headers={**good, "Host": "evil.example:8765"}),
        ]
        assert [r.status_code for r in refusals] == [403] * 6 + [400]
        assert lib.snapshot() == before
        own = {**good, "Origin": BASE, "Sec-Fetch-Site": "same-origin"}
        same_origin = c.post(path, headers=own)
    assert same_origin.status_code == 200
    assert status_of(lib, lib.acme_id) is JobStatus.PAUSED


def test_a_csrf_token_is_the_callers_own(lib: Lib) -> None:
    with client(lib, TOKENS) as c:
        acme_csrf = csrf(c, **bearer(ACME))
        # A cookie login (the browser): its actions need the CSRF token of its token.
        c.cookies.set("phasekit_token", ZETA)
        refused = c.post(f"/api/jobs/{lib.zeta_id}/pause", headers=acme_csrf)
        zeta_csrf = csrf(c)
        accepted = c.post(f"/api/jobs/{lib.zeta_id}/pause", headers=zeta_csrf)
    assert refused.status_code == 403
    assert accepted.status_code == 200


# ---- tokens and tenants ---------------------------------------------------------


def test_a_server_with_tokens_refuses_requests_without_one(lib: Lib) -> None:
    with client(lib, TOKENS) as c:
        for path in ("/api/jobs", "/api/session", "/api/locations", "/api/events"):
            assert c.get(path).status_code == 401, path
            assert c.get(path, headers=bearer("wrong-token-0123456789")).status_code == 401
        assert c.get("/api/openapi.json").status_code == 200  # says nothing of the library
        page = c.get("/", follow_redirects=False)
        assert page.status_code == 303
        assert page.headers["location"] == "/login"


def test_a_tenants_token_sees_and_acts_on_its_own_jobs_only(lib: Lib) -> None:
    before = lib.snapshot()
    with client(lib, TOKENS) as c:
        acme = bearer(ACME)
        assert {r["id"] for r in c.get("/api/jobs", headers=acme).json()} == {lib.acme_id}
        assert c.get("/api/jobs", headers=acme, params={"tenant": "zeta"}).json() == []
        assert c.get("/api/history", headers=acme).json() == []
        assert c.get("/api/tasks", headers=acme).json() == []
        assert c.get(f"/api/tasks/{lib.task_id}", headers=acme).status_code == 404
        assert c.get("/api/duplicates", headers=acme).status_code == 404
        for action in ("pause", "cancel", "retry"):
            answer = c.post(f"/api/jobs/{lib.zeta_id}/{action}", headers=acme)
            assert answer.status_code == 404, answer.text
        queued = c.post(f"/api/locations/{lib.location_id}/index", headers=acme,
                        json={"tenant": "zeta"})  # fmt: skip
        assert queued.status_code == 403
        session = c.get("/api/session", headers=acme).json()
        operator = {r["id"] for r in c.get("/api/jobs", headers=bearer(OPERATOR)).json()}
    assert session["tenant"] == "acme"
    assert {lib.acme_id, lib.zeta_id} <= operator
    assert lib.snapshot() == before
    with client(lib, TOKENS) as c:
        own = c.post(f"/api/locations/{lib.location_id}/index", headers=bearer(ACME))
        paused = c.post(f"/api/jobs/{lib.acme_id}/pause", headers=bearer(ACME))
    # Joined: acme's index of the location was already waiting.
    assert own.json() == {"job_id": lib.acme_id, "location_id": lib.location_id,
                          "tenant": "acme", "status": "queued"}  # fmt: skip
    assert paused.json()["status"] == "paused"


def test_the_login_page_sets_a_cookie_the_page_and_api_accept(lib: Lib) -> None:
    with client(lib, TOKENS) as c:
        wrong = c.post("/login", data={"token": "not-the-token-0123456"}, follow_redirects=False)
        assert wrong.status_code == 401
        assert "phasekit_token" not in c.cookies
        cross = c.post("/login", data={"token": ACME}, headers={"Origin": "http://evil.example"})
        assert cross.status_code == 403
        login = c.post("/login", data={"token": ACME}, follow_redirects=False)
        assert login.status_code == 303
        cookie = login.headers["set-cookie"].lower()
        assert "httponly" in cookie
        assert "samesite=strict" in cookie
        page = c.get("/")
        jobs = c.get("/api/jobs").json()
        session = c.get("/api/session").json()
    assert page.status_code == 200
    assert f'<meta name="csrf-token" content="{session["csrf_token"]}">' in page.text
    assert {r["id"] for r in jobs} == {lib.acme_id}


def test_the_page_and_its_assets_ship_in_the_package(lib: Lib) -> None:
    with client(lib) as c:
        page = c.get("/")
        script = c.get("/static/app.js")
        style = c.get("/static/app.css")
    assert page.status_code == script.status_code == style.status_code == 200
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "default-src 'none'" in policy
    assert page.headers["x-content-type-options"] == "nosniff"
    # Nothing is fetched from elsewhere: every asset is this server's.
    assert '<script src="/static/app.js"' in page.text
    assert "//" not in "".join(line for line in page.text.splitlines() if "src=" in line)
    # Values reach the page as text, never as HTML.
    assert "innerHTML" not in script.text
    assert "insertAdjacentHTML" not in script.text
    assert "textContent" in script.text


def test_tokens_are_checked_when_given() -> None:
    with pytest.raises(ValueError, match="at least 16"):
        parse_tokens(["short"])
    with pytest.raises(ValueError, match="tenant"):
        parse_tokens(["not a name=0123456789abcdef0123"])
    assert parse_tokens(["t=0123456789abcdef", "0123456789abcdefX"]) == {
        "0123456789abcdef": "t", "0123456789abcdefX": None,
    }  # fmt: skip


def run_serve(lib: Lib, *argv: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "phasekit", "serve", "--library", str(lib.path), *argv],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**subprocess_env(), **(env or {})},
    )  # fmt: skip


def test_a_non_loopback_address_needs_a_token(lib: Lib) -> None:
    refused = run_serve(lib, "--host", "0.0.0.0", "--port", str(free_port()))
    _, err = refused.communicate(timeout=60)
    assert refused.returncode == 2
    assert "give a token" in err
    # With a token (from the environment) it serves, and asks for it.
    port = free_port()
    server = run_serve(lib, "--host", "0.0.0.0", "--port", str(port),
                       env={"PHASEKIT_SERVE_TOKEN": f"acme={ACME}"})  # fmt: skip
    try:
        wait_for(f"http://127.0.0.1:{port}/api/openapi.json", server)
        anonymous = httpx2.get(f"http://127.0.0.1:{port}/api/jobs")
        acme = httpx2.get(f"http://127.0.0.1:{port}/api/jobs", headers=bearer(ACME))
    finally:
        server.terminate()
        server.communicate(timeout=30)
    assert anonymous.status_code == 401
    assert {r["id"] for r in acme.json()} == {lib.acme_id}


# ---- the event stream ---------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(url: str, process: subprocess.Popen[str] | None = None) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the server exited: {process.communicate()[1]}")
        try:
            httpx2.get(url, timeout=2)
            return
        except httpx2.TransportError:
            time.sleep(0.05)
    raise AssertionError(f"{url} never answered")


@contextlib.contextmanager
def serving(lib: Lib, port: int, tokens: dict[str, str | None] | None = None) -> Iterator[str]:
    """The app served by uvicorn on ``port`` in a thread (a real server: the
    event stream never ends, which the in-process test client cannot read)."""
    server = Server(create_app(lib.path, tokens=tokens), "127.0.0.1", port)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(base + "/api/openapi.json")
        yield base
    finally:
        started = time.monotonic()
        server.stop()
        thread.join(30)
        # The streams ended at once: no wait for the grace period.
        assert time.monotonic() - started < GRACE_S
        assert not thread.is_alive()


def read_events(
    url: str, count: int, headers: dict[str, str] | None = None
) -> list[tuple[int, dict[str, Any]]]:
    """The first ``count`` job events of the stream at ``url``: (id, data)."""
    found: list[tuple[int, dict[str, Any]]] = []
    event_id: int | None = None
    timeout = httpx2.Timeout(30, read=30)
    with httpx2.stream("GET", url, headers=headers, timeout=timeout) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("id: "):
                event_id = int(line[4:])
            elif line.startswith("data: ") and event_id is not None:
                found.append((event_id, json.loads(line[6:])))
                event_id = None
                if len(found) == count:
                    break
    return found


def change_jobs(lib: Lib, job_id: str, times: int) -> None:
    """Pause and resume a queued job ``times`` times through the store (two
    status events each), as another process would."""
    with lib.store() as store:
        for _ in range(times):
            assert store.move(job_id, JobStatus.PAUSED, only_from=(JobStatus.QUEUED,))
            assert store.move(job_id, JobStatus.QUEUED, only_from=(JobStatus.PAUSED,))


def test_the_stream_resumes_after_last_event_id_with_no_gap(lib: Lib) -> None:
    start = lib.snapshot()[1]
    port = free_port()
    with serving(lib, port) as base:
        change_jobs(lib, lib.acme_id, 3)
        first = read_events(f"{base}/api/events?after={start}", 4)
        # Disconnected: more changes happen, by another "process" and by a
        # real job run (progress events included).
        change_jobs(lib, lib.zeta_id, 2)
        with Library.open(lib.path) as library:
            run = library.run(IndexJob(lib.location_id))
        assert run.status in (JobStatus.COMPLETED, JobStatus.COMPLETED_WITH_ERRORS)
        last = first[-1][0]
        with lib.store() as store:
            expected = [e.seq for e in store.events(after=start, limit=10_000)]
        rest = read_events(f"{base}/api/events", len(expected) - 4,
                           headers={"Last-Event-ID": str(last)})  # fmt: skip
    ids = [i for i, _ in first + rest]
    assert ids == expected
    assert ids == list(range(start + 1, start + 1 + len(ids)))  # no gap, nothing twice
    kinds = {(data["job_id"], data["kind"], data["status"]) for _, data in first + rest}
    assert (lib.zeta_id, "status", "paused") in kinds
    assert (run.id, "status", "running") in kinds
    assert any(data["kind"] == "progress" and data["job_id"] == run.id for _, data in rest)
    for event_id, data in first + rest:
        assert data["seq"] == event_id


def test_the_stream_resumes_across_a_restart_of_the_server(lib: Lib) -> None:
    start = lib.snapshot()[1]
    port = free_port()
    with serving(lib, port) as base:
        change_jobs(lib, lib.acme_id, 2)
        before = read_events(f"{base}/api/events?after={start}", 2)
    # The server is gone; the jobs go on changing.
    change_jobs(lib, lib.zeta_id, 2)
    with serving(lib, port) as base:
        after = read_events(f"{base}/api/events", 6, headers={"Last-Event-ID": str(before[-1][0])})
    ids = [i for i, _ in before + after]
    assert ids == list(range(start + 1, start + 9))


def test_a_tenants_stream_carries_its_own_jobs_only(lib: Lib) -> None:
    start = lib.snapshot()[1]
    change_jobs(lib, lib.zeta_id, 2)
    change_jobs(lib, lib.acme_id, 1)
    port = free_port()
    with serving(lib, port, TOKENS) as base:
        refused = httpx2.get(f"{base}/api/events", timeout=10)
        bad = httpx2.get(f"{base}/api/events", headers={**bearer(ACME), "Last-Event-ID": "x"},
                         timeout=10)  # fmt: skip
        odd = httpx2.get(f"{base}/api/events?after=%C2%B2", headers=bearer(ACME), timeout=10)
        events = read_events(f"{base}/api/events?after={start}", 2, headers=bearer(ACME))
    assert refused.status_code == 401
    assert bad.status_code == odd.status_code == 400
    assert {data["job_id"] for _, data in events} == {lib.acme_id}
    assert [data["status"] for _, data in events] == ["paused", "queued"]


def test_a_stream_asked_for_pruned_events_says_so(lib: Lib) -> None:
    start = lib.snapshot()[1]
    change_jobs(lib, lib.acme_id, 2)
    with lib.store() as store:
        assert store.prune_events(keep=1) > 0
    port = free_port()
    with serving(lib, port) as base:
        timeout = httpx2.Timeout(30, read=30)
        with httpx2.stream("GET", f"{base}/api/events?after={start}", timeout=timeout) as r:
            lines = [line for line in r.iter_lines()]
    frames = "\n".join(lines)
    # No job event is sent as if nothing were missing: the page is told, and
    # the stream ends (the page reloads and follows from now).
    assert "event: gap" in frames
    assert "event: job" not in frames


# ---- numbers no store holds, deep JSON, a running job's cancel --------------


def test_a_body_nested_too_deep_is_a_400_and_changes_nothing(lib: Lib) -> None:
    """Arrays nested thousands deep fit in the body limit; the parser's
    recursion must be a refusal like any other bad JSON, not a 500."""
    before = lib.snapshot()
    with client(lib) as c:
        headers = {**csrf(c), "Content-Type": "application/json"}
        for path in ("/api/jobs/bulk", f"/api/jobs/{lib.acme_id}/pause",
                     f"/api/locations/{lib.location_id}/index"):  # fmt: skip
            answer = c.post(path, content=b"[" * 50_000, headers=headers)
            assert answer.status_code == 400, (path, answer.text)
            assert "nested too deep" in answer.json()["error"]["message"]
    assert lib.snapshot() == before


def test_ids_past_64_bits_are_not_found_rather_than_a_500(lib: Lib) -> None:
    """19 digits can spell more than a 64-bit id: such an id is no id (404,
    or 400 for an event id), never a store's overflow."""
    before = lib.snapshot()
    too_big = str(2**63)  # 19 digits
    with client(lib) as c:
        headers = csrf(c)
        index = c.post(f"/api/locations/{too_big}/index", headers=headers)
        thumbs = c.get(f"/api/locations/{too_big}/thumbnails")
        events = c.get("/api/events", headers={"Last-Event-ID": too_big})
        largest = c.post(f"/api/locations/{2**63 - 1}/index", headers=headers)
    assert index.status_code == thumbs.status_code == 404, (index.text, thumbs.text)
    assert events.status_code == 400, events.text
    assert largest.status_code == 404, largest.text  # the largest id: looked for
    assert lib.snapshot() == before


def test_a_cursor_holding_a_number_no_store_holds_is_a_400(lib: Lib) -> None:
    import base64

    def cursor(keys: list[Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(keys).encode()).decode().rstrip("=")

    with client(lib) as c:
        jobs = c.get("/api/jobs", params={"after": cursor([2**63, 1.0, "x"])})
        history = c.get("/api/history", params={"before": cursor([-(2**70), "x"])})
        fine = c.get("/api/jobs", params={"after": cursor([-(2**63), 1.0, "x"])})
    assert jobs.status_code == history.status_code == 400, (jobs.text, history.text)
    assert "cursor" in jobs.json()["error"]["message"]
    assert fine.status_code == 200, fine.text


def test_an_index_priority_postgresql_cannot_hold_is_a_400(lib: Lib) -> None:
    """PostgreSQL's job store holds a 32-bit priority: the dashboard takes
    what both stores hold, so a request means the same on either."""
    with lib.store() as store:
        # No index waiting to be joined: the priority would be stored.
        for job_id in (lib.acme_id, lib.zeta_id):
            store.move(job_id, JobStatus.CANCELLED)
    before = lib.snapshot()
    path = f"/api/locations/{lib.location_id}/index"
    with client(lib) as c:
        headers = csrf(c)
        for priority in (2**31, -(2**31) - 1, 2**63):
            answer = c.post(path, json={"priority": priority}, headers=headers)
            assert answer.status_code == 400, (priority, answer.text)
            assert "priority must be between" in answer.json()["error"]["message"]
        assert lib.snapshot() == before
        queued = c.post(path, json={"priority": 2**31 - 1}, headers=headers)
    assert queued.status_code == 202, queued.text
    with lib.store() as store:
        assert store.get_job(queued.json()["job_id"]).priority == 2**31 - 1


def test_cancelling_a_running_job_says_it_is_requested(lib: Lib) -> None:
    """A running job stops at its next safe point: the answer says the
    cancel was asked for (as a pause does), not that it is cancelled."""
    with lib.store() as store:
        assert store.move(lib.acme_id, JobStatus.RUNNING, only_from=(JobStatus.QUEUED,))
    with client(lib) as c:
        headers = csrf(c)
        single = c.post(f"/api/jobs/{lib.acme_id}/cancel", headers=headers)
        bulk = c.post("/api/jobs/bulk", json={"action": "cancel", "ids": [lib.acme_id]},
                      headers=headers)  # fmt: skip
        idle = c.post(f"/api/jobs/{lib.zeta_id}/cancel", headers=headers)
    assert single.json() == {"job_id": lib.acme_id, "result": "cancel requested",
                             "status": "running"}  # fmt: skip
    assert bulk.json()["results"][0]["result"] == "cancel requested"
    assert idle.json() == {"job_id": lib.zeta_id, "result": "cancelled", "status": "cancelled"}
    with lib.store() as store:
        assert store.stop_request(lib.acme_id) == "cancel"


def test_a_stream_resuming_past_the_logs_newest_event_says_so(lib: Lib) -> None:
    """A page that followed another event log (jobs.db moved aside by
    ``phasekit jobs repair``, another library on this port) reconnects with
    an id this log has not reached: it is told to reload, instead of a
    stream that silently skips every event up to that id."""
    newest = lib.snapshot()[1]
    port = free_port()
    with serving(lib, port) as base:
        timeout = httpx2.Timeout(10, read=5)
        headers = {"Last-Event-ID": str(newest + 100)}
        with httpx2.stream("GET", f"{base}/api/events", headers=headers, timeout=timeout) as r:
            frames = "\n".join(r.iter_lines())
        # An id the log gave is still followed.
        change_jobs(lib, lib.acme_id, 1)
        events = read_events(f"{base}/api/events", 2, headers={"Last-Event-ID": str(newest)})
    assert "event: gap" in frames
    assert f"event {newest + 100} is past the newest" in frames
    assert "event: job" not in frames
    assert [i for i, _ in events] == [newest + 1, newest + 2]


def test_a_login_post_with_more_fields_than_the_form_is_a_400(lib: Lib) -> None:
    """The form has one field; a post of many (a script, a fuzzer) is
    refused with the login page, not a 500, and sets no cookie."""
    fields = {"token": ACME, **{f"f{i}": "x" for i in range(5)}}
    with client(lib, TOKENS) as c:
        answer = c.post("/login", data=fields, follow_redirects=False)
        assert answer.status_code == 400, answer.text
        assert "phasekit_token" not in c.cookies
        assert "<form" in answer.text
        assert c.post("/login", data={"token": ACME}, follow_redirects=False).status_code == 303
