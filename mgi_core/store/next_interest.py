"""What the next-interest evaluation reads, and the per-user results it stores.

Reads, one range of users at a time (``users = (first, last)`` user ids, inclusive, in
DuckDB's byte order, which is Python's str order): the held-out review of each user in a
split with its item's categories (``held_out_targets``), each user's train activity per
category (``train_category_activity``), the stored profile rows (``profile_interest_rows``),
the vector of each user's latest train review (``latest_train_vectors``) and the vectors of
given items (``item_vectors_of``). Whole-dataset reads are small: the target users
(``held_out_users``) and the train popularity of each category (``category_popularity``).

The ``learned`` system also reads, per range of users, each train review's position, rating
and categories (``train_review_positions``) with the version's head probabilities of them
(``train_head_probs``); and, whole-dataset but streamed, the train review vectors with their
items' categories (``train_vectors_by_category``, for category centroids) and the counts of
consecutive train reviews per pair of categories (``category_transitions``).

Results: ``next_interest_metrics(version, dataset, split, level, system, user_id, hit1,
hit3, ndcg5)``, created on first write, replaced per (version, dataset, split) in one
transaction (``replace_next_interest_metrics``), read back per system
(``read_next_interest_metrics``) or summarised in DuckDB (``next_interest_summary``), and
removed with the dataset (``purge_next_interest_metrics``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import duckdb
import numpy as np
import pandas as pd

from mgi_core.store import Store
from mgi_core.store.embeddings import (
    READ_ROWS,
    _ids_and_matrix,
    _read_ids_and_matrix,
    item_table,
    review_table,
)
from mgi_core.store.profiles import last_liked_vectors
from mgi_core.store.sql import quote_identifier

TABLE = "next_interest_metrics"
# Columns of ``next_interest_metrics`` after (version, dataset, split), in table order.
METRIC_COLUMNS = ("level", "system", "user_id", "hit1", "hit3", "ndcg5")
CATEGORY_LEVELS = ("l1", "l2")  # the item columns a category level may name

_CREATE = f"""CREATE TABLE IF NOT EXISTS {TABLE} (
    version VARCHAR NOT NULL,
    dataset VARCHAR NOT NULL,
    split   VARCHAR NOT NULL,               -- val | test
    level   VARCHAR NOT NULL,               -- l1 | l2 | interest
    system  VARCHAR NOT NULL,               -- profile | popular | frequent | recent | learned
    user_id VARCHAR NOT NULL,
    hit1    DOUBLE,
    hit3    DOUBLE,
    ndcg5   DOUBLE)"""


def _level_column(level: str) -> str:
    if level not in CATEGORY_LEVELS:
        raise ValueError(f"category level must be one of {CATEGORY_LEVELS}, got {level!r}")
    return quote_identifier(level)


# ------------------------------------------------------------------------------ reads


def category_levels(store: Store, dataset: str) -> list[str]:
    """The category levels (of ``CATEGORY_LEVELS``) at which some item of ``dataset`` has a
    category, in level order: ``["l1"]`` for single-level categories, ``[]`` for none."""
    row = store.cursor().execute(
        "SELECT count(l1), count(l2) FROM items WHERE dataset = ?", [dataset]
    ).fetchone()
    return [lv for lv, n in zip(CATEGORY_LEVELS, row, strict=True) if n]


def category_popularity(store: Store, dataset: str, level: str) -> pd.DataFrame:
    """Every category at ``level`` of the dataset's items with its number of train reviews
    (0 for a category that has none): columns ``key``, ``n_reviews``; most reviewed first,
    ties by key."""
    col = _level_column(level)
    return store.cursor().execute(
        f"""WITH cats AS (SELECT DISTINCT {col} AS key FROM items
                          WHERE dataset = ? AND {col} IS NOT NULL),
                 counts AS (SELECT i.{col} AS key, count(*) AS n FROM reviews r
                            JOIN items i ON i.dataset = r.dataset AND i.item_id = r.item_id
                            WHERE r.dataset = ? AND r.split = 'train' GROUP BY 1)
            SELECT cats.key, coalesce(counts.n, 0)::BIGINT AS n_reviews
            FROM cats LEFT JOIN counts ON counts.key = cats.key
            ORDER BY n_reviews DESC, cats.key""",
        [dataset, dataset],
    ).df()


def held_out_users(store: Store, dataset: str, split: str) -> list[str]:
    """The users with a review in ``split`` (val | test), sorted."""
    rows = store.cursor().execute(
        "SELECT DISTINCT user_id FROM reviews WHERE dataset = ? AND split = ? ORDER BY user_id",
        [dataset, split],
    ).fetchall()
    return [u for (u,) in rows]


def held_out_targets(
    store: Store, dataset: str, split: str, users: tuple[str, str]
) -> pd.DataFrame:
    """The held-out review in ``split`` of each user from ``users[0]`` to ``users[1]``
    (inclusive), one per user (the latest, should a split hold more), by user_id: columns
    ``user_id``, ``review_id``, ``item_id``, ``l1``, ``l2`` (None where the item has no
    category at that level). No text."""
    return store.cursor().execute(
        """SELECT r.user_id, r.review_id, r.item_id, i.l1, i.l2
           FROM reviews r LEFT JOIN items i ON i.dataset = r.dataset AND i.item_id = r.item_id
           WHERE r.dataset = ? AND r.split = ? AND r.user_id BETWEEN ? AND ?
           QUALIFY row_number() OVER (PARTITION BY r.user_id
                                      ORDER BY r.ts DESC NULLS LAST, r.review_id DESC) = 1
           ORDER BY r.user_id""",
        [dataset, split, users[0], users[1]],
    ).df()


def train_category_activity(
    store: Store, dataset: str, level: str, users: tuple[str, str]
) -> pd.DataFrame:
    """Each user's train reviews per category at ``level``, for the users from ``users[0]``
    to ``users[1]`` (inclusive): columns ``user_id``, ``key``, ``n_reviews`` and ``last``,
    the 1-based position of the category's latest review among the user's train reviews
    ordered by (ts, missing times first, review_id), the order of the profiles. Reviews of
    items without a category at ``level`` count in the positions but give no row."""
    col = _level_column(level)
    return store.cursor().execute(
        f"""WITH t AS (
                SELECT r.user_id, i.{col} AS key,
                       row_number() OVER (PARTITION BY r.user_id
                                          ORDER BY r.ts NULLS FIRST, r.review_id) AS pos
                FROM reviews r
                LEFT JOIN items i ON i.dataset = r.dataset AND i.item_id = r.item_id
                WHERE r.dataset = ? AND r.split = 'train' AND r.user_id BETWEEN ? AND ?)
            SELECT user_id, key, count(*)::BIGINT AS n_reviews, max(pos)::BIGINT AS last
            FROM t WHERE key IS NOT NULL GROUP BY user_id, key ORDER BY user_id, key""",
        [dataset, users[0], users[1]],
    ).df()


def profile_interest_rows(
    store: Store, version: str, dataset: str, level: str, users: tuple[str, str]
) -> pd.DataFrame:
    """The stored profile rows at ``level`` (l1 | l2 | interest) of the users from
    ``users[0]`` to ``users[1]`` (inclusive): columns ``user_id``, ``key``, ``share``,
    ``affinity``, ``vector_row``, by vector_row."""
    return store.cursor().execute(
        "SELECT user_id, key, share, affinity, vector_row FROM user_profiles "
        "WHERE version = ? AND dataset = ? AND level = ? AND user_id BETWEEN ? AND ? "
        "ORDER BY vector_row",
        [version, dataset, level, users[0], users[1]],
    ).df()


def latest_train_vectors(
    store: Store, version: str, dataset: str, d: int, users: tuple[str, str],
    only: Sequence[str] | None = None,
) -> tuple[list[str], np.ndarray]:
    """(user_ids, (n, d) vectors): the ``version`` embedding of each user's latest train
    review (by time, missing times first, ties by review_id) for the users from
    ``users[0]`` to ``users[1]`` (inclusive; only those in ``only`` when given), by
    user_id: ``last_liked_vectors`` with no review counted as liked."""
    return last_liked_vectors(store, version, dataset, d, math.inf, users, only)


def item_vectors_of(
    store: Store, version: str, dataset: str, d: int, item_ids: Sequence[str]
) -> tuple[list[str], np.ndarray]:
    """(item_ids, (n, d) vectors) of the given items that have a ``version`` vector (the
    mean of their train reviews), by item_id; items without one are left out."""
    ids = sorted({str(i) for i in item_ids})
    if not ids:
        return [], np.zeros((0, int(d)), dtype=np.float32)
    sql = (f"SELECT item_id, embedding FROM {item_table(d)} WHERE version = ? AND "
           "dataset = ? AND item_id IN (SELECT unnest(?::VARCHAR[])) ORDER BY item_id")
    with store.reader() as cur:
        found, vectors = _read_ids_and_matrix(cur, sql, [version, dataset, ids], "item_id",
                                              int(d))
    return [str(i) for i in found], vectors


def train_review_positions(
    store: Store, dataset: str, users: tuple[str, str]
) -> pd.DataFrame:
    """Every train review of the users from ``users[0]`` to ``users[1]`` (inclusive): columns
    ``user_id``, ``review_id``, ``pos`` (1-based, in the profiles' order: ts, missing times
    first, then review_id), ``n`` (the user's number of train reviews), ``rating``, ``l1``,
    ``l2``; by user_id then pos. No text."""
    return store.cursor().execute(
        """SELECT r.user_id, r.review_id,
                  row_number() OVER (PARTITION BY r.user_id
                                     ORDER BY r.ts NULLS FIRST, r.review_id)::BIGINT AS pos,
                  count(*) OVER (PARTITION BY r.user_id)::BIGINT AS n,
                  r.rating::DOUBLE AS rating, i.l1, i.l2
           FROM reviews r LEFT JOIN items i ON i.dataset = r.dataset AND i.item_id = r.item_id
           WHERE r.dataset = ? AND r.split = 'train' AND r.user_id BETWEEN ? AND ?
           ORDER BY r.user_id, pos""",
        [dataset, users[0], users[1]],
    ).df()


def train_head_probs(
    store: Store, version: str, dataset: str, task: str, users: tuple[str, str]
) -> tuple[np.ndarray, list[list[float]]]:
    """(review_ids, probabilities) of the ``task`` head of ``version`` for the train reviews
    of the users from ``users[0]`` to ``users[1]`` (inclusive), by review_id; empty when the
    version stored none. Held-out reviews are never read."""
    rows = store.cursor().execute(
        """SELECT h.review_id, h.probs FROM review_head_probs h
           JOIN reviews r ON r.review_id = h.review_id AND r.dataset = h.dataset
           WHERE h.version = ? AND h.dataset = ? AND h.task = ? AND r.split = 'train'
             AND r.user_id BETWEEN ? AND ?
           ORDER BY h.review_id""",
        [version, dataset, task, users[0], users[1]],
    ).fetchall()
    return np.array([int(r) for r, _ in rows], dtype=np.int64), [p for _, p in rows]


def train_vectors_by_category(
    store: Store, version: str, dataset: str, d: int, chunk: int = READ_ROWS
) -> Iterator[tuple[pd.DataFrame, np.ndarray]]:
    """The ``version`` vectors of the dataset's train reviews with their items' ``l1`` and
    ``l2``, ``chunk`` reviews at a time: (frame with columns ``l1``, ``l2``, (n, d) float32
    vectors), row-aligned. Memory is one chunk."""
    sql = (f"SELECT i.l1, i.l2, e.embedding FROM {review_table(d)} e "
           "JOIN reviews r ON r.review_id = e.review_id "
           "LEFT JOIN items i ON i.dataset = r.dataset AND i.item_id = r.item_id "
           "WHERE e.version = ? AND e.dataset = ? AND r.dataset = ? AND r.split = 'train'")
    with store.reader() as cur:
        for batch in cur.sql(sql, params=[version, dataset, dataset]).to_arrow_reader(chunk):
            if batch.num_rows == 0:
                continue
            frame = pd.DataFrame({lv: batch.column(lv).to_pylist() for lv in CATEGORY_LEVELS})
            yield frame, _ids_and_matrix(batch, "l1", int(d))[1]


def category_transitions(store: Store, dataset: str, level: str) -> pd.DataFrame:
    """How often a user's train review in category ``prev`` is followed by their next train
    review in ``next`` (the profiles' order; both reviews' items have a category at
    ``level``): columns ``prev``, ``next``, ``n``."""
    col = _level_column(level)
    return store.cursor().execute(
        f"""WITH t AS (
                SELECT i.{col} AS key,
                       lag(i.{col}) OVER (PARTITION BY r.user_id
                                          ORDER BY r.ts NULLS FIRST, r.review_id) AS prev
                FROM reviews r
                LEFT JOIN items i ON i.dataset = r.dataset AND i.item_id = r.item_id
                WHERE r.dataset = ? AND r.split = 'train')
            SELECT prev, key AS next, count(*)::BIGINT AS n FROM t
            WHERE key IS NOT NULL AND prev IS NOT NULL GROUP BY 1, 2 ORDER BY 1, 2""",
        [dataset],
    ).df()


# ------------------------------------------------------------------------------ results


def _has_table(cur: duckdb.DuckDBPyConnection) -> bool:
    row = cur.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() "
        "AND schema_name = current_schema() AND table_name = ?", [TABLE]
    ).fetchone()
    return bool(row[0])


def replace_next_interest_metrics(
    store: Store, version: str, dataset: str, split: str, rows: pd.DataFrame
) -> None:
    """Replace the stored next-interest metrics of (version, dataset, split) in one
    transaction (the table is created on first use).

    Args:
        rows: one row per (level, system, user) with the columns ``METRIC_COLUMNS``.
    """
    frame = rows.loc[:, list(METRIC_COLUMNS)].copy()
    frame.insert(0, "split", split)
    frame.insert(0, "dataset", dataset)
    frame.insert(0, "version", version)
    with store.transaction() as tx:
        tx.execute(_CREATE)
        tx.execute(f"DELETE FROM {TABLE} WHERE version = ? AND dataset = ? AND split = ?",
                   [version, dataset, split])
        tx.register("_mgi_next_interest", frame)
        tx.execute(f"INSERT INTO {TABLE} SELECT version, dataset, split, level, system, "
                   "user_id, hit1, hit3, ndcg5 FROM _mgi_next_interest")
        tx.unregister("_mgi_next_interest")


def read_next_interest_metrics(
    store: Store, version: str, dataset: str, split: str, level: str, system: str
) -> pd.DataFrame:
    """One system's stored per-user next-interest metrics at ``level``: indexed by
    ``user_id`` (sorted), columns ``hit@1``, ``hit@3``, ``ndcg@5``; empty when none is
    stored."""
    cur = store.cursor()
    if not _has_table(cur):
        frame = pd.DataFrame({"user_id": pd.Series(dtype=object),
                              **{m: pd.Series(dtype=float)
                                 for m in ("hit@1", "hit@3", "ndcg@5")}})
        return frame.set_index("user_id")
    return cur.execute(
        f"""SELECT user_id, hit1 AS "hit@1", hit3 AS "hit@3", ndcg5 AS "ndcg@5" FROM {TABLE}
            WHERE version = ? AND dataset = ? AND split = ? AND level = ? AND system = ?
            ORDER BY user_id""",
        [version, dataset, split, level, system],
    ).df().set_index("user_id")


def next_interest_summary(store: Store, version: str, dataset: str,
                          split: str = "test") -> pd.DataFrame:
    """The stored next-interest metrics of (version, dataset, split) averaged in DuckDB:
    one row per (level, system) with ``n_users``, ``hit@1``, ``hit@3``, ``ndcg@5``, by
    level (l1, l2, interest) then system; empty when none is stored."""
    cur = store.cursor()
    columns = ["level", "system", "n_users", "hit@1", "hit@3", "ndcg@5"]
    if not _has_table(cur):
        return pd.DataFrame(columns=columns)
    return cur.execute(
        f"""SELECT level, system, count(*)::BIGINT AS n_users, avg(hit1) AS "hit@1",
                   avg(hit3) AS "hit@3", avg(ndcg5) AS "ndcg@5" FROM {TABLE}
            WHERE version = ? AND dataset = ? AND split = ?
            GROUP BY level, system
            ORDER BY CASE level WHEN 'l1' THEN 0 WHEN 'l2' THEN 1 ELSE 2 END, system""",
        [version, dataset, split],
    ).df()


def purge_next_interest_metrics(
    target: Store | duckdb.DuckDBPyConnection, dataset: str
) -> None:
    """Delete every stored next-interest metric of ``dataset`` (all versions and splits);
    nothing when the table was never created.

    Args:
        target: a store, or the cursor of the caller's transaction (``purge_dataset``'s).
    """
    cur = target.cursor() if isinstance(target, Store) else target
    if _has_table(cur):
        cur.execute(f"DELETE FROM {TABLE} WHERE dataset = ?", [dataset])
