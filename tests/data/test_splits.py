"""Temporal leave-last-out: reproducible, and nothing of val/test reaches train."""

from __future__ import annotations

from pathlib import Path

import pytest

from mgi_core.config import SplitConfig
from mgi_core.data.ingest import ingest_file
from mgi_core.store import Store
from mgi_core.store.reviews_splits import assign_splits, split_counts
from tests.conftest import SHARED_DATA, small_rows, write_csv


def _check_leave_last_out(store: Store, dataset: str, min_reviews: int = 3) -> None:
    rows = store.cursor().execute(
        """SELECT user_id, count(*) AS n,
                  count(*) FILTER (WHERE split = 'test') AS n_test,
                  count(*) FILTER (WHERE split = 'val') AS n_val,
                  max(ts) FILTER (WHERE split = 'train') AS last_train,
                  max(ts) FILTER (WHERE split = 'val') AS val_ts,
                  max(ts) FILTER (WHERE split = 'test') AS test_ts
           FROM reviews WHERE dataset = ? GROUP BY user_id""",
        [dataset],
    ).fetchall()
    for user, n, n_test, n_val, last_train, val_ts, test_ts in rows:
        if n >= min_reviews:
            assert (n_test, n_val) == (1, 1), user
            assert last_train <= val_ts <= test_ts, user
        else:
            assert (n_test, n_val) == (0, 0), user
    # No (user, item) of val/test appears in train: each pair is one review.
    leaked = store.cursor().execute(
        """SELECT count(*) FROM reviews t JOIN reviews e
           ON t.dataset = e.dataset AND t.user_id = e.user_id AND t.item_id = e.item_id
           WHERE t.dataset = ? AND t.split = 'train' AND e.split IN ('val', 'test')""",
        [dataset],
    ).fetchone()[0]
    assert leaked == 0


def test_small_split_by_hand(store, tmp_path: Path) -> None:
    ingest_file(store, write_csv(tmp_path / "s.csv", small_rows()), "s")
    got = dict(
        store.cursor().execute(
            "SELECT user_id || '/' || item_id, split FROM reviews ORDER BY 1"
        ).fetchall()
    )
    # u1: i1 < i2 < i3 < i4 in time → i4 test, i3 val. u2: i1 < i2(700) < i3(900).
    # u3 has one review → train.
    assert got == {
        "u1/i1": "train", "u1/i2": "train", "u1/i3": "val", "u1/i4": "test",
        "u2/i1": "train", "u2/i2": "val", "u2/i3": "test", "u3/i4": "train",
    }
    assert split_counts(store, "s") == {"train": 4, "val": 2, "test": 2}


def test_ties_break_by_file_order_and_recompute_is_reproducible(store, tmp_path) -> None:
    rows = [["u", f"i{k}", "text", 4, 100, "A", "t"] for k in range(5)]
    ingest_file(store, write_csv(tmp_path / "tie.csv", rows), "tie")
    first = store.cursor().execute("SELECT item_id, split FROM reviews ORDER BY 1").fetchall()
    assert first[-2:] == [("i3", "val"), ("i4", "test")]
    assign_splits(store, "tie", SplitConfig(min_reviews=6))
    assert split_counts(store, "tie") == {"train": 5, "val": 0, "test": 0}
    assign_splits(store, "tie")
    again = store.cursor().execute("SELECT item_id, split FROM reviews ORDER BY 1").fetchall()
    assert again == first


@pytest.mark.skipif(not (SHARED_DATA / "amazon_digital_music.csv").exists(),
                    reason="shared data folder not present beside the project")
def test_shared_data_split_has_no_leakage(store) -> None:
    ingest_file(store, SHARED_DATA / "amazon_digital_music.csv", "dm")
    assert split_counts(store, "dm") == {"train": 5372, "val": 763, "test": 763}
    _check_leave_last_out(store, "dm")
