"""What the Profiles page reads: find users, one user's reviews and vectors.

Every query aggregates in DuckDB and returns at most ``limit`` rows; nothing here loads a
dataset's reviews into pandas, and nothing writes: profiles are read as stored (the page
calls ``mgi_core.profiles.service.ensure_profiles`` first). Filters are fixed SQL fragments
with ``?`` parameters.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from mgi_core.store import Store
from mgi_core.store.datasets import get_dataset
from mgi_core.store.embeddings import embedding_dim, review_vectors
from mgi_core.store.profiles import profile_vectors

USER_LIMIT = 500
REVIEW_LIMIT = 200


def data_stamp(store: Store, dataset: str, version: str) -> str:
    """When ``dataset`` was stored and ``version`` embedded it: a cache key that changes
    when either is replaced (e.g. a dataset deleted and ingested again under its name)."""
    row = (
        store.cursor()
        .execute(
            """SELECT (SELECT created_at FROM datasets WHERE name = ?),
                      (SELECT created_at FROM embedding_sets WHERE dataset = ? AND version = ?)""",
            [dataset, dataset, version],
        )
        .fetchone()
    )
    return f"{row[0]}|{row[1]}"


def l1_categories(store: Store, dataset: str) -> list[str]:
    """The L1 categories of a dataset's train reviews, alphabetically."""
    rows = (
        store.cursor()
        .execute(
            """SELECT DISTINCT i.l1 FROM reviews r
               JOIN items i ON i.dataset = r.dataset AND i.item_id = r.item_id
               WHERE r.dataset = ? AND r.split = 'train' AND i.l1 IS NOT NULL ORDER BY i.l1""",
            [dataset],
        )
        .fetchall()
    )
    return [r[0] for r in rows]


def category_parents(store: Store, dataset: str) -> dict[str, str]:
    """Each L2 category of ``dataset`` -> its L1."""
    rows = (
        store.cursor()
        .execute(
            "SELECT DISTINCT l2, l1 FROM items WHERE dataset = ? AND l2 IS NOT NULL "
            "AND l1 IS NOT NULL ORDER BY l2",
            [dataset],
        )
        .fetchall()
    )
    return dict(rows)


def find_users(
    store: Store,
    dataset: str,
    *,
    l1: str | None = None,
    min_train_reviews: int = 1,
    cold: bool | None = None,
    id_contains: str | None = None,
    limit: int = USER_LIMIT,
    offset: int = 0,
) -> pd.DataFrame:
    """Users with a profile (>= 1 train review) that match every given filter.

    Args:
        l1: only users with at least one train review in this L1 category.
        min_train_reviews: only users with at least this many train reviews.
        cold: True → only cold users (one train review), False → only warm users.
        id_contains: case-insensitive substring of the user id.
        limit: at most this many rows, most active users first.
        offset: skip this many matching users first (page ``offset // limit + 1``).

    Returns:
        Columns ``user_id``, ``n_train_reviews``, ``n_reviews`` (every split), ``top_l1``
        (the L1 of most of the user's train reviews, ties alphabetically), ``cold``, and
        ``n_matching`` (how many users match in all, before the limit); no row when the
        page is past the last match.
    """
    get_dataset(store, dataset)
    where = ["u.n_train_reviews >= ?"]
    params: list[object] = [dataset, dataset, l1, max(int(min_train_reviews), 1)]
    if l1 is not None:
        where.append("u.user_id IN (SELECT user_id FROM in_l1)")
    if cold is not None:
        where.append("(u.n_train_reviews <= 1) = ?")
        params.append(bool(cold))
    if id_contains:
        where.append("contains(lower(u.user_id), lower(?))")
        params.append(id_contains.strip())
    params += [int(limit), max(int(offset), 0), dataset]
    # Counts per user need no items; the main L1 is worked out for the page's users only.
    sql = f"""
        WITH u AS (
            SELECT user_id, count(*) FILTER (WHERE split = 'train') AS n_train_reviews,
                   count(*) AS n_reviews
            FROM reviews WHERE dataset = ? GROUP BY user_id),
        in_l1 AS (
            SELECT DISTINCT r.user_id FROM reviews r
            JOIN items i ON i.dataset = r.dataset AND i.item_id = r.item_id
            WHERE r.dataset = ? AND r.split = 'train' AND i.l1 = ?),
        page AS (
            SELECT u.*, count(*) OVER () AS n_matching FROM u
            WHERE {" AND ".join(where)}
            ORDER BY u.n_train_reviews DESC, u.user_id LIMIT ? OFFSET ?),
        per_l1 AS (
            SELECT r.user_id, i.l1, count(*) AS n FROM reviews r
            JOIN items i ON i.dataset = r.dataset AND i.item_id = r.item_id
            WHERE r.dataset = ? AND r.split = 'train' AND i.l1 IS NOT NULL
                  AND r.user_id IN (SELECT user_id FROM page)
            GROUP BY r.user_id, i.l1),
        top AS (
            SELECT user_id, l1 AS top_l1 FROM (
                SELECT user_id, l1, row_number() OVER (
                    PARTITION BY user_id ORDER BY n DESC, l1) AS k FROM per_l1)
            WHERE k = 1)
        SELECT p.user_id, p.n_train_reviews, p.n_reviews, top.top_l1,
               p.n_train_reviews <= 1 AS cold, p.n_matching
        FROM page p LEFT JOIN top USING (user_id)
        ORDER BY p.n_train_reviews DESC, p.user_id"""
    return store.cursor().execute(sql, params).df()


def count_user_reviews(store: Store, dataset: str, user_id: str) -> int:
    """How many reviews (every split) ``user_id`` has in ``dataset``."""
    return int(store.cursor().execute(
        "SELECT count(*) FROM reviews WHERE dataset = ? AND user_id = ?", [dataset, user_id]
    ).fetchone()[0])


def user_reviews(
    store: Store, dataset: str, user_id: str, limit: int = REVIEW_LIMIT, offset: int = 0
) -> pd.DataFrame:
    """One user's reviews, newest first: item, category, rating, time, split and text.

    ``limit`` rows after skipping ``offset`` (pages of a prolific user's reviews).
    """
    return (
        store.cursor()
        .execute(
            """SELECT r.review_id, r.item_id, i.title AS item_title, i.category, r.rating,
                      r.ts, r.split, r.text
               FROM reviews r
               LEFT JOIN items i ON i.dataset = r.dataset AND i.item_id = r.item_id
               WHERE r.dataset = ? AND r.user_id = ?
               ORDER BY r.ts DESC NULLS LAST, r.row_number DESC LIMIT ? OFFSET ?""",
            [dataset, user_id, int(limit), max(int(offset), 0)],
        )
        .df()
    )


@dataclass
class UserVectors:
    """One user's vectors under a version: train reviews, interest centroids, overall."""

    review_ids: np.ndarray  # (n_reviews,)
    item_ids: np.ndarray  # (n_reviews,) the item each review is about
    reviews: np.ndarray  # (n_reviews, d)
    interest_keys: list[str]  # interest numbers, as stored
    interests: np.ndarray  # (n_interests, d) centroids
    overall: np.ndarray | None  # (d,)


def user_vectors(store: Store, dataset: str, version: str, user_id: str) -> UserVectors:
    """The embeddings of ``user_id``'s train reviews and the user's stored profile vectors
    under ``version``.

    Reads only: without stored profiles (``ensure_profiles``) ``interests`` is empty and
    ``overall`` None, as for a user without train reviews.
    """
    d = embedding_dim(store, version, dataset)
    train = store.cursor().execute(
        """SELECT review_id, item_id FROM reviews
           WHERE dataset = ? AND user_id = ? AND split = 'train' ORDER BY review_id""",
        [dataset, user_id],
    ).fetchall()
    # The user's few review ids first, then their vectors by id: a join of the user's
    # reviews with the whole embedding table would scan it (seconds at 1M reviews).
    review_ids, review_matrix = review_vectors(store, version, dataset,
                                               review_ids=[r for r, _ in train])
    item_of = dict(train)
    profile = store.cursor().execute(
        """SELECT level, key, vector_row FROM user_profiles
           WHERE version = ? AND dataset = ? AND user_id = ?
                 AND level IN ('overall', 'interest')
           ORDER BY level, key""",
        [version, dataset, user_id],
    ).fetchall()
    rows, vectors = profile_vectors(store, version, dataset, d, [r[2] for r in profile])
    by_row = dict(zip(rows.tolist(), vectors, strict=True))
    interests = [(key, by_row[row]) for level, key, row in profile
                 if level == "interest" and row in by_row]
    overall = next((by_row[row] for level, _, row in profile
                    if level == "overall" and row in by_row), None)
    return UserVectors(
        review_ids=review_ids.astype(np.int64),
        item_ids=np.array([item_of[int(r)] for r in review_ids], dtype=object),
        reviews=review_matrix,
        interest_keys=[k for k, _ in interests],
        interests=(np.stack([v for _, v in interests]).astype(np.float32) if interests
                   else np.zeros((0, d), dtype=np.float32)),
        overall=overall,
    )
