"""Appending reviews and updating a version incrementally gives what a full recompute gives.

The demo data is cut in two by time: the first file holds everything but the newest reviews
of a third of the users and every review of a few users; the second (appended) file holds
those. After ``append_file`` and ``apply_update`` (only the appended reviews embedded, by
the keyword fake encoder), the stored profiles, items' vectors and splits must equal:

- a full recompute from the same store (profiles built from scratch, item means of all
  train vectors), to 1e-5;
- and a store that ingested both files as one, then embedded and profiled everything.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mgi_core.cli import DEMO_DIR
from mgi_core.data.append import append_file
from mgi_core.data.ingest import ingest_file
from mgi_core.profiles.incremental import apply_update, current_version, versions_behind
from mgi_core.profiles.service import compute_profiles, ensure_profiles, stored_profiles
from mgi_core.store import Store
from mgi_core.store.datasets import set_profile_half_life
from mgi_core.store.embeddings import item_vectors
from tests.fake_encoder import DEMO_VOCAB, keyword_vectors, register_fake_version

TOL = 1e-5


def _cut_demo(folder: Path) -> tuple[Path, Path, Path]:
    """(first file, appended file, both in one file): the newest two reviews of every
    third user and all reviews of every 25th user go to the appended file."""
    frame = pd.read_csv(DEMO_DIR / "reviews.csv", dtype=str, keep_default_na=False)
    frame["_ts"] = frame["timestamp"].astype(int)
    users = sorted(frame["user_id"].unique())
    newest = frame.sort_values("_ts").groupby("user_id").tail(2).index
    third = set(users[::3])
    new_users = set(users[1::25])
    later = frame.index.isin(newest) & frame["user_id"].isin(third)
    later |= frame["user_id"].isin(new_users).to_numpy()
    frame = frame.drop(columns="_ts")
    paths = folder / "first.csv", folder / "more.csv", folder / "all.csv"
    frame[~later].to_csv(paths[0], index=False)
    frame[later].to_csv(paths[1], index=False)
    pd.concat([frame[~later], frame[later]]).to_csv(paths[2], index=False)
    return paths


def _embed_missing(store: Store, dataset: str, version: str, folder: Path) -> Path:
    """What the update job writes: the keyword vectors of the reviews ``version`` lacks."""
    from mgi_core.store.embedding_updates import export_missing

    snapshot = folder / f"missing-{version}.parquet"
    n = export_missing(store, version, dataset, len(DEMO_VOCAB), snapshot)
    missing = pd.read_parquet(snapshot)
    assert n == len(missing) > 0
    vecs = keyword_vectors(missing["text"].tolist(), DEMO_VOCAB)
    out = folder / f"new-{version}.parquet"
    pq.write_table(pa.table({
        "review_id": pa.array(missing["review_id"].astype("int64")),
        "embedding": pa.FixedSizeListArray.from_arrays(pa.array(vecs.reshape(-1)),
                                                       len(DEMO_VOCAB)),
    }), out)
    return out


def _same_profiles(got, want) -> None:
    """Equal rows and vectors (1e-5), representative reviews and keyword labels."""
    columns = ["user_id", "level", "key", "n_reviews", "cold", "vector_row"]
    pd.testing.assert_frame_equal(got.rows[columns].reset_index(drop=True),
                                  want.rows[columns].reset_index(drop=True))
    for column in ("share", "sentiment", "head_prob", "affinity"):
        np.testing.assert_allclose(got.rows[column].astype(float).fillna(-9).to_numpy(),
                                   want.rows[column].astype(float).fillna(-9).to_numpy(),
                                   atol=TOL)
    np.testing.assert_allclose(got.vectors, want.vectors, atol=TOL)
    assert _lists(got.rows["review_ids"]) == _lists(want.rows["review_ids"])
    assert _lists(got.rows["keywords"]) == _lists(want.rows["keywords"])


def _lists(column: pd.Series) -> list[list | None]:
    return [None if x is None or x is pd.NA or isinstance(x, float) else list(x)
            for x in column]


@pytest.fixture(scope="module", params=[None, 90.0], ids=["no-decay", "half-life-90d"])
def appended(request, tmp_path_factory):
    """A store after ingest + fake version + profiles + append + incremental update, and
    one that ingested everything at once (same half-life)."""
    folder = tmp_path_factory.mktemp("append")
    first, more, both = _cut_demo(folder)
    store = Store(folder / "inc.duckdb")
    ingest_file(store, first, "demo")
    if request.param is not None:
        set_profile_half_life(store, "demo", request.param)
    register_fake_version(store, "demo", DEMO_VOCAB)
    ensure_profiles(store, "demo", "fake")
    before = stored_profiles(store, "demo", "fake")
    report = append_file(store, more, "demo")
    assert versions_behind(store, "demo") == {"fake": report.report.n_accepted}
    result = apply_update(store, "fake", "demo", _embed_missing(store, "demo", "fake", folder))
    full = Store(folder / "full.duckdb")
    ingest_file(full, both, "demo")
    if request.param is not None:
        set_profile_half_life(full, "demo", request.param)
    register_fake_version(full, "demo", DEMO_VOCAB)
    ensure_profiles(full, "demo", "fake")
    yield store, full, report, result, before
    store.close()
    full.close()


def test_the_append_stores_the_new_reviews_and_splits_touched_users_again(appended) -> None:
    store, full, report, result, _ = appended
    assert report.report.n_rejected == 0 and report.report.n_accepted > 0
    assert report.n_new_users > 0 and report.n_moved > 0
    assert result.n_reviews == report.report.n_accepted
    assert versions_behind(store, "demo") == {}
    # The appended reviews are each user's newest, so the split equals ingesting both files
    # as one: leave-last-out over every user's reviews.
    split = "SELECT user_id, item_id, split FROM reviews WHERE dataset = 'demo' ORDER BY 1, 2"
    assert store.cursor().execute(split).fetchall() == full.cursor().execute(split).fetchall()
    counts = ("SELECT n_reviews, n_users, n_items, n_l1, n_l2, n_l3, has_timestamp "
              "FROM datasets")
    assert store.cursor().execute(counts).fetchall() == full.cursor().execute(counts).fetchall()


def test_incremental_profiles_equal_a_full_recompute(appended) -> None:
    store, _, _, result, before = appended
    assert result.n_users > 0
    got = stored_profiles(store, "demo", "fake")
    assert got is not None  # one complete set
    want = compute_profiles(store, "demo", "fake")  # built from scratch, in memory
    touched = set(store.cursor().execute(
        "SELECT DISTINCT user_id FROM reviews WHERE review_id >= ?",
        [_first_appended(store)]).df()["user_id"])
    _same_profiles(got, want)  # keywords of every user included
    # the users the append did not touch kept their stored vectors, bit for bit (only their
    # keyword labels were ranked again against the corpus the append changed)
    untouched = set(before.rows["user_id"]) - touched
    assert untouched
    old = before.rows[before.rows["user_id"].isin(untouched)]
    new = got.rows[got.rows["user_id"].isin(untouched)]
    np.testing.assert_array_equal(got.vectors[new["vector_row"]],
                                  before.vectors[old["vector_row"]])


def _first_appended(store: Store) -> int:
    return int(store.cursor().execute(
        "SELECT first_review_id FROM dataset_appends WHERE dataset = 'demo'").fetchall()[0][0])


def test_incremental_state_equals_ingesting_everything_at_once(appended) -> None:
    store, full, _, _, _ = appended
    # Review ids differ between the stores (file order), so compare by (user, item).
    got, want = stored_profiles(store, "demo", "fake"), stored_profiles(full, "demo", "fake")
    touched = set(store.cursor().execute(
        "SELECT DISTINCT user_id FROM reviews WHERE review_id >= ?",
        [_first_appended(store)]).df()["user_id"])
    assert touched
    _same_profiles(_without_review_ids(got), _without_review_ids(want))
    got_ids, got_vecs = item_vectors(store, "fake", "demo")
    want_ids, want_vecs = item_vectors(full, "fake", "demo")
    assert list(got_ids) == list(want_ids)
    np.testing.assert_allclose(got_vecs, want_vecs, atol=TOL)
    counts = "SELECT item_id, n_train_reviews FROM item_embeddings_14 ORDER BY item_id"
    assert store.cursor().execute(counts).fetchall() == full.cursor().execute(counts).fetchall()


def _without_review_ids(profiles):
    rows = profiles.rows.copy()
    rows["review_ids"] = None
    return type(profiles)(profiles.version, profiles.dataset, rows, profiles.vectors)


def test_applying_an_update_twice_changes_nothing(appended, tmp_path) -> None:
    store, _, _, _, _ = appended
    got = stored_profiles(store, "demo", "fake")
    empty = tmp_path / "none.parquet"
    pq.write_table(pa.table({"review_id": pa.array([], pa.int64()),
                             "embedding": pa.array([], pa.list_(pa.float32(), 14))}), empty)
    again = apply_update(store, "fake", "demo", empty)
    assert (again.n_reviews, again.n_users) == (0, 0)
    _same_profiles(stored_profiles(store, "demo", "fake"), got)
    assert current_version(store, "demo") == "fake"
