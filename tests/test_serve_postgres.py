"""The dashboard (``phasekit serve``) over a library kept in PostgreSQL
(``phasekit --library postgresql://... serve``): every page's route and
every action answers as it does over a folder library, and a request with
a number PostgreSQL's columns cannot hold is a 4xx, never a 500.

Needs a PostgreSQL server (the ``pg_url`` fixture: ``$PHASEKIT_TEST_PG``,
else a cluster of the tests' own)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image
from starlette.testclient import TestClient

from phasekit.dupes import DupesJob
from phasekit.indexing import IndexJob
from phasekit.jobs import JobStatus
from phasekit.library import Library
from phasekit.serve import create_app
from phasekit.thumbs import ThumbsJob

BASE = "http://127.0.0.1:8765"
#: A name that is not UTF-8, holding a copy of the first image.
BAD_NAME = b"copy-\xff\xfe.jpg"


@dataclass
class PgLib:
    url: str
    location_id: int
    queued: str


@pytest.fixture
def pg_lib(tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> PgLib:
    """A PostgreSQL library of a few images (one copied under a name that is
    not UTF-8) with their thumbnails, a duplicate search, and a queued index."""
    monkeypatch.setenv("PHASEKIT_LIBRARY_FILES", str(tmp_path / "files"))
    root = tmp_path / "photos"
    root.mkdir()
    for i, colour in enumerate(("red", "green", "blue")):
        Image.new("RGB", (320, 240), colour).save(root / f"img{i}.jpg", quality=90)
    Image.new("RGBA", (100, 80), (0, 255, 0, 128)).save(root / "<img src=x onerror=alert(1)>.png")
    with open(os.fsencode(root) + b"/" + BAD_NAME, "wb") as f:
        f.write((root / "img0.jpg").read_bytes())
    with Library.open(pg_url) as library:
        location = library.add_location(root)
        for job in (IndexJob(location.id), ThumbsJob(location.id),
                    DupesJob(location_id=location.id)):  # fmt: skip
            run = library.run(job)
            assert run.status is JobStatus.COMPLETED, run
        queued = library.enqueue(IndexJob(location.id))
    return PgLib(pg_url, location.id, queued)


@pytest.fixture
def client(pg_lib: PgLib) -> Iterator[TestClient]:
    with TestClient(create_app(pg_lib.url), base_url=BASE) as c:
        yield c


def csrf(c: TestClient) -> dict[str, str]:
    return {"X-CSRF-Token": c.get("/api/session").json()["csrf_token"]}


def test_every_page_route_answers_over_postgresql(pg_lib: PgLib, client: TestClient) -> None:
    c = client
    assert c.get("/").status_code == 200
    for path in ("/api/session", "/api/jobs", "/api/history", "/api/tasks", "/api/workers",
                 "/api/locations", "/api/openapi.json"):  # fmt: skip
        assert c.get(path).status_code == 200, (path, c.get(path).text)
    history = c.get("/api/history").json()
    assert {h["name"] for h in history} >= {"phasekit.index", "phasekit.thumbs", "phasekit.dupes"}
    for h in history:
        for tail in ("", "/timing", "/checkpoints"):
            answer = c.get(f"/api/jobs/{h['id']}{tail}")
            assert answer.status_code == 200, (h, tail, answer.text)
    grid = c.get(f"/api/locations/{pg_lib.location_id}/thumbnails").json()
    assert len(grid["items"]) == 5
    names = {item["name"] for item in grid["items"]}
    assert "<img src=x onerror=alert(1)>.png" in names
    assert "copy-\ufffd\ufffd.jpg" in names
    image = c.get(grid["items"][0]["url"])
    assert (image.status_code, image.headers["content-type"]) == (200, "image/webp")
    dupes = c.get("/api/duplicates", params={"location": pg_lib.location_id}).json()
    (group,) = dupes["groups"]
    assert sorted(os.fsencode(p).rsplit(b"/", 1)[1] for p in group["paths"]) == [
        BAD_NAME, b"img0.jpg",
    ]  # fmt: skip


def test_every_action_goes_through_the_postgresql_store(pg_lib: PgLib, client: TestClient) -> None:
    c, job = client, pg_lib.queued
    headers = csrf(c)
    paused = c.post(f"/api/jobs/{job}/pause", headers=headers).json()
    assert (paused["result"], paused["status"]) == ("paused", "paused")
    assert c.post(f"/api/jobs/{job}/resume", headers=headers).json()["status"] == "queued"
    bulk = c.post("/api/jobs/bulk", json={"action": "cancel", "ids": [job, "no-such-job"]},
                  headers=headers).json()  # fmt: skip
    assert (bulk["done"], bulk["refused"]) == (1, 1)
    retried = c.post(f"/api/jobs/{job}/retry", headers=headers)
    assert retried.status_code == 200, retried.text
    again = retried.json()["job_id"]
    joined = c.post(f"/api/locations/{pg_lib.location_id}/index", headers=headers)
    assert joined.status_code == 202, joined.text
    assert joined.json()["job_id"] == again  # joins the index already waiting
    assert c.post("/api/locations/99/index", headers=headers).status_code == 404


def test_numbers_postgresql_cannot_hold_are_a_4xx(pg_lib: PgLib, client: TestClient) -> None:
    """PostgreSQL's ``priority INTEGER`` is 32 bits and its ids 64: a larger
    number in a request is refused before the store sees it."""
    c = client
    headers = csrf(c)
    c.post(f"/api/jobs/{pg_lib.queued}/cancel", headers=headers)  # nothing to join
    path = f"/api/locations/{pg_lib.location_id}/index"
    too_big = c.post(path, json={"priority": 2**31}, headers=headers)
    assert too_big.status_code == 400, too_big.text
    largest = c.post(path, json={"priority": 2**31 - 1}, headers=headers)
    assert largest.status_code == 202, largest.text
    assert c.post(f"/api/locations/{2**63}/index", headers=headers).status_code == 404
    assert c.get(f"/api/locations/{2**63}/thumbnails").status_code == 404


def test_a_nul_character_in_an_id_or_filter_is_a_4xx(pg_lib: PgLib, client: TestClient) -> None:
    """PostgreSQL's text columns cannot be asked for a NUL character (the
    query fails); no id, type, tenant or scope holds one. So it is a 404 in
    an id, a 400 in a filter or a cursor, never a 500, as over SQLite."""
    import base64
    import json

    c = client
    headers = csrf(c)
    for path in ("/api/jobs/a%00b", "/api/jobs/a%00b/timing", "/api/jobs/a%00b/checkpoints",
                 "/api/tasks/a%00b"):  # fmt: skip
        assert c.get(path).status_code == 404, (path, c.get(path).text)
    assert c.post("/api/jobs/a%00b/pause", headers=headers).status_code == 404
    bulk = c.post("/api/jobs/bulk", json={"action": "pause", "ids": ["a\x00b"]}, headers=headers)
    assert bulk.status_code == 200, bulk.text
    assert bulk.json()["results"][0]["status"] == 404
    cursor = base64.urlsafe_b64encode(json.dumps([0, 1.0, "a\x00b"]).encode()).decode()
    for path in ("/api/jobs?type=a%00b", "/api/jobs?tenant=a%00b", "/api/jobs?task=a%00b",
                 "/api/jobs?scope=a%00b", "/api/history?type=a%00b",
                 "/api/history?tenant=a%00b", "/api/tasks?tenant=a%00b",
                 f"/api/jobs?after={cursor}"):  # fmt: skip
        assert c.get(path).status_code == 400, (path, c.get(path).text)
