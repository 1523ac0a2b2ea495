"""Immutable Parquet snapshots of a dataset, the only thing a training job reads.

DuckDB allows one writer process, so a job in a child process never opens the database:
it reads this file and writes to its own run folder.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from mgi_core.store import Store
from mgi_core.store.datasets import export_reviews_parquet, get_dataset, review_checksum


def export_snapshot(store: Store, dataset: str, path: Path) -> str:
    """Write every review of ``dataset`` with its split and item levels to ``path``.

    The file appears complete or not at all (written beside it, then renamed).

    Returns:
        The data hash: SHA-256 over the snapshot's rows, recorded with each model version.

    Raises:
        DatasetNotFoundError: no dataset of that name.
    """
    get_dataset(store, dataset)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".parquet.tmp")
    export_reviews_parquet(store, dataset, tmp)
    tmp.replace(path)
    return data_hash(store, dataset)


def data_hash(store: Store, dataset: str) -> str:
    """A hash of the dataset's content (ids, text, rating, split), stable across exports."""
    n_reviews, row_hash_sum = review_checksum(store, dataset)
    return hashlib.sha256(f"{n_reviews}:{row_hash_sum}".encode()).hexdigest()[:16]
