"""The ablation's chart and table, from an ``AblationReport.to_frame()``-shaped frame."""

from __future__ import annotations

import pandas as pd
import pytest

from dashboard.ablation_view import (
    HELPS,
    HURTS,
    UNCLEAR,
    ablation_figure,
    ablation_table,
    chart_metrics,
    effect,
    variant_label,
)

NAN = float("nan")
# Three variants on NDCG@10: removing CF hurts (CI below 0, p < 0.05), removing the category
# signals helps (CI above 0, p < 0.05), the reference is unclear (CI spans 0); and one row of
# the next-category metric.
FRAME = pd.DataFrame({
    "variant": ["without_cf", "without_category", "cf_content", "without_cf"],
    "removed": ["CF (popularity, item-kNN, MF)", "category affinities", "<b>granularity</b>",
                "CF (popularity, item-kNN, MF)"],
    "metric": ["ndcg@10", "ndcg@10", "ndcg@10", "top_l1_hit@1"],
    "mean_full": [0.30, 0.30, 0.30, 0.60],
    "mean_variant": [0.20, 0.32, 0.29, 0.55],
    "diff": [-0.10, 0.02, -0.01, -0.05],
    "ci_low": [-0.14, 0.005, -0.03, -0.08],
    "ci_high": [-0.06, 0.035, 0.01, -0.02],
    "p_value": [0.0001, 0.012, 0.4, 0.003],
    "n_users": [285, 285, 285, 280],
})


def test_effect_words_follow_the_core_verdict() -> None:
    assert [effect(row) for _, row in FRAME.iterrows()] == [HURTS, HELPS, UNCLEAR, HURTS]
    # CI below 0 but the Wilcoxon test disagrees: no call.
    unsure = FRAME.iloc[0].copy()
    unsure["p_value"] = 0.2
    assert effect(unsure) == UNCLEAR


def test_variant_label_names_what_was_removed() -> None:
    assert variant_label(FRAME.iloc[0]) == "without_cf · removes CF (popularity, item-kNN, MF)"
    bare = FRAME.iloc[0].copy()
    bare["removed"] = NAN
    assert variant_label(bare) == "without_cf"


def test_ablation_figure_draws_each_variant_with_its_ci() -> None:
    fig = ablation_figure(FRAME, "ndcg@10", "v2:mgi_hybrid")
    [bars] = fig.data
    assert fig.layout.title.text == "Δ NDCG@10 vs v2:mgi_hybrid"
    assert bars.orientation == "h"
    assert list(bars.x) == [-0.10, 0.02, -0.01]
    # Each bar says its Δ and p; its hover what it removes, escaped for plotly.
    assert list(bars.y) == ["without_cf<br>Δ -0.1000, p < 0.001",
                            "without_category<br>Δ +0.0200, p 0.012",
                            "cf_content<br>Δ -0.0100, p 0.400"]
    assert bars.customdata[2][7] == "cf_content · removes &lt;b&gt;granularity&lt;/b&gt;"
    # CI as asymmetric error bars around Δ.
    assert list(bars.error_x.array) == pytest.approx([0.04, 0.015, 0.02])
    assert list(bars.error_x.arrayminus) == pytest.approx([0.04, 0.015, 0.02])
    assert list(bars.marker.color) == ["#c92a2a", "#2b8a3e", "#868e96"]
    # The x range holds every CI.
    low, high = fig.layout.xaxis.range
    assert low < -0.14 and high > 0.14


def test_ablation_figure_of_the_next_category_metric_and_of_nothing() -> None:
    fig = ablation_figure(FRAME, "top_l1_hit@1")
    assert list(fig.data[0].x) == [-0.05]
    assert fig.layout.title.text == "Δ List leads with next L1 (hit@1) vs the full system"
    empty = ablation_figure(FRAME, "mrr")
    assert not empty.data and empty.layout.annotations[0].text == "No MRR in the ablation"
    assert not ablation_figure(FRAME.iloc[:0]).data


def test_chart_metrics_keep_what_the_report_has() -> None:
    assert chart_metrics(FRAME) == ["ndcg@10", "top_l1_hit@1"]
    assert chart_metrics(FRAME[FRAME["metric"] == "ndcg@10"]) == ["ndcg@10"]
    assert chart_metrics(FRAME.iloc[:0]) == []


def test_ablation_table_for_people() -> None:
    table = ablation_table(FRAME)
    assert table.columns.tolist() == ["Variant", "Metric", "Users", "Full", "Without",
                                      "Δ (variant − full)", "95% CI", "p-value", "Effect"]
    assert table["Metric"].tolist()[:2] == ["NDCG@10", "NDCG@10"]
    assert table["95% CI"].iloc[0] == "[-0.1400, -0.0600]"
    assert table["p-value"].tolist() == ["< 0.001", "0.012", "0.400", "0.003"]
    assert table["Effect"].tolist() == [HURTS, HELPS, UNCLEAR, HURTS]
    assert table["Users"].tolist() == [285, 285, 285, 280]
