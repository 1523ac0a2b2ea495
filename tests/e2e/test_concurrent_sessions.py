"""Several browser sessions on one server at once, while a job runs and another session
ingests: no exception or lock error on any page, no row lost or doubled, the job's result
registered once. (A real server: its sessions run their scripts in parallel threads over the
one cached store, which AppTest cannot reproduce: it swaps process-wide singletons per run.)"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mgi_core.data.ingest import ingest_file
from mgi_core.store import Store
from mgi_core.store.embeddings import review_vectors
from tests.conftest import small_rows, table_counts, write_csv
from tests.e2e.conftest import APP_IDLE, CHROMIUM, Server, _need_browser, assert_no_exception
from tests.fake_encoder import register_fake_version

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
VOCAB = ["headphones", "lens", "plot", "great", "awful", "bass", "zoom", "novel"]
JOB_TIMEOUT_MS = 300_000


def _idle(pg) -> None:
    pg.wait_for_selector(APP_IDLE, timeout=120_000)


def test_sessions_browse_and_ingest_while_a_job_runs(tmp_path: Path, snapshot) -> None:
    _need_browser()
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=120_000)  # four sessions and a job share 2 busy cores

    db = tmp_path / "mgi.duckdb"
    csv = tmp_path / "tiny.csv"
    snapshot[["user_id", "item_id", "text", "rating", "ts", "category", "item_title"]].rename(
        columns={"ts": "timestamp"}).to_csv(csv, index=False)
    with Store(db) as store:
        ingest_file(store, csv, "tiny")
        register_fake_version(store, "tiny", VOCAB, version="fake")
        n_tiny = store.cursor().execute("SELECT count(*) FROM reviews").fetchone()[0]
    second = write_csv(tmp_path / "second.csv", small_rows())

    server = Server(db, tmp_path / "streamlit.log", env={"MGI_RUNS": str(tmp_path / "runs")})
    try:
        server.wait_healthy()
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=str(CHROMIUM),
                args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
            tabs = {name: browser.new_context(viewport={"width": 1400, "height": 1000})
                    .new_page() for name in ("train", "profiles", "compare", "data")}
            for pg in tabs.values():
                pg.set_default_timeout(120_000)
            # 1. start the job (the pre-trained encoder embeds the dataset)
            train = tabs["train"]
            train.goto(f"{server.url}/train")
            _idle(train)
            train.get_by_role("button", name=re.compile("Embed with the pre-trained encoder")
                              ).click()
            expect(train.get_by_role("heading", name="Running job", exact=True)).to_be_visible()
            # 2. three more sessions at once: every navigation starts a script run on the
            # server without waiting for the others to finish
            tabs["profiles"].goto(f"{server.url}/profiles", wait_until="commit")
            tabs["compare"].goto(f"{server.url}/compare", wait_until="commit")
            data = tabs["data"]
            data.goto(server.url, wait_until="commit")
            _idle(data)
            data.get_by_role("region", name="Review file").get_by_test_id(
                "stFileUploaderDropzoneInput").set_input_files(str(second))
            expect(data.get_by_role("button", name="Ingest")).to_be_visible()
            data.get_by_role("button", name="Ingest").click()
            tabs["profiles"].reload(wait_until="commit")
            tabs["compare"].reload(wait_until="commit")
            expect(data.get_by_test_id("stAlertContentSuccess")).to_contain_text(
                "second: 8 of 8 rows stored")
            for name in ("profiles", "compare"):
                _idle(tabs[name])
            # 3. the job ends well, seen by the session that started it
            expect(train.get_by_test_id("stAlertContentSuccess")).to_contain_text(
                "is embedded by the pre-trained encoder", timeout=JOB_TIMEOUT_MS)
            for name, pg in tabs.items():
                _idle(pg)
                assert_no_exception(pg)
                errors = pg.get_by_test_id("stAlertContentError").all_inner_texts()
                assert not errors, (name, errors)
            browser.close()
    finally:
        expect.set_options(timeout=5_000)  # Playwright's default, for the tests that follow
        server.stop()
    log = (tmp_path / "streamlit.log").read_text()
    assert "Traceback" not in log, log[-3000:]

    with Store(db) as store:
        cur = store.cursor()
        assert cur.execute(
            "SELECT count(*), count(DISTINCT review_id) FROM reviews WHERE dataset = 'tiny'"
        ).fetchone() == (n_tiny, n_tiny)
        assert cur.execute(
            "SELECT count(*) FROM reviews WHERE dataset = 'second'").fetchone()[0] == 8
        assert table_counts(store)["datasets"] == 2
        assert cur.execute("SELECT status FROM jobs").fetchall() == [("finished",)]
        ids, _ = review_vectors(store, "base", "tiny")
        assert len(ids) == len(set(ids)) == n_tiny
