"""The dataset registry in the store: lookups, the snapshot export, and a purge that knows
every table holding rows of a dataset."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from mgi_core.data.ingest import ingest_file
from mgi_core.errors import DatasetNotFoundError
from mgi_core.evaluation.protocol import evaluate
from mgi_core.profiles.service import ensure_profiles
from mgi_core.store import Store
from mgi_core.store.datasets import (
    KEPT_TABLES,
    PURGED_TABLES,
    dataset_names,
    export_reviews_parquet,
    get_dataset,
    list_datasets,
    purge_dataset,
    review_checksum,
)
from mgi_core.store.embeddings import vector_tables
from tests.conftest import small_rows, write_csv
from tests.fake_encoder import add_search_and_ablation_rows, register_fake_version

VOCAB = ["headphones", "speaker", "lens", "tripod", "battery", "quiet", "sharp"]


def tables_with_a_dataset_column(store: Store) -> set[str]:
    """Found in DuckDB's catalogue, not in a list the code under test keeps."""
    rows = store.cursor().execute(
        "SELECT DISTINCT table_name FROM duckdb_columns() WHERE column_name = 'dataset'"
    ).fetchall()
    return {t for (t,) in rows}


def rows_of(store: Store, name: str) -> dict[str, int]:
    cur = store.cursor()
    out = {t: cur.execute(f"SELECT count(*) FROM {t} WHERE dataset = ?", [name]).fetchone()[0]
           for t in sorted(tables_with_a_dataset_column(store))}
    out["datasets"] = cur.execute("SELECT count(*) FROM datasets WHERE name = ?",
                                  [name]).fetchone()[0]
    return out


@pytest.fixture
def two_datasets(store: Store, tmp_path: Path) -> Store:
    """'toy' and 'other' from one file (one row rejected), each with a version, vectors,
    profiles, evaluations, fusion weights, head probabilities, a finished job, a search
    study with a trial and a training ablation."""
    path = write_csv(tmp_path / "r.csv", [*small_rows(), ["u9", "i9", "x", "five", 1, "A", "t"]])
    for name in ("toy", "other"):
        assert ingest_file(store, path, name).committed
        register_fake_version(store, name, VOCAB, f"fake_{name}")
        ensure_profiles(store, name, f"fake_{name}")
        evaluate(store, name, f"fake_{name}", ("popularity", "content", "content_hybrid"))
        cur = store.cursor()
        cur.execute(
            "INSERT INTO review_head_probs SELECT ?, dataset, review_id, 'category', [0.5, 0.5] "
            "FROM reviews WHERE dataset = ?", [f"fake_{name}", name])
        cur.execute(
            "INSERT INTO jobs (job_id, kind, version, dataset, run_dir, status) "
            "VALUES (?, 'train', ?, ?, '/nowhere', 'finished')", [name, f"fake_{name}", name])
        add_search_and_ablation_rows(store, name, f"fake_{name}")
    return store


def test_every_table_with_a_dataset_column_is_purged_or_kept_on_purpose(store: Store) -> None:
    # A table added to the schema with a `dataset` column must be named in PURGED_TABLES
    # (or KEPT_TABLES, with a reason): the per-dimension vector tables are found by name.
    assert tables_with_a_dataset_column(store) == set(PURGED_TABLES) | set(KEPT_TABLES)


def test_purge_leaves_no_row_of_the_dataset_in_any_table(two_datasets: Store) -> None:
    store = two_datasets
    before_toy, before_other = rows_of(store, "toy"), rows_of(store, "other")
    # Every table with a dataset column holds rows of toy, so every delete is exercised,
    # the FLOAT[7] vector tables included.
    assert {t for t, n in before_toy.items() if n == 0} == set()
    assert {"review_embeddings_7", "item_embeddings_7", "user_profile_vectors_7"} <= set(
        vector_tables(store.cursor()))

    purge_dataset(store, "toy")

    left = {t: n for t, n in rows_of(store, "toy").items() if n}
    # fake_toy: a version outlives its dataset, and so does the record that it was trained
    # with data since forgotten
    assert left == {"model_versions": 1, "forgotten_data": 1}
    assert rows_of(store, "other") == before_other
    assert dataset_names(store) == ["other"]
    purge_dataset(store, "toy")  # nothing left to delete: no error


def test_purge_inside_a_transaction_rolls_back_with_it(two_datasets: Store) -> None:
    store = two_datasets
    before = rows_of(store, "toy")
    with pytest.raises(RuntimeError), store.transaction() as tx:
        purge_dataset(tx, "toy")
        raise RuntimeError("a later step failed")
    assert rows_of(store, "toy") == before


def test_registry_lookups(store: Store, tmp_path: Path) -> None:
    assert list_datasets(store) == [] and dataset_names(store) == []
    with pytest.raises(DatasetNotFoundError, match=r"No dataset named 'toy' \(known: none yet\)"):
        get_dataset(store, "toy")
    ingest_file(store, write_csv(tmp_path / "r.csv", small_rows()), "toy")
    info = get_dataset(store, "toy")
    # small_rows: 8 reviews by 3 users of 4 items over 2 L1 categories.
    assert (info["n_reviews"], info["n_users"], info["n_items"], info["n_l1"]) == (8, 3, 4, 2)
    assert [d["name"] for d in list_datasets(store)] == ["toy"]


def test_export_to_a_path_with_a_quote_and_a_stable_checksum(store: Store,
                                                             tmp_path: Path) -> None:
    ingest_file(store, write_csv(tmp_path / "r.csv", small_rows()), "toy")
    target = tmp_path / "it's here" / "data.parquet"
    target.parent.mkdir()
    export_reviews_parquet(store, "toy", target)
    frame = pd.read_parquet(target)
    assert len(frame) == 8 and frame["review_id"].is_monotonic_increasing
    assert list(frame.columns) == ["review_id", "user_id", "item_id", "text", "rating", "ts",
                                   "row_number", "split", "item_title", "category", "l1",
                                   "l2", "l3"]
    n, total = review_checksum(store, "toy")
    assert n == 8 and isinstance(total, int)
    assert review_checksum(store, "toy") == (n, total)
    assert review_checksum(store, "missing") == (0, None)
