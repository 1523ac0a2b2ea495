"""Immutable Parquet snapshots of a dataset, the only thing a training job reads.

DuckDB allows one writer process, so a job in a child process never opens the database:
it reads this file and writes to its own run folder.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd

from mgi_core.data.datasets import get_dataset
from mgi_core.store import Store

SNAPSHOT_COLUMNS = (
    "review_id", "user_id", "item_id", "text", "rating", "ts", "row_number", "split",
    "item_title", "category", "l1", "l2", "l3",
)


def export_snapshot(store: Store, dataset: str, path: Path) -> str:
    """Write every review of ``dataset`` with its split and item levels to ``path``.

    Returns:
        The data hash: SHA-256 over the snapshot's rows, recorded with each model version.
    """
    get_dataset(store, dataset)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".parquet.tmp")
    store.cursor().execute(
        f"""COPY (
                SELECT r.review_id, r.user_id, r.item_id, r.text, r.rating, r.ts, r.row_number,
                       r.split, i.title AS item_title, i.category, i.l1, i.l2, i.l3
                FROM reviews r LEFT JOIN items i
                  ON i.dataset = r.dataset AND i.item_id = r.item_id
                WHERE r.dataset = ? ORDER BY r.review_id
            ) TO '{_sql_path(tmp)}' (FORMAT parquet)""",
        [dataset],
    )
    tmp.replace(path)
    return data_hash(store, dataset)


def _sql_path(path: Path) -> str:
    return str(path).replace("'", "''")


def data_hash(store: Store, dataset: str) -> str:
    """A hash of the dataset's content (ids, text, rating, split), stable across exports."""
    row = store.cursor().execute(
        """SELECT count(*), sum(hash(review_id, user_id, item_id, text, rating, split))
           FROM reviews WHERE dataset = ?""",
        [dataset],
    ).fetchone()
    return hashlib.sha256(f"{row[0]}:{row[1]}".encode()).hexdigest()[:16]


def read_snapshot(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path)
