"""Vectors in DuckDB: ``FLOAT[d]`` arrays, one table pair per dimension d.

``review_embeddings_<d>(version, dataset, review_id, embedding FLOAT[d])`` and
``item_embeddings_<d>(version, dataset, item_id, n_train_reviews, embedding FLOAT[d])``.
Loaded in bulk from Parquet (Arrow fixed-size lists), never row by row.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import duckdb
import numpy as np

from mgi_core.errors import ModelVersionNotFound
from mgi_core.store import Store
from mgi_core.store.sql import quote_literal

# The per-dimension FLOAT[d] tables: review and item embeddings, user profile vectors.
_VECTOR_TABLE = re.compile(r"(review_embeddings|item_embeddings|user_profile_vectors)_[0-9]+")


def _dim(d: int) -> int:
    d = int(d)
    if not 1 <= d <= 8192:
        raise ValueError(f"embedding dimension {d} out of range")
    return d


def review_table(d: int) -> str:
    return f"review_embeddings_{_dim(d)}"


def item_table(d: int) -> str:
    return f"item_embeddings_{_dim(d)}"


def ensure_tables(cur: duckdb.DuckDBPyConnection, d: int) -> None:
    d = _dim(d)
    cur.execute(
        f"""CREATE TABLE IF NOT EXISTS {review_table(d)} (
                version VARCHAR NOT NULL, dataset VARCHAR NOT NULL, review_id BIGINT NOT NULL,
                embedding FLOAT[{d}] NOT NULL)"""
    )
    cur.execute(
        f"""CREATE TABLE IF NOT EXISTS {item_table(d)} (
                version VARCHAR NOT NULL, dataset VARCHAR NOT NULL, item_id VARCHAR NOT NULL,
                n_train_reviews BIGINT NOT NULL, embedding FLOAT[{d}] NOT NULL)"""
    )


def vector_tables(cur: duckdb.DuckDBPyConnection) -> list[str]:
    """The per-dimension FLOAT[d] tables of the store (embeddings, profile vectors), by name."""
    names = cur.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
        "AND schema_name = current_schema() ORDER BY table_name"
    ).fetchall()
    return [n for (n,) in names if _VECTOR_TABLE.fullmatch(n)]


def load_embedding_set(
    cur: duckdb.DuckDBPyConnection, version: str, dataset: str, d: int,
    reviews_parquet: Path, items_parquet: Path,
) -> tuple[int, int]:
    """Replace the vectors of (version, dataset) with those in the two Parquet files.

    Runs on the caller's cursor (inside its transaction). Returns (n_reviews, n_items).
    """
    ensure_tables(cur, d)
    for table in (review_table(d), item_table(d)):
        cur.execute(f"DELETE FROM {table} WHERE version = ? AND dataset = ?", [version, dataset])
    cur.execute(
        f"""INSERT INTO {review_table(d)}
            SELECT ?, ?, review_id, embedding::FLOAT[{d}]
            FROM read_parquet({quote_literal(reviews_parquet)})""",
        [version, dataset],
    )
    cur.execute(
        f"""INSERT INTO {item_table(d)}
            SELECT ?, ?, item_id, n_train_reviews, embedding::FLOAT[{d}]
            FROM read_parquet({quote_literal(items_parquet)})""",
        [version, dataset],
    )
    n_reviews = cur.execute(
        f"SELECT count(*) FROM {review_table(d)} WHERE version = ? AND dataset = ?",
        [version, dataset],
    ).fetchone()[0]
    n_items = cur.execute(
        f"SELECT count(*) FROM {item_table(d)} WHERE version = ? AND dataset = ?",
        [version, dataset],
    ).fetchone()[0]
    cur.execute("DELETE FROM embedding_sets WHERE version = ? AND dataset = ?",
                [version, dataset])
    cur.execute(
        "INSERT INTO embedding_sets (version, dataset, dim, n_reviews, n_items) "
        "VALUES (?, ?, ?, ?, ?)",
        [version, dataset, d, n_reviews, n_items],
    )
    return int(n_reviews), int(n_items)


def item_means(item_ids: np.ndarray, vectors: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The rule of an item's vector, from its train review vectors: (item ids sorted,
    their counts, (k, d) float32 normalised means), each item's reviews averaged in the
    order given. The embedding job, an incremental update and a forget all use it, so their
    item vectors agree."""
    keys = np.asarray(item_ids).astype(str)
    d = vectors.shape[1] if vectors.ndim == 2 else 0
    order = np.argsort(keys, kind="stable")
    keys, vectors = keys[order], vectors[order]
    uniq, starts, counts = np.unique(keys, return_index=True, return_counts=True)
    means = np.empty((len(uniq), d), np.float32)
    for k, (s, n) in enumerate(zip(starts, counts, strict=True)):
        v = vectors[s:s + n].mean(axis=0)
        means[k] = v / max(np.linalg.norm(v), 1e-12)
    return uniq, counts, means


def embedding_dim(store: Store, version: str, dataset: str) -> int:
    row = store.cursor().execute(
        "SELECT dim FROM embedding_sets WHERE version = ? AND dataset = ?", [version, dataset]
    ).fetchone()
    if row is None:
        raise ModelVersionNotFound(
            f"Version {version!r} has no embeddings for dataset {dataset!r}. Train it on that "
            "dataset (Train page or python -m mgi_core train), or embed it with 'base'."
        )
    return int(row[0])


def embedded_datasets(store: Store) -> dict[str, list[str]]:
    """version → the datasets it has embedded, oldest embedding first (a few rows)."""
    rows = store.cursor().execute(
        "SELECT version, dataset FROM embedding_sets ORDER BY created_at, dataset"
    ).fetchall()
    out: dict[str, list[str]] = {}
    for version, dataset in rows:
        out.setdefault(version, []).append(dataset)
    return out


def review_vectors(store: Store, version: str, dataset: str, split: str | None = None,
                   users: tuple[str, str] | None = None,
                   review_ids: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(review_ids (n,), vectors (n, d)) for a version on a dataset, by review_id, read in
    chunks: optionally one split, the users from ``users[0]`` to ``users[1]`` (inclusive),
    or only the reviews in ``review_ids``."""
    d = embedding_dim(store, version, dataset)
    sql = (
        f"SELECT e.review_id, e.embedding FROM {review_table(d)} e "
        "JOIN reviews r ON r.review_id = e.review_id "
        "WHERE e.version = ? AND e.dataset = ?"
    )
    params: list[object] = [version, dataset]
    if split is not None:
        sql += " AND r.split = ?"
        params.append(split)
    if users is not None:
        sql += " AND r.user_id BETWEEN ? AND ?"
        params += [users[0], users[1]]
    if review_ids is not None:
        ids = [int(r) for r in review_ids]
        if not ids:
            return np.zeros(0, dtype=np.int64), np.zeros((0, d), dtype=np.float32)
        sql += (" AND e.review_id BETWEEN ? AND ? "
                "AND e.review_id IN (SELECT unnest(?::BIGINT[]))")
        params += [min(ids), max(ids), ids]
    with store.reader() as cur:
        return _read_ids_and_matrix(cur, sql + " ORDER BY e.review_id", params, "review_id", d)


def item_vectors(store: Store, version: str, dataset: str) -> tuple[np.ndarray, np.ndarray]:
    """(item_ids (n,), vectors (n, d)): each item's mean train-review embedding."""
    d = embedding_dim(store, version, dataset)
    with store.reader() as cur:
        return _read_ids_and_matrix(
            cur,
            f"SELECT item_id, embedding FROM {item_table(d)} WHERE version = ? "
            "AND dataset = ? ORDER BY item_id",
            [version, dataset], "item_id", d,
        )


READ_ROWS = 65_536  # vectors per Arrow batch (25 MiB at d = 384)


def _read_ids_and_matrix(
    cur: duckdb.DuckDBPyConnection, sql: str, params: list[object], id_column: str, d: int
) -> tuple[np.ndarray, np.ndarray]:
    """(ids (n,), vectors (n, d) float32) of ``sql``'s rows, read ``READ_ROWS`` at a time
    into one array: memory is the result plus one batch, not the result twice."""
    n = cur.execute(f"SELECT count(*) FROM ({sql})", params).fetchall()[0][0]
    ids: list[np.ndarray] = []
    out = np.empty((n, d), dtype=np.float32)
    at = 0
    for batch in cur.sql(sql, params=params).to_arrow_reader(READ_ROWS):
        batch_ids, vectors = _ids_and_matrix(batch, id_column, d)
        out[at : at + len(vectors)] = vectors
        ids.append(batch_ids)
        at += len(vectors)
    if at != n:  # the reader runs in the same snapshot as the count: a bug if reached
        raise RuntimeError(f"read {at} vectors, expected {n}")
    if not ids:  # no rows: the empty table's own id type
        return _ids_and_matrix(cur.sql(sql, params=params).to_arrow_table(), id_column, d)
    return np.concatenate(ids), out


def _ids_and_matrix(table, id_column: str, d: int) -> tuple[np.ndarray, np.ndarray]:
    """(ids, (n, d) float32) from an Arrow table or record batch with ``embedding``."""
    ids = table.column(id_column).to_numpy(zero_copy_only=False)
    if table.num_rows == 0:
        return ids, np.zeros((0, d), dtype=np.float32)
    emb = table.column("embedding")
    emb = emb.combine_chunks() if hasattr(emb, "combine_chunks") else emb
    values = emb.values.to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    return ids, values.reshape(-1, d)


def vector_batches(store: Store, version: str, dataset: str, kind: str,
                   batch_rows: int = READ_ROWS):
    """A version's stored vectors on a dataset as pyarrow RecordBatches of ``batch_rows``
    rows (a cursor of its own): ``kind`` 'reviews' gives review_id, embedding; 'items'
    gives item_id, n_train_reviews, embedding (``FLOAT[d]``: an Arrow fixed-size list).

    Raises:
        ModelVersionNotFound: no vectors of ``version`` on ``dataset``.
    """
    d = embedding_dim(store, version, dataset)
    if kind == "reviews":
        sql = (f"SELECT review_id, embedding FROM {review_table(d)} "
               "WHERE version = ? AND dataset = ? ORDER BY review_id")
    elif kind == "items":
        sql = (f"SELECT item_id, n_train_reviews, embedding FROM {item_table(d)} "
               "WHERE version = ? AND dataset = ? ORDER BY item_id")
    else:
        raise ValueError(f"kind must be 'reviews' or 'items', not {kind!r}")
    with store.reader() as cur:
        yield from cur.sql(sql, params=[version, dataset]).to_arrow_reader(batch_rows)
