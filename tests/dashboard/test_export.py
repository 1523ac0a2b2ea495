"""CSV and Parquet export escaping and the plotly figure builders, on frames built in code."""

from __future__ import annotations

import io

import pandas as pd
import plotly.graph_objects as go

from dashboard import charts
from dashboard.export import escape_csv_injection, to_csv_bytes, to_parquet_bytes


def test_formula_cells_get_a_leading_quote_and_others_stay() -> None:
    df = pd.DataFrame(
        {
            "text": ["=SUM(A1)", "+1", "-2", "@cmd", "\tx", "\rx", "fine = ok", None],
            "rating": [1, 2, 3, 4, 5, 1, 2, 3],
        }
    )
    out = escape_csv_injection(df)
    assert out["text"].tolist()[:7] == ["'=SUM(A1)", "'+1", "'-2", "'@cmd", "'\tx", "'\rx",
                                        "fine = ok"]
    assert pd.isna(out["text"].iloc[7])
    assert out["rating"].tolist() == df["rating"].tolist()  # numbers are never touched
    assert df["text"].iloc[0] == "=SUM(A1)"  # the input frame is not modified


def test_string_dtype_columns_and_headers_are_escaped() -> None:
    df = pd.DataFrame({"=evil": pd.array(["-x", "y"], dtype="string")})
    out = escape_csv_injection(df)
    assert list(out.columns) == ["'=evil"]
    assert out.iloc[:, 0].tolist() == ["'-x", "y"]


def test_csv_bytes_round_trip_escaped() -> None:
    df = pd.DataFrame({"line": [4], "text": ['=HYPERLINK("http://x")']})
    back = pd.read_csv(io.BytesIO(to_csv_bytes(df)))
    assert back.to_dict("records") == [{"line": 4, "text": '\'=HYPERLINK("http://x")'}]



def test_parquet_bytes_are_escaped_like_the_csv() -> None:
    df = pd.DataFrame({"text": ["=1+1", "@x", "\tx", "plain", None], "n": [1, 2, 3, 4, 5],
                       "=col": pd.array(["-x", "+y", "ok", "", None], dtype="string")})
    back = pd.read_parquet(io.BytesIO(to_parquet_bytes(df)))
    assert list(back.columns) == ["text", "n", "'=col"]
    assert back["text"].tolist()[:4] == ["'=1+1", "'@x", "'\tx", "plain"]
    assert back["text"].isna().tolist() == [False] * 4 + [True]
    assert back["n"].tolist() == [1, 2, 3, 4, 5]  # numbers keep their type and value
    assert back["'=col"].tolist()[:4] == ["'-x", "'+y", "ok", ""]
    # Both formats hold the same escaped cells.
    csv = pd.read_csv(io.BytesIO(to_csv_bytes(df)), keep_default_na=False)
    assert csv["text"].tolist()[:4] == back["text"].tolist()[:4]
    assert df["text"].iloc[0] == "=1+1"  # the input frame is not modified

def _points(fig: go.Figure) -> int:
    return sum(len(trace.y if trace.y is not None else trace.values) for trace in fig.data)


def test_bar_and_line_builders_return_figures_with_data() -> None:
    per_user = pd.DataFrame({"n_reviews": [1, 2, 3], "n_users": [500, 20, 1]})
    fig = charts.reviews_per_user_figure(per_user)
    assert _points(fig) == 3
    assert fig.layout.yaxis.type == "log"  # 500 / 1 spans more than two orders of magnitude
    flat = charts.reviews_per_user_figure(pd.DataFrame({"n_reviews": [1, 2], "n_users": [3, 2]}))
    assert flat.layout.yaxis.type != "log"
    ratings = pd.DataFrame({"rating": [1.0, 5.0], "n_reviews": [2, 6]})
    assert _points(charts.rating_figure(ratings)) == 2
    months = pd.DataFrame({"month": pd.to_datetime(["2024-01-01", "2024-02-01"]),
                           "n_reviews": [3, 4]})
    assert _points(charts.reviews_over_time_figure(months)) == 2
    gap = pd.DataFrame({"month": pd.to_datetime(["2024-01-01", "2024-03-01"]), "n_reviews": [3, 4]})
    assert list(charts.reviews_over_time_figure(gap).data[0].y) == [3, 0, 4]  # Feb is a zero
    reasons = pd.DataFrame({"reason": ["<b>x</b>", "empty text"], "n_rows": [1, 5]})
    fig = charts.rejects_by_reason_figure(reasons)
    assert list(fig.data[0].y) == ["&lt;b&gt;x&lt;/b&gt;", "empty text"]  # ascending, escaped


def test_empty_frames_give_an_empty_chart_that_says_so() -> None:
    fig = charts.reviews_over_time_figure(pd.DataFrame({"month": [], "n_reviews": []}))
    assert not fig.data
    assert fig.layout.annotations[0].text == "No timestamps"


def test_sunburst_totals_follow_the_category_tree() -> None:
    counts = pd.DataFrame(
        {
            "l1": ["Audio", "Audio", "Audio", "(no category)"],
            "l2": ["Audio > Headphones", "Audio > Headphones", None, None],
            "l3": ["Audio > Headphones > Wired", None, None, None],
            "n_reviews": [5, 2, 1, 4],
        }
    )
    fig = charts.category_sunburst_figure(counts)
    sun = fig.data[0]
    nodes = dict(zip(sun.ids, zip(sun.parents, sun.values, strict=True), strict=True))
    sep = "\x1f"
    # Audio = 5 + 2 + 1 (every row under it); Headphones = 5 + 2; Wired = 5; no gaps.
    assert nodes["Audio"] == ("", 8)
    assert nodes[f"Audio{sep}Audio > Headphones"] == ("Audio", 7)
    wired = f"Audio{sep}Audio > Headphones{sep}Audio > Headphones > Wired"
    assert nodes[wired] == (f"Audio{sep}Audio > Headphones", 5)
    assert nodes["(no category)"] == ("", 4)
    assert len(nodes) == 4
    labels = dict(zip(sun.ids, sun.labels, strict=True))
    assert labels[wired] == "Wired"  # a level is labelled by its own name, not the whole path
    assert sun.branchvalues == "total"
