"""``export``: a dataset and a version's vectors as Parquet folders other engines read."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import numpy as np
import pyarrow.dataset as pads
import pytest

from mgi_core.cli import main
from mgi_core.data.export import export_dataset
from mgi_core.errors import ConfigError, ModelVersionNotFound
from mgi_core.store import Store
from mgi_core.store.embeddings import item_vectors, review_vectors
from tests.conftest import small_rows, write_csv


def test_export_writes_what_the_store_holds_in_parts(demo: Store, tmp_path: Path) -> None:
    out = tmp_path / "lake"
    rows = export_dataset(demo, "demo", str(out), version="fake", rows_per_file=1000)
    n_reviews = demo.cursor().execute(
        "SELECT count(*) FROM reviews WHERE dataset = 'demo'").fetchone()[0]
    ids, vecs = review_vectors(demo, "fake", "demo")
    items, ivecs = item_vectors(demo, "fake", "demo")
    assert rows == {"reviews": n_reviews, "review_embeddings": len(ids),
                    "item_embeddings": len(items)}
    assert len(list((out / "reviews").glob("part-*.parquet"))) == -(-n_reviews // 1000)
    # DuckDB reads the folders, embeddings as FLOAT[d], equal to the stored vectors.
    con = duckdb.connect()
    d = vecs.shape[1]
    got = con.sql(f"SELECT review_id, embedding::FLOAT[{d}] AS e FROM "
                  f"read_parquet('{out}/review_embeddings/*.parquet') ORDER BY review_id")
    table = got.to_arrow_table()
    assert np.array_equal(table.column("review_id").to_numpy(), ids)
    flat = table.column("e").combine_chunks().values.to_numpy(zero_copy_only=False)
    np.testing.assert_array_equal(flat.reshape(-1, d), vecs)
    [(splits,)] = con.sql(f"SELECT count(DISTINCT split) FROM "
                          f"read_parquet('{out}/reviews/*.parquet')").fetchall()
    assert splits == 3
    # pyarrow (what Ray Data and the trainer read with) sees the snapshot's columns.
    reviews = pads.dataset(str(out / "reviews"), format="parquet")
    assert {"review_id", "user_id", "item_id", "text", "split", "l1", "l2"} <= set(
        reviews.schema.names)
    item_table = pads.dataset(str(out / "item_embeddings"), format="parquet").to_table()
    assert sorted(item_table.column("item_id").to_pylist()) == sorted(items.tolist())
    assert ivecs.shape[0] == item_table.num_rows


def test_export_refuses_a_folder_with_parquet_and_an_unknown_version(
        demo: Store, tmp_path: Path) -> None:
    out = tmp_path / "lake"
    export_dataset(demo, "demo", str(out))
    with pytest.raises(ConfigError, match="already holds"):
        export_dataset(demo, "demo", str(out))
    with pytest.raises(ModelVersionNotFound):
        export_dataset(demo, "demo", str(tmp_path / "other"), version="v9")


def test_export_command_with_a_file_uri(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "mgi.duckdb")
    csv = write_csv(tmp_path / "s.csv", small_rows())
    assert main(["ingest", str(csv), "--name", "s", "--db", db]) == 0
    capsys.readouterr()
    uri = (tmp_path / "lake").as_uri()  # file:///…: the form an object-store URI takes
    assert main(["export", "--dataset", "s", "--to", uri, "--db", db, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"reviews": len(small_rows())}
    assert list((tmp_path / "lake" / "reviews").glob("part-*.parquet"))
    assert main(["export", "--dataset", "s", "--to", uri, "--db", db]) == 2
    assert "already holds" in capsys.readouterr().err
