"""The ablation: each feature group removed from the full system, paired against it; the
reference CF + overall content; next-interest read from the ranked list."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mgi_core.cli import main
from mgi_core.data.ingest import ingest_file
from mgi_core.errors import MgiError
from mgi_core.evaluation.ablation import (
    ABLATION_METRICS,
    VARIANTS,
    load_ablation,
    missing_scorers,
    run_ablation,
)
from mgi_core.evaluation.compare import per_user_frame
from mgi_core.evaluation.metrics import list_category_ranks
from mgi_core.evaluation.protocol import category_codes, list_category_metrics
from mgi_core.ranking.features import FeatureContext
from mgi_core.ranking.fusion import (
    ABLATION_SCORERS,
    DEFAULT_SCORERS,
    FEATURE_GROUPS,
    FULL_SCORER,
    REFERENCE_SCORER,
    SCORERS,
)
from mgi_core.ranking.interactions import load_interactions
from tests.conftest import write_csv
from tests.fake_encoder import register_fake_version


def test_each_variant_removes_exactly_its_group_and_the_reference_has_no_granularity():
    full = set(SCORERS[FULL_SCORER].features)
    assert full == {f for fs in FEATURE_GROUPS.values() for f in fs}
    for group, scorer in ABLATION_SCORERS.items():
        assert set(SCORERS[scorer].features) == full - set(FEATURE_GROUPS[group])
        assert scorer not in DEFAULT_SCORERS  # only `ablate` runs them
    assert set(SCORERS[REFERENCE_SCORER].features) == {"popularity", "item_knn", "mf",
                                                        "content"}
    assert REFERENCE_SCORER in DEFAULT_SCORERS  # the Compare page's default A


def test_list_category_ranks_by_discounted_count_then_popularity():
    codes = np.array([0, 1, 1, 2])  # category of items 0..3
    popularity = np.array([2, 0, 1, 3])  # category 1 most popular, then 2, 0, 3
    tops = np.array([[0, 1, 2], [2, 2, -1], [0, 1, 2], [0, 0, 0], [3, 0, -1]])
    targets = np.array([1, 0, 2, -1, 0])
    ranks = list_category_ranks(tops, codes, targets, popularity)
    # user 0: category 1 holds positions 2 and 3 (1/log2 3 + 1/2 > 1): first.
    # user 1: only category 1 listed; 0 is unlisted behind it and behind the more popular 2.
    # user 2: 0 and 1 listed ahead; unlisted 2 is the most popular of the rest: third.
    # user 3: no target; user 4: target 0 listed second, after 3 at the first position.
    assert ranks.tolist() == [0, 2, 2, -1, 1]
    metrics = list_category_metrics(ranks, "l1")
    assert metrics["top_l1_hit@1"][[0, 1, 4]].tolist() == [1.0, 0.0, 0.0]
    assert np.isnan(metrics["top_l1_hit@1"][3]) and np.isnan(metrics["top_l1_ndcg@5"][3])
    assert metrics["top_l1_ndcg@5"][4] == pytest.approx(1 / np.log2(3))


def test_category_codes_rank_categories_by_train_popularity(demo):
    inter = load_interactions(demo, "demo")
    levels = category_codes(FeatureContext(inter=inter, item_vecs=None, profiles=None))
    assert set(levels) == {"l1", "l2"}
    codes, popularity = levels["l1"]
    train_users = np.asarray(inter.train.sum(axis=0)).ravel()
    per_code = np.bincount(codes[codes >= 0], weights=train_users[codes >= 0])
    assert popularity[np.argmax(per_code)] == 0
    assert sorted(popularity.tolist()) == list(range(len(per_code)))


def test_ablation_is_paired_against_the_full_system_and_reads_back_stored(demo, capsys):
    with pytest.raises(MgiError, match="python -m mgi_core ablate --dataset demo --version fake"):
        load_ablation(demo, "demo", "fake")
    report = run_ablation(demo, "demo", "fake")
    assert missing_scorers(demo, "demo", "fake") == []
    frame = report.to_frame()
    assert list(dict.fromkeys(frame["variant"])) == [s for s, _ in VARIANTS]
    assert set(frame["metric"]) == set(ABLATION_METRICS)
    full = per_user_frame(demo, "demo", "fake", FULL_SCORER)
    for scorer, _ in VARIANTS:
        variant = per_user_frame(demo, "demo", "fake", scorer)
        row = frame[(frame["variant"] == scorer) & (frame["metric"] == "ndcg@10")].iloc[0]
        users = full.index.intersection(variant.index)
        assert row["n_users"] == len(users) == len(full)
        assert row["diff"] == pytest.approx(
            (variant.loc[users, "ndcg@10"] - full.loc[users, "ndcg@10"]).mean())
        assert row["mean_full"] == pytest.approx(full["ndcg@10"].mean())
    # The demo's users have planted favourite categories: the category signals carry them.
    category = frame[(frame["variant"] == ABLATION_SCORERS["category"])
                     & (frame["metric"] == "top_l1_hit@1")].iloc[0]
    assert 0.0 <= category["mean_variant"] <= 1.0
    assert report.reference.a.endswith(REFERENCE_SCORER)
    assert report.reference.b.endswith(FULL_SCORER)
    # Read back from the store: the same table, nothing evaluated again.
    again = load_ablation(demo, "demo", "fake")
    assert again.to_frame().equals(frame)

    assert main(["ablate", "--db", str(demo.path), "--version", "fake", "--dataset", "demo",
                 "--stored", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {r["variant"] for r in out["rows"]} == {s for s, _ in VARIANTS}
    assert out["reference_verdict"].startswith(("B (", "No clear difference"))
    assert main(["ablate", "--db", str(demo.path), "--version", "fake", "--dataset", "demo",
                 "--stored"]) == 0
    text = capsys.readouterr().out
    assert "without_category" in text and "Δ [95% CI]" in text and "cf_content" in text


def test_ablation_with_single_level_categories_reports_l1_only(store, tmp_path):
    # Another domain: one category level ("Books", "Games"), 12 users of 4 reviews.
    rng = np.random.default_rng(0)
    rows = []
    for u in range(12):
        for k, item in enumerate(rng.choice(10, size=4, replace=False)):
            cat = "Books" if item < 5 else "Games"
            rows.append([f"u{u}", f"i{item}", f"{cat.lower()} review {item}", 1 + (u + k) % 5,
                         1_600_000_000 + 1000 * k, cat, f"T{item}"])
    ingest_file(store, write_csv(tmp_path / "one_level.csv", rows), "one")
    register_fake_version(store, "one", ["books", "games", "review"])
    report = run_ablation(store, "one", "fake")
    metrics = set(report.to_frame()["metric"])
    assert "top_l1_hit@1" in metrics and "top_l2_hit@1" not in metrics
    assert {"ndcg@10", "recall@10", "mrr"} <= metrics
    assert "top_l1_hit@1" in report.metrics()
    assert list(report.metric_table("top_l1_hit@1").index) == [s for s, _ in VARIANTS]
