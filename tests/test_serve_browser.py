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

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from jobs_fixture import subprocess_env
from phasekit.dupes import DupesJob
from phasekit.indexing import IndexJob
from phasekit.jobs import JobStatus, JobStore
from phasekit.library import Library
from test_serve_api import SCRIPT_DIR, SCRIPT_FILE, add_names, free_port, wait_for

CHROMIUM = shutil.which("chromium")
DRIVER = shutil.which("chromedriver")

pytestmark = pytest.mark.skipif(
    CHROMIUM is None or DRIVER is None,
    reason="needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)",
)

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.common.exceptions import NoAlertPresentException  # noqa: E402
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
        driver.find_element(
            By.CSS_SELECTOR, f'tr[data-job="{job_id}"] button[data-action="pause"]'
        ).click()
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
        driver.find_element(
            By.CSS_SELECTOR, f'tr[data-job="{job_id}"] button[data-action="pause"]'
        ).click()
        until(lambda: row_status(driver, job_id) == "paused", "paused again")
        driver.find_element(
            By.CSS_SELECTOR, f'tr[data-job="{job_id}"] button[data-action="resume"]'
        ).click()
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
