"""The Compare page under AppTest, on the demo data with two fake-encoder versions.

v1 embeds the demo reviews with 14 keywords, v2 with 7 of them (registered later: the
newest version). Neither has a training run: the fake encoder writes embeddings directly.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from dashboard.compare import users_text
from dashboard.resources import _open_store
from mgi_core.cli import DEMO_DIR
from mgi_core.data.ingest import ingest_file
from mgi_core.evaluation.ablation import load_ablation
from mgi_core.evaluation.compare import compare, metric_verdict
from mgi_core.evaluation.next_interest import compare_next_interest, load_next_interest
from mgi_core.evaluation.protocol import evaluate
from mgi_core.store import Store
from mgi_core.store.queries import evaluations as browse
from tests.app.pages import open_page, release_app_store
from tests.app.pages import run as _run
from tests.app.pages import texts as _texts
from tests.conftest import write_csv
from tests.fake_encoder import register_fake_version

PAGE = "app_pages/compare.py"
VOCAB = ["headphones", "speaker", "lens", "camera", "laptop", "keyboard", "coffee", "knife",
         "novel", "plot", "bike", "tent", "battery", "sound"]


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh database file for the app (via $MGI_DB); the cached store is released after."""
    path = tmp_path / "app.duckdb"
    monkeypatch.setenv("MGI_DB", str(path))
    yield path
    release_app_store(path)


@pytest.fixture
def demo(db: Path) -> Store:
    """The demo dataset with versions v1 (14 keywords) and v2 (7 keywords, newest)."""
    store = _open_store(str(db))
    ingest_file(store, DEMO_DIR / "reviews.csv", "demo")
    register_fake_version(store, "demo", VOCAB, "v1")
    register_fake_version(store, "demo", VOCAB[:7], "v2")
    return store


def _open_page() -> AppTest:
    return open_page(PAGE)


def _select(at: AppTest, **values: str) -> AppTest:
    for key, value in values.items():
        at.selectbox(key=f"compare_{key}").set_value(value)
    return _run(at)


def _array(value: Any) -> np.ndarray:
    """A plotly JSON array: a plain list, or plotly's typed-array form (base64 bytes)."""
    if isinstance(value, dict) and "bdata" in value:
        flat = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
        return flat.reshape([int(n) for n in str(value.get("shape", len(flat))).split(",")])
    return np.asarray(value)


def _charts(at: AppTest) -> dict[str, dict]:
    """The page's plotly figures by title."""
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    return {s["layout"]["title"]["text"]: s for s in specs}


def _table(at: AppTest) -> pd.DataFrame:
    return next(d.value for d in at.dataframe if "Metric" in d.value.columns)


def test_no_dataset_points_to_the_data_page(db: Path) -> None:
    at = _open_page()
    assert "No datasets yet" in _texts(at.info)
    [link] = at.page_link
    assert link.proto.label == "Go to the Data page"
    assert not at.selectbox and not at.button


def test_defaults_and_a_version_without_embeddings(demo: Store) -> None:
    at = _open_page()
    values = {s.label: s.value for s in at.selectbox}
    assert values == {"Dataset": "demo", "Version A": "base", "Scorer A": "cf_content",
                      "Version B": "v2", "Scorer B": "mgi_hybrid"}
    assert at.selectbox(key="compare_version_a").options == ["base", "v2", "v1"]
    # The default changes encoder and scorer at once, and says so.
    assert "The default pits the full system" in _texts(at.caption)
    # base never embedded the demo: say so and point to the Train page's base button.
    assert "version base has no embeddings for demo" in _texts(at.warning)
    assert "Embed with the pre-trained encoder (base)" in _texts(at.warning)
    [link] = at.page_link
    assert link.proto.label == "Go to the Train page" and "train" in link.proto.page
    # B can be evaluated: one Evaluate button, and no comparison yet.
    assert "B: v2:mgi_hybrid has no stored evaluation on demo yet." in _texts(at.info)
    assert [b.label for b in at.button] == ["Evaluate"]
    assert not at.dataframe and not at.get("plotly_chart")


def test_evaluate_stores_both_systems_and_draws_the_comparison(demo: Store) -> None:
    at = _select(_open_page(), version_a="v1")
    assert "A: v1:cf_content has no stored evaluation" in _texts(at.info)
    at.button(key="compare_evaluate").click()
    at = _run(at)
    for system in ("v1:cf_content", "v2:mgi_hybrid"):
        assert browse.evaluation_stamp(demo, "demo", system) is not None
    # Nothing left to evaluate; the ablation of B's version is offered.
    assert [b.key for b in at.button] == ["compare_ablation_run"]
    report = compare(demo, "v1:cf_content", "v2:mgi_hybrid", "demo")
    table = _table(at)
    assert table["Metric"].tolist() == ["NDCG@10", "Recall@10", "MRR", "NDCG@20", "Recall@20",
                                        "HitRate@10"]
    frame = report.to_frame()
    assert table["Mean A"].tolist() == pytest.approx(
        frame["mean v1:cf_content"].tolist())
    assert table["Δ (B − A)"].tolist() == pytest.approx(frame["diff"].tolist())
    assert (table["Users"] == 285).all()  # demo users with a held-out test review
    # The verdict under the table: the core's sentence, word for word.
    assert report.verdict() in _texts(at.markdown)
    assert at.get("download_button")[0].proto.label == "Download the comparison (CSV)"
    # Forest plot: one point per metric at its Δ; category bars; per-user scatter.
    charts = _charts(at)
    forest = charts["Δ (B − A) with 95% CI"]["data"][0]
    assert _array(forest["x"]) == pytest.approx(frame["diff"].tolist())
    bars = charts["NDCG@10 per category of the held-out item"]["data"]
    assert _array(bars[1]["x"]) == pytest.approx(report.per_category["mean_b"].tolist())
    # The scatter's points hold every user once (sizes: users per point).
    scatter = charts["NDCG@10 per user"]["data"][0]
    assert sum(int(row[0]) for row in scatter["customdata"]) == 285
    assert "Per-user NDCG@10" in _texts(at.header)
    counts = browse.win_loss(demo, "demo", "v1:cf_content", "v2:mgi_hybrid")
    assert sum(counts.values()) == 285
    assert {m.label: m.value for m in at.metric} == {
        "B better for": users_text(counts["better"]), "B worse for": users_text(counts["worse"]),
        "Same for": users_text(counts["same"])}
    # v1:cf_content vs v2:mgi_hybrid is not the default, but changes both too.
    assert "A and B differ in both the version and the scorer" in _texts(at.caption)
    # The evaluation also measured next interest of both versions; the page pairs them.
    a_ni, b_ni = (load_next_interest(demo, "demo", v) for v in ("v1", "v2"))
    assert a_ni.levels() == b_ni.levels() == ["l1", "l2", "interest"]
    paired = next(d.value for d in at.dataframe if "Level" in d.value.columns)
    # The profile at every level; the baselines that read train activity only (popular,
    # frequent) give the same numbers under both versions and are left out.
    by_level = paired.groupby("Level", sort=False)["System"].unique().map(list)
    assert by_level.index.tolist() == ["L1 categories", "L2 categories", "Fine interests"]
    assert all(systems[0] == "profile" for systems in by_level)
    assert not {"popular", "frequent"} & {
        *by_level["L1 categories"], *by_level["L2 categories"]}
    assert "recent" in by_level["Fine interests"]  # the version's own interests
    levels = {"L1 categories": "l1", "L2 categories": "l2", "Fine interests": "interest"}
    for _, row in paired.iterrows():  # every row is the core's paired result
        metric = {"Hit@1": "hit@1", "NDCG@5": "ndcg@5"}[row["Metric"]]
        expected = compare_next_interest(a_ni, b_ni, levels[row["Level"]], row["System"],
                                         metric)
        assert row["Users"] == expected.n_users
        assert row["Δ (B − A)"] == pytest.approx(expected.diff)
        assert row["Verdict"] == metric_verdict(expected)
    assert set(paired["Metric"]) == {"Hit@1", "NDCG@5"}
    # Without classification heads (fake versions have none) a category's affinity is the
    # user's share of reviews in it × their sentiment, the same under both versions: no
    # difference at L1. Fine interests are each version's own clusters: they differ.
    l1_profile = (paired["Level"] == "L1 categories") & (paired["System"] == "profile")
    assert paired.loc[l1_profile, "Δ (B − A)"].eq(0).all()
    assert not paired.loc[paired["Level"] == "Fine interests", "Δ (B − A)"].eq(0).all()


def test_switching_scorer_and_version_changes_the_table(demo: Store) -> None:
    evaluate(demo, "demo", "v1", ["cf_content"])
    evaluate(demo, "demo", "v2", ["mgi_hybrid", "content"])
    means = browse.evaluation_table(demo, "demo").set_index("system")["ndcg@10"]
    at = _select(_open_page(), version_a="v1")
    assert _table(at)["Mean B"].iloc[0] == pytest.approx(means["v2:mgi_hybrid"])
    at = _select(at, scorer_b="content")
    assert _table(at)["Mean B"].iloc[0] == pytest.approx(means["v2:content"])
    assert "differ in both" in _texts(at.caption)  # another version and another scorer
    assert means["v2:content"] != pytest.approx(means["v2:mgi_hybrid"])
    # The same system on both sides: nothing to compare.
    at = _select(at, version_b="v1", scorer_b="cf_content")
    assert "A and B are the same system" in _texts(at.info)
    assert not at.dataframe
    # A system not evaluated yet: asks for it instead of drawing a stale table.
    at = _select(at, scorer_b="popularity")
    assert "B: v1:popularity has no stored evaluation" in _texts(at.info)
    assert "differ in both" not in _texts(at.caption)  # one version: scorers only
    assert not at.dataframe and [b.label for b in at.button] == ["Evaluate"]


def test_changed_users_show_the_lists_each_system_ranked(demo: Store) -> None:
    evaluate(demo, "demo", "v1", ["cf_content"])
    evaluate(demo, "demo", "v2", ["mgi_hybrid"])
    a, b = "v1:cf_content", "v2:mgi_hybrid"
    changed = browse.most_changed_users(demo, "demo", a, b, n=5)
    at = _select(_open_page(), version_a="v1")
    picker = at.selectbox(key="compare_user")
    assert picker.options[0].startswith(changed["user_id"].iloc[0])
    for user in changed["user_id"]:
        at = _select(at, user=user)
        row = changed.set_index("user_id").loc[user]
        lists = [d.value for d in at.dataframe if "held out" in d.value.columns]
        assert len(lists) == 2
        assert f"Held-out item: {row['item_id']}" in _texts(at.text)
        # Each list holds the held-out item where that system's NDCG@10 says it ranked it:
        # NDCG@10 = 1 / log2(rank + 1), and 0 when it is not in the top 10.
        for frame, ndcg in zip(lists, (row["a"], row["b"]), strict=True):
            held = frame.loc[frame["held out"], "rank"]
            expected = 1 / np.log2(held.iloc[0] + 1) if len(held) else 0.0
            assert ndcg == pytest.approx(expected)
        in_both = set(lists[0]["item_id"]) & set(lists[1]["item_id"])
        assert set(lists[0].loc[lists[0]["in both"], "item_id"]) == in_both
    # Other systems, other users: the picker starts again at the user who changed most.
    evaluate(demo, "demo", "v1", ["popularity"])
    at = _select(at, scorer_a="popularity")
    first = browse.most_changed_users(demo, "demo", "v1:popularity", b, n=1)["user_id"].iloc[0]
    assert at.selectbox(key="compare_user").value == first


def test_a_dataset_without_held_out_users_says_there_is_nothing_to_compare(
    db: Path, tmp_path: Path
) -> None:
    # Nobody has 3 reviews: the split holds nothing out, so evaluations rank no user.
    rows = [["u1", "i1", "good bass", 5, 1_600_000_000, "Audio > Headphones", "Arc"],
            ["u1", "i2", "sharp lens", 4, 1_600_000_100, "Cameras > Lenses", "Zoomy"],
            ["u2", "i1", "bass", 5, 1_600_000_000, "Audio > Headphones", "Arc"]]
    store = _open_store(str(db))
    ingest_file(store, write_csv(tmp_path / "few.csv", rows), "few")
    register_fake_version(store, "few", ["bass", "lens"], "v1")
    at = _select(_open_page(), version_a="v1", scorer_a="popularity", scorer_b="content")
    at.button(key="compare_evaluate").click()
    at = _run(at)
    assert browse.evaluation_stamp(store, "few", "v1:content") is not None
    assert "No user of few was ranked by both systems" in _texts(at.info)
    assert not at.dataframe and not at.error


def test_ablation_runs_in_the_background_and_draws_each_variant(demo: Store) -> None:
    evaluate(demo, "demo", "v1", ["cf_content"])
    evaluate(demo, "demo", "v2", ["mgi_hybrid"])
    at = _select(_open_page(), version_a="v1")
    # Evaluated without next interest (the core's evaluate alone): how to measure it.
    for version in ("v1", "v2"):
        assert f"python -m mgi_core evaluate --dataset demo --version {version}" in _texts(
            at.info)
    assert {"compare_next_interest_run_v1", "compare_next_interest_run_v2"} <= {
        b.key for b in at.button}
    assert not any("Level" in d.value.columns for d in at.dataframe)
    # No ablation yet: the exact command, and a button that runs it here.
    assert "python -m mgi_core ablate --dataset demo --version v2" in _texts(at.info)
    assert "Δ NDCG@10 vs v2:mgi_hybrid" not in _charts(at)
    at.button(key="compare_ablation_run").click()
    at = _run(at)
    report = load_ablation(demo, "demo", "v2").to_frame()
    assert "No ablation of v2" not in _texts(at.info)
    charts = _charts(at)
    for metric, title in (("ndcg@10", "Δ NDCG@10"),
                          ("top_l1_hit@1", "Δ List leads with next L1 (hit@1)")):
        [bars] = charts[f"{title} vs v2:mgi_hybrid"]["data"]
        rows = report[report["metric"] == metric]
        # One bar per variant (each feature group removed, and the reference), at its Δ.
        assert len(rows) == 5
        assert _array(bars["x"]) == pytest.approx(rows["diff"].tolist())
        assert [y.split("<br>")[0] for y in bars["y"]] == rows["variant"].tolist()
        assert _array(bars["error_x"]["array"]) == pytest.approx(
            (rows["ci_high"] - rows["diff"]).tolist())
    table = next(d.value for d in at.dataframe if "Effect" in d.value.columns)
    assert len(table) == len(report)
    assert "compare_ablation_run" not in [b.key for b in at.button]
