"""Interest drift on the pages under AppTest: the Profiles page's "How interests moved"
section (a user's profile as of a date against now) and the Data page's category shares
by month, on the demo data with the keyword fake encoder; each compared with what
``mgi_core`` returns for the same user, date or dataset."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from dashboard.charts import plain_label
from dashboard.resources import _open_store
from mgi_core.cli import DEMO_DIR
from mgi_core.data.ingest import ingest_file
from mgi_core.profiles.drift import drift
from mgi_core.store import Store
from mgi_core.store.drift import user_train_span
from mgi_core.store.queries.datasets import category_shares_by_month
from tests.app.pages import open_page, release_app_store, run, texts
from tests.conftest import HEADER, small_rows, write_csv
from tests.fake_encoder import DEMO_VOCAB, register_fake_version

PROFILES, DATA = "app_pages/profiles.py", "app_pages/data.py"


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("drift_pages") / "app.duckdb"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MGI_DB", str(path))
        store = _open_store(str(path))
        ingest_file(store, DEMO_DIR / "reviews.csv", "demo")
        register_fake_version(store, "demo", DEMO_VOCAB)
        yield path
    release_app_store(path)


@pytest.fixture
def undated_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The small file without its timestamp column, embedded by the fake encoder."""
    path = tmp_path / "app.duckdb"
    monkeypatch.setenv("MGI_DB", str(path))
    store = _open_store(str(path))
    header = [h for h in HEADER if h != "timestamp"]
    rows = [r[:4] + r[5:] for r in small_rows()]
    ingest_file(store, write_csv(tmp_path / "undated.csv", rows, header), "undated")
    register_fake_version(store, "undated", DEMO_VOCAB)
    yield path
    release_app_store(path)


def _frame(at: AppTest, *columns: str) -> pd.DataFrame | None:
    return next((d.value for d in at.dataframe if set(columns) <= set(d.value.columns)), None)


def _charts(at: AppTest) -> dict[str, dict]:
    """The page's plotly figure specs by title."""
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    return {s["layout"]["title"]["text"]: s for s in specs}


def _array(value: object) -> np.ndarray:
    """A spec's array: plotly writes numpy arrays as base64 ``{"dtype", "bdata"}``."""
    if isinstance(value, dict):
        return np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
    return np.asarray(value)


def _pick(at: AppTest, user: str) -> AppTest:
    at.text_input(key="prof_search").set_value(user)
    return run(at)


def test_profiles_page_shows_how_a_users_interests_moved(demo_db: Path) -> None:
    store = _open_store(str(demo_db))
    at = _pick(open_page(PROFILES), "U0003")
    assert at.selectbox(key="prof_user").value == "U0003"
    assert "How interests moved" in texts(at.subheader)
    assert not at.date_input  # nothing computed until asked
    at.toggle(key="prof_drift").set_value(True)
    at = run(at)
    # The date starts at the midpoint of the user's first and last train review.
    span = user_train_span(store, "demo", "U0003")
    first, last = span.first.date(), span.last.date()
    picked = at.date_input(key="prof_drift_date")
    assert picked.value == first + (last - first) / 2
    expected = drift(store, "demo", "fake", "U0003", picked.value)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Train reviews then → now"] == (
        f"{expected.n_reviews_then} → {expected.n_reviews_now}")
    assert metrics["Overall similarity"] == f"{expected.overall_similarity:.2f}"
    l1 = _frame(at, "share then", "change")
    assert list(l1["category"]) == [c.category for c in expected.l1]
    assert list(l1["change"]) == [c.change for c in expected.l1]
    assert l1["share now"].to_numpy() == pytest.approx([c.share_now for c in expected.l1])
    interests = _frame(at, "status", "keywords now")
    assert list(interests["status"]) == [i.status for i in expected.interests]
    assert list(interests["keywords now"]) == [", ".join(i.keywords_now)
                                               for i in expected.interests]
    charts = _charts(at)
    assert {"L1 shares then and now", "L2 shares then and now"} <= set(charts)
    bars = charts["L1 shares then and now"]["data"]
    assert [b["name"] for b in bars] == [picked.value.isoformat(), "now"]
    assert _array(bars[1]["x"]) == pytest.approx([c.share_now or 0.0 for c in expected.l1])
    assert _array(bars[0]["x"]) == pytest.approx([c.share_then or 0.0 for c in expected.l1])
    # An earlier date: fewer reviews then.
    at.date_input(key="prof_drift_date").set_value(first)
    at = run(at)
    earliest = drift(store, "demo", "fake", "U0003", first)
    assert earliest.n_reviews_then < expected.n_reviews_then
    assert {m.label: m.value for m in at.metric}["Train reviews then → now"] == (
        f"{earliest.n_reviews_then} → {earliest.n_reviews_now}")
    # Another user: the date follows their own span.
    at = _pick(at, "U0007")
    span = user_train_span(store, "demo", "U0007")
    first, last = span.first.date(), span.last.date()
    assert at.date_input(key="prof_drift_date").value == first + (last - first) / 2


def test_a_cold_user_has_nothing_to_compare(demo_db: Path) -> None:
    at = open_page(PROFILES)
    at.radio(key="prof_kind").set_value("Cold")
    at = run(at)
    assert "no earlier profile to compare with" in texts(at.caption)
    assert not at.toggle and not at.date_input


def test_undated_dataset_says_drift_needs_dates(undated_db: Path) -> None:
    at = open_page(PROFILES)
    assert at.selectbox(key="prof_dataset").value == "undated"
    assert "How interests moved" in texts(at.subheader)
    assert "Drift needs review dates: this dataset has no timestamps" in texts(at.caption)
    assert not at.toggle
    at.switch_page(DATA)
    at = run(at)
    assert "Interest drift: category shares by month" in texts(at.subheader)
    assert "Drift needs review dates: this dataset has no timestamps" in texts(at.caption)
    assert "L1 category shares by month" not in _charts(at)


def test_data_page_shows_category_shares_by_month(demo_db: Path) -> None:
    store = _open_store(str(demo_db))
    at = open_page(DATA)
    assert "Interest drift: category shares by month" in texts(at.subheader)
    assert "train, validation and test" in texts(at.caption)
    chart = _charts(at)["L1 category shares by month"]
    expected = category_shares_by_month(store, "demo")
    totals = expected.groupby("category")["n_reviews"].sum().sort_values(ascending=False)
    assert len(totals) == 6 and totals.is_unique  # the demo's L1s, in one order by size
    assert [t["name"] for t in chart["data"]] == [plain_label(c) for c in totals.index]
    assert all(t["stackgroup"] == "shares" for t in chart["data"])
    # Each month's stacked shares add up to one.
    assert {len(t["x"]) for t in chart["data"]} == {expected["month"].nunique()}
    stacked = sum(_array(t["y"]) for t in chart["data"])
    assert stacked == pytest.approx(np.ones(expected["month"].nunique()))


def test_data_page_one_month_gives_a_caption_not_a_chart(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "app.duckdb"
    monkeypatch.setenv("MGI_DB", str(path))
    store: Store = _open_store(str(path))
    try:
        ingest_file(store, write_csv(tmp_path / "small.csv", small_rows()), "small")
        at = open_page(DATA)
        assert "Every dated review falls in one month" in texts(at.caption)
        assert "L1 category shares by month" not in _charts(at)
        assert date(2020, 9, 13) <= store.cursor().execute(
            "SELECT max(ts) FROM reviews").fetchone()[0].date() < date(2020, 10, 1)
    finally:
        release_app_store(path)
