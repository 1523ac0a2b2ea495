"""What keeps the pages quick on a large dataset, under AppTest on the demo data (300 users,
3,535 reviews) with one fake-encoder version:

- the ranking is fitted in the background: the page draws the user's profile at once and
  shows the recommendations as being prepared until the fit ends (gated here on an event,
  so the test never depends on timing), and shows a fit's error instead of the lists;
- the user finder and the review tables page through the database.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from dashboard import background, ranking_tasks
from dashboard import profiles as prof
from dashboard.resources import _open_store
from mgi_core.cli import DEMO_DIR
from mgi_core.data.ingest import ingest_file
from mgi_core.errors import ConfigError
from mgi_core.evaluation.protocol import evaluate
from mgi_core.profiles.service import ensure_profiles
from mgi_core.store import Store
from mgi_core.store.queries.datasets import sample_reviews
from mgi_core.store.queries.profiles import find_users
from tests.app.pages import APP, hold, release_app_store, run, run_once, texts
from tests.fake_encoder import register_fake_version

VOCAB = ["headphones", "speaker", "lens", "camera", "laptop", "keyboard", "coffee", "knife",
         "novel", "plot", "bike", "tent", "battery", "sound"]


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("at_size") / "app.duckdb"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MGI_DB", str(path))
        store = _open_store(str(path))
        ingest_file(store, DEMO_DIR / "reviews.csv", "demo")
        register_fake_version(store, "demo", VOCAB, version="fake")
        ensure_profiles(store, "demo", "fake")  # stored, as after `mgi evaluate`
        yield path
    release_app_store(path)


@pytest.fixture
def fresh(demo_db: Path, monkeypatch: pytest.MonkeyPatch) -> Store:
    """The demo store, with no background work kept: each test fits anew."""
    monkeypatch.setenv("MGI_DB", str(demo_db))
    background.wait_all()
    background.clear_all()
    return _open_store(str(demo_db))


def _page(page: str, settle: bool = True) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=300)
    at.run()
    at.switch_page(page)
    return run(at) if settle else run_once(at)


def _frame(at: AppTest, *columns: str) -> pd.DataFrame | None:
    return next((d.value for d in at.dataframe if set(columns) <= set(d.value.columns)), None)


def _downloads(at: AppTest) -> list[str]:
    return sorted(b.proto.label for b in at.get("download_button"))


def test_recommendations_are_prepared_in_the_background(
    fresh: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    fitting, release = hold(monkeypatch, ranking_tasks, "load_ranking_context")
    try:
        at = _page("app_pages/profiles.py", settle=False)
        assert fitting.wait(30)  # the fit started, and the page was drawn without it
        # The profile and the user's reviews are there; the recommendations are being
        # prepared.
        headers = [h.value for h in at.header]
        assert headers[:3] == ["Find a user", "Interest profile", "Recommendations"]
        assert at.metric and _frame(at, "split") is not None
        assert "The recommendations: being prepared" in texts(at.info)
        assert _frame(at, "score") is None
        assert _downloads(at) == ["Profile (CSV)", "Profile (Parquet)"]
        assert "The recommendations downloads appear here once ready" in texts(at.caption)
    finally:
        release.set()
    # Once the fit ends, the next run draws the lists (a browser's status reruns the page).
    at = run(at)
    recs = _frame(at, "score")
    assert recs is not None and list(recs["rank"]) == list(range(1, 11))
    assert "being prepared" not in texts(at.info)
    assert _downloads(at) == ["Profile (CSV)", "Profile (Parquet)", "Recommendations (CSV)",
                              "Recommendations (Parquet)"]
    # Another scorer reuses the fitted context: no second fit.
    fitting.clear()
    at.selectbox(key="prof_scorer").set_value("popularity")
    at = run(at)
    assert not fitting.is_set()
    assert len(_frame(at, "score")) == 10


def test_a_failed_fit_is_shown_and_the_rest_of_the_page_stays(
    fresh: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_fit(*args: Any, **kwargs: Any) -> Any:
        raise ConfigError("The ranking cannot be fitted: no item vectors.")

    monkeypatch.setattr(ranking_tasks, "load_ranking_context", broken_fit)
    at = _page("app_pages/profiles.py")
    assert "The ranking cannot be fitted: no item vectors." in texts(at.error)
    assert _frame(at, "score") is None
    assert at.metric and _frame(at, "keywords") is not None  # the profile is still drawn
    assert "Export" in [h.value for h in at.header]


def test_the_user_finder_pages_through_the_matching_users(
    fresh: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(prof, "USERS_PAGE", 50)
    at = _page("app_pages/profiles.py")
    everyone = find_users(fresh, "demo", limit=1_000)
    assert len(everyone) == 300

    def listed() -> list[str]:
        return [o.split(" · ")[0] for o in at.selectbox(key="prof_user").options]

    assert listed() == list(everyone["user_id"].iloc[:50])
    assert at.number_input(key="prof_user_page").max == 6  # 300 users, 50 a page
    at.number_input(key="prof_user_page").set_value(2)
    at = run(at)
    # Page 2: users 51-100 of the whole order; the pick moves to that page's first user.
    assert listed() == list(everyone["user_id"].iloc[50:100])
    assert "users 51–100 of 300" in texts(at.caption)
    assert at.selectbox(key="prof_user").value == everyone["user_id"].iloc[50]
    # A filter with fewer matches goes back to the first page.
    at.radio(key="prof_kind").set_value("Cold")
    at = run(at)
    cold = find_users(fresh, "demo", cold=True, limit=1_000)
    assert listed() == list(cold["user_id"].iloc[:50])


def test_the_data_page_pages_through_the_reviews(fresh: Store) -> None:
    at = _page("app_pages/data.py")
    file_rows = pd.read_csv(DEMO_DIR / "reviews.csv")
    assert list(_frame(at, "text")["text"]) == list(file_rows["text"].iloc[:50])
    at.number_input(key="data_reviews_page_demo").set_value(2)
    at = run(at)
    shown = _frame(at, "text")
    assert list(shown["text"]) == list(file_rows["text"].iloc[50:100])  # the file's 51-100
    assert shown.equals(sample_reviews(fresh, "demo", limit=50, offset=50))
    assert "reviews 51–100 of 3,535" in texts(at.caption)


def test_the_comparison_is_prepared_in_the_background(
    fresh: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    evaluate(fresh, "demo", "fake", ["cf_content", "mgi_hybrid"])
    started, release = hold(monkeypatch, ranking_tasks, "compare")
    at = _page("app_pages/compare.py", settle=False)
    try:
        at.selectbox(key="compare_version_a").set_value("fake")
        at = run_once(at)
        assert started.wait(30)
        # The bootstrap runs in the background; the per-user counts (DuckDB) are drawn now.
        assert "The comparison: being prepared" in texts(at.info)
        assert _frame(at, "Metric") is None
        assert [m.label for m in at.metric] == ["B better for", "B worse for", "Same for"]
    finally:
        release.set()
    at = run(at)
    table = _frame(at, "Metric")
    assert table is not None and (table["Users"] == 285).all()
    assert "being prepared" not in texts(at.info)
