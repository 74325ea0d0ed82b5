"""The dashboard in a real browser: headless Chromium (Debian's ``chromium``
and ``chromium-driver``) driven by Selenium, against ``phasekit serve`` and
``phasekit worker`` processes over a real library.

From the page: queue an index of a location, see it appear live, pause it
(the job is paused in the store), see a change made by another process
while the tab is hidden arrive once it is shown again (the stream stopped
and resumed after its last event), resume it from the page, see a worker
run it to completion without a reload; stop the server and start it again:
the page reconnects and receives every event in between; the hard names (not UTF-8, a
newline, ``<script>alert(1)</script>``) show as text and run nothing. A
screenshot is saved (``$PHASEKIT_ARTIFACTS``, else the test's own folder).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from jobs_fixture import CountJob, subprocess_env
from phasekit.dupes import DupesJob
from phasekit.indexing import IndexJob
from phasekit.jobs import JobStatus, JobStore, TaskDefinition
from phasekit.library import Library
from phasekit.thumbs import ThumbsJob
from test_serve_api import SCRIPT_DIR, SCRIPT_FILE, add_names, free_port, wait_for
from test_thumbs_job import photo

CHROMIUM = shutil.which("chromium")
DRIVER = shutil.which("chromedriver")


@pytest.fixture(autouse=True)
def browser_installed() -> None:
    """The browser is a requirement of the suite, like PostgreSQL's server
    (README, Test): missing, these tests fail saying so, never skip."""
    if CHROMIUM is None or DRIVER is None:
        pytest.fail(
            "the dashboard's browser test needs Debian's chromium and chromium-driver"
            " (apt-get install chromium chromium-driver)"
        )


from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import (  # noqa: E402
    NoAlertPresentException,
    StaleElementReferenceException,
)
from selenium.webdriver.common.by import By  # noqa: E402


def until(check: Callable[[], Any], what: str, timeout: float = 30) -> Any:
    """``check()``'s first true value, polled; fails naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = check()
        except Exception:  # a stale element between two renders: look again
            value = None
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def library(tmp_path: Path) -> tuple[Path, int]:
    """A library with an indexed tree of hard names and a duplicate search."""
    root = tmp_path / "tree"
    root.mkdir()
    add_names(root)
    for i in range(200):
        (root / f"file-{i:03}.txt").write_bytes(b"x" * (i + 1))
    folder = tmp_path / "lib"
    with Library.open(folder) as lib:
        location = lib.add_location(root)
        assert lib.run(IndexJob(location.id)).status is JobStatus.COMPLETED
        assert lib.run(DupesJob(location_id=location.id)).status is JobStatus.COMPLETED
    return folder, location.id


def phasekit(folder: Path, *argv: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "phasekit", "--library", str(folder), *argv],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=subprocess_env(),
    )  # fmt: skip


@pytest.fixture
def browser(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--window-size=1400,1000"):  # fmt: skip
        options.add_argument(argument)
    # The driver is Debian's: nothing is downloaded.
    monkeypatch.setenv("SE_OFFLINE", "true")
    service = webdriver.ChromeService(executable_path=DRIVER)
    driver = webdriver.Chrome(service=service, options=options)
    try:
        yield driver
    finally:
        driver.quit()


def status(folder: Path, job_id: str) -> JobStatus:
    with JobStore(folder / "jobs.db") as store:
        return store.status(job_id)


def click_in_row(driver: Any, job_id: str, action: str) -> None:
    """Click the job row's ``action`` button. The live stream redraws a row
    when its job changes: a button found just before a redraw is gone by the
    click (stale), and the new row's button is clicked instead."""
    selector = f'tr[data-job="{job_id}"] button[data-action="{action}"]'
    for _ in range(50):
        try:
            driver.find_element(By.CSS_SELECTOR, selector).click()
            return
        except StaleElementReferenceException:
            time.sleep(0.05)
    raise AssertionError(f"the {action} button of {job_id} kept being redrawn")


def row_status(driver: Any, job_id: str) -> str:
    row = driver.find_element(By.CSS_SELECTOR, f'#jobs-table tr[data-job="{job_id}"]')
    return str(row.find_element(By.CSS_SELECTOR, "td.status").text)


def set_hidden(driver: Any, hidden: bool) -> None:
    """What the browser does when the tab is hidden or shown again."""
    driver.execute_script(
        "Object.defineProperty(document, 'hidden', {value: arguments[0], configurable: true});"
        "document.dispatchEvent(new Event('visibilitychange'));",
        hidden,
    )


def test_index_pause_resume_complete_live_from_the_page(
    library: tuple[Path, int], browser: Any, tmp_path: Path
) -> None:
    folder, location_id = library
    port = free_port()
    server = phasekit(folder, "serve", "--port", str(port))
    worker: subprocess.Popen[str] | None = None
    driver = browser
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(base + "/api/openapi.json", server)
        driver.get(base + "/")
        until(lambda: driver.find_element(By.ID, "live").text == "live", "the live stream")
        # A marker a reload would lose: every update below arrives live.
        driver.execute_script("window.__loaded_once = true;")

        # Locations: queue an index from the page.
        driver.find_element(By.CSS_SELECTOR, '#tabs button[data-tab="locations"]').click()
        button = until(
            lambda: driver.find_element(By.CSS_SELECTOR, f'button[data-location="{location_id}"]'),
            "the location's Index button",
        )
        button.click()
        message = until(
            lambda: (
                driver.find_element(By.ID, "message").text.startswith("queued index")
                and driver.find_element(By.ID, "message").text
            ),
            "the index queued",
        )
        job_id = message.split()[2]
        assert status(folder, job_id) is JobStatus.QUEUED

        # Jobs: it shows up (the stream brought its event), then pause it.
        driver.find_element(By.CSS_SELECTOR, '#tabs button[data-tab="jobs"]').click()
        until(lambda: row_status(driver, job_id) == "queued", "the queued row")
        click_in_row(driver, job_id, "pause")
        until(lambda: status(folder, job_id) is JobStatus.PAUSED, "the job paused in the store")
        until(lambda: row_status(driver, job_id) == "paused", "the row paused")

        # Hidden: the stream stops; another process resumes the job meanwhile.
        set_hidden(driver, True)
        assert driver.find_element(By.ID, "live").text == "paused"
        resumed = phasekit(folder, "jobs", "resume", job_id)
        resumed.communicate(timeout=60)
        assert resumed.returncode == 0
        time.sleep(1)
        assert row_status(driver, job_id) == "paused"  # nothing arrives while hidden
        set_hidden(driver, False)
        until(lambda: row_status(driver, job_id) == "queued", "the change made while hidden")

        # Pause and resume from the page.
        click_in_row(driver, job_id, "pause")
        until(lambda: row_status(driver, job_id) == "paused", "paused again")
        click_in_row(driver, job_id, "resume")
        until(lambda: status(folder, job_id) is JobStatus.QUEUED, "the job queued in the store")

        # A worker runs it: the page follows it to the end, live.
        worker = phasekit(folder, "worker", "--concurrency", "1", "--maintenance-every", "0")
        driver.find_element(By.CSS_SELECTOR, 'select[name="status"] option[value="*"]').click()
        until(lambda: row_status(driver, job_id) == "completed", "the job completed", 60)
        row = driver.find_element(By.CSS_SELECTOR, f'tr[data-job="{job_id}"]')
        assert row.find_element(By.CSS_SELECTOR, "td.progress").text == "100%"
        assert driver.execute_script("return window.__loaded_once === true;")
        assert status(folder, job_id) is JobStatus.COMPLETED

        # The server stops mid-stream and comes back: the page reconnects on
        # its own, after the last event it applied, and misses nothing of
        # what happened meanwhile (ids in order, none skipped).
        driver.execute_script(
            "window.__ids = []; const apply = window.applyEvent;"
            "window.applyEvent = (e) => { window.__ids.push(Number(state.lastId)); apply(e); };"
        )
        before = int(driver.execute_script("return state.lastId;"))
        server.terminate()
        server.communicate(timeout=60)
        until(lambda: driver.find_element(By.ID, "live").text == "reconnecting", "the page offline")
        with Library.open(folder) as lib:
            again = lib.enqueue(IndexJob(location_id))
        until(lambda: status(folder, again) is JobStatus.COMPLETED, "the worker's run", 60)
        server = phasekit(folder, "serve", "--port", str(port))
        wait_for(base + "/api/openapi.json", server)
        until(lambda: row_status(driver, again) == "completed", "the run shown after restart", 60)
        with JobStore(folder / "jobs.db") as store:
            expected = [e.seq for e in store.events(after=before, limit=10_000)]
        until(lambda: driver.execute_script("return window.__ids;") == expected, "every event")
        assert driver.execute_script("return window.__loaded_once === true;")

        # Hard names show as text: the script tag is characters, and runs nothing.
        driver.find_element(By.CSS_SELECTOR, '#tabs button[data-tab="duplicates"]').click()
        # The DOM holds each name exactly (a byte that is not UTF-8 is the
        # surrogate escape the API sent; WebDriver cannot carry a lone
        # surrogate, so the page is asked in JavaScript).
        names = until(
            lambda: driver.execute_script(
                "return Array.from(document.querySelectorAll('#dupes-groups li'),"
                " e => e.textContent.toWellFormed());"
            ),
            "the duplicate group",
        )
        assert any(n.endswith(f"/{SCRIPT_DIR}/{SCRIPT_FILE}") for n in names)
        assert any(n.endswith("/\ufffd\ufffd-first.bin") for n in names)
        assert any(n.endswith("/dup\nline\nbreak.txt") for n in names)
        exact = driver.execute_script(
            "const t = Array.from(document.querySelectorAll('#dupes-groups li'),"
            " e => e.textContent);"
            "return [t.some(x => x.endsWith('/\\udcff\\udcfe-first.bin')),"
            " t.some(x => x.endsWith('/mid-\\udcff-dle.bin')),"
            " t.some(x => x.endsWith('/last.bin\\udcfe'))];"
        )
        assert exact == [True, True, True]
        assert driver.find_elements(By.CSS_SELECTOR, "#dupes-groups script") == []
        with pytest.raises(NoAlertPresentException):
            driver.switch_to.alert.text  # noqa: B018 (the property raises when none is open)
        artifacts = Path(os.environ.get("PHASEKIT_ARTIFACTS") or tmp_path)
        artifacts.mkdir(parents=True, exist_ok=True)
        driver.find_element(By.CSS_SELECTOR, '#tabs button[data-tab="jobs"]').click()
        assert driver.save_screenshot(str(artifacts / "serve-dashboard.png"))
    finally:
        for process in (worker, server):
            if process is not None:
                process.terminate()
                process.communicate(timeout=60)


# ---- a running job paused from the page; the stream across a SIGKILL --------------

#: Generous: these tests must pass on a loaded 2-core machine.
WAIT_S = 120.0


def test_a_running_job_is_paused_and_resumed_from_the_page(
    library: tuple[Path, int], browser: Any, tmp_path: Path
) -> None:
    """A `phasekit worker` runs a job that waits at item 5 (while a file
    exists, honouring pause): the page shows it running, its Pause button
    pauses it in the store (at its next safe point), the detail view shows
    its checkpoints and phases' timing, Resume queues it, the worker runs it
    again and the page follows it to the end."""
    folder, _ = library
    hold = tmp_path / "hold"
    hold.touch()
    with Library.open(folder) as lib:
        job_id = lib.enqueue(CountJob(n=20, effects_db=str(tmp_path / "effects.db"), every=1,
                                      hold_at=5, hold_path=str(hold)))  # fmt: skip
    port = free_port()
    server = phasekit(folder, "serve", "--port", str(port))
    worker = phasekit(folder, "worker", "--import", "jobs_fixture", "--types", "test.count",
                      "--maintenance-every", "0")  # fmt: skip
    driver = browser
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(base + "/api/openapi.json", server)
        driver.get(base + "/")
        until(lambda: driver.find_element(By.ID, "live").text == "live", "the stream", WAIT_S)
        until(lambda: status(folder, job_id) is JobStatus.RUNNING, "the worker's run", WAIT_S)
        until(lambda: row_status(driver, job_id) == "running", "the running row", WAIT_S)
        # Its progress arrives live: 5 of 20 items done while it waits.
        progress = f'tr[data-job="{job_id}"] td.progress'
        until(lambda: driver.find_element(By.CSS_SELECTOR, progress).text == "25%",
              "the running job's progress", WAIT_S)  # fmt: skip
        click_in_row(driver, job_id, "pause")
        until(lambda: status(folder, job_id) is JobStatus.PAUSED, "paused in the store", WAIT_S)
        until(lambda: row_status(driver, job_id) == "paused", "the row paused", WAIT_S)
        with JobStore(folder / "jobs.db") as store:
            seq, saved = store.load_checkpoint(job_id) or (0, None)
        assert (seq, saved) == (5, {"next": 5})

        # Its detail: the checkpoints it took (five, the newest small JSON).
        driver.find_element(By.CSS_SELECTOR, f'tr[data-job="{job_id}"] a.job').click()
        until(lambda: detail_field(driver, "detail-checkpoints", "Taken") == "5",
              "the checkpoints shown", WAIT_S)  # fmt: skip
        shown = driver.find_element(By.ID, "detail-checkpoint-state").text
        assert json.loads(shown) == {"next": 5}
        assert detail_field(driver, "detail-checkpoints", "Newest") == "#5"
        artifacts = Path(os.environ.get("PHASEKIT_ARTIFACTS") or tmp_path)
        artifacts.mkdir(parents=True, exist_ok=True)
        assert driver.save_screenshot(str(artifacts / "serve-job-detail.png"))

        # Resume from the detail view: queued, run again, completed.
        hold.unlink()
        driver.find_element(By.CSS_SELECTOR, '#detail-actions button[data-action="resume"]').click()
        until(lambda: status(folder, job_id) is JobStatus.COMPLETED, "the job completed", WAIT_S)
        until(lambda: detail_field(driver, "detail-fields", "Status") == "completed",
              "the detail completed", WAIT_S)  # fmt: skip
        assert detail_field(driver, "detail-fields", "Progress") == "100.0%"
        driver.find_element(By.ID, "detail-back").click()
        driver.find_element(By.CSS_SELECTOR, 'select[name="status"] option[value="*"]').click()
        until(lambda: row_status(driver, job_id) == "completed", "the row completed", WAIT_S)
    finally:
        for process in (worker, server):
            process.terminate()
            process.communicate(timeout=60)


def detail_field(driver: Any, list_id: str, name: str) -> str | None:
    """The value shown for ``name`` in the ``<dl id=list_id>``."""
    value = driver.execute_script(
        "const dts = document.querySelectorAll('#' + arguments[0] + ' dt');"
        "for (const dt of dts) if (dt.textContent === arguments[1])"
        " return dt.nextElementSibling.textContent;"
        "return null;",
        list_id,
        name,
    )
    return None if value is None else str(value)


def test_the_stream_has_no_gap_across_a_server_killed_mid_stream(
    library: tuple[Path, int], browser: Any
) -> None:
    """Jobs change all the time, from another process; the server is killed
    (SIGKILL: no goodbye to the page) while it streams them, the changes go
    on, and a new server starts on the same port: the page reconnects on its
    own and applies every event after the last one it saw, in order, each
    once."""
    folder, location_id = library
    with Library.open(folder) as lib:
        jobs = [lib.enqueue(IndexJob(location_id), tenant=f"t{i}") for i in range(2)]
    port = free_port()
    server = phasekit(folder, "serve", "--port", str(port))
    driver = browser
    stop = threading.Event()
    changes: list[int] = []

    def change() -> None:
        """Pause and resume the queued jobs, as another process would."""
        with JobStore(folder / "jobs.db") as store:
            while not stop.is_set():
                for job_id in jobs:
                    store.move(job_id, JobStatus.PAUSED, only_from=(JobStatus.QUEUED,))
                    store.move(job_id, JobStatus.QUEUED, only_from=(JobStatus.PAUSED,))
                changes.append(store.last_event_id())
                time.sleep(0.05)

    changer = threading.Thread(target=change, daemon=True)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(base + "/api/openapi.json", server)
        driver.get(base + "/")
        until(lambda: driver.find_element(By.ID, "live").text == "live", "the stream", WAIT_S)
        driver.execute_script(
            "window.__ids = []; const apply = window.applyEvent;"
            "window.applyEvent = (e) => { window.__ids.push(Number(state.lastId)); apply(e); };"
        )
        before = int(driver.execute_script("return state.lastId;"))
        changer.start()
        # Mid-stream: the page is receiving the changes when the server dies.
        until(lambda: len(driver.execute_script("return window.__ids;")) >= 10,
              "events arriving", WAIT_S)  # fmt: skip
        server.send_signal(signal.SIGKILL)
        server.communicate(timeout=60)
        seen_at_kill = len(driver.execute_script("return window.__ids;"))
        until(lambda: driver.find_element(By.ID, "live").text == "reconnecting",
              "the page offline", WAIT_S)  # fmt: skip
        # The changes go on while no server runs.
        until(lambda: len(changes) >= 20, "changes while the server is down", WAIT_S)
        time.sleep(1)
        server = phasekit(folder, "serve", "--port", str(port))
        wait_for(base + "/api/openapi.json", server)
        until(lambda: driver.find_element(By.ID, "live").text == "live", "reconnected", WAIT_S)
        # A few more after the restart, then no more.
        mark = len(changes)
        until(lambda: len(changes) >= mark + 5, "changes after the restart", WAIT_S)
        stop.set()
        changer.join(60)
        with JobStore(folder / "jobs.db") as store:
            expected = [e.seq for e in store.events(after=before, limit=100_000)]
        assert expected == list(range(before + 1, before + 1 + len(expected)))
        until(lambda: driver.execute_script("return window.__ids;") == expected,
              "every event, in order, once", WAIT_S)  # fmt: skip
        assert seen_at_kill < len(expected)  # some arrived only after the restart
    finally:
        stop.set()
        if changer.is_alive():
            changer.join(60)
        server.terminate()
        server.communicate(timeout=60)


# ---- the thumbnail grid, bulk actions, a task's view, a read-only token ----------------


@pytest.fixture
def gallery_library(tmp_path: Path) -> tuple[Path, int, str, list[str]]:
    """A library with a location of real images (more than a page of the
    grid; names not UTF-8 and one spelling a script tag), their thumbnails,
    a task, and three queued jobs no worker runs."""
    root = tmp_path / "pictures"
    root.mkdir()
    base = os.fsencode(root)
    names = [b"\xff\xfe-first.jpg", SCRIPT_IMAGE.encode(), b"last\xfe.jpg"]
    names += [f"img-{i:03}.png".encode() for i in range(GRID_PAGE + 5)]
    for seed, name in enumerate(names):
        photo(Path(os.fsdecode(base + b"/" + name)), seed, size=(48, 32))
    folder = tmp_path / "lib"
    with Library.open(folder) as lib:
        location = lib.add_location(root, mode="content")
        assert lib.run(IndexJob(location.id)).status is JobStatus.COMPLETED
        assert lib.run(ThumbsJob(location.id)).status is JobStatus.COMPLETED
        definition = TaskDefinition.from_dict(
            {"name": "refresh", "steps": [{"job": "phasekit.index"}, {"job": "phasekit.dupes"}]}
        )
        task = lib.start_task(definition, location=location.id)
        assert task.task_id is not None
        queued = [lib.enqueue(CountJob(n=5, effects_db=str(tmp_path / "e.db")), tenant=f"t{i}")
                  for i in range(3)]  # fmt: skip
    return folder, location.id, task.task_id, queued


#: A picture whose name is a script tag.
SCRIPT_IMAGE = "<script>alert(1)<.jpg"
#: How many thumbnails the page asks for at once (app.js).
GRID_PAGE = 60


def click_tab(driver: Any, tab: str) -> None:
    driver.find_element(By.CSS_SELECTOR, f'#tabs button[data-tab="{tab}"]').click()


def click(driver: Any, selector: str) -> bool:
    """Click what ``selector`` finds (raises while it is not there, or was
    drawn again since it was found: :func:`until` tries again)."""
    driver.find_element(By.CSS_SELECTOR, selector).click()
    return True


def tick(driver: Any, job_id: str) -> bool:
    """Tick a job's box unless it is (the table may be drawn again between
    finding the box and clicking it: then the next call tries again)."""
    ticked = "return state.selected.has(arguments[0]);"
    if not driver.execute_script(ticked, job_id):
        driver.find_element(By.CSS_SELECTOR, f'input.select[data-job="{job_id}"]').click()
    return bool(driver.execute_script(ticked, job_id))


def test_the_grid_bulk_actions_and_a_tasks_view_from_the_page(
    gallery_library: tuple[Path, int, str, list[str]], browser: Any, tmp_path: Path
) -> None:
    folder, location_id, task_id, queued = gallery_library
    port = free_port()
    server = phasekit(folder, "serve", "--port", str(port))
    driver = browser
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(base + "/api/openapi.json", server)
        driver.get(base + "/")
        until(lambda: driver.find_element(By.ID, "live").text == "live", "the stream", WAIT_S)

        # The grid: a page of thumbnails, then the next; names as text.
        click_tab(driver, "locations")
        thumbs = f'button[data-thumbs="{location_id}"]'
        until(lambda: click(driver, thumbs), "the Thumbnails button", WAIT_S)
        figures = "#thumbs-grid figure"
        until(lambda: len(driver.find_elements(By.CSS_SELECTOR, figures)) == GRID_PAGE,
              "the first page", WAIT_S)  # fmt: skip
        more = driver.find_element(By.ID, "thumbs-more")
        assert more.is_displayed()
        more.click()
        until(lambda: len(driver.find_elements(By.CSS_SELECTOR, figures)) == GRID_PAGE + 8,
              "the second page", WAIT_S)  # fmt: skip
        assert not more.is_displayed()
        captions = driver.execute_script(
            "return Array.from(document.querySelectorAll('#thumbs-grid figcaption'),"
            " e => e.textContent);"
        )
        assert SCRIPT_IMAGE in captions
        assert "\ufffd\ufffd-first.jpg" in captions
        assert "last\ufffd.jpg" in captions
        assert driver.find_elements(By.CSS_SELECTOR, "#thumbs-grid script") == []
        with pytest.raises(NoAlertPresentException):
            driver.switch_to.alert.text  # noqa: B018 (the property raises when none is open)
        # The images are lazy, and those in view were loaded (WebP decoded).
        loaded = driver.execute_script(
            "const imgs = Array.from(document.querySelectorAll('#thumbs-grid img'));"
            "return [imgs.every(i => i.loading === 'lazy'),"
            " imgs.slice(0, 3).map(i => i.complete && i.naturalWidth)];"
        )
        assert loaded[0] is True
        first_loaded = (
            "return Array.from(document.querySelectorAll('#thumbs-grid img')).slice(0, 3)"
            ".every(i => i.complete && i.naturalWidth === 48);"
        )
        until(lambda: driver.execute_script(first_loaded), "the first images", WAIT_S)
        artifacts = Path(os.environ.get("PHASEKIT_ARTIFACTS") or tmp_path)
        artifacts.mkdir(parents=True, exist_ok=True)
        assert driver.save_screenshot(str(artifacts / "serve-thumbnails.png"))

        # Bulk: tick two queued jobs, cancel them; the third stays queued.
        click_tab(driver, "jobs")
        for job_id in queued[:2]:
            until(lambda j=job_id: tick(driver, j), "the job ticked", WAIT_S)
        assert driver.find_element(By.ID, "bulk-count").text == "2 selected"
        driver.find_element(By.CSS_SELECTOR, '#bulk button[data-bulk="cancel"]').click()
        until(lambda: driver.find_element(By.ID, "message").text.startswith("cancel: 2 done"),
              "the bulk answer", WAIT_S)  # fmt: skip
        assert [status(folder, j) for j in queued] == [JobStatus.CANCELLED] * 2 + [JobStatus.QUEUED]
        until(lambda: not driver.find_elements(By.CSS_SELECTOR, f'tr[data-job="{queued[0]}"]'),
              "the cancelled rows gone from the unfinished jobs", WAIT_S)  # fmt: skip

        # A task's view: its steps' jobs, each a link to the job's detail.
        click_tab(driver, "tasks")
        until(lambda: click(driver, f'tr[data-task="{task_id}"] a'), "the task's link", WAIT_S)
        rows = until(lambda: driver.find_elements(By.CSS_SELECTOR, "#task-jobs tbody tr"),
                     "the task's jobs", WAIT_S)  # fmt: skip
        assert len(rows) == 2
        assert detail_field(driver, "task-fields", "Step") == "1 of 2"
        first_job = rows[0].get_attribute("data-job")
        rows[0].find_element(By.CSS_SELECTOR, "a.job").click()
        until(lambda: driver.find_element(By.ID, "detail-title").text.endswith(first_job),
              "the job's detail", WAIT_S)  # fmt: skip
    finally:
        server.terminate()
        server.communicate(timeout=60)


READ_ONLY = "readonly-browser-0123456789"


def test_a_read_only_token_sees_the_page_without_its_actions(
    gallery_library: tuple[Path, int, str, list[str]], browser: Any
) -> None:
    folder, location_id, _, queued = gallery_library
    port = free_port()
    server = phasekit(folder, "serve", "--port", str(port), "--token", f"ro:{READ_ONLY}")
    driver = browser
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(base + "/api/openapi.json", server)
        driver.get(base + "/")
        until(lambda: driver.current_url.endswith("/login"), "the login page", WAIT_S)
        driver.find_element(By.NAME, "token").send_keys(READ_ONLY)
        driver.find_element(By.CSS_SELECTOR, "form.login button").click()
        until(lambda: driver.find_element(By.ID, "live").text == "live", "the stream", WAIT_S)
        assert driver.find_element(By.ID, "who").text == "every tenant (read only)"
        until(lambda: row_status(driver, queued[0]) == "queued", "the jobs", WAIT_S)
        # Seen, with nothing to press: no action, no checkbox, no bulk bar.
        assert driver.find_elements(By.CSS_SELECTOR, "button[data-action]") == []
        assert not driver.find_element(By.ID, "bulk").is_displayed()
        assert not driver.find_element(By.CSS_SELECTOR, "input.select").is_displayed()
        driver.find_element(By.CSS_SELECTOR, f'tr[data-job="{queued[0]}"] a.job').click()
        until(lambda: detail_field(driver, "detail-fields", "Status") == "queued", "the detail",
              WAIT_S)  # fmt: skip
        assert driver.find_elements(By.CSS_SELECTOR, "#detail-actions button") == []
        click_tab(driver, "locations")
        until(lambda: driver.find_element(By.CSS_SELECTOR, f'button[data-thumbs="{location_id}"]'),
              "the location", WAIT_S)  # fmt: skip
        assert driver.find_elements(By.CSS_SELECTOR, "button[data-location]") == []
        # An action sent anyway (the page's own CSRF token) is refused.
        answer = driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "post('/api/jobs/' + arguments[0] + '/cancel').then(() => done('accepted'),"
            " (e) => done(e.message));",
            queued[0],
        )
        assert "only read" in answer
        assert status(folder, queued[0]) is JobStatus.QUEUED
    finally:
        server.terminate()
        server.communicate(timeout=60)


#: Counts the page's reads of the whole jobs list (GET /api/jobs), not of one job.
COUNT_LIST_READS = """
window.listReads = 0;
const fetchBefore = window.fetch;
window.fetch = function (path) {
  if (typeof path === "string" && /^\\/api\\/jobs(\\?|$)/.test(path)) window.listReads += 1;
  return fetchBefore.apply(this, arguments);
};
for (const row of document.querySelectorAll("#jobs-table tbody tr")) row.dataset.kept = "1";
"""


def test_a_status_event_changes_its_row_without_reading_the_list_again(
    gallery_library: tuple[Path, int, str, list[str]], browser: Any, tmp_path: Path
) -> None:
    """A job's status change redraws its own row only (the other rows are
    the same elements, the list is not read again); a new job the filters
    show appears, one they hide does not, and a job leaving the filters'
    status goes: each from its event (and one read of the new job)."""
    folder, _location_id, _task_id, queued = gallery_library
    port = free_port()
    server = phasekit(folder, "serve", "--port", str(port))
    driver = browser
    rows = "#jobs-table tbody tr"
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(base + "/api/openapi.json", server)
        driver.get(base + "/")
        until(lambda: driver.find_element(By.ID, "live").text == "live", "the stream", WAIT_S)
        # The three queued jobs alone (the task's are of other types).
        first = f'tr[data-job="{queued[0]}"] td:nth-child(3)'
        kind = until(lambda: driver.find_element(By.CSS_SELECTOR, first).text, "a row", WAIT_S)
        driver.find_element(By.CSS_SELECTOR, '#filters input[name="type"]').send_keys(kind)
        until(lambda: len(driver.find_elements(By.CSS_SELECTOR, rows)) == 3, "the rows", WAIT_S)
        driver.execute_script(COUNT_LIST_READS)

        # Paused in the store by another process: its row says so, in place.
        with JobStore(folder / "jobs.db") as store:
            store.set_status(queued[1], JobStatus.PAUSED)
        until(lambda: row_status(driver, queued[1]) == "paused", "the row paused", WAIT_S)
        kept = driver.execute_script(
            "return Array.from(document.querySelectorAll(arguments[0]),"
            " r => [r.dataset.job, r.dataset.kept || null]);",
            rows,
        )
        assert kept == [[queued[0], "1"], [queued[1], "1"], [queued[2], "1"]]
        assert driver.execute_script("return window.listReads;") == 0

        # Filtered on tenant t0: a new job of t0 appears, one of t9 does not.
        tenant = driver.find_element(By.CSS_SELECTOR, '#filters input[name="tenant"]')
        tenant.send_keys("t0")
        until(lambda: len(driver.find_elements(By.CSS_SELECTOR, rows)) == 1, "t0 only", WAIT_S)
        driver.execute_script(COUNT_LIST_READS)
        with Library.open(folder) as lib:
            hidden = lib.enqueue(CountJob(n=5, effects_db=str(tmp_path / "e.db")), tenant="t9")
            shown = lib.enqueue(CountJob(n=5, effects_db=str(tmp_path / "e.db")), tenant="t0")
        until(lambda: row_status(driver, shown) == "queued", "the new t0 job", WAIT_S)
        assert not driver.find_elements(By.CSS_SELECTOR, f'tr[data-job="{hidden}"]')
        listed = driver.execute_script(
            "return Array.from(document.querySelectorAll(arguments[0]), r => r.dataset.job);", rows
        )
        assert listed == [queued[0], shown]  # dispatch order: the older first

        # Cancelled: no longer unfinished, its row goes (the other stays).
        mark = "document.querySelector(arguments[0]).dataset.kept = '1';"
        driver.execute_script(mark, f'tr[data-job="{shown}"]')
        with JobStore(folder / "jobs.db") as store:
            store.set_status(queued[0], JobStatus.CANCELLED)
        until(lambda: not driver.find_elements(By.CSS_SELECTOR, f'tr[data-job="{queued[0]}"]'),
              "the cancelled row gone", WAIT_S)  # fmt: skip
        assert (
            driver.find_element(By.CSS_SELECTOR, f'tr[data-job="{shown}"]').get_attribute(
                "data-kept"
            )
            == "1"
        )
        assert driver.execute_script("return window.listReads;") == 0
    finally:
        server.terminate()
        server.communicate(timeout=60)
