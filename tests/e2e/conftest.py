"""Browser tests: Debian's chromium driven by Playwright, against `streamlit run app.py`.

Locally they skip (with the reason) when /usr/bin/chromium is absent; with
MGI_REQUIRE_BROWSER=1 (set by .ci/run) a missing browser is a failure instead.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from tests.conftest import ROOT

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = ROOT / "tests" / "e2e" / "screenshots"
APP_IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"


def _need_browser() -> None:
    if CHROMIUM.exists():
        return
    message = "Debian chromium not installed at /usr/bin/chromium (apt-get install -y chromium)"
    if os.environ.get("MGI_REQUIRE_BROWSER") == "1":
        pytest.fail(message + "; MGI_REQUIRE_BROWSER=1 requires the browser tests to run")
    pytest.skip(message)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`streamlit run app.py` on a free port with its own database file (and ``env`` on top)."""

    def __init__(self, db: Path, log: Path, env: Mapping[str, str] | None = None) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.db = db
        env = {**os.environ, "MGI_DB": str(db), **(env or {})}
        self._log = open(log, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port",
             str(self.port), "--server.address", "127.0.0.1", "--server.headless", "true"],
            cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT,
        )
        self.log_path = log

    def wait_healthy(self, timeout: float = 90) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"streamlit exited: {self.log_path.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as r:
                    return r.read().decode()
            except OSError:
                time.sleep(0.5)
        raise TimeoutError(f"streamlit not healthy after {timeout}s")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._log.close()


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory) -> Iterator[Server]:
    """A dashboard on a fresh database loaded with the demo data, as `make run` does."""
    tmp = tmp_path_factory.mktemp("e2e")
    db = tmp / "mgi.duckdb"
    subprocess.run([sys.executable, "-m", "mgi_core", "load-demo", "--db", str(db)],
                   cwd=ROOT, check=True, capture_output=True)
    server = Server(db, tmp / "streamlit.log")
    try:
        server.wait_healthy()
        yield server
    finally:
        server.stop()


@pytest.fixture
def page(demo_server, browser_page):
    """A browser tab for the demo dashboard (navigate to ``demo_server.url``)."""
    return browser_page


@pytest.fixture
def browser_page():
    """A fresh browser tab (1400×1000) in Debian's chromium; skips without the browser."""
    _need_browser()
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        pg = context.new_page()
        pg.set_default_timeout(60_000)
        yield pg
        context.close()
        browser.close()


def wait_idle(pg, timeout: float = 90, settle: float = 10) -> None:
    """Wait until the app's script run has finished and the page has stopped changing.

    The browser draws a run's elements (metrics, tables, charts) for a while after the
    script state turns 'notRunning' (seconds on a busy machine), so this also waits until
    the page's element count and text length hold still for a moment (at most ``settle``
    seconds: a live progress panel never holds still). Assertions on something specific
    should still use Playwright's ``expect``, which retries.
    """
    pg.wait_for_selector(APP_IDLE, timeout=timeout * 1000)
    pg.wait_for_timeout(300)
    pg.wait_for_selector(APP_IDLE, timeout=timeout * 1000)
    _settle(pg, settle)


def _settle(pg, limit: float, quiet: float = 1.0) -> None:
    deadline = time.monotonic() + limit
    last, since = None, time.monotonic()
    while time.monotonic() < deadline:
        signature = pg.evaluate(_SIGNATURE)
        if signature != last:
            last, since = signature, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return
        pg.wait_for_timeout(100)


_SIGNATURE = ("() => [document.querySelectorAll('*').length, document.body.innerText.length, "
              "document.querySelector(\"[data-testid='stApp']\")"
              "?.getAttribute('data-test-script-state')].join(':')")


def assert_no_exception(pg) -> None:
    assert pg.locator("[data-testid='stException']").count() == 0, pg.inner_text("body")[:2000]
