"""The Compare page's pure helpers: table, CSV frame, forest plot, category bars, scatter."""

from __future__ import annotations

import io
import math

import pandas as pd
import pytest

from dashboard.compare import (
    category_figure,
    changed_label,
    comparison_csv_frame,
    comparison_table,
    default_systems,
    forest_figure,
    format_p,
    mark_lists,
    systems_note,
    user_scatter_figure,
    users_text,
)
from dashboard.export import to_csv_bytes
from mgi_core.evaluation.compare import ComparisonReport
from mgi_core.evaluation.stats import PairedResult

NAN = float("nan")
# Four metrics: clearly up (CI above 0, p < 0.05), clearly down, unclear (CI spans 0), and
# one where the CI lies above 0 but the Wilcoxon test disagrees (p = 0.165).
RESULTS = [
    PairedResult("ndcg@10", 100, 0.20, 0.26, 0.06, 0.02, 0.10, 0.0004),
    PairedResult("recall@10", 100, 0.40, 0.30, -0.10, -0.15, -0.05, 0.0213),
    PairedResult("mrr", 100, 0.0, 0.01, 0.01, -0.01, 0.03, 0.03),
    PairedResult("hit@10", 100, 0.5, 0.53, 0.03, 0.002, 0.058, 0.165),
]
PER_CATEGORY = pd.DataFrame({"group": ["Audio", "<b>Books</b>"], "n_users": [60, 40],
                             "mean_a": [0.2, 0.3], "mean_b": [0.3, 0.25],
                             "diff": [0.1, -0.05]})


def _report(results: list[PairedResult] = RESULTS) -> ComparisonReport:
    return ComparisonReport("base:content_hybrid", "v2:mgi_hybrid", "demo", "test", results,
                            PER_CATEGORY)


def test_format_p() -> None:
    assert format_p(0.0004) == "< 0.001"
    assert format_p(0.04213) == "0.042"
    assert format_p(1.0) == "1.000"
    assert format_p(NAN) == "—"


def test_default_systems_pit_the_full_system_against_cf_and_overall_content() -> None:
    # A: the reference (CF + overall content) on the base encoder; B: the full system on
    # the newest fine-tuned version.
    assert default_systems(["base", "v3", "v2"]) == ("base:cf_content", "v3:mgi_hybrid")
    assert default_systems(["base"]) == ("base:cf_content", "base:mgi_hybrid")


def test_systems_note_when_both_encoder_and_scorer_change() -> None:
    defaults = default_systems(["base", "v2", "v1"])  # base:cf_content, v2:mgi_hybrid
    note = systems_note(*defaults, defaults)
    assert note is not None and note.startswith("The default pits the full system")
    assert "without granularity (cf_content: CF and the overall content match" in note
    assert "same scorer on both sides to compare encoders only" in note
    other = systems_note("v1:content", "v2:mgi_hybrid", defaults)
    assert other is not None and other.startswith("A and B differ in both")
    # One thing changes: the Δ is about it alone, nothing to say.
    assert systems_note("base:mgi_hybrid", "v2:mgi_hybrid", defaults) is None
    assert systems_note("v2:content", "v2:mgi_hybrid", defaults) is None


@pytest.mark.parametrize(("n", "text"), [(0, "0 users"), (1, "1 user"), (4, "4 users"),
                                         (1234, "1,234 users")])
def test_users_text_singular_and_plural(n: int, text: str) -> None:
    assert users_text(n) == text


def test_comparison_table_for_people() -> None:
    table = comparison_table(_report())
    assert table["Metric"].tolist() == ["NDCG@10", "Recall@10", "MRR", "HitRate@10"]
    row = table.iloc[0]
    assert (row["Users"], row["Mean A"], row["Mean B"]) == (100, 0.20, 0.26)
    assert row["Δ (B − A)"] == pytest.approx(0.06)
    assert row["Δ %"] == pytest.approx(30.0)  # 0.06 / 0.20
    assert row["95% CI"] == "[+0.0200, +0.1000]"
    assert table["p-value"].tolist() == ["< 0.001", "0.021", "0.030", "0.165"]
    # A verdict needs the CI and the test to agree.
    assert table["Verdict"].tolist() == ["B better", "B worse", "no clear difference",
                                         "no clear difference"]
    assert math.isnan(table.iloc[2]["Δ %"])  # mean A is 0: no relative change


def test_csv_frame_has_the_raw_numbers_and_both_systems() -> None:
    frame = comparison_csv_frame(_report())
    assert frame.columns.tolist()[:4] == ["dataset", "split", "a", "b"]
    assert frame["metric"].tolist() == ["ndcg@10", "recall@10", "mrr", "hit@10"]
    back = pd.read_csv(io.BytesIO(to_csv_bytes(frame)))
    assert back["diff"].tolist() == pytest.approx([0.06, -0.10, 0.01, 0.03])
    assert back["ci_low"].tolist() == pytest.approx([0.02, -0.15, -0.01, 0.002])
    assert back["b"].unique().tolist() == ["v2:mgi_hybrid"]


def test_forest_plot_has_one_point_per_metric_with_the_ci_as_error_bars() -> None:
    fig = forest_figure(_report())
    [trace] = fig.data
    assert list(trace.y) == ["NDCG@10", "Recall@10", "MRR", "HitRate@10"]
    assert list(trace.x) == pytest.approx([0.06, -0.10, 0.01, 0.03])
    # Error bars reach from the CI's low to its high end around Δ.
    assert list(trace.error_x.array) == pytest.approx([0.04, 0.05, 0.02, 0.028])
    assert list(trace.error_x.arrayminus) == pytest.approx([0.04, 0.05, 0.02, 0.028])
    # Coloured by verdict: better, worse, unclear, unclear.
    assert list(trace.marker.color) == ["#2b8a3e", "#c92a2a", "#868e96", "#868e96"]
    [zero] = fig.layout.shapes  # the no-difference line
    assert (zero.x0, zero.x1) == (0, 0)


def test_forest_plot_leaves_out_metrics_without_a_difference() -> None:
    fig = forest_figure(_report([RESULTS[0], PairedResult("hit@10", 0, NAN, NAN, NAN, NAN, NAN,
                                                          NAN)]))
    assert list(fig.data[0].y) == ["NDCG@10"]
    empty = forest_figure(_report([]))
    assert not empty.data and "No metric" in empty.layout.annotations[0].text


def test_category_bars_show_a_and_b_per_category_as_plain_text() -> None:
    fig = category_figure(PER_CATEGORY)
    assert [t.name for t in fig.data] == ["A", "B"]
    assert list(fig.data[0].y) == ["Audio", "&lt;b&gt;Books&lt;/b&gt;"]
    assert list(fig.data[0].x) == [0.2, 0.3]
    assert list(fig.data[1].x) == [0.3, 0.25]
    assert fig.layout.barmode == "group" and fig.data[0].orientation == "h"
    assert "No categories" in category_figure(PER_CATEGORY.iloc[:0]).layout.annotations[0].text


def test_category_bars_keep_the_largest_categories() -> None:
    many = pd.DataFrame({"group": [f"c{i:02d}" for i in range(25)], "n_users": range(25, 0, -1),
                         "mean_a": 0.1, "mean_b": 0.2, "diff": 0.1})
    assert list(category_figure(many).data[0].y) == [f"c{i:02d}" for i in range(20)]


def test_user_scatter_sizes_points_by_users_and_draws_the_diagonal() -> None:
    points = pd.DataFrame({"a": [0.0, 1.0], "b": [0.5, 0.25], "n_users": [4, 1],
                           "users": [["u1", "u2", "u3"], ["<u9>"]]})
    fig = user_scatter_figure(points)
    [trace] = fig.data
    assert list(trace.x) == [0.0, 1.0] and list(trace.y) == [0.5, 0.25]
    # Size 6 + 30 * sqrt(n / max n): 36 for the 4 users, 6 + 30 * 0.5 = 21 for the one.
    assert list(trace.marker.size) == pytest.approx([36, 21])
    assert [row[1] for row in trace.customdata] == ["u1, u2, u3, …", "&lt;u9&gt;"]
    [diagonal] = fig.layout.shapes
    assert (diagonal.x0, diagonal.y0, diagonal.x1, diagonal.y1) == (0, 0, 1, 1)
    assert not user_scatter_figure(points.iloc[:0]).data


def test_changed_label_and_marked_lists() -> None:
    row = pd.Series({"user_id": "U7", "a": 0.0, "b": 1.0, "diff": 1.0})
    assert changed_label(row) == "U7 · NDCG@10 0.000 → 1.000 (+1.000)"
    a = pd.DataFrame({"rank": [1, 2], "item_id": ["i1", "i2"]})
    b = pd.DataFrame({"rank": [1, 2], "item_id": ["i3", "i1"]})
    marked_a, marked_b = mark_lists(a, b, "i3")
    assert marked_a["in both"].tolist() == [True, False]
    assert marked_b["in both"].tolist() == [False, True]
    assert marked_a["held out"].tolist() == [False, False]
    assert marked_b["held out"].tolist() == [True, False]
