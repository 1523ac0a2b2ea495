"""Background jobs end to end on a tiny local BERT: run, register, cancel, crash."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from mgi_core.config import TrainConfig
from mgi_core.data.ingest import ingest_file
from mgi_core.errors import JobError, ModelVersionNotFound
from mgi_core.jobs.manager import (
    active_job,
    cancel_job,
    job_progress,
    prepare_job,
    refresh_jobs,
    start_job,
)
from mgi_core.jobs.worker import run_job
from mgi_core.store import Store
from mgi_core.store.embeddings import item_vectors, review_vectors
from mgi_core.store.versions import get_version, list_versions, training_log


@pytest.fixture
def tiny_store(tmp_path: Path, snapshot) -> Store:
    csv = tmp_path / "tiny.csv"
    snapshot[["user_id", "item_id", "text", "rating", "ts", "category", "item_title"]].rename(
        columns={"ts": "timestamp"}
    ).to_csv(csv, index=False)
    store = Store(tmp_path / "mgi.duckdb")
    ingest_file(store, csv, "tiny")
    yield store
    store.close()


def _config(tiny_bert, **kw) -> TrainConfig:
    base = dict(base_model=str(tiny_bert), batch_size=8, max_seq_length=16, device="cpu",
                lora_rank=2, lora_targets=("query", "value"), max_train_reviews=16)
    return TrainConfig(**{**base, **kw})


def _wait(store: Store, version: str, timeout: float = 180) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        refresh_jobs(store)
        status = store.cursor().execute(
            "SELECT status FROM jobs WHERE version = ? ORDER BY started_at DESC", [version]
        ).fetchone()[0]
        if status != "running":
            return status
        time.sleep(0.5)
    raise TimeoutError(version)


def _wait_phase(run_dir: Path, phase: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if job_progress(run_dir).get("phase") == phase:
            return
        time.sleep(0.2)
    raise TimeoutError(phase)


def test_a_job_in_a_child_process_registers_a_usable_version(tiny_store, tiny_bert) -> None:
    version = start_job(tiny_store, "train", "tiny", _config(tiny_bert))
    assert version == "v1"
    assert _wait(tiny_store, version) == "finished"
    info = get_version(tiny_store, "v1")
    assert info["status"] == "ready" and info["dim"] == 32 and info["dataset"] == "tiny"
    assert 0 <= info["metrics"]["overall/auc"] <= 1
    assert info["config"]["strategy"] == "lora"
    assert "torch" in info["library_versions"]
    metrics = {m for _, _, m, _ in training_log(tiny_store, "v1")}
    assert {"loss/total", "loss/overall", "val/overall/auc", "val/match/recall@10"} <= metrics
    _ids, vecs = review_vectors(tiny_store, "v1", "tiny")
    n_reviews = tiny_store.cursor().execute("SELECT count(*) FROM reviews").fetchone()[0]
    assert vecs.shape == (n_reviews, 32)
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)


def test_item_vectors_come_from_train_reviews_only(tiny_store, tiny_bert) -> None:
    _version, run_dir = prepare_job(tiny_store, "embed", "tiny", _config(tiny_bert))
    assert run_job(run_dir) == "finished"
    refresh_jobs(tiny_store)
    ids, vecs = review_vectors(tiny_store, "base", "tiny", split="train")
    by_review = dict(zip(ids, vecs, strict=True))
    item_ids, item_vecs = item_vectors(tiny_store, "base", "tiny")
    rows = tiny_store.cursor().execute(
        "SELECT item_id, list(review_id) FROM reviews WHERE split = 'train' GROUP BY item_id"
    ).fetchall()
    train_items = dict(rows)
    for item, vec in zip(item_ids, item_vecs, strict=True):
        if item in train_items:
            mean = np.mean([by_review[r] for r in train_items[item]], axis=0)
            np.testing.assert_allclose(vec, mean / np.linalg.norm(mean), atol=1e-5)
    assert [v["version"] for v in list_versions(tiny_store, dataset="tiny")] == ["base"]


def test_one_job_at_a_time_and_cancel_leaves_no_usable_version(tiny_store, tiny_bert) -> None:
    config = _config(tiny_bert, epochs=500, patience=500, max_train_reviews=None)
    version = start_job(tiny_store, "train", "tiny", config)
    run_dir = Path(get_version(tiny_store, version, usable=False)["artefact_dir"])
    _wait_phase(run_dir, "training")
    with pytest.raises(JobError, match="One job runs at a time"):
        start_job(tiny_store, "train", "tiny", config)
    cancel_job(tiny_store, version)
    assert active_job(tiny_store) is None
    assert get_version(tiny_store, version, usable=False)["status"] == "cancelled"
    with pytest.raises(ModelVersionNotFound, match="cancelled"):
        get_version(tiny_store, version)
    assert job_progress(run_dir)["state"] == "cancelled"  # the worker stopped cleanly
    assert tiny_store.cursor().execute(
        "SELECT count(*) FROM embedding_sets WHERE version = ?", [version]
    ).fetchone()[0] == 0


def test_a_killed_job_fails_and_the_previous_version_stays_usable(tiny_store, tiny_bert):
    assert _wait(tiny_store, start_job(tiny_store, "train", "tiny", _config(tiny_bert))) == \
        "finished"
    before = review_vectors(tiny_store, "v1", "tiny")[1]
    config = _config(tiny_bert, epochs=500, patience=500, max_train_reviews=None)
    version = start_job(tiny_store, "train", "tiny", config)
    pid = tiny_store.cursor().execute("SELECT pid FROM jobs WHERE version = ?",
                                      [version]).fetchone()[0]
    _wait_phase(Path(get_version(tiny_store, version, usable=False)["artefact_dir"]),
                "training")
    os.killpg(pid, signal.SIGKILL)
    assert _wait(tiny_store, version) == "failed"
    failed = get_version(tiny_store, version, usable=False)
    assert "ended without finishing" in failed["message"]
    assert get_version(tiny_store, "v1")["status"] == "ready"
    np.testing.assert_array_equal(review_vectors(tiny_store, "v1", "tiny")[1], before)
    assert [v["version"] for v in list_versions(tiny_store, usable_only=True)] == ["v1"]
