"""Deleting a dataset removes every row derived from it; its versions stay, unusable."""

from __future__ import annotations

from pathlib import Path

import pytest

from mgi_core.data.ingest import ingest_file
from mgi_core.errors import DatasetNotFoundError, JobError, ModelVersionNotFound
from mgi_core.evaluation.protocol import evaluate
from mgi_core.jobs.deletion import delete_dataset
from mgi_core.profiles.service import ensure_profiles, user_profile
from mgi_core.ranking.model import load_ranking_context
from mgi_core.store import Store
from mgi_core.store.versions import get_version, list_versions, training_log
from tests.conftest import small_rows, write_csv
from tests.fake_encoder import add_search_and_ablation_rows, register_fake_version

VOCAB = ["headphones", "speaker", "lens", "tripod", "battery", "quiet", "sharp"]


def dataset_tables(store: Store) -> list[str]:
    """Every table with a ``dataset`` column, found in the catalogue (not from a list the
    code under test keeps): a table added later without a delete is caught here."""
    rows = store.cursor().execute(
        "SELECT DISTINCT table_name FROM duckdb_columns() WHERE column_name = 'dataset' "
        "ORDER BY table_name"
    ).fetchall()
    return [t for (t,) in rows]


def rows_of(store: Store, name: str) -> dict[str, int]:
    cur = store.cursor()
    out = {t: cur.execute(f"SELECT count(*) FROM {t} WHERE dataset = ?", [name]).fetchone()[0]
           for t in dataset_tables(store)}
    out["datasets"] = cur.execute("SELECT count(*) FROM datasets WHERE name = ?",
                                  [name]).fetchone()[0]
    return out


def _ingest(store: Store, path: Path, name: str) -> None:
    report = ingest_file(store, path, name)
    assert report.committed and report.n_rejected == 1


def _register_base(store: Store) -> None:
    """A 'base' version (dataset NULL) with embeddings of both datasets."""
    register_fake_version(store, "toy", VOCAB, "base")
    register_fake_version(store, "other", VOCAB, "base_other")
    cur = store.cursor()
    for table in ("embedding_sets", f"review_embeddings_{len(VOCAB)}",
                  f"item_embeddings_{len(VOCAB)}"):
        cur.execute(f"UPDATE {table} SET version = 'base' WHERE version = 'base_other'")
    cur.execute("DELETE FROM model_versions WHERE version = 'base_other'")
    cur.execute("UPDATE model_versions SET kind = 'base', dataset = NULL WHERE version = 'base'")


def _derive(store: Store, dataset: str, version: str) -> None:
    for v in (version, "base"):
        ensure_profiles(store, dataset, v)
    evaluate(store, dataset, version, ("popularity", "content", "content_hybrid"))
    cur = store.cursor()
    cur.execute(
        "INSERT INTO review_head_probs SELECT ?, dataset, review_id, 'category', [0.5, 0.5] "
        "FROM reviews WHERE dataset = ?", [version, dataset])
    cur.execute(
        "INSERT INTO jobs (job_id, kind, version, dataset, run_dir, status) "
        "VALUES (?, 'train', ?, ?, '/nowhere', 'finished')", [f"job-{dataset}", version, dataset])
    add_search_and_ablation_rows(store, dataset, version)


@pytest.fixture
def derived(store: Store, tmp_path: Path) -> tuple[Store, Path]:
    """Two datasets from one file (with one rejected row), each with a fine-tuned version,
    base embeddings, profiles, evaluations, fusion weights, head probabilities and a job."""
    path = write_csv(tmp_path / "r.csv", [*small_rows(), ["u9", "i9", "x", "five", 1, "A", "t"]])
    _ingest(store, path, "toy")
    _ingest(store, path, "other")
    register_fake_version(store, "toy", VOCAB, "fake")
    register_fake_version(store, "other", VOCAB, "fake_other")
    _register_base(store)
    store.cursor().execute(
        "INSERT INTO model_versions (version, kind, dataset, base_model, config, "
        "library_versions, status, message) VALUES ('v_failed', 'fine-tuned', 'toy', 'fake', "
        "'{}', '{}', 'failed', 'out of memory')")
    store.cursor().execute("INSERT INTO train_log VALUES ('fake', 1, 0, 'loss/total', 0.5)")
    _derive(store, "toy", "fake")
    _derive(store, "other", "fake_other")
    return store, path


def test_delete_removes_every_derived_row_and_leaves_other_datasets(derived) -> None:
    store, _ = derived
    before_toy, before_other = rows_of(store, "toy"), rows_of(store, "other")
    # Every table with a dataset column has rows of toy, so each delete is exercised:
    # reviews … jobs, and the FLOAT[7] tables review/item embeddings and profile vectors.
    assert {t for t, n in before_toy.items() if n == 0} == set()
    assert {"review_embeddings_7", "item_embeddings_7", "user_profile_vectors_7",
            "per_user_metrics", "fusion_weights", "review_head_probs"} <= set(before_toy)

    delete_dataset(store, "toy")

    after = rows_of(store, "toy")
    # The only rows left naming toy are the versions trained on it (fake, v_failed) and the
    # record that fake was trained with data since forgotten.
    assert {t: n for t, n in after.items() if n} == {"model_versions": 2, "forgotten_data": 1}
    assert rows_of(store, "other") == before_other
    fake = get_version(store, "fake", usable=False)
    assert fake["status"] == "retired" and "toy was deleted" in fake["message"]
    with pytest.raises(ModelVersionNotFound, match=r"'fake' is retired.*toy was deleted"):
        get_version(store, "fake")
    assert get_version(store, "v_failed", usable=False)["status"] == "failed"
    assert get_version(store, "fake_other")["status"] == "ready"
    assert get_version(store, "base")["status"] == "ready"  # still embeds `other`
    assert training_log(store, "fake") == [(1, 0, "loss/total", 0.5)]  # history kept
    usable = {v["version"] for v in list_versions(store, usable_only=True)}
    assert usable == {"base", "fake_other"}
    with pytest.raises(DatasetNotFoundError):
        delete_dataset(store, "toy")


def test_a_dataset_added_again_under_its_name_finds_nothing_stale(derived) -> None:
    store, path = derived
    delete_dataset(store, "toy")
    _ingest(store, path, "toy")
    fresh = {t: n for t, n in rows_of(store, "toy").items() if n}
    assert fresh == {"reviews": 8, "items": 4, "ingest_rejects": 1, "datasets": 1,
                     "model_versions": 2, "forgotten_data": 1}  # the versions' own records
    # No version is offered for the new data: not base (no embeddings of it yet), not the
    # retired one, nor the old failed run; the versions list still shows them all.
    assert list_versions(store, dataset="toy") == []
    assert {"fake", "v_failed", "base"} <= {v["version"] for v in list_versions(store)}
    with pytest.raises(ModelVersionNotFound, match="retired"):
        load_ranking_context(store, "toy", "fake", with_mf=False)
    with pytest.raises(ModelVersionNotFound, match="no embeddings for dataset 'toy'"):
        user_profile(store, "toy", "base", "u1")
    # A run started on the new data is offered, failed or not.
    store.cursor().execute(
        "INSERT INTO model_versions (version, kind, dataset, base_model, config, "
        "library_versions, status) VALUES ('v_new', 'fine-tuned', 'toy', 'fake', '{}', '{}', "
        "'failed')")
    assert [v["version"] for v in list_versions(store, dataset="toy")] == ["v_new"]


def test_delete_is_refused_while_a_job_runs_on_the_dataset(derived) -> None:
    store, _ = derived
    # A job just prepared (no pid yet) counts as running.
    store.cursor().execute(
        "INSERT INTO jobs (job_id, kind, version, dataset, run_dir, status) "
        "VALUES ('j2', 'embed', 'base', 'other', '/nowhere', 'running')")
    before = rows_of(store, "other")
    with pytest.raises(JobError, match=r"embed job \(base\) is running on dataset 'other'"):
        delete_dataset(store, "other")
    assert rows_of(store, "other") == before
    delete_dataset(store, "toy")  # another dataset's job does not block this one
    assert rows_of(store, "toy")["reviews"] == 0
