"""``append`` as a user runs it: a trained version is brought up to date by an update job
that embeds only the appended reviews (with the version's own encoder and heads), and its
profiles and item vectors equal a full recompute."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mgi_core.cli import main
from mgi_core.profiles.incremental import versions_behind
from mgi_core.profiles.service import compute_profiles, ensure_profiles, stored_profiles
from mgi_core.store import Store
from mgi_core.store.embeddings import item_vectors, review_vectors
from tests.tiny_model import write_review_csv

TRAIN = ["--max-train-reviews", "16", "--epochs", "1", "--batch-size", "8",
         "--max-seq-length", "16", "--embed-max-seq-length", "16", "--lora-rank", "2"]


@pytest.fixture
def cut(tmp_path: Path, snapshot: pd.DataFrame) -> tuple[Path, Path, Path]:
    """(db with the first part ingested, the appended file, both in one file): the newest
    two reviews of every other user, and every review of u5, come later."""
    frame = snapshot.sort_values("ts")
    newest = frame.groupby("user_id").tail(2).index
    later = frame.index.isin(newest) & (frame["user_id"].str[1:].astype(int) % 2 == 0)
    later |= (frame["user_id"] == "u5").to_numpy()
    first = write_review_csv(frame[~later], tmp_path / "first.csv")
    more = write_review_csv(frame[later], tmp_path / "more.csv")
    both = write_review_csv(pd.concat([frame[~later], frame[later]]), tmp_path / "both.csv")
    db = tmp_path / "mgi.duckdb"
    assert main(["ingest", str(first), "--name", "tiny", "--db", str(db)]) == 0
    return db, more, both


@pytest.mark.slow
def test_append_updates_a_trained_version_with_only_the_new_reviews(
        cut, tiny_bert: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db, more, _ = cut
    assert main(["train", "--dataset", "tiny", "--db", str(db), "--base-model",
                 str(tiny_bert), *TRAIN]) == 0
    store = Store(db)
    ensure_profiles(store, "tiny", "v1")
    ids_before, vecs_before = review_vectors(store, "v1", "tiny")
    store.close()
    capsys.readouterr()

    assert main(["append", str(more), "--dataset", "tiny", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "rows appended" in out and "v1: " in out and "profiles of" in out

    store = Store(db)
    try:
        assert versions_behind(store, "tiny") == {}
        ids, vecs = review_vectors(store, "v1", "tiny")
        n_reviews = store.cursor().execute(
            "SELECT count(*) FROM reviews WHERE dataset = 'tiny'").fetchall()[0][0]
        assert len(ids) == n_reviews > len(ids_before)
        # the reviews embedded before are untouched: only the appended ones were embedded
        old = np.isin(ids, ids_before)
        np.testing.assert_array_equal(vecs[old], vecs_before)
        # the version's heads scored the new reviews
        new_ids = ids[~old].tolist()
        n_probs = store.cursor().execute(
            "SELECT count(DISTINCT review_id) FROM review_head_probs WHERE version = 'v1' "
            "AND review_id IN (SELECT unnest(?::BIGINT[]))", [new_ids]).fetchall()[0][0]
        assert n_probs == len(new_ids)
        # profiles: the stored (incremental) ones equal a build from scratch
        got, want = stored_profiles(store, "tiny", "v1"), compute_profiles(store, "tiny", "v1")
        assert got is not None
        np.testing.assert_allclose(got.vectors, want.vectors, atol=1e-5)
        cols = ["user_id", "level", "key", "n_reviews"]
        pd.testing.assert_frame_equal(got.rows[cols], want.rows[cols])
        np.testing.assert_allclose(got.rows["affinity"].astype(float).fillna(0),
                                   want.rows["affinity"].astype(float).fillna(0), atol=1e-5)
        # item vectors: the normalised mean of each item's train review vectors
        items, item_vecs = item_vectors(store, "v1", "tiny")
        # every item has a vector, those new with held-out reviews only from their title
        assert sorted(items) == sorted(i for (i,) in store.cursor().execute(
            "SELECT item_id FROM items WHERE dataset = 'tiny'").fetchall())
        train = store.cursor().execute(
            "SELECT review_id, item_id FROM reviews WHERE dataset = 'tiny' AND "
            "split = 'train' ORDER BY review_id").df()
        position = {int(r): k for k, r in enumerate(ids)}
        for item, vec in zip(items, item_vecs, strict=True):
            rows = [position[int(r)] for r in train[train["item_id"] == item]["review_id"]]
            if not rows:  # no train review: its title's vector (a new item's, from the job)
                continue
            mean = vecs[rows].mean(axis=0)
            np.testing.assert_allclose(vec, mean / np.linalg.norm(mean), atol=1e-5)
        job = store.cursor().execute(
            "SELECT status, message FROM jobs WHERE kind = 'update'").fetchall()
        assert job[0][0] == "finished" and "new review vectors" in job[0][1]
    finally:
        store.close()

    # Nothing left to embed: a second update says so and changes nothing.
    assert main(["update", "--dataset", "tiny", "--db", str(db)]) == 2
    assert "nothing to update" in capsys.readouterr().err


def test_append_refuses_an_unknown_dataset_and_a_file_of_stored_pairs(
        cut, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    db, more, _ = cut
    assert main(["append", str(more), "--dataset", "nope", "--db", str(db)]) == 2
    assert "No dataset named 'nope'" in capsys.readouterr().err
    store = Store(db)
    before = store.cursor().execute("SELECT count(*) FROM reviews").fetchall()[0][0]
    store.close()
    assert main(["append", str(more), "--dataset", "tiny", "--db", str(db),
                 "--no-update"]) == 0
    capsys.readouterr()
    # the same file again: every row is already stored, so nothing is
    assert main(["append", str(more), "--dataset", "tiny", "--db", str(db)]) == 2
    err = capsys.readouterr().err
    assert "No valid rows" in err and "already stored (user_id, item_id)" in err
    store = Store(db)
    after = store.cursor().execute("SELECT count(*) FROM reviews").fetchall()[0][0]
    appends = store.cursor().execute("SELECT count(*) FROM dataset_appends").fetchall()[0][0]
    store.close()
    assert after > before and appends == 1


def test_half_life_is_set_per_dataset_and_rebuilds_profiles(
        cut, capsys: pytest.CaptureFixture[str]) -> None:
    db, _, _ = cut
    assert main(["half-life", "--dataset", "tiny", "30", "--db", str(db)]) == 0
    assert "a half-life of 30 days" in capsys.readouterr().out
    assert main(["half-life", "--dataset", "tiny", "-3", "--db", str(db)]) == 2
    assert "above 0" in capsys.readouterr().err
    assert main(["half-life", "--dataset", "tiny", "off", "--db", str(db)]) == 0
    assert "no recency decay" in capsys.readouterr().out
