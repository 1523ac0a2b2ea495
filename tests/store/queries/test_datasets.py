"""The Data page's reads on small_rows (8 reviews by u1 ×4, u2 ×3, u3 ×1) and one bad row."""

from __future__ import annotations

from pathlib import Path

import pytest

from mgi_core.data.ingest import ingest_file
from mgi_core.store import Store
from mgi_core.store.queries.datasets import (
    category_counts,
    list_datasets,
    rating_distribution,
    rejected_rows,
    reviews_over_time,
    reviews_per_user,
    sample_reviews,
)
from tests.conftest import small_rows, write_csv


@pytest.fixture
def toy(store: Store, tmp_path: Path) -> Store:
    path = write_csv(tmp_path / "r.csv", [*small_rows(), ["u9", "i9", "x", "five", 1, "A", "t"]])
    ingest_file(store, path, "toy")
    return store


def test_counts_per_user_and_rating(toy: Store) -> None:
    # u3 wrote 1 review, u2 3, u1 4: one user for each count.
    assert reviews_per_user(toy, "toy").values.tolist() == [[1, 1], [3, 1], [4, 1]]
    # Ratings 5 4 1 3 5 4 2 5.
    assert rating_distribution(toy, "toy").values.tolist() == [[1, 1], [2, 1], [3, 1], [4, 2],
                                                               [5, 3]]


def test_categories_and_months(toy: Store) -> None:
    frame = category_counts(toy, "toy")
    # Audio: i1 ×2 (Headphones) + i2 ×2 (Speakers); Cameras: i3 ×2 (Lenses) + i4 ×2.
    assert frame.groupby("l1")["n_reviews"].sum().to_dict() == {"Audio": 4, "Cameras": 4}
    months = reviews_over_time(toy, "toy")
    assert months["n_reviews"].sum() == 8  # every review has a timestamp


def test_rejected_rows_and_samples(toy: Store) -> None:
    [bad] = rejected_rows(toy, "toy").to_dict("records")
    assert (bad["line"], bad["user_id"], bad["rating"]) == (10, "u9", "five")
    sample = sample_reviews(toy, "toy", limit=3)
    assert sample["user_id"].tolist() == ["u1", "u1", "u1"]  # file order
    assert sample["item_title"].tolist() == ["Arc Headphones", "Boom", "Zoomy"]
    assert [d["name"] for d in list_datasets(toy)] == ["toy"]
    assert reviews_per_user(toy, "missing").empty
