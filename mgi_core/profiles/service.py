"""Profiles in and out of the store: compute from a version's train embeddings, save, read."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mgi_core.config import ProfileConfig
from mgi_core.data.datasets import get_dataset, vector_tables
from mgi_core.errors import UnknownUserError
from mgi_core.profiles.builder import UserProfiles, build_user_profiles
from mgi_core.store import Store
from mgi_core.store.embeddings import review_vectors
from mgi_core.store.versions import get_version


def train_reviews(store: Store, dataset: str) -> pd.DataFrame:
    """The train split of a dataset with item levels, in review_id order."""
    return (
        store.cursor()
        .execute(
            """SELECT r.review_id, r.user_id, r.item_id, r.text, r.rating, r.ts, r.split,
                  i.l1, i.l2, i.l3
           FROM reviews r LEFT JOIN items i ON i.dataset = r.dataset AND i.item_id = r.item_id
           WHERE r.dataset = ? AND r.split = 'train' ORDER BY r.review_id""",
            [dataset],
        )
        .df()
    )


def _head_probs(
    store: Store,
    version: str,
    dataset: str,
    review_ids: np.ndarray,
    heads: dict[str, list[str]] | None,
) -> dict[str, tuple[list[str], np.ndarray]]:
    out = {}
    for task, labels in (heads or {}).items():
        if task not in ("category", "subcategory"):
            continue
        rows = (
            store.cursor()
            .execute(
                "SELECT review_id, probs FROM review_head_probs WHERE version = ? AND dataset = ? "
                "AND task = ?",
                [version, dataset, task],
            )
            .fetchall()
        )
        if not rows:
            continue
        by_id = {r: p for r, p in rows}
        probs = np.array(
            [by_id.get(int(r), [0.0] * len(labels)) for r in review_ids], dtype=np.float32
        )
        out[task] = (labels, probs)
    return out


def load_train_embeddings(
    store: Store, dataset: str, version: str
) -> tuple[pd.DataFrame, np.ndarray]:
    """The dataset's train reviews and their ``version`` embeddings, row-aligned."""
    get_dataset(store, dataset)
    reviews = train_reviews(store, dataset)
    ids, vecs = review_vectors(store, version, dataset, split="train")
    position = {int(r): k for k, r in enumerate(ids)}
    return reviews, vecs[[position[int(r)] for r in reviews["review_id"]]]


def compute_profiles(
    store: Store,
    dataset: str,
    version: str,
    config: ProfileConfig | None = None,
    embeddings: tuple[pd.DataFrame, np.ndarray] | None = None,
) -> UserProfiles:
    """Profiles of every user of ``dataset`` under ``version`` (train reviews only)."""
    info = get_version(store, version)
    reviews, vectors = embeddings or load_train_embeddings(store, dataset, version)
    heads = info.get("heads") or {}
    probs = _head_probs(store, version, dataset, reviews["review_id"].to_numpy(), heads)
    return build_user_profiles(reviews, vectors, config, probs, version, dataset)


def save_profiles(store: Store, profiles: UserProfiles) -> None:
    """Replace the stored profiles of (version, dataset) in one transaction."""
    d = profiles.vectors.shape[1]
    table = f"user_profile_vectors_{int(d)}"
    rows = profiles.rows.copy()
    rows.insert(0, "dataset", profiles.dataset)
    rows.insert(0, "version", profiles.version)
    import pyarrow as pa

    flat = pa.array(profiles.vectors.reshape(-1))
    vec_table = pa.table(
        {
            "version": pa.array([profiles.version] * len(profiles.vectors)),
            "dataset": pa.array([profiles.dataset] * len(profiles.vectors)),
            "vector_row": pa.array(np.arange(len(profiles.vectors), dtype=np.int64)),
            "vector": pa.FixedSizeListArray.from_arrays(flat, d),
        }
    )
    with store.transaction() as tx:
        tx.execute(
            f"""CREATE TABLE IF NOT EXISTS {table} (version VARCHAR NOT NULL,
                dataset VARCHAR NOT NULL, vector_row BIGINT NOT NULL, vector FLOAT[{d}])"""
        )
        for t in ("user_profiles", table):
            tx.execute(
                f"DELETE FROM {t} WHERE version = ? AND dataset = ?",
                [profiles.version, profiles.dataset],
            )
        tx.register("_mgi_profile_rows", rows)
        tx.execute(
            """INSERT INTO user_profiles SELECT version, dataset, user_id, level, key, n_reviews,
                   share, sentiment, head_prob, affinity, keywords, review_ids, cold, vector_row
               FROM _mgi_profile_rows"""
        )
        tx.unregister("_mgi_profile_rows")
        tx.register("_mgi_profile_vecs", vec_table)
        tx.execute(
            f"INSERT INTO {table} SELECT version, dataset, vector_row, vector::FLOAT[{d}] "
            "FROM _mgi_profile_vecs"
        )
        tx.unregister("_mgi_profile_vecs")


def _has_profiles(store: Store, dataset: str, version: str) -> bool:
    return bool(
        store.cursor()
        .execute(
            "SELECT count(*) FROM user_profiles WHERE version = ? AND dataset = ?",
            [version, dataset],
        )
        .fetchone()[0]
    )


def ensure_profiles(store: Store, dataset: str, version: str) -> None:
    """Compute and store profiles once per (version, dataset)."""
    if not _has_profiles(store, dataset, version):
        save_profiles(store, compute_profiles(store, dataset, version))


def last_liked_vectors(
    reviews: pd.DataFrame, vectors: np.ndarray, config: ProfileConfig | None = None
) -> dict[str, np.ndarray]:
    """Each user's latest liked train review vector (latest review when none is liked).

    The same rule as ``build_user_profiles``: reviews ordered by (user, ts), missing times
    first, ties in row order. ``reviews`` and ``vectors`` (n, d) are row-aligned.
    """
    config = config or ProfileConfig()
    frame = pd.DataFrame({
        "user_id": reviews["user_id"].to_numpy(),
        "ts": reviews["ts"].to_numpy(),
        "liked": reviews["rating"].to_numpy(dtype=np.float64) >= config.like_threshold,
        "row": np.arange(len(reviews)),
    }).sort_values(["user_id", "ts"], na_position="first", kind="stable")
    last = frame.groupby("user_id", sort=False)["row"].last()
    last_liked = frame[frame["liked"]].groupby("user_id", sort=False)["row"].last()
    rows = last_liked.reindex(last.index).fillna(last).astype(int)
    return {user: vectors[row] for user, row in rows.items()}


def stored_profiles(
    store: Store,
    dataset: str,
    version: str,
    embeddings: tuple[pd.DataFrame, np.ndarray] | None = None,
) -> UserProfiles | None:
    """The stored profiles of (version, dataset) as ``UserProfiles``; None when not stored.

    Rows come back in ``vector_row`` order, as ``build_user_profiles`` made them, and
    ``last_liked`` (not stored) is derived from the train embeddings.
    """
    if not _has_profiles(store, dataset, version):
        return None
    reviews, vectors = embeddings or load_train_embeddings(store, dataset, version)
    d = int(vectors.shape[1])
    table = f"user_profile_vectors_{d}"
    if table not in vector_tables(store.cursor()):
        return None
    rows = (
        store.cursor()
        .execute(
            """SELECT user_id, level, key, n_reviews, share, sentiment, head_prob, affinity,
                  keywords, review_ids, cold, vector_row
           FROM user_profiles WHERE version = ? AND dataset = ? ORDER BY vector_row""",
            [version, dataset],
        )
        .df()
    )
    with store.reader() as cur:
        arrow = cur.sql(
            f"SELECT vector_row, vector FROM {table} WHERE version = ? AND dataset = ? "
            "ORDER BY vector_row",
            params=[version, dataset],
        ).to_arrow_table()
    n = arrow.num_rows
    complete = np.arange(n)
    if not (np.array_equal(arrow.column("vector_row").to_numpy(), complete)
            and np.array_equal(rows["vector_row"].to_numpy(), complete)):
        return None  # not one complete set: computed again by the caller
    flat = arrow.column("vector").combine_chunks().values.to_numpy(zero_copy_only=False)
    matrix = flat.astype(np.float32, copy=False).reshape(n, d)  # (m, d)
    return UserProfiles(version, dataset, rows, matrix, last_liked_vectors(reviews, vectors))


def load_profiles(
    store: Store,
    dataset: str,
    version: str,
    embeddings: tuple[pd.DataFrame, np.ndarray] | None = None,
) -> UserProfiles:
    """The profiles of (version, dataset): the stored ones, else computed and stored now.

    ``embeddings``: the train reviews and their vectors when the caller has them already
    (``load_train_embeddings``), so they are read once.
    """
    embeddings = embeddings or load_train_embeddings(store, dataset, version)
    profiles = stored_profiles(store, dataset, version, embeddings)
    if profiles is None:
        profiles = compute_profiles(store, dataset, version, embeddings=embeddings)
        if not store.read_only:  # a read-only store ranks with them all the same
            save_profiles(store, profiles)
    return profiles


def user_profile(store: Store, dataset: str, version: str, user_id: str) -> dict[str, Any]:
    """One user's stored profile as plain data (computes all profiles on first use).

    Raises:
        UnknownUserError: the user has no train reviews in the dataset.
    """
    ensure_profiles(store, dataset, version)
    rows = (
        store.cursor()
        .execute(
            """SELECT level, key, n_reviews, share, sentiment, head_prob, affinity, keywords,
                  review_ids, cold
           FROM user_profiles WHERE version = ? AND dataset = ? AND user_id = ?
           ORDER BY level, affinity DESC NULLS LAST, key""",
            [version, dataset, user_id],
        )
        .fetchall()
    )
    if not rows:
        raise UnknownUserError(
            f"User {user_id!r} has no training reviews in dataset {dataset!r}. Check the id "
            "(the Profiles page lists users), or pick another dataset."
        )
    names = [
        "level",
        "key",
        "n_reviews",
        "share",
        "sentiment",
        "head_prob",
        "affinity",
        "keywords",
        "review_ids",
        "cold",
    ]
    items = [dict(zip(names, r, strict=True)) for r in rows]
    texts = dict(
        store.cursor()
        .execute(
            "SELECT review_id, text FROM reviews WHERE dataset = ? AND review_id IN "
            "(SELECT unnest(review_ids) FROM user_profiles WHERE version = ? AND dataset = ? "
            "AND user_id = ?)",
            [dataset, version, dataset, user_id],
        )
        .fetchall()
    )
    overall = next(i for i in items if i["level"] == "overall")
    return {
        "user_id": user_id,
        "version": version,
        "dataset": dataset,
        "cold": bool(overall["cold"]),
        "n_train_reviews": overall["n_reviews"],
        "mean_sentiment": overall["sentiment"],
        "l1": [_cat(i) for i in items if i["level"] == "l1"],
        "l2": [_cat(i) for i in items if i["level"] == "l2"],
        "interests": [
            {
                "interest": int(i["key"]),
                "n_reviews": i["n_reviews"],
                "share": i["share"],
                "sentiment": i["sentiment"],
                "keywords": list(i["keywords"] or []),
                "representative_reviews": [
                    {"review_id": r, "text": texts.get(r, "")} for r in (i["review_ids"] or [])
                ],
            }
            for i in sorted(
                (i for i in items if i["level"] == "interest"), key=lambda i: -i["n_reviews"]
            )
        ],
    }


def _cat(row: dict[str, Any]) -> dict[str, Any]:
    return {
        k: row[k] for k in ("key", "n_reviews", "share", "sentiment", "head_prob", "affinity")
    } | {"category": row["key"]}
