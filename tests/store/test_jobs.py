"""Job rows in the store: insert, follow, close, and register a finished run atomically."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mgi_core.store import Store
from mgi_core.store.jobs import (
    FinishedRun,
    TrainingVersion,
    close_job,
    insert_job,
    job_id_of_run,
    last_job_status,
    list_jobs,
    register_finished_run,
    running_job,
    running_job_of_version,
    running_job_on_dataset,
    running_jobs,
    set_job_process,
)
from mgi_core.store.versions import get_version, training_log

D = 4


def _train_job(store: Store, run_dir: Path, version: str = "v1") -> None:
    insert_job(store, job_id=f"job-{version}", kind="train", version=version, dataset="toy",
               run_dir=run_dir, pid=123, pid_start=456,
               training=TrainingVersion("base-model", "lora", '{"epochs": 1}', "abc"))


def _vectors(folder: Path) -> tuple[Path, Path]:
    """Two reviews and one item, D-dimensional, as the worker writes them."""
    folder.mkdir(parents=True, exist_ok=True)
    vecs = np.eye(D, dtype=np.float32)[:2]
    pq.write_table(pa.table({
        "review_id": pa.array([1, 2], pa.int64()),
        "embedding": pa.FixedSizeListArray.from_arrays(pa.array(vecs.reshape(-1)), D),
    }), folder / "reviews.parquet")
    pq.write_table(pa.table({
        "item_id": pa.array(["i1"]), "n_train_reviews": pa.array([2], pa.int64()),
        "embedding": pa.FixedSizeListArray.from_arrays(pa.array(vecs[0]), D),
    }), folder / "items.parquet")
    return folder / "reviews.parquet", folder / "items.parquet"


def test_a_job_is_inserted_followed_and_closed(store: Store, tmp_path: Path) -> None:
    assert running_job(store) is None and list_jobs(store) == []
    _train_job(store, tmp_path / "v1")
    job = running_job(store)
    assert (job["job_id"], job["kind"], job["version"], job["pid"]) == ("job-v1", "train",
                                                                         "v1", 123)
    [row] = running_jobs(store)
    assert (row.pid, row.pid_start, row.detached) == (123, 456, False)
    assert running_job_on_dataset(store, "toy") == row
    assert running_job_on_dataset(store, "other") is None
    assert get_version(store, "v1", usable=False)["status"] == "running"

    set_job_process(store, tmp_path / "v1", 789, None)
    assert running_job_of_version(store, "v1")[4:7] == (789, None, True)
    assert job_id_of_run(store, tmp_path / "v1") == "job-v1"
    assert job_id_of_run(store, tmp_path / "elsewhere") is None

    close_job(store, "job-v1", "train", "v1", "cancelled", "Cancelled by the user.")
    assert running_job(store) is None and running_job_of_version(store, "v1") is None
    assert last_job_status(store, "v1") == "cancelled"
    assert last_job_status(store, "v9") is None
    version = get_version(store, "v1", usable=False)
    assert (version["status"], version["message"]) == ("cancelled", "Cancelled by the user.")
    [listed] = list_jobs(store)
    assert (listed["status"], listed["message"]) == ("cancelled", "Cancelled by the user.")
    assert listed["finished_at"] is not None


def test_a_finished_training_run_is_registered_from_a_folder_with_a_quote(
    store: Store, tmp_path: Path
) -> None:
    run_dir = tmp_path / "it's a run"
    _train_job(store, run_dir)
    reviews, items = _vectors(run_dir)
    pq.write_table(pa.table({
        "review_id": pa.array([1, 2], pa.int64()), "task": ["category", "category"],
        "probs": pa.array([[0.25, 0.75], [1.0, 0.0]], pa.list_(pa.float32())),
    }), run_dir / "head_probs.parquet")
    register_finished_run(store, FinishedRun(
        "job-v1", "train", "v1", "toy", D, reviews, items, "cpu", {"torch": "2"},
        metrics={"overall/auc": 0.75}, message="a notice",
        heads={"category": ["Audio", "Cameras"]}, head_probs=run_dir / "head_probs.parquet",
        log_rows=[("v1", 1, 0, "loss/total", 0.5)],
    ))
    info = get_version(store, "v1")
    assert (info["status"], info["dim"], info["device"], info["message"]) == ("ready", D,
                                                                              "cpu", "a notice")
    assert info["metrics"] == {"overall/auc": 0.75}
    assert info["heads"] == {"category": ["Audio", "Cameras"]}
    assert info["library_versions"] == {"torch": "2"}
    assert training_log(store, "v1") == [(1, 0, "loss/total", 0.5)]
    cur = store.cursor()
    assert cur.execute("SELECT review_id, probs FROM review_head_probs ORDER BY review_id"
                       ).fetchall() == [(1, [0.25, 0.75]), (2, [1.0, 0.0])]
    assert cur.execute("SELECT n_reviews, n_items FROM embedding_sets WHERE version = 'v1'"
                       ).fetchall() == [(2, 1)]
    assert last_job_status(store, "v1") == "finished"


def test_an_embed_run_makes_the_base_version_once(store: Store, tmp_path: Path) -> None:
    reviews, items = _vectors(tmp_path / "run")
    config = {"base_model": "bundled:all-MiniLM-L6-v2", "epochs": 1}
    for dataset in ("toy", "other"):
        insert_job(store, job_id=dataset, kind="embed", version="base", dataset=dataset,
                   run_dir=tmp_path / dataset, pid=1, pid_start=None)
        register_finished_run(store, FinishedRun(
            dataset, "embed", "base", dataset, D, reviews, items, "cpu", {"mgi": "0"},
            job_config=config,
        ))
    info = get_version(store, "base")
    assert (info["kind"], info["dataset"], info["base_model"]) == ("base", None,
                                                                  config["base_model"])
    assert info["config"] == config
    assert store.cursor().execute("SELECT count(*) FROM model_versions").fetchone()[0] == 1
    assert [j["status"] for j in list_jobs(store)] == ["finished", "finished"]


def test_a_missing_file_registers_nothing(store: Store, tmp_path: Path) -> None:
    _train_job(store, tmp_path / "v1")
    reviews, _items = _vectors(tmp_path / "v1")
    with pytest.raises(duckdb.IOException, match="No files found"):
        register_finished_run(store, FinishedRun(
            "job-v1", "train", "v1", "toy", D, reviews, tmp_path / "v1" / "gone.parquet",
            "cpu", {}))
    assert store.cursor().execute("SELECT count(*) FROM embedding_sets").fetchone()[0] == 0
    assert running_job(store)["version"] == "v1"  # the job is still running
    assert get_version(store, "v1", usable=False)["status"] == "running"
