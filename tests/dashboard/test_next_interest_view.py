"""Next-interest tables, figure and paired comparison, on results built in code."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dashboard.next_interest_view import (
    compared_systems,
    highlight_profile,
    level_tables,
    levels_figure,
    paired_next_interest,
    paired_table,
    paired_verdicts,
    summary_stamp,
)
from mgi_core.evaluation.next_interest import NextInterestResult

# A next_interest_summary: baselines listed before profile (the store sorts by name), and a
# system the core may add later ("profile_recent"): it is profile-based by its name.
SUMMARY = pd.DataFrame({
    "level": ["l1", "l1", "l1", "interest", "interest"],
    "system": ["popular", "profile", "recent", "profile", "recent"],
    "n_users": [10, 10, 10, 6, 6],
    "hit@1": [0.2, 0.7, 0.5, 0.8, 0.6],
    "hit@3": [0.5, 0.9, 0.8, 1.0, 1.0],
    "ndcg@5": [0.4, 0.8, 0.7, 0.9, 0.8],
})


def _frame(hit1: list[float], users: list[str] | None = None) -> pd.DataFrame:
    users = users or [f"u{i:02d}" for i in range(len(hit1))]
    hits = np.asarray(hit1, dtype=float)
    # ndcg@5 follows from hit@1 here: rank 1 gives 1, rank 2 gives 1 / log2(3).
    return pd.DataFrame({"hit@1": hits, "hit@3": np.ones_like(hits),
                         "ndcg@5": np.where(hits == 1, 1.0, 1 / np.log2(3))},
                        index=pd.Index(users, name="user_id"))


def _result(version: str, per_user: dict[tuple[str, str], pd.DataFrame]) -> NextInterestResult:
    return NextInterestResult("demo", version, "test", per_user)


def test_level_tables_put_the_profile_first_in_level_order() -> None:
    tables = level_tables(SUMMARY)
    assert list(tables) == ["l1", "interest"]
    l1 = tables["l1"]
    assert l1.columns.tolist() == ["System", "Users", "Hit@1", "Hit@3", "NDCG@5",
                                   "How it ranks"]
    assert l1["System"].tolist() == ["profile", "popular", "recent"]
    assert l1["Hit@1"].tolist() == [0.7, 0.2, 0.5]
    assert tables["interest"]["Users"].tolist() == [6, 6]
    assert l1["How it ranks"].iloc[1].startswith("baseline: most reviewed over all users")
    # A system the dashboard has no note for is still shown, with an empty note.
    new = pd.concat([SUMMARY, SUMMARY.iloc[[0]].assign(system="new_system")])
    assert level_tables(new)["l1"].set_index("System").loc["new_system", "How it ranks"] == ""
    assert level_tables(SUMMARY.iloc[:0]) == {}


def test_highlight_profile_marks_only_profile_rows() -> None:
    table = level_tables(SUMMARY)["l1"]
    html = highlight_profile(table).to_html()
    # The profile row (row 0) is styled, cell by cell; no other row is.
    css = html.split("</style>")[0]
    assert "font-weight: bold" in css
    assert all(f"_row0_col{c}" in css for c in range(6))
    assert "_row1_" not in css and "_row2_" not in css
    assert "0.700" in html and "0.200" in html  # metrics shown with three decimals


def test_levels_figure_colours_the_profile_and_keeps_the_numbers() -> None:
    fig = levels_figure(SUMMARY, "hit@1")
    traces = {t.name: t for t in fig.data}
    assert list(traces) == ["profile", "popular", "recent"]
    assert list(traces["profile"].x) == ["L1 categories", "Fine interests"]
    assert list(traces["profile"].y) == [0.7, 0.8]
    assert list(traces["popular"].x) == ["L1 categories"]  # popular has no interest level
    assert traces["profile"].marker.color == "#3b5bdb"
    assert traces["popular"].marker.color != traces["profile"].marker.color
    assert list(traces["recent"].customdata) == [10, 6]
    empty = levels_figure(SUMMARY.iloc[:0])
    assert not empty.data and empty.layout.annotations[0].text == "No next-interest metrics"


def test_compared_systems_skip_the_version_independent_baselines() -> None:
    same = _frame([1, 0])
    a = _result("base", {("l1", "popular"): same, ("l1", "profile"): same,
                         ("l1", "learned"): _frame([1, 0]), ("l1", "frequent"): same,
                         ("interest", "recent"): _frame([1, 0]),
                         ("interest", "profile"): _frame([1, 0])})
    b = _result("v2", {("l1", "popular"): same, ("l1", "profile"): same,
                       ("l1", "learned"): _frame([1, 1]),  # reads the version: differs
                       ("l1", "frequent"): same, ("l1", "profile_recent"): _frame([1, 1]),
                       ("interest", "recent"): _frame([0, 1], ["u00", "u07"]),
                       ("interest", "profile"): _frame([1, 0])})
    # The profile always (even with equal numbers); popular and frequent give the same
    # numbers under both versions: left out. profile_recent is not measured in A.
    assert compared_systems(a, b, "l1") == ["profile", "learned"]
    assert compared_systems(b, b, "l1") == ["profile", "profile_recent"]
    # Interests are the version's own clusters: other users, other numbers.
    assert compared_systems(a, b, "interest") == ["profile", "recent"]
    assert compared_systems(a, _result("v2", {}), "l1") == []


def test_paired_next_interest_and_its_table() -> None:
    # 40 users. Base puts the right L1 first for the first 10; v2 for all 40:
    # Δ hit@1 = 30/40 = 0.75, every user's difference is 0 or +1, so the CI is above 0.
    a = _result("base", {("l1", "profile"): _frame([1] * 10 + [0] * 30),
                         ("l1", "popular"): _frame([0] * 40)})
    b = _result("v2", {("l1", "profile"): _frame([1] * 40),
                       ("l1", "popular"): _frame([0] * 40)})
    pairs = paired_next_interest(a, b)
    assert [(lv, s, r.metric) for lv, s, r in pairs] == [("l1", "profile", "hit@1"),
                                                        ("l1", "profile", "ndcg@5")]
    hit = pairs[0][2]
    assert (hit.n_users, hit.mean_a, hit.mean_b, hit.diff) == (40, 0.25, 1.0, 0.75)
    # ndcg@5: 30 users move from rank 2 (1 / log2 3) to rank 1.
    assert pairs[1][2].diff == pytest.approx(0.75 * (1 - 1 / np.log2(3)))
    table = paired_table(pairs)
    assert table.columns.tolist() == ["Level", "System", "Metric", "Users", "Mean A",
                                      "Mean B", "Δ (B − A)", "95% CI", "p-value", "Verdict"]
    assert table["Level"].tolist() == ["L1 categories"] * 2
    assert table["Metric"].tolist() == ["Hit@1", "NDCG@5"]
    assert table["Verdict"].tolist() == ["B better", "B better"]
    assert table["p-value"].iloc[0] == "< 0.001"
    [first, _] = paired_verdicts(pairs, "base", "v2")
    assert first.startswith("B (v2) is significantly better than A (base) at l1 categories "
                            "(profile, Hit@1): Δ +0.7500")
    assert "40 users" in first


def test_paired_verdicts_say_nothing_without_a_clear_difference() -> None:
    # 4 users, one better and one worse under v2: Δ 0, nothing to call.
    a = _result("base", {("interest", "profile"): _frame([1, 0, 1, 0])})
    b = _result("v2", {("interest", "profile"): _frame([0, 1, 1, 0])})
    pairs = paired_next_interest(a, b)
    assert [r.diff for _, _, r in pairs] == [0.0, 0.0]
    assert paired_table(pairs)["Verdict"].tolist() == ["no clear difference"] * 2
    assert paired_verdicts(pairs, "base", "v2") == []
    assert paired_table([]).empty


def test_summary_stamp_follows_the_numbers() -> None:
    changed = SUMMARY.assign(**{"hit@1": SUMMARY["hit@1"] + 0.01})
    assert summary_stamp(SUMMARY) == summary_stamp(SUMMARY.copy())
    assert summary_stamp(SUMMARY) != summary_stamp(changed)
    hash(summary_stamp(SUMMARY))  # a task key
