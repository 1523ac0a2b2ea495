"""The Profiles page under AppTest: empty states, finding a user, the profile, recommendations,
the version switch and the downloads, on the demo data with two fake-encoder versions.

The fake versions (keyword one-hots, no training) make the page's numbers the core's numbers:
each test compares what the page shows with what ``mgi_core`` returns for the same user.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from dashboard import background
from dashboard.profile_choices import NONE
from dashboard.profile_tables import GRANULARITIES
from dashboard.resources import _open_store
from mgi_core.cli import DEMO_DIR
from mgi_core.data.ingest import ingest_file
from mgi_core.profiles.service import user_profile
from mgi_core.store import Store
from mgi_core.store.queries.profiles import find_users
from mgi_core.store.versions import list_versions
from tests.app.pages import open_page
from tests.app.pages import run as _run
from tests.app.pages import texts as _texts
from tests.conftest import small_rows, write_csv
from tests.fake_encoder import register_fake_version

PAGE = "app_pages/profiles.py"
VOCAB = ["headphones", "speaker", "lens", "camera", "laptop", "keyboard", "coffee", "knife",
         "novel", "plot", "bike", "tent", "battery", "sound"]
VOCAB_2 = ["headphones", "lens", "laptop", "coffee", "novel", "bike", "sound"]


def _app_store(db: Path) -> Store:
    """The store the app uses for ``db`` (the same cached root connection)."""
    return _open_store(str(db))


def _release(db: Path) -> None:
    _app_store(db).close()
    _open_store.clear()
    background.wait_all()
    background.clear_all()


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The demo data with versions 'fake' and (newer) 'fake2', shared by this module's tests:
    the first test pays for computing profiles and fitting the ranking, the others reuse it."""
    path = tmp_path_factory.mktemp("profiles") / "app.duckdb"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MGI_DB", str(path))
        store = _app_store(path)
        ingest_file(store, DEMO_DIR / "reviews.csv", "demo")
        register_fake_version(store, "demo", VOCAB, version="fake")
        register_fake_version(store, "demo", VOCAB_2, version="fake2")
        yield path
    _release(path)


@pytest.fixture
def empty_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    path = tmp_path / "app.duckdb"
    monkeypatch.setenv("MGI_DB", str(path))
    yield path
    _release(path)


def _open_page() -> AppTest:
    return open_page(PAGE)


def _frame(at: AppTest, *columns: str) -> pd.DataFrame:
    """The first table on the page with all of ``columns``."""
    return next(d.value for d in at.dataframe if set(columns) <= set(d.value.columns))


def _metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def _user_ids(at: AppTest) -> list[str]:
    """The User picker's options (labels start with the id)."""
    return [o.split(" · ")[0] for o in at.selectbox(key="prof_user").options]


def test_empty_database_links_to_the_data_page(empty_db: Path) -> None:
    at = _open_page()
    assert "No datasets yet" in _texts(at.info)
    links = at.get("page_link")
    assert len(links) == 1 and links[0].proto.label == "Go to the Data page"
    assert not at.selectbox and not at.header


def test_dataset_without_a_version_links_to_the_train_page(empty_db: Path,
                                                           tmp_path: Path) -> None:
    ingest_file(_app_store(empty_db), write_csv(tmp_path / "s.csv", small_rows()), "small")
    at = _open_page()
    assert at.selectbox(key="prof_dataset").value == "small"
    assert "No model version has embedded 'small'" in _texts(at.info)
    links = at.get("page_link")
    assert [link.proto.label for link in links] == ["Go to the Train page"]
    assert links[0].proto.page.endswith("train")
    assert "Interest profile" not in _texts(at.header)


def test_page_shows_the_most_active_users_profile_and_recommendations(demo_db: Path) -> None:
    store = _app_store(demo_db)
    at = _open_page()
    assert [h.value for h in at.header] == ["Find a user", "Interest profile", "Recommendations",
                                            "Embedding map", "Export", "Privacy"]
    assert at.button(key="forget_open").label == "Forget this user…"  # asks before it acts
    # Newest fine-tuned version first; the user list is the core's, most active first.
    assert at.selectbox(key="prof_version").value == "fake2"
    assert at.selectbox(key="prof_version").options == ["fake2", "fake"]
    expected = find_users(store, "demo")
    assert _user_ids(at) == list(expected["user_id"])
    user = at.selectbox(key="prof_user").value
    assert user == expected["user_id"].iloc[0]
    profile = user_profile(store, "demo", "fake2", user)
    assert _metrics(at)["Train reviews"] == str(profile["n_train_reviews"])
    assert _metrics(at)["Fine interests"] == str(len(profile["interests"]))
    interests = _frame(at, "keywords")
    assert len(interests) == len(profile["interests"])
    assert interests["keywords"].iloc[0] == ", ".join(profile["interests"][0]["keywords"])
    reps = _frame(at, "interest", "text")
    assert len(reps) == sum(len(i["representative_reviews"]) for i in profile["interests"])
    reviews = _frame(at, "split")  # the user's own reviews, every split, as plain text
    assert set(reviews["split"]) == {"train", "val", "test"}
    assert len(reviews) == int(expected["n_reviews"].iloc[0])
    recs = _frame(at, "score")
    assert len(recs) == 10 and list(recs["rank"]) == list(range(1, 11))
    assert recs["score"].is_monotonic_decreasing
    # Nothing the user reviewed in train is recommended.
    train_items = set(reviews.loc[reviews["split"] == "train", "item_id"])
    assert not train_items & set(recs["item_id"])
    # The parts add up to the score.
    parts = [g for g in GRANULARITIES if g in recs.columns]
    assert (recs[parts].sum(axis=1) - recs["score"]).abs().max() < 1e-9
    assert not _frame(at, "matched_item_id").empty
    charts = at.get("plotly_chart")
    assert len(charts) == 4  # sunburst, top categories, score parts, embedding map
    labels = sorted(b.proto.label for b in at.get("download_button"))
    assert labels == ["Profile (CSV)", "Profile (Parquet)", "Recommendations (CSV)",
                      "Recommendations (Parquet)"]
    assert not at.warning  # the most active user is warm


def test_picking_a_cold_user_shows_the_fallback(demo_db: Path) -> None:
    at = _open_page()
    at.radio(key="prof_kind").set_value("Cold")
    at = _run(at)
    cold = _user_ids(at)
    assert cold and all(o.endswith(" · cold") for o in at.selectbox(key="prof_user").options)
    assert cold == list(find_users(_app_store(demo_db), "demo", cold=True)["user_id"])
    at.selectbox(key="prof_user").set_value(cold[-1])
    at = _run(at)
    assert _metrics(at)["Train reviews"] == "1"
    assert "Cold user" in _texts(at.warning)
    assert "Cold user (one review)" in _texts(at.info)  # the ranking's own note
    assert len(_frame(at, "score")) == 10


def test_filters_change_the_user_list(demo_db: Path) -> None:
    store = _app_store(demo_db)
    at = _open_page()
    everyone = _user_ids(at)
    at.selectbox(key="prof_l1").set_value("Books")
    at = _run(at)
    books = _user_ids(at)
    assert books == list(find_users(store, "demo", l1="Books")["user_id"])
    assert 0 < len(books) < len(everyone)
    at.number_input(key="prof_min_reviews").set_value(12)
    at = _run(at)
    active = _user_ids(at)
    assert active == list(find_users(store, "demo", l1="Books", min_train_reviews=12)["user_id"])
    assert 0 < len(active) < len(books)
    assert at.selectbox(key="prof_user").value in active  # the pick follows the filters
    at.text_input(key="prof_search").set_value("no such user")
    at = _run(at)
    assert "No user matches these filters" in _texts(at.info)
    assert "Interest profile" not in _texts(at.header)


def test_picking_a_user_by_id(demo_db: Path) -> None:
    at = _open_page()
    at.text_input(key="prof_search").set_value("u0007")  # case-insensitive substring
    at = _run(at)
    assert _user_ids(at) == ["U0007"]
    assert at.selectbox(key="prof_user").value == "U0007"
    profile = user_profile(_app_store(demo_db), "demo", "fake2", "U0007")
    assert _metrics(at)["Train reviews"] == str(profile["n_train_reviews"])


def test_version_switch_and_comparison(demo_db: Path) -> None:
    store = _app_store(demo_db)
    at = _open_page()
    user = at.selectbox(key="prof_user").value
    at.selectbox(key="prof_version").set_value("fake")
    at = _run(at)
    assert at.selectbox(key="prof_compare").options == [NONE, "fake2"]
    at.selectbox(key="prof_compare").set_value("fake2")
    at = _run(at)
    assert "fake compared with fake2" in _texts(at.subheader)
    delta = _frame(at, "change")
    assert list(delta.columns) == ["category", "fake affinity", "fake2 affinity", "change"]
    a = user_profile(store, "demo", "fake", user)
    b = user_profile(store, "demo", "fake2", user)
    got = delta.set_index("category")
    for cat in a["l1"]:
        assert got.loc[cat["key"], "fake affinity"] == pytest.approx(cat["affinity"])
    for cat in b["l1"]:
        assert got.loc[cat["key"], "fake2 affinity"] == pytest.approx(cat["affinity"])
    assert len(at.get("plotly_chart")) == 5  # plus the comparison bars
    # Both versions now have stored profiles.
    assert {v["version"] for v in list_versions(store, dataset="demo")} == {"fake", "fake2"}
    n = store.cursor().execute(
        "SELECT count(DISTINCT version) FROM user_profiles WHERE dataset = 'demo'").fetchone()[0]
    assert n == 2
