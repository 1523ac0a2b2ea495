"""User profiles in the store, and the rows user models are built from.

``user_profiles`` holds one row per (version, dataset, user, level, key); each row's vector
is row ``vector_row`` of ``user_profile_vectors_<d>(version, dataset, vector_row, vector
FLOAT[d])``. Profiles are built from a dataset's train reviews (``train_reviews``) and a
version's category-head probabilities of them (``head_probs``); rankings from its
interactions (``interaction_reviews``, ``item_levels``). Vectors are read in bulk through
Arrow (``profile_vectors``), never row by row.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from mgi_core.processes import process_alive
from mgi_core.store import Store
from mgi_core.store.embeddings import _read_ids_and_matrix, review_table, vector_tables
from mgi_core.store.sql import quote_identifier

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


def train_users(store: Store, dataset: str) -> list[str]:
    """The users with train reviews in a dataset, sorted (byte order: Python's str order)."""
    rows = store.cursor().execute(
        "SELECT DISTINCT user_id FROM reviews WHERE dataset = ? AND split = 'train' "
        "ORDER BY user_id",
        [dataset],
    ).fetchall()
    return [u for (u,) in rows]


def _user_range_sql(alias: str, users: tuple[str, str] | None) -> tuple[str, list[object]]:
    if users is None:
        return "", []
    return f" AND {alias}.user_id BETWEEN ? AND ?", [users[0], users[1]]


def train_reviews(
    store: Store, dataset: str, users: tuple[str, str] | None = None
) -> pd.DataFrame:
    """The train split of a dataset with item levels (l1, l2, l3), in review_id order;
    only the users from ``users[0]`` to ``users[1]`` (inclusive) when given."""
    where, params = _user_range_sql("r", users)
    return store.cursor().execute(
        f"""SELECT r.review_id, r.user_id, r.item_id, r.text, r.rating, r.ts, r.split,
                  i.l1, i.l2, i.l3
           FROM reviews r LEFT JOIN items i ON i.dataset = r.dataset AND i.item_id = r.item_id
           WHERE r.dataset = ? AND r.split = 'train'{where} ORDER BY r.review_id""",
        [dataset, *params],
    ).df()


def train_texts(store: Store, dataset: str, chunk: int = 50_000) -> Iterator[list[str]]:
    """The texts of a dataset's train reviews, ``chunk`` at a time (review_id order)."""
    with store.reader() as cur:
        reader = cur.sql(
            "SELECT text FROM reviews WHERE dataset = ? AND split = 'train' ORDER BY review_id",
            params=[dataset],
        ).to_arrow_reader(chunk)
        for batch in reader:
            yield [t if t is not None else "None" for t in batch.column(0).to_pylist()]


def last_liked_vectors(
    store: Store, version: str, dataset: str, d: int, like_threshold: float,
    users: tuple[str, str], only: Sequence[str] | None = None,
) -> tuple[list[str], np.ndarray]:
    """(user_ids, (n, d) vectors): the ``version`` embedding of each user's latest liked train
    review (latest review when none is liked), for the users from ``users[0]`` to
    ``users[1]`` (inclusive; only those in ``only`` when given), by user_id. Reviews are
    ordered by time, missing times first, ties by review_id: the rule of
    ``build_user_profiles``."""
    where, params = "", [like_threshold, dataset, users[0], users[1]]
    if only is not None:
        where = " AND user_id IN (SELECT unnest(?::VARCHAR[]))"
        params.append([str(u) for u in only])
    sql = f"""
        WITH last AS (
            SELECT user_id,
                   arg_max(review_id, (coalesce(rating >= ?, false),
                                       coalesce(epoch_us(ts), -9223372036854775807),
                                       review_id)) AS review_id
            FROM reviews
            WHERE dataset = ? AND split = 'train' AND user_id BETWEEN ? AND ?{where}
            GROUP BY user_id)
        SELECT last.user_id, e.embedding FROM last
        JOIN {review_table(d)} e ON e.review_id = last.review_id
        WHERE e.version = ? AND e.dataset = ?
        ORDER BY last.user_id"""
    params += [version, dataset]
    with store.reader() as cur:
        ids, vectors = _read_ids_and_matrix(cur, sql, params, "user_id", int(d))
    return [str(u) for u in ids], vectors


def head_probs(
    store: Store, version: str, dataset: str, task: str, users: tuple[str, str] | None = None
) -> dict[int, list[float]]:
    """review_id -> the ``task`` head's probabilities (in the order of the version's
    ``heads[task]``) for the reviews ``version`` embedded in ``dataset`` (of the users from
    ``users[0]`` to ``users[1]`` when given); empty when none."""
    where, params = _user_range_sql("r", users)
    join = " JOIN reviews r ON r.review_id = h.review_id" if users is not None else ""
    rows = store.cursor().execute(
        f"SELECT h.review_id, h.probs FROM review_head_probs h{join} WHERE h.version = ? "
        f"AND h.dataset = ? AND h.task = ?{where}",
        [version, dataset, task, *params],
    ).fetchall()
    return {int(review_id): probs for review_id, probs in rows}


def profile_versions(store: Store, dataset: str) -> list[str]:
    """The versions with stored profiles of ``dataset``."""
    return [v for (v,) in store.cursor().execute(
        "SELECT DISTINCT version FROM user_profiles WHERE dataset = ? ORDER BY version",
        [dataset]).fetchall()]


def has_profiles(store: Store, version: str, dataset: str) -> bool:
    """Whether profiles of (version, dataset) are stored."""
    row = store.cursor().execute(
        "SELECT count(*) FROM user_profiles WHERE version = ? AND dataset = ?",
        [version, dataset],
    ).fetchone()
    return bool(row[0])


def replace_profiles(
    store: Store, version: str, dataset: str, rows: pd.DataFrame, vectors: np.ndarray,
    members: pd.DataFrame | None = None,
) -> None:
    """Replace the stored profiles of (version, dataset) in one transaction.

    Args:
        rows: one row per profile entry with the columns ``PROFILE_COLUMNS``; ``vector_row``
            indexes ``vectors``.
        vectors: (m, d) profile vectors.
        members: user_id, review_id, interest of each train review (None: not stored).
    """
    batch = (rows, vectors) if members is None else (rows, vectors, members)
    replace_profiles_in_batches(store, version, dataset, int(vectors.shape[1]), [batch])


def compact_vector_rows(tx: duckdb.DuckDBPyConnection, version: str, dataset: str,
                        d: int) -> int:
    """Number the profile vectors of (version, dataset) 0..m-1 again, on the caller's
    transaction cursor, after profile rows of some users were removed or replaced.

    Vectors no profile row points at are deleted; the others are numbered in (user_id,
    vector_row) order, so the result is the numbering a full build gives (users in byte
    order, each user's rows in the order they were built). Returns m.
    """
    table = profile_vector_table(d)
    exists = tx.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() "
        "AND table_name = ?", [table]).fetchall()[0][0]
    if not exists:
        return 0
    tx.execute(
        f"""DELETE FROM {table} v WHERE v.version = ? AND v.dataset = ? AND NOT EXISTS (
                SELECT 1 FROM user_profiles p WHERE p.version = v.version
                AND p.dataset = v.dataset AND p.vector_row = v.vector_row)""",
        [version, dataset])
    renumber = f"_mgi_renumber_{uuid.uuid4().hex[:12]}"
    tx.execute(
        f"""CREATE TEMP TABLE {renumber} AS
            SELECT vector_row AS old,
                   row_number() OVER (ORDER BY user_id, vector_row) - 1 AS new
            FROM user_profiles WHERE version = ? AND dataset = ?""", [version, dataset])
    for t in ("user_profiles", table):
        tx.execute(
            f"""UPDATE {t} SET vector_row = m.new FROM {renumber} m
                WHERE {t}.version = ? AND {t}.dataset = ? AND {t}.vector_row = m.old
                AND m.old <> m.new""", [version, dataset])
    n = tx.execute(f"SELECT count(*) FROM {renumber}").fetchall()[0][0]
    tx.execute(f"DROP TABLE {renumber}")
    return int(n)


STAGING_PREFIX = "_mgi_profiles_build_"  # + pid + "_" + token; one table pair per build


def replace_profiles_in_batches(
    store: Store, version: str, dataset: str, d: int,
    batches: Iterable[tuple[pd.DataFrame, np.ndarray]],
) -> int:
    """Replace the stored profiles of (version, dataset), written one batch at a time.

    Each batch is (rows with ``PROFILE_COLUMNS``, their vectors (m, d)[, the interest of each
    train review: user_id, review_id, interest]), ``rows["vector_row"]``
    numbering the vectors across all batches, ``vectors[j]`` being row ``vector_row`` = (rows
    before this batch) + j. Batches are committed into a pair of staging tables of this
    build, then moved into place by one transaction: readers see the old profiles or all
    the new ones, never a part, and memory follows the batch (DuckDB holds an uncommitted
    append in memory, so one transaction around every batch would hold all profiles).
    The staging tables are dropped at the end, and those of builds whose process has died
    on the next build. Returns the number of vectors.
    """
    table = profile_vector_table(d)
    drop_stale_profile_builds(store)
    stage = f"{STAGING_PREFIX}{os.getpid()}_{uuid.uuid4().hex[:12]}"
    with store.reader() as cur:  # cursors of its own: ``batches`` reads on this thread's
        cur.execute(f"CREATE TABLE {stage}_rows AS SELECT * FROM user_profiles LIMIT 0")
        cur.execute(f"CREATE TABLE {stage}_vecs (vector_row BIGINT NOT NULL, "
                    f"vector FLOAT[{d}])")
        cur.execute(f"CREATE TABLE {stage}_members AS SELECT user_id, review_id, interest "
                    "FROM profile_interest_members LIMIT 0")
    written = 0
    try:
        for rows, vectors, *members in batches:
            frame = rows.loc[:, list(PROFILE_COLUMNS)].copy()
            frame.insert(0, "dataset", dataset)
            frame.insert(0, "version", version)
            n = len(vectors)
            vec_table = pa.table({
                "vector_row": pa.array(np.arange(written, written + n, dtype=np.int64)),
                "vector": pa.FixedSizeListArray.from_arrays(
                    pa.array(np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1)), d),
            })
            with store.transaction(own_cursor=True) as tx:
                tx.register("_mgi_profile_rows", frame)
                tx.execute(f"INSERT INTO {stage}_rows SELECT * FROM _mgi_profile_rows")
                tx.unregister("_mgi_profile_rows")
                tx.register("_mgi_profile_vecs", vec_table)
                tx.execute(f"INSERT INTO {stage}_vecs SELECT vector_row, vector::FLOAT[{d}] "
                           "FROM _mgi_profile_vecs")
                tx.unregister("_mgi_profile_vecs")
                if members and len(members[0]):
                    tx.register("_mgi_profile_members", members[0])
                    tx.execute(f"INSERT INTO {stage}_members SELECT user_id, review_id, "
                               "interest FROM _mgi_profile_members")
                    tx.unregister("_mgi_profile_members")
            written += n
        with store.transaction(own_cursor=True) as tx:
            tx.execute(
                f"""CREATE TABLE IF NOT EXISTS {table} (version VARCHAR NOT NULL,
                    dataset VARCHAR NOT NULL, vector_row BIGINT NOT NULL, vector FLOAT[{d}])"""
            )
            for t in ("user_profiles", table, "profile_interest_members"):
                tx.execute(f"DELETE FROM {t} WHERE version = ? AND dataset = ?",
                           [version, dataset])
            tx.execute(f"INSERT INTO user_profiles SELECT * FROM {stage}_rows "
                       "ORDER BY vector_row")
            tx.execute(f"INSERT INTO profile_interest_members SELECT ?, ?, user_id, review_id, "
                       f"interest FROM {stage}_members", [version, dataset])
            tx.execute(f"INSERT INTO {table} SELECT ?, ?, vector_row, vector "
                       f"FROM {stage}_vecs ORDER BY vector_row", [version, dataset])
    finally:
        with store.reader() as cur:
            for suffix in ("_rows", "_vecs", "_members"):
                cur.execute(f"DROP TABLE IF EXISTS {stage}{suffix}")
    return written


def drop_stale_profile_builds(store: Store) -> list[str]:
    """Drop the staging tables of profile builds whose process has ended (killed mid-way)."""
    with store.reader() as cur:
        names = cur.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
            "AND starts_with(table_name, ?)", [STAGING_PREFIX]
        ).fetchall()
    dropped = []
    for (name,) in names:
        pid = name[len(STAGING_PREFIX):].split("_", 1)[0]
        if pid.isdigit() and not process_alive(int(pid)):
            with store.reader() as cur:
                cur.execute(f"DROP TABLE IF EXISTS {quote_identifier(name)}")
            dropped.append(name)
    return dropped


def profile_levels(
    store: Store, version: str, dataset: str, users: tuple[str, str],
    only: Sequence[str] | None = None,
) -> pd.DataFrame:
    """The stored profile rows ranking reads (user_id, level, key, affinity, vector_row) of
    the users from ``users[0]`` to ``users[1]`` (inclusive; only those in ``only`` when
    given), by vector_row."""
    sql = ("SELECT user_id, level, key, affinity, vector_row FROM user_profiles "
           "WHERE version = ? AND dataset = ? AND user_id BETWEEN ? AND ?")
    params: list[object] = [version, dataset, users[0], users[1]]
    if only is not None:
        sql += " AND user_id IN (SELECT unnest(?::VARCHAR[]))"
        params.append([str(u) for u in only])
    return store.cursor().execute(sql + " ORDER BY vector_row", params).df()


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
    between: tuple[int, int] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(vector_rows (n,), vectors (n, d)) of the stored profile vectors of (version, dataset),
    in vector_row order: all of them, those in ``vector_rows``, or those from ``between[0]``
    to ``between[1]`` (inclusive; rows are stored in order, so a range skips the rest of the
    table). Read in chunks into one array. Empty when none is stored."""
    table = profile_vector_table(d)
    if table not in vector_tables(store.cursor()) or (vector_rows is not None
                                                       and not len(vector_rows)):
        return np.zeros(0, dtype=np.int64), np.zeros((0, int(d)), dtype=np.float32)
    sql = (f"SELECT vector_row, vector AS embedding FROM {table} "
           "WHERE version = ? AND dataset = ?")
    params: list[object] = [version, dataset]
    if vector_rows is not None:
        sql += (" AND vector_row BETWEEN ? AND ? "
                "AND vector_row IN (SELECT unnest(?::BIGINT[]))")
        params += [int(min(vector_rows)), int(max(vector_rows)), [int(r) for r in vector_rows]]
    if between is not None:
        sql += " AND vector_row BETWEEN ? AND ?"
        params += [int(between[0]), int(between[1])]
    with store.reader() as cur:
        return _read_ids_and_matrix(cur, sql + " ORDER BY vector_row", params, "vector_row",
                                    int(d))


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
    then file order): columns review_id, user_id, item_id, rating, ts, split, row_number.
    No text: at a million reviews the texts alone take gigabytes (``review_texts``)."""
    return store.cursor().execute(
        """SELECT review_id, user_id, item_id, rating, ts, split, row_number
           FROM reviews WHERE dataset = ? ORDER BY user_id, ts NULLS FIRST, row_number""",
        [dataset],
    ).df()


def review_texts(store: Store, dataset: str, review_ids: Sequence[int]) -> dict[int, str]:
    """review_id -> text of the given reviews of a dataset."""
    if not len(review_ids):
        return {}
    ids = [int(r) for r in review_ids]
    rows = store.cursor().execute(
        "SELECT review_id, text FROM reviews WHERE dataset = ? AND review_id BETWEEN ? AND ? "
        "AND review_id IN (SELECT unnest(?::BIGINT[]))",
        [dataset, min(ids), max(ids), ids],
    ).fetchall()
    return {int(r): t for r, t in rows}
