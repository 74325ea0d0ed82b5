"""The dashboard's views beyond the job listing, through the real app over a
real library: a location's thumbnail grid (real images with names that are
not UTF-8 and one spelling ``<script>alert(1)<``, made by the thumbnail
job), a job's checkpoints and timing per phase, bulk actions (each id
checked as the single action checks it; a malformed request changes
nothing), read-only tokens (they see, every action is refused and
nothing changes), and the page offering Retry only where the server takes
it (in a browser)."""

from __future__ import annotations

import io
import os
import threading
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select
from starlette.testclient import TestClient

from jobs_fixture import CountJob
from phasekit.indexing import IndexJob
from phasekit.jobs import JobStatus, PhaseRecord, PhaseStatus
from phasekit.library import Library
from phasekit.serve import _thumbs, create_app, parse_tokens
from phasekit.serve._detail import timing
from phasekit.serve._server import Server
from phasekit.thumbs import ThumbsJob, sidecar_path
from test_serve_api import (
    ACME,
    BASE,
    OPERATOR,
    ZETA,
    Lib,
    bearer,
    client,
    csrf,
    free_port,
    status_of,
    wait_for,
)
from test_serve_api import lib as api_lib  # noqa: F401 (a fixture)
from test_serve_browser import (
    browser,  # noqa: F401 (a fixture)
    until,
)
from test_thumbs_job import photo

#: Image names: not UTF-8 (first, middle, last byte), a script tag, plain.
IMAGE_NAMES = [b"\xff\xfe-first.jpg", b"mid-\xff-dle.png", b"last\xfe.jpg",
               b"<script>alert(1)<.jpg", b"plain.jpg"]  # fmt: skip
RO_OPERATOR = "readonly-operator-0123456789"
RO_ACME = "readonly-acme-0123456789abcd"
ROLE_TOKENS = parse_tokens([OPERATOR, f"acme={ACME}", f"zeta={ZETA}",
                            f"ro:{RO_OPERATOR}", f"ro:acme={RO_ACME}"])  # fmt: skip


@pytest.fixture
def lib(api_lib: Lib) -> Lib:  # noqa: F811 (pytest passes the fixture imported above)
    """test_serve_api's library: an indexed tree of hard names, a duplicate
    search, queued jobs of two tenants and a task."""
    return api_lib


# ---- thumbnails -----------------------------------------------------------------


@pytest.fixture
def gallery(tmp_path: Path) -> tuple[Path, int, dict[bytes, str]]:
    """A library whose location holds real images (hard names, in a folder
    named ``<script>alert(1)<`` too), a broken one, a text file, and their
    thumbnails made by the thumbnail job; the cas_id of each image's path."""
    root = tmp_path / "pictures"
    base = os.fsencode(root)
    (root / "<script>alert(1)<").mkdir(parents=True)
    paths = [base + b"/" + name for name in IMAGE_NAMES]
    paths.append(base + b"/<script>alert(1)</inner.png")
    for seed, path in enumerate(paths):
        photo(Path(os.fsdecode(path)), seed, size=(320, 240))
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg" * 10)
    (root / "notes.txt").write_text("not an image")
    folder = tmp_path / "lib"
    with Library.open(folder) as library:
        location = library.add_location(root, mode="content")
        assert library.run(IndexJob(location.id)).status is JobStatus.COMPLETED
        made = library.run(ThumbsJob(location.id))
        assert made.status is JobStatus.COMPLETED_WITH_ERRORS  # broken.jpg
        cas = {os.fsencode(e.path): e.cas_id for e in library.entries(location.id) if e.cas_id}
    return folder, location.id, {p: cas[p] for p in paths}


def all_pages(c: TestClient, location_id: int, limit: int, **headers: str) -> list[Any]:
    """Every item of the location's thumbnail listing, page by page."""
    items: list[Any] = []
    after = 0
    for _ in range(1000):
        params = {"after": str(after), "limit": str(limit)}
        answer = c.get(f"/api/locations/{location_id}/thumbnails", params=params, headers=headers)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert len(body["items"]) <= limit
        items += body["items"]
        if body["next"] is None:
            return items
        assert body["next"] > after
        after = body["next"]
    raise AssertionError("the pages never ended")


def test_a_locations_thumbnails_are_listed_page_by_page_and_served(
    gallery: tuple[Path, int, dict[bytes, str]],
) -> None:
    folder, location_id, cas = gallery
    with TestClient(create_app(folder), base_url=BASE) as c:
        items = all_pages(c, location_id, 2)
        assert items == all_pages(c, location_id, 500)
        images = {}
        for item in items:
            served = c.get(item["url"])
            assert served.status_code == 200
            assert served.headers["content-type"] == "image/webp"
            assert "private" in served.headers["cache-control"]
            images[os.fsencode(item["path"])] = served.content
    # Every image once, by its exact path (bytes that are not UTF-8 included);
    # the broken one and the text file are not listed.
    assert set(images) == set(cas)
    assert [i["entry_id"] for i in items] == sorted(i["entry_id"] for i in items)
    for item in items:
        assert item["cas_id"] == cas[os.fsencode(item["path"])]
        assert item["url"] == f"/api/thumbnails/{item['cas_id']}/grid"
    names = {i["name"] for i in items}
    assert "<script>alert(1)<.jpg" in names
    assert "\ufffd\ufffd-first.jpg" in names  # for display; path is exact
    for path, data in images.items():
        with Image.open(io.BytesIO(data)) as im:
            assert im.format == "WEBP"
            assert max(im.size) == 256  # the grid variant of a 320x240 image
        assert data == sidecar_path(folder, cas[path], "grid").read_bytes()


def test_a_page_looks_at_a_bounded_number_of_entries(
    gallery: tuple[Path, int, dict[bytes, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, location_id, cas = gallery
    monkeypatch.setattr(_thumbs, "SCAN_LIMIT", 2)
    with TestClient(create_app(folder), base_url=BASE) as c:
        first = c.get(f"/api/locations/{location_id}/thumbnails").json()
        items = all_pages(c, location_id, 100)
    # Two entries looked at (the root folder's children come first): the
    # page says where to go on, and the pages together list every image.
    assert first["next"] is not None
    assert len(first["items"]) <= 2
    assert {os.fsencode(i["path"]) for i in items} == set(cas)


def test_a_damaged_or_orphan_thumbnail_is_not_served(
    gallery: tuple[Path, int, dict[bytes, str]],
) -> None:
    folder, location_id, cas = gallery
    damaged = cas[os.fsencode(folder.parent / "pictures") + b"/plain.jpg"]
    path = sidecar_path(folder, damaged, "grid")
    path.write_bytes(path.read_bytes()[:-10])
    orphan = "0123456789abcdef"
    sidecar_path(folder, orphan, "grid").parent.mkdir(parents=True)
    sidecar_path(folder, orphan, "grid").write_bytes(
        sidecar_path(folder, next(iter(cas.values())), "grid").read_bytes()
    )
    with TestClient(create_app(folder), base_url=BASE) as c:
        items = all_pages(c, location_id, 100)
        assert damaged not in {i["cas_id"] for i in items}
        assert len(items) == len(cas) - 1
        for url, status in [
            (f"/api/thumbnails/{damaged}/grid", 404),
            (f"/api/thumbnails/{orphan}/grid", 404),
            (f"/api/thumbnails/{items[0]['cas_id']}/no-such-variant", 404),
            ("/api/thumbnails/../grid", 404),
            ("/api/thumbnails/NOTHEX0123456789/grid", 404),
            (f"/api/thumbnails/{items[0]['cas_id']}/..%2F..%2Fjobs.db", 404),
            (f"/api/locations/{location_id}/thumbnails?variant=huge", 400),
            (f"/api/locations/{location_id}/thumbnails?limit=0", 400),
            (f"/api/locations/{location_id}/thumbnails?limit=501", 400),
            (f"/api/locations/{location_id}/thumbnails?after=-1", 400),
            (f"/api/locations/{location_id}/thumbnails?after=x", 400),
            ("/api/locations/999/thumbnails", 404),
            ("/api/locations/abc/thumbnails", 404),
        ]:
            answer = c.get(url)
            assert answer.status_code == status, (url, answer.text)
            assert answer.json()["error"]["status"] == status


def test_every_token_sees_locations_and_their_thumbnails(
    gallery: tuple[Path, int, dict[bytes, str]],
) -> None:
    """Locations are the library's, not a tenant's (as /api/locations): a
    tenant's token and a read-only one see the grid; no token, none."""
    folder, location_id, cas = gallery
    with TestClient(create_app(folder, tokens=ROLE_TOKENS), base_url=BASE) as c:
        url = f"/api/locations/{location_id}/thumbnails"
        assert c.get(url).status_code == 401
        some = next(iter(cas.values()))
        assert c.get(f"/api/thumbnails/{some}/grid").status_code == 401
        for token in (OPERATOR, ACME, RO_ACME):
            listed = c.get(url, headers=bearer(token))
            assert listed.status_code == 200
            assert len(listed.json()["items"]) == len(cas)
            assert c.get(f"/api/thumbnails/{some}/grid", headers=bearer(token)).status_code == 200


# ---- a job's checkpoints and timing ---------------------------------------------


def test_a_jobs_checkpoints_and_timing(lib: Lib, tmp_path: Path) -> None:
    with Library.open(lib.path) as library:
        count = library.run(CountJob(n=120, effects_db=str(tmp_path / "e.db"), every=50))
        assert count.status is JobStatus.COMPLETED
    with client(lib) as c:
        phased = c.get(f"/api/jobs/{lib.index_id}/checkpoints").json()
        counted = c.get(f"/api/jobs/{count.id}/checkpoints").json()
        queued = c.get(f"/api/jobs/{lib.acme_id}/checkpoints").json()
        timing = c.get(f"/api/jobs/{lib.dupes_id}/timing").json()
        untimed = c.get(f"/api/jobs/{count.id}/timing").json()
        detail = c.get(f"/api/jobs/{lib.dupes_id}").json()
        index = c.get(f"/api/jobs/{lib.index_id}").json()
    # The index took several checkpoints; the store keeps the newest: when
    # it was saved, its size and phase; its contents are not small JSON.
    assert phased["taken"] >= 2
    newest = phased["newest"]
    assert newest["seq"] == phased["taken"]
    assert newest["bytes"] > 0
    assert newest["phase"] is None  # saved after the last phase
    assert index["created_at"] <= newest["saved_at"] <= index["updated_at"]
    # A plain job's two checkpoints ({"next": 50}, {"next": 100}): small JSON.
    assert counted["taken"] == 2
    assert counted["newest"]["state"] == {"next": 100}
    assert counted["newest"]["saved_at"] is None
    assert queued == {"job_id": lib.acme_id, "taken": 0, "newest": None}
    # Timing per phase, in phase order, each phase's seconds from its history.
    names = [p["phase"] for p in detail["phases"]]
    assert [p["phase"] for p in timing["phases"]] == list(dict.fromkeys(names))
    for row in timing["phases"]:
        runs = [p for p in detail["phases"] if p["phase"] == row["phase"] and p["started_at"]]
        assert row["attempts"] == len(runs)
        assert row["seconds"] == pytest.approx(sum(p["ended_at"] - p["started_at"] for p in runs))
    assert sum(p["share"] for p in timing["phases"]) == pytest.approx(1.0)
    assert timing["phase_seconds"] == pytest.approx(sum(p["seconds"] for p in timing["phases"]))
    assert timing["started_at"] >= timing["created_at"]
    assert timing["waited_s"] == pytest.approx(timing["started_at"] - timing["created_at"])
    assert untimed["phases"] == []
    assert untimed["started_at"] is None


def test_timing_adds_up_the_attempts_of_each_phase() -> None:
    """A phase paused and resumed counts each attempt; one running now counts
    until now; one not run yet counts nothing."""
    records = [
        PhaseRecord("walk", PhaseStatus.PAUSED, 1, 100.0, 103.0),
        PhaseRecord("walk", PhaseStatus.COMPLETED, 2, 110.0, 111.0),
        PhaseRecord("hash", PhaseStatus.RUNNING, 1, 111.0, None),
        PhaseRecord("link", PhaseStatus.PENDING),
    ]
    rows = timing(records, now=115.0)
    assert [(r["phase"], r["attempts"], r["seconds"], r["status"]) for r in rows] == [
        ("walk", 2, 4.0, "completed"),
        ("hash", 1, 4.0, "running"),
        ("link", 0, 0.0, "pending"),
    ]
    assert [r["share"] for r in rows] == [0.5, 0.5, 0.0]
    assert (rows[0]["first_started_at"], rows[0]["last_ended_at"]) == (100.0, 111.0)
    assert timing([PhaseRecord("walk", PhaseStatus.PENDING)], now=1.0)[0]["share"] is None


def test_another_tenants_checkpoints_and_timing_are_not_found(lib: Lib) -> None:
    with client(lib, ROLE_TOKENS) as c:
        for what in ("checkpoints", "timing"):
            theirs = c.get(f"/api/jobs/{lib.zeta_id}/{what}", headers=bearer(ACME))
            missing = c.get(f"/api/jobs/nothing/{what}", headers=bearer(ACME))
            own = c.get(f"/api/jobs/{lib.acme_id}/{what}", headers=bearer(RO_ACME))
            assert theirs.status_code == missing.status_code == 404
            assert own.status_code == 200


# ---- bulk actions -----------------------------------------------------------------


def test_bulk_actions_answer_per_id(lib: Lib) -> None:
    with client(lib, ROLE_TOKENS) as c:
        acme = bearer(ACME)
        ids = [lib.acme_id, lib.zeta_id, "nothing", lib.acme_id]
        answer = c.post("/api/jobs/bulk", headers=acme, json={"action": "pause", "ids": ids})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert status_of(lib, lib.acme_id) is JobStatus.PAUSED
        assert status_of(lib, lib.zeta_id) is JobStatus.QUEUED  # another tenant's: untouched
        assert (body["action"], body["done"], body["refused"]) == ("pause", 1, 2)
        assert body["results"] == [
            {"job_id": lib.acme_id, "ok": True, "result": "paused", "status": "paused"},
            {"job_id": lib.zeta_id, "ok": False, "status": 404,
             "message": f"no job with id {lib.zeta_id!r}"},
            {"job_id": "nothing", "ok": False, "status": 404,
             "message": "no job with id 'nothing'"},
        ]  # fmt: skip
        # The state is checked per id: a paused job cannot be paused again.
        both = [lib.acme_id, lib.zeta_id]
        operator = bearer(OPERATOR)
        again = c.post("/api/jobs/bulk", headers=operator, json={"action": "pause", "ids": both})
        again = again.json()
        assert [(r["ok"], r.get("status")) for r in again["results"]] == [
            (False, 409), (True, "paused")]  # fmt: skip
        cancelled = c.post("/api/jobs/bulk", headers=operator,
                           json={"action": "cancel", "ids": both}).json()  # fmt: skip
        assert cancelled["done"] == 2
        retry_ids = [lib.acme_id, lib.index_id]
        retried = c.post("/api/jobs/bulk", headers=operator,
                         json={"action": "retry", "ids": retry_ids}).json()  # fmt: skip
    assert status_of(lib, lib.acme_id) is status_of(lib, lib.zeta_id) is JobStatus.CANCELLED
    first, second = retried["results"]
    assert first["ok"]
    assert (first["retry_of"], first["job_id"]) == (lib.acme_id, lib.acme_id)
    assert status_of(lib, first["new_job_id"]) is JobStatus.QUEUED
    assert (second["ok"], second["status"]) == (False, 409)  # completed: not retried


BAD_BULK: list[tuple[dict[str, Any], dict[str, Any], int]] = [
    # (body as json=, other request options, expected status)
    ({"action": "explode", "ids": ["{acme}"]}, {}, 400),
    ({"ids": ["{acme}"]}, {}, 400),
    ({"action": "pause"}, {}, 400),
    ({"action": "pause", "ids": []}, {}, 400),
    ({"action": "pause", "ids": "{acme}"}, {}, 400),
    ({"action": "pause", "ids": ["{acme}", 7]}, {}, 400),
    ({"action": "pause", "ids": ["{acme}", ""]}, {}, 400),
    ({"action": "pause", "ids": ["{acme}"] * 1001}, {}, 400),
    ({"action": "pause", "ids": ["{acme}"], "force": True}, {}, 400),
    ({"action": "pause", "ids": ["{acme}"]}, {"no_csrf": True}, 403),
    ({"action": "pause", "ids": ["{acme}"]}, {"origin": "http://evil.example"}, 403),
]


def test_a_malformed_or_refused_bulk_request_changes_nothing(lib: Lib) -> None:
    before = lib.snapshot()
    with client(lib) as c:
        headers = csrf(c)
        for body, options, expected in BAD_BULK:
            sent = {} if options.get("no_csrf") else dict(headers)
            if "origin" in options:
                sent["Origin"] = options["origin"]
            ids = body.get("ids")
            if isinstance(ids, list):
                body = {**body, "ids": [i.format(acme=lib.acme_id) if isinstance(i, str) else i
                                        for i in ids]}  # fmt: skip
            answer = c.post("/api/jobs/bulk", headers=sent, json=body)
            assert answer.status_code == expected, (body, answer.text)
            assert answer.json()["error"]["status"] == expected
        not_json = c.post("/api/jobs/bulk", headers={**headers, "Content-Type": "text/plain"},
                          content=b"pause all")  # fmt: skip
        assert not_json.status_code == 415
    assert lib.snapshot() == before


# ---- read-only tokens ---------------------------------------------------------------


def test_the_read_only_prefix_is_parsed() -> None:
    tokens = parse_tokens(["ro:0123456789abcdef", "ro: t=0123456789abcdefX", "0123456789abcdefY"])
    assert tokens == {"0123456789abcdef": None, "0123456789abcdefX": "t",
                      "0123456789abcdefY": None}  # fmt: skip
    assert tokens.read_only == {"0123456789abcdef", "0123456789abcdefX"}
    with pytest.raises(ValueError, match="read-only"):
        parse_tokens(["ro:0123456789abcdef", "0123456789abcdef"])
    with pytest.raises(ValueError, match="at least 16"):
        parse_tokens(["ro:short"])


def test_a_read_only_token_sees_but_every_action_is_refused(lib: Lib) -> None:
    before = lib.snapshot()
    with client(lib, ROLE_TOKENS) as c:
        ro, ro_acme = bearer(RO_OPERATOR), bearer(RO_ACME)
        # It sees what the same token without ro: sees.
        assert {lib.acme_id, lib.zeta_id} <= {
            r["id"] for r in c.get("/api/jobs", headers=ro).json()
        }
        assert {r["id"] for r in c.get("/api/jobs", headers=ro_acme).json()} == {lib.acme_id}
        assert c.get(f"/api/jobs/{lib.zeta_id}", headers=ro_acme).status_code == 404
        session = c.get("/api/session", headers=ro_acme).json()
        assert (session["tenant"], session["read_only"]) == ("acme", True)
        assert c.get("/api/session", headers=bearer(ACME)).json()["read_only"] is False
        posts = [
            (f"/api/jobs/{lib.acme_id}/pause", None),
            (f"/api/jobs/{lib.acme_id}/cancel", None),
            (f"/api/jobs/{lib.index_id}/retry", None),
            (f"/api/locations/{lib.location_id}/index", None),
            ("/api/jobs/bulk", {"action": "cancel", "ids": [lib.acme_id]}),
        ]
        for headers in (ro, ro_acme):
            for path, body in posts:
                answer = c.post(path, headers=headers, json=body)
                assert answer.status_code == 403, (path, answer.text)
                assert "only read" in answer.json()["error"]["message"]
        # A browser logged in with it: its own CSRF token changes nothing.
        c.cookies.set("phasekit_token", RO_ACME)
        page = c.get("/")
        assert page.status_code == 200
        refused = c.post(f"/api/jobs/{lib.acme_id}/pause", headers=csrf(c))
        assert refused.status_code == 403
    assert lib.snapshot() == before


# ---- the page's own files, and the listing the grid pages through -------------------


def test_the_views_script_ships_and_writes_text_only(lib: Lib) -> None:
    with client(lib) as c:
        page = c.get("/")
        script = c.get("/static/views.js")
    assert script.status_code == 200
    assert '<script src="/static/views.js" defer></script>' in page.text
    assert "innerHTML" not in script.text
    assert "insertAdjacentHTML" not in script.text
    assert "function showThumbs(" in script.text


def test_entries_go_on_after_an_entry_id(lib: Lib) -> None:
    with Library.open(lib.path) as library:
        every = [e.id for e in library.entries(lib.location_id)]
        middle = every[len(every) // 2]
        rest = [e.id for e in library.entries(lib.location_id, after=middle, page=3)]
        for bad in (-1, True, "5"):
            with pytest.raises(ValueError, match="after"):
                next(library.entries(lib.location_id, after=bad))  # type: ignore[arg-type]
    assert rest == [i for i in every if i > middle]
    assert rest


def test_an_app_is_told_its_read_only_tokens(lib: Lib) -> None:
    """create_app(read_only=...) for tokens given as a plain mapping; a
    read-only token the server does not know is a mistake said at once."""
    plain = {OPERATOR: None, RO_OPERATOR: None}
    app = create_app(lib.path, tokens=plain, read_only={RO_OPERATOR})
    with TestClient(app, base_url=BASE) as c:
        refused = c.post(f"/api/jobs/{lib.acme_id}/pause", headers=bearer(RO_OPERATOR))
        assert refused.status_code == 403
    with pytest.raises(ValueError, match="read-only"):
        create_app(lib.path, tokens=plain, read_only={"not-a-known-token-0123"})
    assert status_of(lib, lib.acme_id) is JobStatus.QUEUED


def test_the_page_offers_retry_only_where_the_server_takes_it(
    lib: Lib,
    browser: Any,  # noqa: F811 (pytest passes the fixture imported above)
) -> None:
    """A cancelled task step (or child job) is retried as part of its whole:
    the server refuses its retry (409), so neither its row nor its detail
    offers one; a cancelled job of its own is offered it."""
    with lib.store() as store:
        step = store.list_jobs(task_id=lib.task_id)[0].id
        for job_id in (step, lib.acme_id):
            assert store.move(job_id, JobStatus.CANCELLED, only_from=(JobStatus.QUEUED,))
    with client(lib) as c:  # the server's answer the page must match
        assert c.post(f"/api/jobs/{step}/retry", headers=csrf(c)).status_code == 409
    port = free_port()
    server = Server(create_app(lib.path), "127.0.0.1", port)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(base + "/api/openapi.json")
        browser.get(base + "/")
        Select(browser.find_element(By.NAME, "status")).select_by_visible_text("cancelled")

        def retries(job_id: str) -> list[Any] | None:
            rows = browser.find_elements(By.CSS_SELECTOR, f'#jobs-table tr[data-job="{job_id}"]')
            if not rows:
                return None
            return list(rows[0].find_elements(By.CSS_SELECTOR, 'button[data-action="retry"]'))

        assert until(lambda: retries(lib.acme_id), "the cancelled job's Retry")
        assert until(lambda: retries(step) is not None, "the cancelled step's row")
        assert retries(step) == []
        detail = browser.find_element(By.CSS_SELECTOR, f'#jobs-table tr[data-job="{step}"] a')
        detail.click()
        until(lambda: step in browser.find_element(By.ID, "detail-title").text, "its detail")
        shown = browser.find_elements(
            By.CSS_SELECTOR, '#detail-actions button[data-action="retry"]'
        )
        assert shown == []
    finally:
        server.stop()
        thread.join(30)
