"""User profiles in the store, and the rows user models are built from.

``user_profiles`` holds one row per (version, dataset, user, level, key); each row's vector
is row ``vector_row`` of ``user_profile_vectors_<d>(version, dataset, vector_row, vector
FLOAT[d])``. Profiles are built from a dataset's train reviews (``train_reviews``) and a
version's category-head probabilities of them (``head_probs``); rankings from its
interactions (``interaction_reviews``, ``item_levels``). Vectors are read in bulk through
Arrow (``profile_vectors``), never row by row.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from mgi_core.store import Store
from mgi_core.store.embeddings import _ids_and_matrix, vector_tables

# Columns of ``user_profiles`` after (version, dataset), in table order.
PROFILE_COLUMNS = (
    "user_id", "level", "key", "n_reviews", "share", "sentiment", "head_prob", "affinity",
    "keywords", "review_ids", "cold", "vector_row",
)


def profile_vector_table(d: int) -> str:
    """The table of the profile vectors of dimension ``d``."""
    d = int(d)
    if not 1 <= d <= 8192:
        raise ValueError(f"profile vector dimension {d} out of range")
    return f"user_profile_vectors_{d}"


def train_reviews(store: Store, dataset: str) -> pd.DataFrame:
    """The train split of a dataset with item levels (l1, l2, l3), in review_id order."""
    return store.cursor().execute(
        """SELECT r.review_id, r.user_id, r.item_id, r.text, r.rating, r.ts, r.split,
                  i.l1, i.l2, i.l3
           FROM reviews r LEFT JOIN items i ON i.dataset = r.dataset AND i.item_id = r.item_id
           WHERE r.dataset = ? AND r.split = 'train' ORDER BY r.review_id""",
        [dataset],
    ).df()


def head_probs(store: Store, version: str, dataset: str, task: str) -> dict[int, list[float]]:
    """review_id -> the ``task`` head's probabilities (in the order of the version's
    ``heads[task]``) for the reviews ``version`` embedded in ``dataset``; empty when none."""
    rows = store.cursor().execute(
        "SELECT review_id, probs FROM review_head_probs WHERE version = ? AND dataset = ? "
        "AND task = ?",
        [version, dataset, task],
    ).fetchall()
    return {int(review_id): probs for review_id, probs in rows}


def has_profiles(store: Store, version: str, dataset: str) -> bool:
    """Whether profiles of (version, dataset) are stored."""
    row = store.cursor().execute(
        "SELECT count(*) FROM user_profiles WHERE version = ? AND dataset = ?",
        [version, dataset],
    ).fetchone()
    return bool(row[0])


def replace_profiles(
    store: Store, version: str, dataset: str, rows: pd.DataFrame, vectors: np.ndarray
) -> None:
    """Replace the stored profiles of (version, dataset) in one transaction.

    Args:
        rows: one row per profile entry with the columns ``PROFILE_COLUMNS``; ``vector_row``
            indexes ``vectors``.
        vectors: (m, d) profile vectors.
    """
    d = int(vectors.shape[1])
    table = profile_vector_table(d)
    frame = rows.loc[:, list(PROFILE_COLUMNS)].copy()
    frame.insert(0, "dataset", dataset)
    frame.insert(0, "version", version)
    n = len(vectors)
    vec_table = pa.table({
        "version": pa.array([version] * n),
        "dataset": pa.array([dataset] * n),
        "vector_row": pa.array(np.arange(n, dtype=np.int64)),
        "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), d),
    })
    with store.transaction() as tx:
        tx.execute(
            f"""CREATE TABLE IF NOT EXISTS {table} (version VARCHAR NOT NULL,
                dataset VARCHAR NOT NULL, vector_row BIGINT NOT NULL, vector FLOAT[{d}])"""
        )
        for t in ("user_profiles", table):
            tx.execute(f"DELETE FROM {t} WHERE version = ? AND dataset = ?", [version, dataset])
        tx.register("_mgi_profile_rows", frame)
        tx.execute(
            f"INSERT INTO user_profiles SELECT version, dataset, {', '.join(PROFILE_COLUMNS)} "
            "FROM _mgi_profile_rows"
        )
        tx.unregister("_mgi_profile_rows")
        tx.register("_mgi_profile_vecs", vec_table)
        tx.execute(
            f"INSERT INTO {table} SELECT version, dataset, vector_row, vector::FLOAT[{d}] "
            "FROM _mgi_profile_vecs"
        )
        tx.unregister("_mgi_profile_vecs")


def profile_rows(store: Store, version: str, dataset: str) -> pd.DataFrame:
    """Every stored profile row of (version, dataset) (``PROFILE_COLUMNS``), by vector_row."""
    return store.cursor().execute(
        f"SELECT {', '.join(PROFILE_COLUMNS)} FROM user_profiles "
        "WHERE version = ? AND dataset = ? ORDER BY vector_row",
        [version, dataset],
    ).df()


def user_profile_rows(
    store: Store, version: str, dataset: str, user_id: str
) -> list[dict[str, Any]]:
    """One user's stored profile rows (``PROFILE_COLUMNS``): by level, then affinity (highest
    first, none last), then key. Empty when the user has none."""
    cur = store.cursor().execute(
        f"SELECT {', '.join(PROFILE_COLUMNS)} FROM user_profiles "
        "WHERE version = ? AND dataset = ? AND user_id = ? "
        "ORDER BY level, affinity DESC NULLS LAST, key",
        [version, dataset, user_id],
    )
    names = [c[0] for c in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def profile_review_texts(
    store: Store, version: str, dataset: str, user_id: str
) -> dict[int, str]:
    """review_id -> text of the representative reviews in one user's stored profile."""
    rows = store.cursor().execute(
        "SELECT review_id, text FROM reviews WHERE dataset = ? AND review_id IN "
        "(SELECT unnest(review_ids) FROM user_profiles WHERE version = ? AND dataset = ? "
        "AND user_id = ?)",
        [dataset, version, dataset, user_id],
    ).fetchall()
    return dict(rows)


def profile_vectors(
    store: Store, version: str, dataset: str, d: int,
    vector_rows: Sequence[int] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(vector_rows (n,), vectors (n, d)) of the stored profile vectors of (version, dataset),
    in vector_row order: all of them, or those in ``vector_rows``. Empty when none is stored."""
    table = profile_vector_table(d)
    if table not in vector_tables(store.cursor()) or (vector_rows is not None
                                                       and not len(vector_rows)):
        return np.zeros(0, dtype=np.int64), np.zeros((0, int(d)), dtype=np.float32)
    sql = (f"SELECT vector_row, vector AS embedding FROM {table} "
           "WHERE version = ? AND dataset = ?")
    params: list[object] = [version, dataset]
    if vector_rows is not None:
        sql += " AND list_contains(?, vector_row)"
        params.append([int(r) for r in vector_rows])
    with store.reader() as cur:
        arrow = cur.sql(sql + " ORDER BY vector_row", params=params).to_arrow_table()
    return _ids_and_matrix(arrow, "vector_row", int(d))


# ---------------------------------------------------------------- what user models read


def item_levels(store: Store, dataset: str) -> pd.DataFrame:
    """The catalogue of a dataset: columns ``item_id``, ``l1``, ``l2``, by item_id."""
    return store.cursor().execute(
        "SELECT item_id, l1, l2 FROM items WHERE dataset = ? ORDER BY item_id", [dataset]
    ).df()


def item_titles(store: Store, dataset: str) -> dict[str, str | None]:
    """item_id -> title of every item of a dataset."""
    rows = store.cursor().execute(
        "SELECT item_id, title FROM items WHERE dataset = ?", [dataset]
    ).fetchall()
    return dict(rows)


def interaction_reviews(store: Store, dataset: str) -> pd.DataFrame:
    """Every review of a dataset (every split), each user's in time order (no time first,
    then file order): columns review_id, user_id, item_id, rating, ts, split, row_number,
    text."""
    return store.cursor().execute(
        """SELECT review_id, user_id, item_id, rating, ts, split, row_number, text
           FROM reviews WHERE dataset = ? ORDER BY user_id, ts NULLS FIRST, row_number""",
        [dataset],
    ).df()
