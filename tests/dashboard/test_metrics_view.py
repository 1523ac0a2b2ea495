"""The Metrics page's pure helpers: validation bars, evaluation bars, the category heat map."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from dashboard.metrics_view import (
    evaluation_display,
    evaluation_figure,
    heatmap_figure,
    heatmap_frame,
    tuned_versions,
    validation_figure,
    validation_table,
)

VERSIONS = [
    {"version": "v2", "kind": "fine-tuned", "status": "ready", "strategy": "lora",
     "metrics": {"overall/auc": 0.8, "category/macro_f1": 0.6, "match/recall@10": 0.3}},
    {"version": "v1", "kind": "fine-tuned", "status": "failed", "strategy": "full",
     "metrics": None},
    {"version": "v3", "kind": "fine-tuned", "status": "running", "metrics": None},
    {"version": "base", "kind": "base", "status": "ready", "metrics": None},
]
# browse.category_metric's shape: categories by users, systems in evaluation order; the
# Books row has no v2:mgi_hybrid users.
LONG = pd.DataFrame({
    "l1": ["Audio", "Audio", "Books", "<i>Toys</i>", "<i>Toys</i>"],
    "system": ["base:content", "v2:mgi_hybrid", "base:content", "base:content",
               "v2:mgi_hybrid"],
    "n_users": [30, 30, 20, 5, 5],
    "mean": [0.25, 0.40, 0.10, 0.0, 0.5],
})


def test_tuned_versions_are_the_finished_fine_tuned_ones() -> None:
    assert [v["version"] for v in tuned_versions(VERSIONS)] == ["v2", "v1"]


def test_validation_table_and_bars() -> None:
    table = validation_table(VERSIONS)
    assert table["version"].tolist() == ["v2", "v1"]
    assert table.loc[0, ["AUC", "F1 L1", "R@10"]].tolist() == [0.8, 0.6, 0.3]
    assert math.isnan(table.loc[0, "F1 L2"]) and table.loc[1, ["AUC"]].isna().all()
    fig = validation_figure(table)
    # v1 has no validation metric (it failed): one bar group per metric, one bar for v2.
    [bars] = fig.data
    assert bars.name == "v2"
    assert list(bars.x) == ["AUC", "F1 L1", "F1 L2", "R@10"]
    assert bars.y[0] == 0.8 and bars.y[3] == 0.3 and math.isnan(bars.y[2])
    empty = validation_figure(table.iloc[1:])
    assert not empty.data and "No validation metrics" in empty.layout.annotations[0].text


def test_evaluation_display_and_bars() -> None:
    table = pd.DataFrame({"system": ["base:content", "v2:mgi_hybrid"],
                          "version": ["base", "v2"], "scorer": ["content", "mgi_hybrid"],
                          "n_users": [50, 50], "evaluated_at": pd.to_datetime(["2024", "2024"]),
                          "ndcg@10": [0.1, 0.3], "recall@10": [0.2, 0.5], "mrr": [0.1, 0.2],
                          "ndcg@20": [0.2, 0.4], "coverage@10": [0.6, 0.7],
                          "category_entropy@10": [1.0, 1.2]})
    shown = evaluation_display(table)
    # Narrowed to fit the page: no @20 metric, no entropy; the time of the evaluation last.
    assert shown.columns.tolist() == ["system", "users", "NDCG@10", "Recall@10", "MRR",
                                      "Coverage@10", "evaluated"]
    assert shown["Coverage@10"].tolist() == [0.6, 0.7] and shown["users"].tolist() == [50, 50]
    fig = evaluation_figure(table)
    assert [t.name for t in fig.data] == ["NDCG@10", "Recall@10"]
    assert list(fig.data[0].x) == ["base:content", "v2:mgi_hybrid"]
    assert list(fig.data[1].y) == [0.2, 0.5]
    assert not evaluation_figure(table.iloc[:0]).data


def test_heatmap_pivot_keeps_the_order_and_leaves_missing_cells_empty() -> None:
    pivot = heatmap_frame(LONG)
    assert pivot.index.tolist() == ["Audio", "Books", "<i>Toys</i>"]
    assert pivot.columns.tolist() == ["base:content", "v2:mgi_hybrid"]
    assert pivot.loc["Audio"].tolist() == [0.25, 0.40]
    assert pivot.loc["Books", "base:content"] == 0.10
    assert math.isnan(pivot.loc["Books", "v2:mgi_hybrid"])  # no user of that system there
    assert heatmap_frame(LONG, "n_users").loc["<i>Toys</i>"].tolist() == [5, 5]
    assert heatmap_frame(LONG.iloc[:0]).empty


def test_heatmap_figure_rows_categories_columns_systems() -> None:
    fig = heatmap_figure(LONG)
    [heat] = fig.data
    assert list(heat.x) == ["base:content", "v2:mgi_hybrid"]
    assert list(heat.y) == ["Audio", "Books", "&lt;i&gt;Toys&lt;/i&gt;"]  # plain text
    z = np.asarray(heat.z, dtype=float)
    np.testing.assert_allclose(z, [[0.25, 0.40], [0.10, np.nan], [0.0, 0.5]])
    assert np.asarray(heat.customdata, dtype=float)[0].tolist() == [30, 30]
    assert fig.layout.yaxis.autorange == "reversed"  # the biggest category on top
    empty = heatmap_figure(LONG.iloc[:0])
    assert not empty.data


@pytest.mark.parametrize("n_categories", [3, 30])
def test_heatmap_grows_with_the_categories(n_categories: int) -> None:
    long = pd.DataFrame({"l1": [f"c{i}" for i in range(n_categories)], "system": "s",
                         "n_users": 1, "mean": 0.5})
    assert heatmap_figure(long).layout.height == max(380, 120 + 32 * n_categories)
