"""The dataset registry and its rows: ``datasets``, ``reviews``, ``items``, ``ingest_rejects``.

Also :func:`purge_dataset`, which knows every table that holds rows of one dataset, and the
snapshot export a training job reads (a Parquet file of the reviews with their item levels).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb

from mgi_core.errors import DatasetNotFoundError
from mgi_core.store import Store
from mgi_core.store.embeddings import vector_tables
from mgi_core.store.next_interest import purge_next_interest_metrics
from mgi_core.store.sql import quote_literal

DATASET_COLUMNS = (
    "name", "file_name", "n_reviews", "n_users", "n_items", "n_l1", "n_l2", "n_l3",
    "n_rejected", "has_timestamp", "encoding", "created_at",
)

# Tables holding rows of one dataset, by their ``dataset`` column (the registry row itself is
# ``datasets.name``). Vectors live in per-dimension tables (``vector_tables``), also purged.
PURGED_TABLES = (
    "reviews", "items", "ingest_rejects", "embedding_sets", "review_head_probs",
    "user_profiles", "evaluations", "per_user_metrics", "fusion_weights", "jobs",
    "search_studies", "search_trials", "training_ablations", "dataset_appends",
    "profile_interest_members",
)
# Tables with a ``dataset`` column that a purge keeps: a model version trained on a dataset
# outlives it (its row and training log stay; ``versions.retire_unembedded`` retires it), and
# so does the record that it was trained with data since forgotten (``forgotten_data``).
KEPT_TABLES = ("model_versions", "forgotten_data")

SNAPSHOT_COLUMNS = (
    "review_id", "user_id", "item_id", "text", "rating", "ts", "row_number", "split",
    "item_title", "category", "l1", "l2", "l3",
)


def list_datasets(store: Store) -> list[dict[str, Any]]:
    """Every dataset's registry row (``DATASET_COLUMNS``), newest first."""
    cur = store.cursor().execute(
        f"SELECT {', '.join(DATASET_COLUMNS)} FROM datasets ORDER BY created_at DESC, name"
    )
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def dataset_names(store: Store) -> list[str]:
    """The names of every dataset, newest first."""
    return [d["name"] for d in list_datasets(store)]


def get_dataset(store: Store, name: str) -> dict[str, Any]:
    """One dataset's registry row.

    Raises:
        DatasetNotFoundError: no dataset of that name.
    """
    for row in list_datasets(store):
        if row["name"] == name:
            return row
    known = ", ".join(dataset_names(store)) or "none yet"
    raise DatasetNotFoundError(
        f"No dataset named {name!r} (known: {known}). Ingest one first: "
        "python -m mgi_core ingest FILE --name NAME, or the Data page."
    )


def profile_half_life(store: Store, name: str) -> float | None:
    """The recency half-life (days) of dataset ``name``'s profiles; None: no decay."""
    rows = store.cursor().execute(
        "SELECT profile_half_life_days FROM datasets WHERE name = ?", [name]).fetchall()
    if not rows:
        get_dataset(store, name)  # raises DatasetNotFoundError
    return None if rows[0][0] is None else float(rows[0][0])


def set_profile_half_life(store: Store, name: str, days: float | None) -> int:
    """Set dataset ``name``'s profile half-life and drop its stored profiles (every version
    computes them again on next use, with the new weights), in one transaction. Returns the
    number of (version) profile sets dropped."""
    get_dataset(store, name)
    with store.transaction() as tx:
        versions = [v for (v,) in tx.execute(
            "SELECT DISTINCT version FROM user_profiles WHERE dataset = ?", [name]).fetchall()]
        tx.execute("UPDATE datasets SET profile_half_life_days = ? WHERE name = ?",
                   [days, name])
        tx.execute("DELETE FROM user_profiles WHERE dataset = ?", [name])
        tx.execute("DELETE FROM profile_interest_members WHERE dataset = ?", [name])
        for table in vector_tables(tx):
            if table.startswith("user_profile_vectors_"):
                tx.execute(f"DELETE FROM {table} WHERE dataset = ?", [name])
    return len(versions)


def purge_dataset(target: Store | duckdb.DuckDBPyConnection, name: str) -> None:
    """Delete every row of dataset ``name``: its registry row and each table in
    ``PURGED_TABLES`` and ``vector_tables`` (every version's vectors of it).

    Args:
        target: a store (the purge runs in a transaction of its own) or the cursor of a
            transaction the caller holds (to do more in the same transaction).
        name: the dataset; no error when it has no rows.
    """
    if isinstance(target, Store):
        with target.transaction() as tx:
            purge_dataset(tx, name)
        return
    for table in (*vector_tables(target), *PURGED_TABLES):
        target.execute(f"DELETE FROM {table} WHERE dataset = ?", [name])
    purge_next_interest_metrics(target, name)  # a table made on first use
    target.execute("DELETE FROM datasets WHERE name = ?", [name])


def export_reviews_parquet(store: Store, dataset: str, path: Path,
                           splits: tuple[str, ...] | None = None) -> None:
    """Write every review of ``dataset`` (``SNAPSHOT_COLUMNS``: split and item levels
    joined) to the Parquet file ``path``, ordered by review id; only those of ``splits``
    when given (a search's snapshot holds no test review)."""
    only = "" if splits is None else f" AND r.split IN ({', '.join('?' for _ in splits)})"
    store.cursor().execute(
        f"""COPY (
                SELECT r.review_id, r.user_id, r.item_id, r.text, r.rating, r.ts, r.row_number,
                       r.split, i.title AS item_title, i.category, i.l1, i.l2, i.l3
                FROM reviews r LEFT JOIN items i
                  ON i.dataset = r.dataset AND i.item_id = r.item_id
                WHERE r.dataset = ?{only} ORDER BY r.review_id
            ) TO {quote_literal(path)} (FORMAT parquet)""",
        [dataset, *(splits or ())],
    )


def review_checksum(store: Store, dataset: str) -> tuple[int, int | None]:
    """(number of reviews, sum of their row hashes over ids, text, rating and split): the
    same for the same content, whatever the order of the rows (None sum when empty)."""
    row = store.cursor().execute(
        """SELECT count(*), sum(hash(review_id, user_id, item_id, text, rating, split))
           FROM reviews WHERE dataset = ?""",
        [dataset],
    ).fetchone()
    return int(row[0]), (None if row[1] is None else int(row[1]))


def review_batches(store: Store, dataset: str, batch_rows: int = 65_536):
    """``dataset``'s reviews as the snapshot has them (``SNAPSHOT_COLUMNS``), by review id,
    as pyarrow RecordBatches of ``batch_rows`` rows (bounded memory; a cursor of its own)."""
    with store.reader() as cur:
        yield from cur.sql(
            """SELECT r.review_id, r.user_id, r.item_id, r.text, r.rating, r.ts,
                      r.row_number, r.split, i.title AS item_title, i.category, i.l1, i.l2,
                      i.l3
               FROM reviews r LEFT JOIN items i
                 ON i.dataset = r.dataset AND i.item_id = r.item_id
               WHERE r.dataset = ? ORDER BY r.review_id""",
            params=[dataset],
        ).to_arrow_reader(batch_rows)
