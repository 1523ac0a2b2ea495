"""Category shares by month (the Data page's drift across all users), and what drift reads
about a dataset's dates, on a small file whose numbers are worked out by hand."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest

from mgi_core.data.ingest import ingest_file
from mgi_core.store import Store
from mgi_core.store.drift import dataset_times, user_train_span
from mgi_core.store.queries.datasets import (
    NO_CATEGORY,
    OTHER_CATEGORIES,
    category_shares_by_month,
)
from tests.conftest import write_csv


def _ts(month: int, day: int = 10) -> int:
    return int((datetime(2021, month, day) - datetime(1970, 1, 1)).total_seconds())


# (month, L1 path, reviews): Jan A3 B2 C1; Feb A1 B2 D1 and one without a category; Apr C2.
# Overall A 4, B 4, C 3, D 1, no category 1 (plus one A review without a time: not counted).
PLAN = [(1, "A > a", 3), (1, "B > b", 2), (1, "C > c", 1), (2, "A > a", 1), (2, "B > b", 2),
        (2, "D > d", 1), (2, "", 1), (4, "C > c", 2)]


@pytest.fixture
def shares_store(tmp_path: Path, store: Store) -> Store:
    rows: list[list[object]] = []
    for month, category, n in PLAN:
        for k in range(n):
            rows.append([f"u{len(rows)}", f"i{len(rows)}", "fine", 4, _ts(month, 1 + k),
                         category, "x"])
    rows.append(["u_undated", "i_undated", "fine", 4, "", "A > a", "x"])
    ingest_file(store, write_csv(tmp_path / "shares.csv", rows), "shares")
    return store


def _shares(frame: pd.DataFrame) -> dict[tuple[str, str], float]:
    return {(m.strftime("%Y-%m"), c): s
            for m, c, s in zip(frame["month"], frame["category"], frame["share"], strict=True)}


def test_top_categories_and_the_rest_per_month(shares_store: Store) -> None:
    frame = category_shares_by_month(shares_store, "shares", top=2)
    # Top 2 overall: A and B (4 each; the tie goes by name). C, D and no category are other.
    assert _shares(frame) == pytest.approx({
        ("2021-01", "A"): 3 / 6, ("2021-01", "B"): 2 / 6, ("2021-01", OTHER_CATEGORIES): 1 / 6,
        ("2021-02", "A"): 1 / 5, ("2021-02", "B"): 2 / 5, ("2021-02", OTHER_CATEGORIES): 2 / 5,
        ("2021-04", OTHER_CATEGORIES): 2 / 2,
    })
    assert list(frame["n_reviews"]) == [3, 2, 1, 1, 2, 2, 2]
    # Ordered by month, then the named categories by overall size, the rest last.
    assert list(frame["category"])[:3] == ["A", "B", OTHER_CATEGORIES]
    assert list(frame["is_other"]) == [False, False, True, False, False, True, True]
    sums = frame.groupby("month")["share"].sum()
    assert sums.to_numpy() == pytest.approx([1.0, 1.0, 1.0])


def test_every_category_named_when_top_is_large(shares_store: Store) -> None:
    frame = category_shares_by_month(shares_store, "shares", top=8)
    assert not frame["is_other"].any()
    feb = frame[frame["month"] == datetime(2021, 2, 1)]
    assert dict(zip(feb["category"], feb["n_reviews"], strict=True)) == {
        "A": 1, "B": 2, "D": 1, NO_CATEGORY: 1}
    assert frame.groupby("month")["share"].sum().to_numpy() == pytest.approx([1, 1, 1])
    # L2 works the same way (stored L2 paths repeat their L1).
    l2 = category_shares_by_month(shares_store, "shares", level="l2", top=1)
    assert set(l2["category"]) == {"A > a", OTHER_CATEGORIES}
    with pytest.raises(ValueError, match="level must be one of"):
        category_shares_by_month(shares_store, "shares", level="l1; DROP TABLE reviews")


def test_dataset_times_and_user_span(shares_store: Store, tmp_path: Path) -> None:
    times = dataset_times(shares_store, "shares")
    assert times.has_timestamp and times.dated
    assert (times.first, times.last) == (datetime(2021, 1, 1), datetime(2021, 4, 2))
    span = user_train_span(shares_store, "shares", "u_undated")
    assert (span.n_reviews, span.n_dated, span.first) == (1, 0, None)
    assert user_train_span(shares_store, "shares", "nobody").n_reviews == 0
    # Sequence numbers are timestamps that only order the reviews: not dated.
    rows = [[f"u{k}", f"i{k}", "fine", 4, k + 1, "A > a", "x"] for k in range(5)]
    ingest_file(shares_store, write_csv(tmp_path / "seq.csv", rows), "seq")
    seq = dataset_times(shares_store, "seq")
    assert seq.has_timestamp and not seq.dated
    assert category_shares_by_month(shares_store, "seq")["month"].nunique() == 1
