"""What the Data page reads: the stored datasets and one dataset's aggregate views.

Every aggregation runs in DuckDB and returns a small frame; nothing here loads all reviews
into pandas, and nothing writes.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from mgi_core.store import Store
from mgi_core.store.datasets import list_datasets

__all__ = [
    "category_counts", "count_rejected_rows", "list_datasets", "rating_distribution",
    "rejected_rows", "reviews_over_time", "reviews_per_user", "sample_reviews",
]


def _frame(store: Store, sql: str, params: list[Any]) -> pd.DataFrame:
    return store.cursor().execute(sql, params).df()


def reviews_per_user(store: Store, name: str) -> pd.DataFrame:
    """(n_reviews, n_users): how many users wrote exactly n reviews."""
    return _frame(
        store,
        """SELECT n AS n_reviews, count(*) AS n_users
           FROM (SELECT count(*) AS n FROM reviews WHERE dataset = ? GROUP BY user_id)
           GROUP BY n ORDER BY n""",
        [name],
    )


def rating_distribution(store: Store, name: str) -> pd.DataFrame:
    """(rating, n_reviews)."""
    return _frame(
        store,
        "SELECT rating, count(*) AS n_reviews FROM reviews WHERE dataset = ? "
        "GROUP BY rating ORDER BY rating",
        [name],
    )


def category_counts(store: Store, name: str) -> pd.DataFrame:
    """(l1, l2, l3, n_reviews) with missing levels as '(none)' leaves, for a sunburst."""
    return _frame(
        store,
        """SELECT coalesce(i.l1, '(no category)') AS l1, i.l2, i.l3, count(*) AS n_reviews
           FROM reviews r JOIN items i ON i.dataset = r.dataset AND i.item_id = r.item_id
           WHERE r.dataset = ? GROUP BY ALL ORDER BY n_reviews DESC""",
        [name],
    )


def reviews_over_time(store: Store, name: str) -> pd.DataFrame:
    """(month, n_reviews) for reviews with a timestamp."""
    return _frame(
        store,
        """SELECT date_trunc('month', ts) AS month, count(*) AS n_reviews
           FROM reviews WHERE dataset = ? AND ts IS NOT NULL GROUP BY month ORDER BY month""",
        [name],
    )


def rejected_rows(store: Store, name: str, limit: int = 100_000, offset: int = 0) -> pd.DataFrame:
    """The rows rejected when the dataset was ingested, by line: ``limit`` of them after
    the first ``offset``."""
    return _frame(
        store,
        """SELECT line, reason, detail, user_id, item_id, rating, text
           FROM ingest_rejects WHERE dataset = ? ORDER BY line LIMIT ? OFFSET ?""",
        [name, limit, max(int(offset), 0)],
    )


def count_rejected_rows(store: Store, name: str) -> int:
    """How many rejected rows of ``name`` are stored."""
    return int(store.cursor().execute(
        "SELECT count(*) FROM ingest_rejects WHERE dataset = ?", [name]).fetchone()[0])


def sample_reviews(store: Store, name: str, limit: int = 50, offset: int = 0) -> pd.DataFrame:
    """A dataset's reviews in file order, ``limit`` of them after the first ``offset``.

    The page's first row number is found on that one narrow column, then the page's
    reviews are read from there and only they are joined with their items: a page costs
    about the same anywhere in a million reviews (an OFFSET over the wide rows sorts them
    all: seconds).
    """
    return _frame(
        store,
        """WITH page AS (
               SELECT row_number, user_id, item_id, rating, ts, split, text FROM reviews
               WHERE dataset = ? AND row_number >= coalesce((
                   SELECT row_number FROM reviews WHERE dataset = ?
                   ORDER BY row_number LIMIT 1 OFFSET ?), 9223372036854775807)
               ORDER BY row_number LIMIT ?)
           SELECT p.user_id, p.item_id, i.title AS item_title, i.category, p.rating, p.ts,
                  p.split, p.text
           FROM page p LEFT JOIN items i ON i.dataset = ? AND i.item_id = p.item_id
           ORDER BY p.row_number""",
        [name, name, max(int(offset), 0), limit, name],
    )
