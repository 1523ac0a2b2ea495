"""``embed`` as a user runs it: on Ray Data (a local cluster on this machine's 2 CPUs) and
with a trained version, through the command line, into the real DuckDB file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mgi_core import cli
from mgi_core.cli import main
from mgi_core.config import TrainConfig
from mgi_core.data.ingest import ingest_file
from mgi_core.encoder.fast import PRECISION_ENV
from mgi_core.store import Store
from mgi_core.store.embeddings import item_vectors, review_vectors
from tests.tiny_model import write_review_csv


@pytest.fixture
def tiny_db(tmp_path: Path, snapshot: pd.DataFrame) -> Path:
    csv = write_review_csv(snapshot, tmp_path / "tiny.csv")
    db = tmp_path / "mgi.duckdb"
    store = Store(db)
    ingest_file(store, csv, "tiny")
    ingest_file(store, csv, "again")  # a second dataset, for a version trained on 'tiny'
    store.close()
    return db


@pytest.fixture
def tiny_embed(monkeypatch: pytest.MonkeyPatch, tiny_bert: Path) -> None:
    """``embed`` with the tiny BERT, in fp32 (the Ray actors get the driver's precision)."""
    monkeypatch.setenv(PRECISION_ENV, "fp32")
    monkeypatch.setattr(cli, "embed_config", lambda args: TrainConfig(
        base_model=str(tiny_bert), embed_max_seq_length=16, embed_batch_size=8))


def _vectors(db: Path, version: str, dataset: str):
    store = Store(db)
    try:
        return review_vectors(store, version, dataset), item_vectors(store, version, dataset)
    finally:
        store.close()


@pytest.mark.slow
@pytest.mark.parametrize("staged", [True, False], ids=["stage", "run-folder"])
def test_embed_on_ray_stores_what_the_local_path_stores(
        tmp_path: Path, tiny_db: Path, tiny_embed: None, staged: bool,
        capsys: pytest.CaptureFixture[str]) -> None:
    local_db = tmp_path / "local" / "mgi.duckdb"
    local_db.parent.mkdir()
    local_db.write_bytes(tiny_db.read_bytes())
    assert main(["embed", "--dataset", "tiny", "--db", str(local_db)]) == 0
    stage = tmp_path / "stage"  # a folder standing in for s3://…: every node would read it
    assert main(["embed", "--dataset", "tiny", "--db", str(tiny_db), "--engine", "ray",
                 "--actors", "2", *(["--stage", str(stage)] if staged else [])]) == 0
    assert capsys.readouterr().out.split() == ["base", "base"]
    (ids_l, vec_l), (items_l, ivec_l) = _vectors(local_db, "base", "tiny")
    (ids_r, vec_r), (items_r, ivec_r) = _vectors(tiny_db, "base", "tiny")
    assert np.array_equal(ids_l, ids_r)  # every review once
    np.testing.assert_allclose(vec_r, vec_l, atol=1e-5)
    assert list(items_l) == list(items_r)
    np.testing.assert_allclose(ivec_r, ivec_l, atol=1e-5)
    # The stage holds the Parquet the cluster read and wrote; DuckDB reads it as it is.
    import duckdb

    if staged:
        [run] = [p for p in stage.iterdir() if p.is_dir()]
        assert (run / "snapshot").is_dir()
    else:  # the run folder is the stage: its parts are loaded where they are, not copied
        [run] = [p for p in (tmp_path / "runs").iterdir() if p.is_dir()]
        assert (run / "data.parquet").is_file()
        assert not (run / "review_embeddings.parquet").exists()
    parts = sorted((run / "review_embeddings").glob("*.parquet"))
    assert parts
    [(n,)] = duckdb.sql(
        f"SELECT count(*) FROM read_parquet('{run}/review_embeddings/*.parquet')").fetchall()
    assert n == len(ids_r)
    store = Store(tiny_db)
    try:
        device = store.cursor().execute(
            "SELECT device FROM model_versions WHERE version = 'base'").fetchone()[0]
    finally:
        store.close()
    assert device.startswith("Ray Data: 2 actors")


def test_engine_options_need_the_ray_engine(tiny_db: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["embed", "--dataset", "tiny", "--db", str(tiny_db), "--actors", "2"]) == 2
    assert "--actors is an option of --engine ray" in capsys.readouterr().err


@pytest.mark.slow
def test_embed_with_a_trained_version_adds_its_vectors_for_another_dataset(
        tiny_db: Path, tiny_bert: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--dataset", "tiny", "--db", str(tiny_db), "--base-model",
                 str(tiny_bert), "--max-train-reviews", "16", "--epochs", "1",
                 "--batch-size", "8", "--max-seq-length", "16", "--embed-max-seq-length",
                 "16", "--lora-rank", "2"]) == 0
    assert capsys.readouterr().out.strip() == "v1"
    assert main(["embed", "--dataset", "again", "--db", str(tiny_db), "--version", "v1"]) == 0
    assert capsys.readouterr().out.strip() == "v1"
    (ids_t, vec_t), _ = _vectors(tiny_db, "v1", "tiny")
    (ids_a, vec_a), (items_a, _) = _vectors(tiny_db, "v1", "again")
    assert len(ids_a) == len(ids_t) and len(items_a) > 0
    # The same texts through the same encoder at the same length: the same vectors (the
    # datasets' review ids differ; the texts are in the same order).
    np.testing.assert_allclose(vec_a, vec_t, atol=2e-2)  # bf16 where this CPU has it
    cos = np.sum(vec_a * vec_t, axis=1)
    assert cos.min() > 0.999
    assert main(["embed", "--dataset", "again", "--db", str(tiny_db), "--version", "v9"]) == 2
    assert "No model version 'v9'" in capsys.readouterr().err
