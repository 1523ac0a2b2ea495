"""Embedding on Ray Data (mgi_core.encoder.ray_embed) on a local 2-CPU Ray cluster.

The tiny BERT embeds the tiny snapshot through Ray and locally; the vectors must agree for
every review (fp32 on both sides), the output folder must read in DuckDB as FLOAT[d], a
worker killed mid-run must not lose or repeat a review, and cancelling must stop the run.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from mgi_core.data import lake
from mgi_core.encoder.ray_embed import (
    RayEmbedResult,
    embed_with_ray,
    embedding_array,
    embedding_matrix,
    item_means,
)

MAX_LEN = 32
BATCH = 4  # blocks of 4 × 8 = 32 reviews: the ~150 reviews take 5 blocks over 2 actors


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[None]:
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def snapshot_file(tmp_path_factory, snapshot: pd.DataFrame) -> Path:
    path = tmp_path_factory.mktemp("ray_snapshot") / "snapshot.parquet"
    snapshot.to_parquet(path)
    return path


@pytest.fixture(scope="module")
def local_vectors(tiny_bert: Path, snapshot: pd.DataFrame) -> np.ndarray:
    """The embedding job's local path, pinned to fp32: (n_reviews, d) in snapshot order."""
    from mgi_core.encoder.fast import choose_encode_path, read_cpu_flags
    from mgi_core.encoder.model import load_encoder

    encoder = load_encoder(str(tiny_bert), MAX_LEN, "cpu")
    path = choose_encode_path("cpu", read_cpu_flags(), None, "fp32")
    return encoder.encode(snapshot["text"].astype(str).tolist(), BATCH, path=path)


def run(snapshot_file: Path, out: Path, tiny_bert: Path, **kwargs) -> RayEmbedResult:
    return embed_with_ray(str(snapshot_file), str(out), model=str(tiny_bert),
                          max_seq_length=MAX_LEN, batch_size=BATCH, precision="fp32",
                          rows_per_file=64, **kwargs)


@pytest.fixture(scope="module")
def ray_run(ray_cluster, snapshot_file, tiny_bert, tmp_path_factory):
    progress: list[tuple[int, int]] = []
    out = tmp_path_factory.mktemp("ray_out") / "embeddings"
    result = run(snapshot_file, out, tiny_bert, actors=2,
                 on_progress=lambda done, total: progress.append((done, total)))
    return result, out, progress


def read_vectors(out: Path) -> tuple[np.ndarray, np.ndarray]:
    """(review ids, vectors) of an output folder, in the order written."""
    table = pa.Table.from_batches(lake.iter_batches(str(out)))
    return table.column("review_id").to_numpy(), embedding_matrix(table.column("embedding"))


def assert_complete_and_equal(out: Path, snapshot: pd.DataFrame,
                              local_vectors: np.ndarray) -> None:
    ids, vecs = read_vectors(out)
    assert len(ids) == len(snapshot) and len(set(ids)) == len(ids)  # each review once
    row = {rid: k for k, rid in enumerate(snapshot["review_id"])}
    assert set(ids) == set(row)
    expected = local_vectors[[row[i] for i in ids]]
    np.testing.assert_allclose(vecs, expected, rtol=0, atol=1e-5)


def test_embedding_columns_round_trip() -> None:
    vecs = np.arange(6, dtype=np.float32).reshape(3, 2)
    column = embedding_array(vecs)
    assert column.type == pa.list_(pa.float32(), 2)
    np.testing.assert_array_equal(embedding_matrix(column.slice(1)), vecs[1:])


def test_item_means_by_hand() -> None:
    # Item a: train [1, 0] and [0, 1] → mean [.5, .5] → normalised [.7071, .7071]; its test
    # review [0, -9] must not count. Item b: train [0, 2] → [0, 1]. Item c: val only → absent.
    batches = [
        pa.table({"item_id": ["a", "a", "c"], "split": ["train", "test", "val"],
                  "embedding": embedding_array(np.array([[1, 0], [0, -9], [5, 5]]))}),
        pa.table({"item_id": ["b", "a"], "split": ["train", "train"],
                  "embedding": embedding_array(np.array([[0, 2], [0, 1]]))}),
    ]
    ids, counts, vectors = item_means(batches)
    assert ids == ["a", "b"]
    assert counts.tolist() == [2, 1]
    np.testing.assert_allclose(vectors, [[2 ** -0.5, 2 ** -0.5], [0, 1]], atol=1e-7)
    assert vectors.dtype == np.float32


def test_ray_vectors_equal_the_local_path(ray_run, snapshot, local_vectors) -> None:
    result, out, progress = ray_run
    assert_complete_and_equal(out, snapshot, local_vectors)
    n = len(snapshot)
    assert (result.n_reviews, result.dim, result.actors) == (n, 32, 2)
    assert result.address == "running Ray session" and "fp32" in result.device
    # Several blocks, reported in order; parts of at most 64 rows.
    assert len(progress) >= 4 and progress[-1] == (n, n)
    assert [d for d, _ in progress] == sorted(d for d, _ in progress)
    assert len(result.files) == -(-n // 64) and lake.parquet_files(str(out)) == list(result.files)
    # DuckDB reads the folder: FLOAT[d] vectors, every review once.
    con = duckdb.connect()
    source = lake.duckdb_source(str(out))
    row = con.execute(
        f"SELECT count(*), count(DISTINCT review_id), min(typeof(embedding::FLOAT[32])) "
        f"FROM read_parquet({source})"
    ).fetchone()
    assert row == (n, n, "FLOAT[32]")
    first = con.execute(f"SELECT review_id, embedding::FLOAT[32] FROM read_parquet({source}) "
                        "ORDER BY review_id LIMIT 1").fetchone()
    np.testing.assert_allclose(first[1], local_vectors[snapshot["review_id"].tolist().index(
        first[0])], atol=1e-5)


def test_item_means_equal_the_worker_item_vectors(ray_run, snapshot, local_vectors) -> None:
    from mgi_core.jobs.worker import item_vectors_from_reviews

    _, out, _ = ray_run
    ids, counts, vectors = item_means(
        lake.iter_batches(str(out), columns=["item_id", "split", "embedding"], batch_rows=17))
    expected = item_vectors_from_reviews(snapshot, local_vectors,
                                         lambda texts: np.zeros((len(texts), 32), np.float32))
    warm = expected[expected["n_train_reviews"] > 0].set_index("item_id")
    assert ids == sorted(warm.index)
    assert counts.tolist() == warm.loc[ids, "n_train_reviews"].tolist()
    np.testing.assert_allclose(vectors, np.stack(warm.loc[ids, "vector"]), atol=1e-5)


def test_a_killed_worker_is_retried_and_nothing_is_lost(
        ray_cluster, snapshot_file, tiny_bert, snapshot, local_vectors, tmp_path) -> None:
    marker = tmp_path / "crashed"
    result = run(snapshot_file, tmp_path / "out", tiny_bert, actors=2,
                 _crash_once=str(marker))
    assert marker.exists()  # an actor reached its second block and SIGKILLed itself
    assert result.n_reviews == len(snapshot)
    assert_complete_and_equal(tmp_path / "out", snapshot, local_vectors)


def test_should_stop_cancels_and_leaves_no_part(
        ray_cluster, snapshot_file, tiny_bert, tmp_path) -> None:
    from mgi_core.encoder.train import TrainingCancelled

    progress: list[int] = []
    with pytest.raises(TrainingCancelled, match="cancelled"):
        run(snapshot_file, tmp_path / "out", tiny_bert, actors=1,
            on_progress=lambda done, total: progress.append(done),
            should_stop=lambda: len(progress) >= 1)
    assert progress == [32]  # stopped after the first block
    assert lake.parquet_files(str(tmp_path / "out")) == []
