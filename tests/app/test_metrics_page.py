"""The Metrics page under AppTest: empty states, curves and validation metrics, evaluations.

The demo data with fake-encoder versions v1 and v2 (tests/fake_encoder.py); v1 gets a short
training log and best-epoch metrics written by hand, as a finished fine-tuning run leaves.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from dashboard.charts import plain_label
from dashboard.resources import _open_store
from mgi_core.cli import DEMO_DIR
from mgi_core.data.ingest import ingest_file
from mgi_core.evaluation.compare import compare
from mgi_core.evaluation.next_interest import next_interest
from mgi_core.evaluation.protocol import evaluate
from mgi_core.store import Store
from mgi_core.store.next_interest import next_interest_summary
from tests.app.pages import open_page
from tests.app.pages import run as _run
from tests.app.pages import texts as _texts
from tests.app.test_compare_page import VOCAB, _array
from tests.fake_encoder import register_fake_version

PAGE = "app_pages/metrics.py"
# Two steps of one epoch, then its validation (step, epoch, metric, value).
TRAIN_LOG = [(1, 1, "loss/overall", 0.7), (1, 1, "loss/category", 1.9), (1, 1, "loss/total", 1.65),
             (2, 1, "loss/overall", 0.6), (2, 1, "loss/category", 1.5), (2, 1, "loss/total", 1.35),
             (2, 1, "val/overall/auc", 0.71), (2, 1, "val/category/macro_f1", 0.55),
             (2, 1, "val/objective", 0.9)]


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh database file for the app (via $MGI_DB); the cached store is released after."""
    path = tmp_path / "app.duckdb"
    monkeypatch.setenv("MGI_DB", str(path))
    yield path
    _open_store(str(path)).close()
    _open_store.clear()


@pytest.fixture
def demo_data(db: Path) -> Store:
    store = _open_store(str(db))
    ingest_file(store, DEMO_DIR / "reviews.csv", "demo")
    return store


@pytest.fixture
def demo(demo_data: Store) -> Store:
    """The demo with versions v1 (with a training log) and v2 (newest, none)."""
    register_fake_version(demo_data, "demo", VOCAB, "v1")
    register_fake_version(demo_data, "demo", VOCAB[:7], "v2")
    cur = demo_data.cursor()
    cur.executemany("INSERT INTO train_log VALUES ('v1', ?, ?, ?, ?)", TRAIN_LOG)
    cur.execute("UPDATE model_versions SET metrics = ?, strategy = 'lora' WHERE version = 'v1'",
                [json.dumps({"overall/auc": 0.71, "category/macro_f1": 0.55})])
    return demo_data


def _open_page() -> AppTest:
    return open_page(PAGE)


def _charts(at: AppTest) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def _chart(at: AppTest, title: str) -> dict:
    [spec] = [s for s in _charts(at) if s["layout"]["title"]["text"] == title]
    return spec


def test_no_dataset_points_to_the_data_page(db: Path) -> None:
    at = _open_page()
    assert "No datasets yet" in _texts(at.info)
    [link] = at.page_link
    assert link.proto.label == "Go to the Data page"


def test_no_version_points_to_the_train_page(demo_data: Store) -> None:
    at = _open_page()
    assert at.selectbox(key="metrics_dataset").value == "demo"
    assert "No model versions for demo yet" in _texts(at.info)
    [link] = at.page_link
    assert link.proto.label == "Go to the Train page" and "train" in link.proto.page
    assert not at.get("plotly_chart")


def test_curves_and_validation_metrics_without_evaluations(demo: Store) -> None:
    at = _open_page()
    # Validation metrics of both versions; only v1 has any.
    table = next(d.value for d in at.dataframe if "AUC" in d.value.columns)
    assert table["version"].tolist() == ["v2", "v1"]
    assert table.set_index("version").loc["v1", ["AUC", "F1 L1"]].tolist() == [0.71, 0.55]
    bars = _chart(at, "Validation metrics (best epoch)")["data"]
    assert [b["name"] for b in bars] == ["v1"]
    # One tab of curves per version, newest first; v1's loss curves are its training log.
    assert [t.label for t in at.tabs] == ["v2", "v1"]
    losses = [s for s in _charts(at) if s["layout"]["title"]["text"] == "Training loss"]
    assert len(losses) == 2
    assert not losses[0]["data"]  # v2 has no training log
    curves = {t["name"]: _array(t["y"]).tolist() for t in losses[1]["data"]}
    assert curves == {"overall": [0.7, 0.6], "category": [1.9, 1.5],
                      "total (Σ λ·ℓ)": [1.65, 1.35]}
    # No evaluation yet: explain and point to the Compare page and the CLI.
    assert "No stored evaluations on demo yet" in _texts(at.info)
    assert "python -m mgi_core evaluate --dataset demo" in _texts(at.info)
    [link] = at.page_link
    assert link.proto.label == "Go to the Compare page" and "compare" in link.proto.page


def test_evaluations_table_bars_and_category_heat_map(demo: Store) -> None:
    evaluate(demo, "demo", "v1", ["content_hybrid", "popularity"])
    evaluate(demo, "demo", "v2", ["mgi_hybrid"])
    at = _open_page()
    assert "No stored evaluations" not in _texts(at.info)
    table = next(d.value for d in at.dataframe if "system" in d.value.columns)
    assert table["system"].tolist() == ["v1:content_hybrid", "v1:popularity", "v2:mgi_hybrid"]
    # Narrowed to the page's width: the @10 metrics that matter, users, when evaluated.
    assert table.columns.tolist() == ["system", "users", "NDCG@10", "Recall@10", "MRR",
                                      "HitRate@10", "Coverage@10", "Diversity@10", "evaluated"]
    assert (table["users"] == 285).all()
    bars = _chart(at, "Ranking quality on the test split")["data"]
    assert [b["name"] for b in bars] == ["NDCG@10", "Recall@10"]
    assert _array(bars[0]["y"]) == pytest.approx(table["NDCG@10"].tolist())
    # Heat map: rows L1 categories, columns systems, values mean NDCG@10 of the users whose
    # held-out item is in that category. compare() computes the same means its own way.
    heat = _chart(at, "NDCG@10 per category of the held-out item")["data"][0]
    assert list(heat["x"]) == table["system"].tolist()
    z = _array(heat["z"])
    rows = list(heat["y"])  # escaped for plotly: "Home &amp; Kitchen"
    assert z.shape == (6, 3)  # the demo's six L1 categories
    report = compare(demo, "v1:popularity", "v2:mgi_hybrid", "demo")
    for group in report.per_category.itertuples():
        row = rows.index(plain_label(group.group))
        assert z[row, 1] == pytest.approx(group.mean_a)
        assert z[row, 2] == pytest.approx(group.mean_b)
    # Users per category: the largest category on top.
    users = _array(heat["customdata"])
    assert users[:, 0].tolist() == sorted(users[:, 0].tolist(), reverse=True)
    assert int(np.sum(users[:, 0])) == 285


def test_switching_dataset(demo: Store, tmp_path: Path) -> None:
    csv = tmp_path / "other.csv"
    csv.write_text((DEMO_DIR / "reviews.csv").read_text(encoding="utf-8"), encoding="utf-8")
    ingest_file(demo, csv, "other")  # newest dataset: the default, and it has no version
    at = _open_page()
    assert at.selectbox(key="metrics_dataset").value == "other"
    assert "No model versions for other yet" in _texts(at.info)
    at.selectbox(key="metrics_dataset").set_value("demo")
    at = _run(at)
    assert [t.label for t in at.tabs] == ["v2", "v1"]


def _next_interest_tables(at: AppTest) -> list:
    return [d.value for d in at.dataframe if "System" in d.value.columns]


def test_next_interest_per_level_with_the_profile_against_the_baselines(demo: Store) -> None:
    next_interest(demo, "demo", "v2")
    at = _open_page()
    # The newest version by default; base is not offered (it never embedded the demo).
    picker = at.selectbox(key="metrics_ni_version")
    assert (picker.value, picker.options) == ("v2", ["v2", "v1"])
    assert "Next interest" in _texts(at.header)
    assert "does the profile's top category match the category of the user's next item" in (
        _texts(at.caption))
    summary = next_interest_summary(demo, "v2", "demo")
    tables = _next_interest_tables(at)
    assert len(tables) == 3  # L1, L2, fine interests
    for table, level in zip(tables, ("l1", "l2", "interest"), strict=True):
        expected = summary[summary["level"] == level].set_index("system")
        assert table["System"].iloc[0] == "profile"  # the system under test leads
        assert sorted(table["System"]) == sorted(expected.index)
        shown = table.set_index("System")
        assert shown["Hit@1"].tolist() == pytest.approx(
            expected.loc[shown.index, "hit@1"].tolist())
        assert shown["NDCG@5"].tolist() == pytest.approx(
            expected.loc[shown.index, "ndcg@5"].tolist())
        assert (shown["Users"] == expected.loc[shown.index, "n_users"]).all()
    assert "**L1 categories** · 285 users" in "\n".join(m.value for m in at.markdown)
    bars = _chart(at, "Next interest: Hit@1 per granularity")["data"]
    assert bars[0]["name"] == "profile"
    # v1 was never measured: the CLI command and a button that measures it here.
    at.selectbox(key="metrics_ni_version").set_value("v1")
    at = _run(at)
    assert not _next_interest_tables(at)
    assert "python -m mgi_core evaluate --dataset demo --version v1" in _texts(at.info)
    at.button(key="metrics_next_interest_run").click()
    at = _run(at)
    assert not next_interest_summary(demo, "v1", "demo").empty
    assert len(_next_interest_tables(at)) == 3
    assert "No next-interest metrics for v1" not in _texts(at.info)
