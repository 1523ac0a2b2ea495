"""The whole journey in a real browser: upload → base embedding → train → profile → compare.

A fresh dashboard (empty database, its own runs folder) gets a small review file (the
first users of the demo data) through the Data page's uploader, embeds it with the
bundled pre-trained MiniLM (version ``base``), fine-tunes a tiny LoRA run (``v1``), shows
a user's profile and recommendations under ``v1``, and compares ``base`` with ``v1`` on
the Compare page. Every page is checked for a Streamlit exception. Screenshots of each
step go to the test's temporary folder and, when $MGI_SCREENSHOTS is set, there too.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mgi_core.cli import DEMO_DIR
from tests.e2e.conftest import Server, assert_no_exception, wait_idle

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

N_USERS = 50  # of the demo's 300: ~590 reviews, so an embedding pass takes seconds
DATASET = "journey"  # the Data page names the dataset after the file's stem
JOB_TIMEOUT_MS = 300_000  # a job on 2 busy cores; normally well under a minute
FORM = {  # Train page → Hyper-parameters: a run that takes seconds, not minutes
    "Max training reviews": "32",
    "Max sequence length": "32",
    "Embedding max length": "48",
}


def journey_csv(path: Path, n_users: int = N_USERS) -> tuple[int, int]:
    """Write the demo file's reviews of its first ``n_users`` users (by id).

    Returns (reviews, users with at least 3 reviews: those the evaluation holds out for).
    """
    with open(DEMO_DIR / "reviews.csv", newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        rows = list(reader)
    users = sorted({r[0] for r in rows})[:n_users]
    kept = [r for r in rows if r[0] in set(users)]
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(kept)
    counts = Counter(r[0] for r in kept)
    return len(kept), sum(n >= 3 for n in counts.values())


def _stop_jobs(db: Path) -> None:
    """Cancel a job a failed journey left running (after the server let go of the file)."""
    if not db.exists():
        return
    from mgi_core.jobs.manager import active_job, cancel_job, refresh_jobs
    from mgi_core.store import Store

    store = Store(db)
    try:
        refresh_jobs(store)
        job = active_job(store)
        if job is not None:
            cancel_job(store, job["version"], grace_s=5)
    finally:
        store.close()


@pytest.fixture
def journey_server(tmp_path: Path) -> Iterator[Server]:
    """A dashboard on an empty database, with run folders in the test's temporary folder."""
    db = tmp_path / "mgi.duckdb"
    server = Server(db, tmp_path / "streamlit.log", env={"MGI_RUNS": str(tmp_path / "runs")})
    try:
        server.wait_healthy()
        yield server
    finally:
        server.stop()
        _stop_jobs(db)


class Shots:
    """Numbered full-height screenshots of the main area, copied to $MGI_SCREENSHOTS."""

    def __init__(self, pg, folder: Path) -> None:
        self.pg, self.folder, self.n = pg, folder, 0
        folder.mkdir(parents=True, exist_ok=True)
        target = os.environ.get("MGI_SCREENSHOTS")
        self.copy_to = Path(target) if target else None
        if self.copy_to:
            self.copy_to.mkdir(parents=True, exist_ok=True)

    def __call__(self, name: str) -> Path:
        self.n += 1
        path = self.folder / f"{self.n:02d}_{name}.png"
        pg = self.pg
        size = pg.viewport_size
        height = pg.evaluate(
            "() => document.querySelector(\"[data-testid='stMain']\")?.scrollHeight || 0")
        tall = max(size["height"], min(int(height), 6000))
        if tall > size["height"]:
            pg.set_viewport_size({"width": size["width"], "height": tall})
            pg.wait_for_timeout(800)  # charts redraw at the new size
        pg.screenshot(path=str(path))
        if tall > size["height"]:
            pg.set_viewport_size(size)
        if self.copy_to:
            shutil.copy(path, self.copy_to / path.name)
        return path


def _nav(pg, title: str) -> None:
    """Open a page from the sidebar, as a user does (the session and its state stay)."""
    pg.get_by_test_id("stSidebarNav").get_by_role("link", name=title).click()
    pg.wait_for_url(re.compile(r"/$" if title == "Data" else f"/{title.lower()}$"))
    wait_idle(pg)
    assert_no_exception(pg)


def _main(pg):
    return pg.get_by_test_id("stMain")


def _heading(pg, text: str):
    return _main(pg).get_by_role("heading", name=text, exact=True)


def _number(pg, label: str, value: str) -> None:
    """Type into a number input and commit it (Enter), then wait for the rerun."""
    field = _main(pg).get_by_label(label, exact=True)
    field.fill(value)
    field.press("Enter")
    wait_idle(pg)
    assert field.input_value() == value, label


def _select(pg, label: str, option: str) -> None:
    """Pick ``option`` in the select box ``label`` (a no-op when it is already chosen)."""
    box = _main(pg).get_by_role("combobox", name=label, exact=True)
    if box.input_value() == option:
        return
    box.click()
    pg.get_by_role("option", name=option, exact=True).click()
    wait_idle(pg)
    assert box.input_value() == option, label


def _rows(table) -> dict[str, list[str]]:
    """A dataframe's drawn rows by their first cell (from the grid's hidden accessible table)."""
    table.locator("tbody tr").first.wait_for(state="attached")
    rows = [r.locator("td").all_text_contents() for r in table.locator("tbody tr").all()]
    return {r[0]: r for r in rows if r}


def _eventually(pg, check: Callable[[], None], timeout: float = 30) -> None:
    """Retry ``check`` (which asserts) until it passes; the browser may still be drawing."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            check()
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            pg.wait_for_timeout(500)


def _assert_superset(found, expected: set[str]) -> None:
    assert expected <= set(found), (sorted(expected), found)


def _plotly_charts(pg) -> int:
    """Plotly charts drawn (their SVG is there) in the main area."""
    return _main(pg).locator("[data-testid='stPlotlyChart']:has(.main-svg)").count()


def test_upload_train_profile_compare(browser_page, journey_server: Server,
                                      tmp_path: Path) -> None:
    shoot = Shots(browser_page, tmp_path / "screenshots")
    laps: dict[str, float] = {}
    started = time.monotonic()
    try:
        _journey(browser_page, journey_server, shoot, tmp_path, laps)
    except Exception:
        shoot("failure")
        raise
    finally:
        from playwright.sync_api import expect

        expect.set_options(timeout=5_000)  # Playwright's default, for the tests that follow
        steps = ", ".join(f"{k} {v:.0f} s" for k, v in laps.items())
        print(f"\njourney: {time.monotonic() - started:.0f} s ({steps}); "
              f"screenshots in {shoot.folder}")


def _journey(pg, server: Server, shoot: Shots, tmp_path: Path, laps: dict[str, float]) -> None:
    from playwright.sync_api import expect

    expect.set_options(timeout=30_000)  # a rerun on 2 busy cores can take seconds
    clock = [time.monotonic()]

    def lap(name: str) -> None:
        now = time.monotonic()
        laps[name], clock[0] = now - clock[0], now

    upload = tmp_path / f"{DATASET}.csv"
    n_rows, n_test_users = journey_csv(upload)

    # 1. Data: an empty database says what to do; upload the file and ingest it.
    pg.goto(server.url)
    wait_idle(pg)
    assert_no_exception(pg)
    expect(_main(pg)).to_contain_text("No datasets yet")
    pg.get_by_role("region", name="Review file").get_by_test_id(
        "stFileUploaderDropzoneInput").set_input_files(str(upload))
    expect(_heading(pg, "Column mapping")).to_be_visible()
    wait_idle(pg)
    expect(_main(pg).get_by_label("Dataset name", exact=True)).to_have_value(DATASET)
    shoot("data_upload_mapping")
    _main(pg).get_by_role("button", name="Ingest").click()
    wait_idle(pg)
    assert_no_exception(pg)
    success = _main(pg).get_by_test_id("stAlertContentSuccess")
    expect(success).to_contain_text(f"{DATASET}: {n_rows:,} of {n_rows:,} rows stored")
    expect(success).to_contain_text(f"({N_USERS:,} users")
    expect(_main(pg).get_by_role("combobox", name="Dataset", exact=True)).to_have_value(DATASET)
    shoot("data_ingested")
    lap("data")

    # 2. Train: embed with the pre-trained encoder (base), then fine-tune a small run.
    _nav(pg, "Train")
    expect(_main(pg).get_by_role("combobox", name="Dataset", exact=True)).to_have_value(DATASET)
    _main(pg).get_by_text("Hyper-parameters", exact=True).click()
    for label, value in FORM.items():
        _number(pg, label, value)
    shoot("train_form")
    base = _main(pg).get_by_role("button", name=re.compile("Embed with the pre-trained encoder"))
    base.click()
    expect(_heading(pg, "Running job")).to_be_visible()
    expect(_main(pg).get_by_role("progressbar").first).to_be_visible()
    shoot("train_base_running")
    expect(_main(pg).get_by_test_id("stAlertContentSuccess")).to_contain_text(
        f"Dataset {DATASET} is embedded by the pre-trained encoder (version base)",
        timeout=JOB_TIMEOUT_MS)
    wait_idle(pg)
    assert_no_exception(pg)
    expect(base).to_have_count(0)  # offered only while the dataset has no base embeddings
    lap("base embedding")

    _main(pg).get_by_role("button", name="Train", exact=True).click()
    expect(_heading(pg, "Running job")).to_be_visible()
    expect(_main(pg)).to_contain_text("Fine-tuning")
    shoot("train_v1_running")
    expect(_main(pg).get_by_test_id("stAlertContentSuccess")).to_contain_text(
        f"Version v1 is ready (trained on {DATASET})", timeout=JOB_TIMEOUT_MS)
    wait_idle(pg)
    assert_no_exception(pg)
    expect(_heading(pg, "Running job")).to_have_count(0)

    def versions_listed() -> None:
        versions = _rows(_main(pg).get_by_test_id("stDataFrame").first)
        assert versions.get("v1", [])[1:5] == ["fine-tuned", DATASET, "lora", "ready"], versions
        assert versions.get("base", [])[1:5:3] == ["base", "ready"], versions

    _eventually(pg, versions_listed)
    expect(_main(pg).get_by_role("combobox", name="Training curves of")).to_have_value("v1")
    expect(_main(pg).locator("[data-testid='stPlotlyChart']")).to_have_count(2)
    shoot("train_v1_ready")
    lap("training")

    # 3. Profiles: the most active user's interests and recommendations under v1.
    _nav(pg, "Profiles")
    expect(_main(pg).get_by_role("combobox", name="Model version")).to_have_value("v1")
    for header in ("Find a user", "Interest profile", "Recommendations", "Embedding map"):
        expect(_heading(pg, header)).to_be_visible(timeout=120_000)
    wait_idle(pg)
    assert_no_exception(pg)
    user = _main(pg).get_by_role("combobox", name="User", exact=True).input_value()
    assert re.match(r"U\d{4}", user), user
    expect(_heading(pg, "Fine interests")).to_be_visible()
    expect(_main(pg).get_by_test_id("stMetric").filter(has_text="Train reviews")).to_contain_text(
        re.compile(r"Train reviews\s*[1-9]"))
    recommended = _main(pg).get_by_test_id("stDataFrame").filter(
        has=pg.locator("th", has_text=re.compile(r"^score$")))

    def recommends() -> None:
        ranked = _rows(recommended)
        assert ranked.get("1", ["", ""])[1].startswith("I"), ranked  # rank 1: an item id
        assert len(ranked) >= 5, ranked
        # Category affinity, top categories, score parts per item, embedding map.
        assert _plotly_charts(pg) >= 4

    _eventually(pg, recommends)
    expect(_main(pg).get_by_role("button", name="Recommendations (CSV)")).to_be_visible()
    shoot("profiles")
    lap("profiles")

    # 4. Compare: base against v1, evaluated on demand, with the metrics and the charts.
    _nav(pg, "Compare")
    _select(pg, "Version A", "base")
    _select(pg, "Version B", "v1")
    scorer_a = _main(pg).get_by_role("combobox", name="Scorer A", exact=True).input_value()
    _select(pg, "Scorer B", scorer_a)  # the same scorer: only the encoder differs
    evaluate = _main(pg).get_by_role("button", name="Evaluate")
    expect(evaluate).to_be_visible()
    shoot("compare_before_evaluate")
    evaluate.click()
    expect(_heading(pg, "Metrics")).to_be_visible(timeout=JOB_TIMEOUT_MS)
    expect(_heading(pg, "Per-user NDCG@10")).to_be_visible(timeout=120_000)
    wait_idle(pg)
    assert_no_exception(pg)
    expect(evaluate).to_have_count(0)
    expect(_main(pg)).to_contain_text(f"A = base:{scorer_a}, B = v1:{scorer_a}")

    def compared() -> None:
        metrics = _rows(_main(pg).get_by_test_id("stDataFrame").first)
        assert {"NDCG@10", "Recall@10", "MRR"} <= set(metrics), metrics
        assert metrics["NDCG@10"][1] == f"{n_test_users}", metrics["NDCG@10"]
        # Δ with its CI, NDCG@10 per category, and the per-user scatter.
        assert _plotly_charts(pg) >= 3

    _eventually(pg, compared)
    expect(_main(pg).locator("[data-testid='stPlotlyChart'] .main-svg").first).to_be_visible()
    shoot("compare")
    lap("compare")

    # 5. Metrics: the stored evaluations of both systems and v1's training curves.
    _nav(pg, "Metrics")
    expect(_heading(pg, "Training")).to_be_visible()
    expect(_heading(pg, "Evaluation")).to_be_visible()
    evaluations = _main(pg).get_by_test_id("stDataFrame").nth(1)
    _eventually(pg, lambda: _assert_superset(
        _rows(evaluations), {f"base:{scorer_a}", f"v1:{scorer_a}"}))
    shoot("metrics")
    lap("metrics")
