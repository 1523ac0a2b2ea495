"""What the Data page reads: the stored datasets and one dataset's aggregate views.

Every aggregation runs in DuckDB and returns a small frame; nothing here loads all reviews
into pandas, and nothing writes.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from mgi_core.store import Store
from mgi_core.store.datasets import list_datasets
from mgi_core.store.drift import dataset_times

__all__ = [
    "category_counts", "category_shares_by_month", "count_rejected_rows", "dataset_times",
    "list_datasets", "rating_distribution",
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


OTHER_CATEGORIES = "(other)"  # category_shares_by_month: the categories past the top ones
NO_CATEGORY = "(no category)"
_LEVELS = {"l1": "i.l1", "l2": "i.l2", "l3": "i.l3"}


def category_shares_by_month(store: Store, name: str, level: str = "l1",
                             top: int = 8) -> pd.DataFrame:
    """Each month's reviews by category: (month, category, is_other, n_reviews, share).

    Every stored review with a timestamp counts (train, validation and test: the view is
    descriptive). The ``top`` categories of ``level`` with the most reviews overall keep
    their name; the rest are summed into one row ``OTHER_CATEGORIES`` per month
    (``is_other``), and reviews of items without that level count as ``NO_CATEGORY``.
    ``share`` is the category's part of the month's reviews, so a month's shares sum to 1.
    At most months × (top + 1) rows, by month, then the top categories by their overall
    count, the rest last. One aggregation in DuckDB.
    """
    if level not in _LEVELS:
        raise ValueError(f"level must be one of {', '.join(_LEVELS)}, got {level!r}")
    if top < 1:
        raise ValueError(f"top must be at least 1, got {top}")
    return _frame(
        store,
        f"""WITH counts AS (
               SELECT date_trunc('month', r.ts) AS month,
                      coalesce({_LEVELS[level]}, ?) AS category, count(*) AS n
               FROM reviews r
               LEFT JOIN items i ON i.dataset = r.dataset AND i.item_id = r.item_id
               WHERE r.dataset = ? AND r.ts IS NOT NULL GROUP BY ALL),
           ranked AS (
               SELECT category, row_number() OVER (ORDER BY sum(n) DESC, category) AS rank
               FROM counts GROUP BY category),
           grouped AS (
               SELECT c.month, k.rank > ? AS is_other,
                      CASE WHEN k.rank > ? THEN ? ELSE c.category END AS category,
                      min(k.rank) AS rank, sum(c.n)::BIGINT AS n_reviews
               FROM counts c JOIN ranked k USING (category) GROUP BY ALL)
           SELECT month, category, is_other, n_reviews,
                  n_reviews / sum(n_reviews) OVER (PARTITION BY month) AS share
           FROM grouped ORDER BY month, is_other, rank""",
        [NO_CATEGORY, name, int(top), int(top), OTHER_CATEGORIES],
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
