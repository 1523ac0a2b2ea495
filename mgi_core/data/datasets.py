"""The dataset registry and the aggregate views the Data page draws.

Every aggregation runs in DuckDB and returns a small frame; no function here loads all
reviews into pandas.
"""

from __future__ import annotations

import re
from typing import Any

import duckdb
import pandas as pd

from mgi_core.errors import DatasetNotFoundError, JobError
from mgi_core.store import Store

DATASET_COLUMNS = (
    "name", "file_name", "n_reviews", "n_users", "n_items", "n_l1", "n_l2", "n_l3",
    "n_rejected", "has_timestamp", "encoding", "created_at",
)


def list_datasets(store: Store) -> list[dict[str, Any]]:
    """Every dataset with its counts, newest first."""
    cur = store.cursor().execute(
        f"SELECT {', '.join(DATASET_COLUMNS)} FROM datasets ORDER BY created_at DESC, name"
    )
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def dataset_names(store: Store) -> list[str]:
    return [d["name"] for d in list_datasets(store)]


def get_dataset(store: Store, name: str) -> dict[str, Any]:
    """One dataset's registry row. Raises DatasetNotFoundError when absent."""
    for row in list_datasets(store):
        if row["name"] == name:
            return row
    known = ", ".join(dataset_names(store)) or "none yet"
    raise DatasetNotFoundError(
        f"No dataset named {name!r} (known: {known}). Ingest one first: "
        "python -m mgi_core ingest FILE --name NAME, or the Data page."
    )


# Tables holding rows derived from one dataset, by their ``dataset`` column (the registry
# row itself is ``datasets.name``). Vectors live in per-dimension tables, matched below.
DATASET_TABLES = (
    "reviews", "items", "ingest_rejects", "embedding_sets", "review_head_probs",
    "user_profiles", "evaluations", "per_user_metrics", "fusion_weights", "jobs",
)
_VECTOR_TABLE = re.compile(r"(review_embeddings|item_embeddings|user_profile_vectors)_[0-9]+")
RETIRED = "retired"


def vector_tables(cur: duckdb.DuckDBPyConnection) -> list[str]:
    """The per-dimension FLOAT[d] tables of the store (embeddings, profile vectors)."""
    names = cur.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
        "AND schema_name = current_schema() ORDER BY table_name"
    ).fetchall()
    return [n for (n,) in names if _VECTOR_TABLE.fullmatch(n)]


def delete_dataset(store: Store, name: str) -> None:
    """Remove a dataset and everything derived from it, in one transaction.

    Gone: its reviews, items and rejected rows, every version's embeddings of it (review,
    item, head probabilities), the user profiles, evaluations, per-user metrics, fusion
    weights and finished job records made on it. Model versions *trained* on it keep their
    row and training log (the Train page still shows what was trained, and how). A ready
    one left with no embeddings of any dataset (a fine-tuned version is only embedded on
    its own training data) becomes ``retired``, with a message that says why, so
    ``get_version`` refuses it and ``list_versions(usable_only=True)`` leaves it out; and
    ``list_versions(store, dataset=name)`` offers only runs made after the dataset's current
    ingest, so a dataset added again under the same name starts clean. Other datasets, the
    ``base`` version and its embeddings of them are untouched. Run folders on disk stay.

    Raises:
        DatasetNotFoundError: no dataset of that name.
        JobError: a job is running on the dataset (its results would land on deleted data);
            wait for it or cancel it on the Train page first.
    """
    from mgi_core.jobs.manager import refresh_jobs  # jobs import this module

    get_dataset(store, name)
    refresh_jobs(store)  # a job whose process has ended is not running any more
    running = store.cursor().execute(
        "SELECT kind, version FROM jobs WHERE dataset = ? AND status = 'running'", [name]
    ).fetchone()
    if running is not None:
        raise JobError(
            f"A {running[0]} job ({running[1]}) is running on dataset {name!r}. Wait for it "
            "to finish or cancel it on the Train page, then delete the dataset."
        )
    with store.transaction() as tx:
        for table in vector_tables(tx):
            tx.execute(f"DELETE FROM {table} WHERE dataset = ?", [name])
        for table in DATASET_TABLES:
            tx.execute(f"DELETE FROM {table} WHERE dataset = ?", [name])
        tx.execute(
            """UPDATE model_versions
               SET status = ?, message = 'Its training dataset ' || dataset || ' was deleted on '
                   || strftime(current_timestamp, '%Y-%m-%d %H:%M')
                   || ' with its embeddings; train a new version on the data you use now.'
               WHERE dataset = ? AND status = 'ready' AND NOT EXISTS (
                   SELECT 1 FROM embedding_sets e WHERE e.version = model_versions.version)""",
            [RETIRED, name],
        )
        tx.execute("DELETE FROM datasets WHERE name = ?", [name])


def _frame(store: Store, sql: str, params: list[Any]) -> pd.DataFrame:
    return store.cursor().execute(sql, params).df()


def reviews_per_user(store: Store, name: str) -> pd.DataFrame:
    """(n_reviews, n_users): how many users wrote exactly n reviews."""
    return _frame(
        store,
        """SELECT n AS n_reviews, count(*) AS n_users
           FROM (SELECT count(*) AS n FROM reviews WHERE dataset = ? GROUP BY user_id)
           GROUP BY n ORDER BY n""",
        [name],
    )


def rating_distribution(store: Store, name: str) -> pd.DataFrame:
    """(rating, n_reviews)."""
    return _frame(
        store,
        "SELECT rating, count(*) AS n_reviews FROM reviews WHERE dataset = ? "
        "GROUP BY rating ORDER BY rating",
        [name],
    )


def category_counts(store: Store, name: str) -> pd.DataFrame:
    """(l1, l2, l3, n_reviews) with missing levels as '(none)' leaves, for a sunburst."""
    return _frame(
        store,
        """SELECT coalesce(i.l1, '(no category)') AS l1, i.l2, i.l3, count(*) AS n_reviews
           FROM reviews r JOIN items i ON i.dataset = r.dataset AND i.item_id = r.item_id
           WHERE r.dataset = ? GROUP BY ALL ORDER BY n_reviews DESC""",
        [name],
    )


def reviews_over_time(store: Store, name: str) -> pd.DataFrame:
    """(month, n_reviews) for reviews with a timestamp."""
    return _frame(
        store,
        """SELECT date_trunc('month', ts) AS month, count(*) AS n_reviews
           FROM reviews WHERE dataset = ? AND ts IS NOT NULL GROUP BY month ORDER BY month""",
        [name],
    )


def rejected_rows(store: Store, name: str, limit: int = 100_000) -> pd.DataFrame:
    """The rows rejected when the dataset was ingested, by line."""
    return _frame(
        store,
        """SELECT line, reason, detail, user_id, item_id, rating, text
           FROM ingest_rejects WHERE dataset = ? ORDER BY line LIMIT ?""",
        [name, limit],
    )


def sample_reviews(store: Store, name: str, limit: int = 50) -> pd.DataFrame:
    """The first reviews of a dataset (file order), for a look at the text."""
    return _frame(
        store,
        """SELECT r.user_id, r.item_id, i.title AS item_title, i.category, r.rating, r.ts,
                  r.split, r.text
           FROM reviews r LEFT JOIN items i ON i.dataset = r.dataset AND i.item_id = r.item_id
           WHERE r.dataset = ? ORDER BY r.row_number LIMIT ?""",
        [name, limit],
    )
