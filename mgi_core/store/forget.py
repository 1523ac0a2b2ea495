"""Forgetting a user: every row of one user, found through DuckDB's catalogue, in the
caller's transaction.

``forget_user`` deletes, in the datasets given (or every dataset where the id has rows):

* the rows of every table with a ``user_id`` column equal to the user's id (reviews,
  rejected rows, profiles, per-user metrics, next-interest metrics, and any table added
  later), scoped by its ``dataset`` column when it has one;
* the rows of every table with a ``review_id`` column holding one of the user's review ids
  (review vectors of every version, head probabilities, …) and of every table with a
  ``review_ids`` list naming one;
* the profile vectors of the removed profile rows (``compact_vector_rows`` numbers the rest
  again, so the stored profiles stay one complete set).

What was derived from the user's reviews is brought up to date: each item's review count,
the vector of each item the user reviewed in train (the normalised mean of the remaining
train review vectors, as an embedding job computes it; an item left with no train review
loses its vector, and an item left with no review at all is removed from the catalogue),
each embedding set's counts and the dataset's counts. The fine-tuned versions whose training
snapshot held the user's reviews get a row in ``forgotten_data`` (counts only: no user id is
written anywhere). Aggregates over all users are left as they are: ``evaluations`` (means
over users), ``fusion_weights``, the counts of ``dataset_appends`` and ``datasets.redactions``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pyarrow as pa

from mgi_core.errors import JobError
from mgi_core.store import Store
from mgi_core.store.embeddings import item_means, item_table, review_table, vector_tables
from mgi_core.store.profiles import compact_vector_rows
from mgi_core.store.sql import quote_identifier

# Tables of work in progress (a profile build's staging tables): never swept, but a forget
# refuses while one holds a row of the user (it would be moved into place afterwards).
TRANSIENT_PREFIX = "_mgi_"
_PROFILE_VECTORS = re.compile(r"user_profile_vectors_([0-9]+)")
_INTEGER_TYPES = ("BIGINT", "INTEGER", "HUGEINT", "UBIGINT", "UINTEGER")


@dataclass(frozen=True)
class ForgottenVersion:
    """A fine-tuned version trained on a snapshot that held ``n_reviews`` of the user's."""

    version: str
    dataset: str
    n_reviews: int


@dataclass
class ForgetResult:
    """What ``forget_user`` removed and updated. Holds no user id."""

    datasets: list[str] = field(default_factory=list)
    review_ids: list[int] = field(default_factory=list)  # the user's former review ids
    deleted: dict[str, int] = field(default_factory=dict)  # table -> rows deleted
    items_updated: int = 0  # item vectors recomputed without the user's reviews
    items_removed: int = 0  # items left with no review, removed from the catalogue
    item_vectors_removed: int = 0  # item vectors left with no train review, deleted
    versions: list[ForgottenVersion] = field(default_factory=list)
    train_items: dict[str, list[str]] = field(default_factory=dict)  # dataset -> items

    def add(self, other: ForgetResult) -> ForgetResult:
        """This result with ``other``'s added (one forget over several datasets)."""
        self.datasets += [d for d in other.datasets if d not in self.datasets]
        self.review_ids += other.review_ids
        for table, n in other.deleted.items():
            self.deleted[table] = self.deleted.get(table, 0) + n
        self.items_updated += other.items_updated
        self.items_removed += other.items_removed
        self.item_vectors_removed += other.item_vectors_removed
        self.versions += other.versions
        for name, items in other.train_items.items():
            self.train_items[name] = sorted({*self.train_items.get(name, ()), *items})
        return self


@dataclass(frozen=True)
class _Table:
    name: str
    columns: dict[str, str]  # column -> DuckDB type


def _catalog(cur: duckdb.DuckDBPyConnection) -> list[_Table]:
    """Every table of the database (temporary ones left out) with its columns' types."""
    rows = cur.execute(
        """SELECT c.table_name, c.column_name, c.data_type FROM duckdb_columns() c
           JOIN duckdb_tables() t ON t.database_name = c.database_name
                AND t.schema_name = c.schema_name AND t.table_name = c.table_name
           WHERE c.database_name = current_database() AND c.schema_name = current_schema()
             AND NOT t.temporary
           ORDER BY c.table_name, c.column_index"""
    ).fetchall()
    tables: dict[str, dict[str, str]] = {}
    for table, column, dtype in rows:
        tables.setdefault(table, {})[column] = dtype
    return [_Table(name, cols) for name, cols in tables.items()]


def _holds_users(table: _Table) -> bool:
    return table.columns.get("user_id") == "VARCHAR"


def _holds_reviews(table: _Table) -> bool:
    return table.columns.get("review_id") in _INTEGER_TYPES


def _holds_review_lists(table: _Table) -> bool:
    return table.columns.get("review_ids") in tuple(f"{t}[]" for t in _INTEGER_TYPES)


def user_datasets(cur: duckdb.DuckDBPyConnection, user_ids: Sequence[str],
                  dataset: str | None = None) -> dict[str, int]:
    """The datasets where any of ``user_ids`` has a row in a table with a ``user_id`` and a
    ``dataset`` column (only ``dataset`` when given), each with the number of the user's
    reviews there (0: rows elsewhere only, e.g. rejected rows). Works on a store's cursor
    or a transaction's."""
    ids = [str(u) for u in user_ids]
    found: dict[str, int] = {}
    for table in _catalog(cur):
        if (not _holds_users(table) or "dataset" not in table.columns
                or table.name.startswith(TRANSIENT_PREFIX)):
            continue
        where = "user_id IN (SELECT unnest(?::VARCHAR[]))"
        params: list[object] = [ids]
        if dataset is not None:
            where += " AND dataset = ?"
            params.append(dataset)
        for (name,) in cur.execute(
            f"SELECT DISTINCT dataset FROM {quote_identifier(table.name)} WHERE {where}",
            params,
        ).fetchall():
            found.setdefault(name, 0)
    for name, n in cur.execute(
        "SELECT dataset, count(*) FROM reviews WHERE user_id IN (SELECT unnest(?::VARCHAR[])) "
        "GROUP BY dataset", [ids],
    ).fetchall():
        if name in found:
            found[name] = int(n)
    return dict(sorted(found.items()))


def forget_user(tx: duckdb.DuckDBPyConnection, user_id: str, dataset: str | None = None,
                *, also: Sequence[str] = ()) -> ForgetResult:
    """Delete every row of ``user_id`` in ``dataset`` (every dataset where it has rows when
    None) and bring what was derived from them up to date, on the cursor of a transaction
    the caller holds (a failure anywhere rolls all of it back with the caller's
    transaction).

    Args:
        tx: the cursor of the caller's transaction (``Store.transaction()``).
        user_id: the id as stored (the salted hash where the dataset hashes user ids).
        dataset: the one dataset to forget the user in; None: every one.
        also: other forms of the same person's id whose rows go too (the raw id of a
            dataset that stores hashes: rejected rows keep what the file had).

    Raises:
        JobError: a profile build in progress has staged rows of the user (they would be
            moved into place after the forget): retry when it has finished.
    """
    ids = list(dict.fromkeys([str(user_id), *(str(a) for a in also)]))
    catalog = _catalog(tx)
    _refuse_staged_rows(tx, catalog, ids, dataset)
    targets = list(user_datasets(tx, ids, dataset))
    result = ForgetResult(datasets=targets)
    if not targets:
        return result
    mine = f"_mgi_forget_{uuid.uuid4().hex[:12]}"  # the user's reviews, for this call
    tx.execute(
        f"""CREATE TEMP TABLE {mine} AS
            SELECT review_id, dataset, item_id, split FROM reviews
            WHERE user_id IN (SELECT unnest(?::VARCHAR[]))
              AND dataset IN (SELECT unnest(?::VARCHAR[]))""",
        [ids, targets],
    )
    try:
        result.review_ids = [int(r) for (r,) in tx.execute(
            f"SELECT review_id FROM {mine} ORDER BY review_id").fetchall()]
        result.versions = _record_forgotten_versions(tx, mine)
        touched = _profile_sets(tx, ids, targets)
        result.deleted, rejects = _sweep(tx, catalog, mine, ids, targets)
        for version, name, d in touched:
            compact_vector_rows(tx, version, name, d)
        for name in targets:
            _update_items(tx, mine, name, result)
            _update_counts(tx, name, rejects.get(name, 0))
    finally:
        tx.execute(f"DROP TABLE IF EXISTS {mine}")
    return result


def _refuse_staged_rows(tx: duckdb.DuckDBPyConnection, catalog: list[_Table],
                        ids: list[str], dataset: str | None) -> None:
    for table in catalog:
        if not (table.name.startswith(TRANSIENT_PREFIX) and _holds_users(table)):
            continue
        where, params = "user_id IN (SELECT unnest(?::VARCHAR[]))", [ids]
        if dataset is not None and "dataset" in table.columns:
            where += " AND dataset = ?"
            params.append(dataset)
        n = tx.execute(f"SELECT count(*) FROM {quote_identifier(table.name)} WHERE {where}",
                       params).fetchone()[0]
        if n:
            raise JobError(
                "A profile build is in progress and has already built this user's profile "
                f"(staging table {table.name}): wait for it to finish (the Profiles page "
                "shows it), then forget the user again.")


def _record_forgotten_versions(tx: duckdb.DuckDBPyConnection,
                               mine: str) -> list[ForgottenVersion]:
    """One ``forgotten_data`` row per fine-tuned version trained on a snapshot that held some
    of the user's reviews: a version of the review's dataset made after the review was
    stored (at the dataset's ingest or, for appended rows, their append). The snapshot a
    training job reads is exported before its version row is made, so a version made after
    a review was stored had it in its snapshot. Every review of the snapshot counts (test
    rows too: the snapshot held them, whatever the trainer read)."""
    rows = tx.execute(
        f"""WITH stored AS (
                SELECT m.review_id, m.dataset,
                       coalesce(a.appended_at, d.created_at) AS stored_at
                FROM {mine} m JOIN datasets d ON d.name = m.dataset
                LEFT JOIN dataset_appends a ON a.dataset = m.dataset
                     AND m.review_id BETWEEN a.first_review_id AND a.last_review_id)
            SELECT v.version, v.dataset, count(*) AS n FROM model_versions v
            JOIN stored s ON s.dataset = v.dataset
            WHERE v.kind = 'fine-tuned' AND v.created_at >= s.stored_at
            GROUP BY v.version, v.dataset ORDER BY v.version, v.dataset"""
    ).fetchall()
    if rows:
        tx.executemany(
            "INSERT INTO forgotten_data (version, dataset, n_reviews) VALUES (?, ?, ?)",
            [list(r) for r in rows])
    return [ForgottenVersion(v, d, int(n)) for v, d, n in rows]


def _profile_sets(tx: duckdb.DuckDBPyConnection, ids: list[str],
                  targets: list[str]) -> list[tuple[str, str, int]]:
    """(version, dataset, d) of the stored profile sets holding a row of the user: their
    vectors are numbered again once the rows are gone."""
    pairs = tx.execute(
        "SELECT DISTINCT version, dataset FROM user_profiles "
        "WHERE user_id IN (SELECT unnest(?::VARCHAR[])) "
        "AND dataset IN (SELECT unnest(?::VARCHAR[])) ORDER BY version, dataset",
        [ids, targets]).fetchall()
    tables = [t for t in vector_tables(tx) if _PROFILE_VECTORS.fullmatch(t)]
    out = []
    for version, name in pairs:
        dims = [int(_PROFILE_VECTORS.fullmatch(t).group(1)) for t in tables
                if tx.execute(f"SELECT count(*) FROM {t} WHERE version = ? AND dataset = ?",
                              [version, name]).fetchone()[0]]
        if not dims:  # rows without vectors: the embedding's length, if any
            dims = [int(r) for (r,) in tx.execute(
                "SELECT dim FROM embedding_sets WHERE version = ? AND dataset = ?",
                [version, name]).fetchall()]
        out += [(version, name, d) for d in dims[:1]]
    return out


def _sweep(tx: duckdb.DuckDBPyConnection, catalog: list[_Table], mine: str,
           ids: list[str], targets: list[str]) -> tuple[dict[str, int], dict[str, int]]:
    """Delete the user's rows from every table the catalogue shows holding user ids, review
    ids or lists of review ids. Returns (table -> rows deleted, dataset -> rejected rows
    deleted, for the dataset's count of them)."""
    deleted: dict[str, int] = {}
    rejects: dict[str, int] = {}

    def run(table: _Table, where: str, params: list[object]) -> None:
        if "dataset" in table.columns:
            where += " AND dataset IN (SELECT unnest(?::VARCHAR[]))"
            params = [*params, targets]
        n = tx.execute(f"DELETE FROM {quote_identifier(table.name)} WHERE {where}",
                       params).fetchone()[0]
        if n:
            deleted[table.name] = deleted.get(table.name, 0) + int(n)

    for table in catalog:
        if table.name.startswith(TRANSIENT_PREFIX):
            continue
        if table.name == "ingest_rejects":  # per dataset: its n_rejected goes down
            for name in targets:
                n = tx.execute(
                    "DELETE FROM ingest_rejects WHERE dataset = ? "
                    "AND user_id IN (SELECT unnest(?::VARCHAR[]))", [name, ids]).fetchone()[0]
                if n:
                    deleted["ingest_rejects"] = deleted.get("ingest_rejects", 0) + int(n)
                    rejects[name] = int(n)
            continue
        if _holds_reviews(table):
            run(table, f"review_id IN (SELECT review_id FROM {mine})", [])
        if _holds_review_lists(table):
            run(table, f"list_has_any(review_ids, (SELECT coalesce(list(review_id), []) "
                       f"FROM {mine}))", [])
        if _holds_users(table):
            run(table, "user_id IN (SELECT unnest(?::VARCHAR[]))", [ids])
    return deleted, rejects


def _update_items(tx: duckdb.DuckDBPyConnection, mine: str, dataset: str,
                  result: ForgetResult) -> None:
    """The catalogue and every version's item vectors of ``dataset`` without the user."""
    affected = [i for (i,) in tx.execute(
        f"SELECT DISTINCT item_id FROM {mine} WHERE dataset = ? ORDER BY item_id",
        [dataset]).fetchall()]
    if not affected:
        return
    tx.execute(
        """UPDATE items SET n_reviews = (SELECT count(*) FROM reviews r
               WHERE r.dataset = items.dataset AND r.item_id = items.item_id)
           WHERE dataset = ? AND item_id IN (SELECT unnest(?::VARCHAR[]))""",
        [dataset, affected])
    emptied = [i for (i,) in tx.execute(
        "DELETE FROM items WHERE dataset = ? AND n_reviews = 0 "
        "AND item_id IN (SELECT unnest(?::VARCHAR[])) RETURNING item_id",
        [dataset, affected]).fetchall()]
    result.items_removed += len(emptied)
    train_items = [i for (i,) in tx.execute(
        f"SELECT DISTINCT item_id FROM {mine} WHERE dataset = ? AND split = 'train' "
        "ORDER BY item_id", [dataset]).fetchall()]
    result.train_items[dataset] = train_items
    sets = tx.execute("SELECT version, dim FROM embedding_sets WHERE dataset = ? "
                      "ORDER BY version", [dataset]).fetchall()
    for version, d in sets:
        updated, removed = _recompute_item_vectors(tx, version, dataset, int(d),
                                                   sorted(set(train_items) | set(emptied)))
        result.items_updated += updated
        result.item_vectors_removed += removed
        tx.execute(
            f"""UPDATE embedding_sets SET
                    n_reviews = (SELECT count(*) FROM {review_table(d)}
                                 WHERE version = ? AND dataset = ?),
                    n_items = (SELECT count(*) FROM {item_table(d)}
                               WHERE version = ? AND dataset = ?),
                    created_at = current_timestamp
                WHERE version = ? AND dataset = ?""",
            [version, dataset] * 3)


def _recompute_item_vectors(tx: duckdb.DuckDBPyConnection, version: str, dataset: str,
                            d: int, items: list[str]) -> tuple[int, int]:
    """Each of ``items``' vectors of (version, dataset): the normalised mean of its remaining
    train review vectors, with their count; deleted where none remains. Returns (updated,
    deleted)."""
    if not items:
        return 0, 0
    table = tx.sql(
        f"""SELECT r.item_id, e.embedding FROM {review_table(d)} e
            JOIN reviews r ON r.review_id = e.review_id AND r.dataset = e.dataset
            WHERE e.version = ? AND e.dataset = ? AND r.split = 'train'
              AND r.item_id IN (SELECT unnest(?::VARCHAR[]))
            ORDER BY r.item_id, r.review_id""",
        params=[version, dataset, items]).to_arrow_table()
    item_ids = np.asarray(table.column("item_id").to_pylist(), dtype=object)
    flat = table.column("embedding").combine_chunks().values
    vectors = flat.to_numpy(zero_copy_only=False).astype(np.float32).reshape(-1, d)  # (n, d)
    have, counts, means = item_means(item_ids, vectors)
    gone = sorted(set(items) - {str(i) for i in have})
    removed = 0
    if gone:
        removed = len(tx.execute(
            f"DELETE FROM {item_table(d)} WHERE version = ? AND dataset = ? "
            "AND item_id IN (SELECT unnest(?::VARCHAR[])) RETURNING item_id",
            [version, dataset, gone]).fetchall())
    if not len(have):
        return 0, removed
    name = f"_mgi_forget_items_{uuid.uuid4().hex[:12]}"
    tx.register(name, pa.table({
        "item_id": pa.array([str(i) for i in have], pa.string()),
        "n": pa.array([int(n) for n in counts], pa.int64()),
        "embedding": pa.FixedSizeListArray.from_arrays(pa.array(means.reshape(-1)), d),
    }))
    try:
        updated = len(tx.execute(
            f"""UPDATE {item_table(d)} SET n_train_reviews = u.n,
                    embedding = u.embedding::FLOAT[{d}]
                FROM {name} u
                WHERE {item_table(d)}.version = ? AND {item_table(d)}.dataset = ?
                  AND {item_table(d)}.item_id = u.item_id
                RETURNING {item_table(d)}.item_id""",
            [version, dataset]).fetchall())
    finally:
        tx.unregister(name)
    return updated, removed


def _update_counts(tx: duckdb.DuckDBPyConnection, dataset: str, rejects_deleted: int) -> None:
    """The dataset's registry counts of what is left."""
    tx.execute(
        """UPDATE datasets SET
               n_reviews = (SELECT count(*) FROM reviews WHERE dataset = ?),
               n_users = (SELECT count(DISTINCT user_id) FROM reviews WHERE dataset = ?),
               n_items = (SELECT count(*) FROM items WHERE dataset = ?),
               n_l1 = (SELECT count(DISTINCT l1) FROM items WHERE dataset = ?),
               n_l2 = (SELECT count(DISTINCT l2) FROM items WHERE dataset = ?),
               n_l3 = (SELECT count(DISTINCT l3) FROM items WHERE dataset = ?),
               n_rejected = greatest(n_rejected - ?, 0)
           WHERE name = ?""",
        [dataset] * 6 + [int(rejects_deleted), dataset])


def run_folders_of(store: Store, datasets: Sequence[str]) -> list[tuple[str, str]]:
    """(run folder, dataset) of every job and version this database made on ``datasets``:
    where their snapshots and vectors may still be on disk."""
    rows = store.cursor().execute(
        """SELECT run_dir, dataset FROM jobs WHERE dataset IN (SELECT unnest(?::VARCHAR[]))
           UNION
           SELECT artefact_dir, dataset FROM model_versions
           WHERE artefact_dir IS NOT NULL AND dataset IN (SELECT unnest(?::VARCHAR[]))
           ORDER BY 1, 2""",
        [list(datasets), list(datasets)]).fetchall()
    return [(str(r), str(d)) for r, d in rows]


def dataset_hashing(store: Store) -> dict[str, str | None]:
    """dataset -> how its user ids are stored (None: as in the file; 'sha256-salted')."""
    return dict(store.cursor().execute(
        "SELECT name, user_id_hashing FROM datasets ORDER BY name").fetchall())


def checkpoint(store: Store) -> bool:
    """Write the write-ahead log into the database file (the deletes with it); False when
    another transaction is active (DuckDB checkpoints later by itself)."""
    try:
        store.cursor().execute("CHECKPOINT")
    except duckdb.TransactionException:
        return False
    return True
