"""Bringing a version's vectors of a dataset up to date after an append, without retraining.

What a version lacks (``missing_reviews``: reviews with no vector of it) is exported for the
update job, which embeds only those. ``write_update`` then stores, in one transaction, the
new review vectors and head probabilities, the recomputed vectors of the items they touch,
and the touched users' new profile rows (``profiles.incremental`` computes them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from mgi_core.store import Store
from mgi_core.store.embeddings import _read_ids_and_matrix, item_table, review_table
from mgi_core.store.profiles import (
    PROFILE_COLUMNS,
    compact_vector_rows,
    profile_vector_table,
)
from mgi_core.store.sql import quote_literal


def _missing_sql(d: int) -> str:
    return (f"FROM reviews r WHERE r.dataset = ? AND NOT EXISTS (SELECT 1 FROM "
            f"{review_table(d)} e WHERE e.version = ? AND e.dataset = r.dataset "
            "AND e.review_id = r.review_id)")


def missing_count(store: Store, version: str, dataset: str, d: int) -> int:
    """How many reviews of ``dataset`` have no ``version`` vector (appended since)."""
    return int(store.cursor().execute(f"SELECT count(*) {_missing_sql(d)}",
                                      [dataset, version]).fetchall()[0][0])


def sets_behind(store: Store, dataset: str) -> dict[str, int]:
    """version -> how many reviews of ``dataset`` it has not embedded, from the stored
    counts (an embedding set's, kept by every load, update and forget, against the
    dataset's): one small join, not a scan of the vectors, for a page that asks each run."""
    rows = store.cursor().execute(
        """SELECT e.version, d.n_reviews - e.n_reviews FROM embedding_sets e
           JOIN datasets d ON d.name = e.dataset
           WHERE e.dataset = ? AND d.n_reviews > e.n_reviews ORDER BY e.version""",
        [dataset]).fetchall()
    return {str(v): int(n) for v, n in rows}


def export_missing(store: Store, version: str, dataset: str, d: int, path: Path) -> int:
    """The reviews of ``dataset`` with no ``version`` vector, as a job snapshot (the columns
    of ``datasets.SNAPSHOT_COLUMNS``), plus the items with neither a ``version`` vector nor
    a train review (a title-only vector is made for them): rows with a NULL review_id.
    Returns the number of reviews."""
    store.cursor().execute(
        f"""COPY (
                SELECT r.review_id, r.user_id, r.item_id, r.text, r.rating, r.ts, r.row_number,
                       r.split, i.title AS item_title, i.category, i.l1, i.l2, i.l3
                FROM reviews r LEFT JOIN items i ON i.dataset = r.dataset
                                                AND i.item_id = r.item_id
                WHERE r.review_id IN (SELECT r.review_id {_missing_sql(d)})
                ORDER BY r.review_id
            ) TO {quote_literal(path)} (FORMAT parquet)""",
        [dataset, version],
    )
    return missing_count(store, version, dataset, d)


def reviews_touched(store: Store, dataset: str, review_ids: Sequence[int]) -> pd.DataFrame:
    """user_id, item_id of every review (any split) of the users who wrote one of
    ``review_ids``: the users an update builds again, and the items it recomputes."""
    return store.cursor().execute(
        """SELECT r.user_id, r.item_id FROM reviews r
           WHERE r.dataset = ? AND r.user_id IN (
               SELECT user_id FROM reviews WHERE dataset = ?
               AND review_id IN (SELECT unnest(?::BIGINT[])))""",
        [dataset, dataset, [int(r) for r in review_ids]],
    ).df()


def items_needing_title_vectors(store: Store, version: str, dataset: str, d: int) -> list[str]:
    """Items of ``dataset`` with a title but no train review and no ``version`` vector
    (appended with held-out reviews only): the update job embeds their title."""
    rows = store.cursor().execute(
        f"""SELECT i.item_id FROM items i
            WHERE i.dataset = ? AND i.title IS NOT NULL
              AND NOT EXISTS (SELECT 1 FROM reviews r WHERE r.dataset = i.dataset
                              AND r.item_id = i.item_id AND r.split = 'train')
              AND NOT EXISTS (SELECT 1 FROM {item_table(d)} e WHERE e.version = ?
                              AND e.dataset = i.dataset AND e.item_id = i.item_id)
            ORDER BY i.item_id""",
        [dataset, version]).fetchall()
    return [i for (i,) in rows]


def items_whose_train_changed(store: Store, version: str, dataset: str, d: int,
                              items: Sequence[str]) -> list[str]:
    """Those of ``items`` whose number of train reviews differs from the one their
    ``version`` vector was made from (or that have no vector). Nothing leaves ``train``, so
    an item's train reviews changed exactly when their number did."""
    rows = store.cursor().execute(
        f"""WITH wanted AS (SELECT unnest(?::VARCHAR[]) AS item_id),
                 now AS (SELECT w.item_id, count(r.review_id) AS n FROM wanted w
                         LEFT JOIN reviews r ON r.dataset = ? AND r.item_id = w.item_id
                                            AND r.split = 'train'
                         GROUP BY w.item_id)
            SELECT now.item_id FROM now LEFT JOIN {item_table(d)} e
              ON e.version = ? AND e.dataset = ? AND e.item_id = now.item_id
            WHERE e.item_id IS NULL OR e.n_train_reviews <> now.n
            ORDER BY now.item_id""",
        [[str(i) for i in items], dataset, version, dataset]).fetchall()
    return [i for (i,) in rows]


def train_reviews_of_users(store: Store, dataset: str, users: Sequence[str]) -> pd.DataFrame:
    """The train reviews of ``users`` with item levels, in review_id order (the columns of
    ``profiles.train_reviews``)."""
    return store.cursor().execute(
        """SELECT r.review_id, r.user_id, r.item_id, r.text, r.rating, r.ts, r.split,
                  i.l1, i.l2, i.l3
           FROM reviews r LEFT JOIN items i ON i.dataset = r.dataset AND i.item_id = r.item_id
           WHERE r.dataset = ? AND r.split = 'train'
             AND r.user_id IN (SELECT unnest(?::VARCHAR[]))
           ORDER BY r.review_id""",
        [dataset, [str(u) for u in users]],
    ).df()


def train_reviews_of_items(store: Store, dataset: str,
                           items: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(review_ids, item_ids) of the train reviews of ``items``, in review_id order."""
    rows = store.cursor().execute(
        """SELECT review_id, item_id FROM reviews
           WHERE dataset = ? AND split = 'train' AND item_id IN (SELECT unnest(?::VARCHAR[]))
           ORDER BY review_id""",
        [dataset, [str(i) for i in items]],
    ).fetchall()
    return (np.array([r for r, _ in rows], dtype=np.int64),
            np.array([i for _, i in rows], dtype=object))


def stored_vectors_of(store: Store, version: str, dataset: str, d: int,
                      review_ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """(review_ids, (n, d)) of the stored ``version`` vectors among ``review_ids``."""
    ids = [int(r) for r in review_ids]
    if not ids:
        return np.zeros(0, np.int64), np.zeros((0, d), np.float32)
    with store.reader() as cur:
        return _read_ids_and_matrix(
            cur,
            f"SELECT review_id, embedding FROM {review_table(d)} WHERE version = ? AND "
            "dataset = ? AND review_id IN (SELECT unnest(?::BIGINT[])) ORDER BY review_id",
            [version, dataset, ids], "review_id", d)


def item_vector_ids(store: Store, version: str, dataset: str, d: int) -> set[str]:
    """The items that have a ``version`` vector on ``dataset``."""
    rows = store.cursor().execute(
        f"SELECT item_id FROM {item_table(d)} WHERE version = ? AND dataset = ?",
        [version, dataset]).fetchall()
    return {i for (i,) in rows}


def stored_head_probs(store: Store, version: str, dataset: str,
                      review_ids: Sequence[int]) -> dict[str, dict[int, list[float]]]:
    """task -> review_id -> probabilities, for the stored ``review_ids``."""
    rows = store.cursor().execute(
        "SELECT task, review_id, probs FROM review_head_probs WHERE version = ? AND "
        "dataset = ? AND review_id IN (SELECT unnest(?::BIGINT[]))",
        [version, dataset, [int(r) for r in review_ids]]).fetchall()
    out: dict[str, dict[int, list[float]]] = {}
    for task, review_id, probs in rows:
        out.setdefault(task, {})[int(review_id)] = probs
    return out


@dataclass
class VectorUpdate:
    """What one update writes for (version, dataset).

    Attributes:
        review_parquet: the new review vectors (review_id, embedding); rows the version
            already has are skipped, so writing an update twice changes nothing.
        head_probs_parquet: their head probabilities (review_id, task, probs), or None.
        items: item_id, n_train_reviews, vector (each (d,)): replaces those items' vectors.
        users: the users whose profile rows ``profile_rows`` / ``profile_vectors`` replace
            (None: the version has no stored profiles of the dataset, none are written).
        profile_rows: ``PROFILE_COLUMNS``; ``vector_row`` indexes ``profile_vectors``.
        members: the touched users' train reviews with their interest.
        keywords: (user_id, interest, keywords) of the other users' interests, ranked again
            against the new corpus (``profiles.incremental``).
    """

    review_parquet: Path
    head_probs_parquet: Path | None
    items: pd.DataFrame
    users: list[str] | None = None
    profile_rows: pd.DataFrame | None = None
    profile_vectors: np.ndarray | None = None
    members: pd.DataFrame | None = None
    keywords: pd.DataFrame | None = None


def _vector_table(ids: pa.Array, id_name: str, vectors: np.ndarray, d: int,
                  **extra: pa.Array) -> pa.Table:
    flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1))
    return pa.table({id_name: ids, **extra,
                     "embedding": pa.FixedSizeListArray.from_arrays(flat, d)})


def write_update(store: Store, version: str, dataset: str, d: int,
                 update: VectorUpdate) -> int:
    """Store an update in one transaction; returns the review vectors added."""
    items = update.items
    item_rows = _vector_table(
        pa.array(items["item_id"].astype(str).tolist(), pa.string()), "item_id",
        np.stack(items["vector"].to_list()) if len(items) else np.zeros((0, d)), d,
        n_train_reviews=pa.array(items["n_train_reviews"].astype("int64").tolist(), pa.int64()))
    with store.transaction() as tx:
        before = tx.execute(f"SELECT count(*) FROM {review_table(d)} WHERE version = ? AND "
                            "dataset = ?", [version, dataset]).fetchall()[0][0]
        tx.execute(
            f"""INSERT INTO {review_table(d)}
                SELECT ?, ?, n.review_id, n.embedding::FLOAT[{d}]
                FROM read_parquet({quote_literal(update.review_parquet)}) n
                WHERE NOT EXISTS (SELECT 1 FROM {review_table(d)} e WHERE e.version = ?
                                  AND e.dataset = ? AND e.review_id = n.review_id)""",
            [version, dataset, version, dataset])
        if update.head_probs_parquet is not None:
            tx.execute(
                f"""INSERT INTO review_head_probs
                    SELECT ?, ?, n.review_id, n.task, n.probs
                    FROM read_parquet({quote_literal(update.head_probs_parquet)}) n
                    WHERE NOT EXISTS (SELECT 1 FROM review_head_probs h WHERE h.version = ?
                                      AND h.dataset = ? AND h.review_id = n.review_id
                                      AND h.task = n.task)""",
                [version, dataset, version, dataset])
        tx.register("_mgi_item_update", item_rows)
        tx.execute(f"DELETE FROM {item_table(d)} WHERE version = ? AND dataset = ? AND "
                   "item_id IN (SELECT item_id FROM _mgi_item_update)", [version, dataset])
        tx.execute(f"INSERT INTO {item_table(d)} SELECT ?, ?, item_id, n_train_reviews, "
                   f"embedding::FLOAT[{d}] FROM _mgi_item_update", [version, dataset])
        tx.unregister("_mgi_item_update")
        if update.users is not None and update.profile_rows is not None:
            _replace_user_profiles(tx, version, dataset, d, update)
        after = tx.execute(f"SELECT count(*) FROM {review_table(d)} WHERE version = ? AND "
                           "dataset = ?", [version, dataset]).fetchall()[0][0]
        n_items = tx.execute(f"SELECT count(*) FROM {item_table(d)} WHERE version = ? AND "
                             "dataset = ?", [version, dataset]).fetchall()[0][0]
        tx.execute("UPDATE embedding_sets SET n_reviews = ?, n_items = ? WHERE version = ? "
                   "AND dataset = ?", [after, n_items, version, dataset])
    return int(after - before)


def _replace_user_profiles(tx, version: str, dataset: str, d: int,
                           update: VectorUpdate) -> None:
    """The users' profile rows and vectors replaced, then every vector numbered again."""
    table = profile_vector_table(d)
    tx.execute("DELETE FROM user_profiles WHERE version = ? AND dataset = ? AND user_id IN "
               "(SELECT unnest(?::VARCHAR[]))", [version, dataset, update.users])
    compact_vector_rows(tx, version, dataset, d)
    start = tx.execute("SELECT count(*) FROM user_profiles WHERE version = ? AND dataset = ?",
                       [version, dataset]).fetchall()[0][0]
    rows = update.profile_rows.loc[:, list(PROFILE_COLUMNS)].copy()
    local = rows["vector_row"].to_numpy()
    rows["vector_row"] = local + start
    rows.insert(0, "dataset", dataset)
    rows.insert(0, "version", version)
    vectors = update.profile_vectors[local]
    vec_rows = pa.table({
        "vector_row": pa.array((local + start).astype(np.int64)),
        "vector": pa.FixedSizeListArray.from_arrays(
            pa.array(np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1)), d)})
    tx.register("_mgi_profile_update_rows", rows)
    tx.execute("INSERT INTO user_profiles SELECT * FROM _mgi_profile_update_rows")
    tx.unregister("_mgi_profile_update_rows")
    tx.register("_mgi_profile_update_vecs", vec_rows)
    tx.execute(f"INSERT INTO {table} SELECT ?, ?, vector_row, vector::FLOAT[{d}] "
               "FROM _mgi_profile_update_vecs", [version, dataset])
    tx.unregister("_mgi_profile_update_vecs")
    compact_vector_rows(tx, version, dataset, d)
    tx.execute("DELETE FROM profile_interest_members WHERE version = ? AND dataset = ? AND "
               "user_id IN (SELECT unnest(?::VARCHAR[]))", [version, dataset, update.users])
    if update.members is not None and len(update.members):
        tx.register("_mgi_profile_update_members", update.members)
        tx.execute("INSERT INTO profile_interest_members SELECT ?, ?, user_id, review_id, "
                   "interest FROM _mgi_profile_update_members", [version, dataset])
        tx.unregister("_mgi_profile_update_members")
    if update.keywords is not None and len(update.keywords):
        replace_keywords(tx, version, dataset, update.keywords)


def replace_keywords(tx, version: str, dataset: str, keywords: pd.DataFrame) -> None:
    """Set the keywords of interest rows: ``keywords`` has user_id, interest, keywords."""
    frame = pd.DataFrame({"user_id": keywords["user_id"].astype(str),
                          "key": keywords["interest"].astype(str),
                          "keywords": keywords["keywords"]})
    tx.register("_mgi_profile_keywords", frame)
    tx.execute(
        """UPDATE user_profiles SET keywords = k.keywords::VARCHAR[]
           FROM _mgi_profile_keywords k
           WHERE user_profiles.version = ? AND user_profiles.dataset = ?
             AND user_profiles.level = 'interest' AND user_profiles.user_id = k.user_id
             AND user_profiles.key = k.key""", [version, dataset])
    tx.unregister("_mgi_profile_keywords")


def interest_texts(store: Store, version: str, dataset: str, chunk: int = 50_000):
    """The texts of every user's fine interests, as (user_id, interest, text) Arrow batches
    in user order (``profile_interest_members`` joined to the reviews), for ranking the
    keywords again against a new corpus."""
    with store.reader() as cur:
        yield from cur.sql(
            """SELECT m.user_id, m.interest, r.text FROM profile_interest_members m
               JOIN reviews r ON r.review_id = m.review_id
               WHERE m.version = ? AND m.dataset = ? ORDER BY m.user_id, m.interest""",
            params=[version, dataset]).to_arrow_reader(chunk)
