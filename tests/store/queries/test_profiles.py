"""The Profiles page's queries on the small dataset of tests/conftest.py, numbers by hand.

Splits (leave-last-out for users with >= 3 reviews, by time): u1 has 4 reviews, i4 → test,
i3 → val, train = i1 (Audio > Headphones), i2 (Audio > Speakers); u2 has 3, i3 → test,
i2 → val, train = i1 (Audio) only, so u2 is cold; u3 has one review (i4, Cameras), train,
cold.
"""

from __future__ import annotations

import numpy as np
import pytest

from mgi_core.data.ingest import ingest_file
from mgi_core.errors import DatasetNotFoundError
from mgi_core.profiles.service import ensure_profiles, user_profile
from mgi_core.store.embeddings import review_vectors
from mgi_core.store.queries import profiles as queries
from tests.conftest import small_rows, table_counts, write_csv
from tests.fake_encoder import register_fake_version

VOCAB = ["headphones", "speaker", "lens", "tripod", "battery", "sound"]


@pytest.fixture
def small(store, tmp_path):
    ingest_file(store, write_csv(tmp_path / "small.csv", small_rows()), "small")
    return store


def _ids(frame) -> list[str]:
    return list(frame["user_id"])


def test_find_users_counts_and_order(small) -> None:
    users = queries.find_users(small, "small")
    assert users[["user_id", "n_train_reviews", "n_reviews", "top_l1", "cold"]].values.tolist() \
        == [["u1", 2, 4, "Audio", False], ["u2", 1, 3, "Audio", True],
            ["u3", 1, 1, "Cameras", True]]
    assert users["n_matching"].tolist() == [3, 3, 3]


def test_find_users_filters(small) -> None:
    assert _ids(queries.find_users(small, "small", l1="Cameras")) == ["u3"]
    # u1's Cameras reviews are val/test only: the L1 filter looks at train reviews.
    assert _ids(queries.find_users(small, "small", l1="Audio")) == ["u1", "u2"]
    assert _ids(queries.find_users(small, "small", cold=True)) == ["u2", "u3"]
    assert _ids(queries.find_users(small, "small", cold=False)) == ["u1"]
    assert _ids(queries.find_users(small, "small", min_train_reviews=2)) == ["u1"]
    assert _ids(queries.find_users(small, "small", min_train_reviews=0)) == ["u1", "u2", "u3"]
    assert _ids(queries.find_users(small, "small", id_contains=" U3 ")) == ["u3"]
    both = queries.find_users(small, "small", l1="Audio", cold=True)
    assert _ids(both) == ["u2"]
    limited = queries.find_users(small, "small", limit=1)
    assert _ids(limited) == ["u1"] and limited["n_matching"].iloc[0] == 3


def test_find_users_takes_text_as_a_value_not_as_sql(small) -> None:
    before = table_counts(small)
    for text in ("%", "_", "'; DROP TABLE reviews; --"):
        assert queries.find_users(small, "small", id_contains=text).empty
    assert table_counts(small) == before
    with pytest.raises(DatasetNotFoundError, match="No dataset named 'nope'"):
        queries.find_users(small, "nope")


def test_categories_and_reviews(small) -> None:
    assert queries.l1_categories(small, "small") == ["Audio", "Cameras"]  # train reviews
    assert queries.category_parents(small, "small") == {
        "Audio > Headphones": "Audio", "Audio > Speakers": "Audio",
        "Cameras > Lenses": "Cameras", "Cameras > Tripods": "Cameras"}
    reviews = queries.user_reviews(small, "small", "u1")
    assert list(reviews["item_id"]) == ["i4", "i3", "i2", "i1"]  # newest first
    assert list(reviews["split"]) == ["test", "val", "train", "train"]
    assert reviews["text"].iloc[-1] == "Great wireless headphones, battery lasts."
    assert len(queries.user_reviews(small, "small", "u1", limit=2)) == 2
    assert queries.user_reviews(small, "small", "nobody").empty


def test_user_vectors_match_the_stored_embeddings_and_profile(small) -> None:
    register_fake_version(small, "small", VOCAB)
    # Reads never write: without stored profiles there are no profile vectors yet.
    empty = queries.user_vectors(small, "small", "fake", "u1")
    assert small.cursor().execute("SELECT count(*) FROM user_profiles").fetchone()[0] == 0
    assert list(empty.review_ids) == [1, 2] and empty.overall is None and not empty.interest_keys
    ensure_profiles(small, "small", "fake")
    vecs = queries.user_vectors(small, "small", "fake", "u1")
    assert list(vecs.review_ids) == [1, 2] and list(vecs.item_ids) == ["i1", "i2"]
    ids, all_vecs = review_vectors(small, "fake", "small")
    np.testing.assert_allclose(vecs.reviews, all_vecs[np.isin(ids, [1, 2])])
    profile = user_profile(small, "small", "fake", "u1")
    assert len(vecs.interest_keys) == len(profile["interests"]) == len(vecs.interests)
    assert vecs.interests.shape[1] == len(VOCAB)
    # Two reviews rated 5 and 4: the overall vector is their rating-weighted mean, unit norm.
    expected = 5 * all_vecs[0] + 4 * all_vecs[1]
    np.testing.assert_allclose(vecs.overall, expected / np.linalg.norm(expected), atol=1e-6)
    cold = queries.user_vectors(small, "small", "fake", "u3")
    assert cold.reviews.shape == (1, len(VOCAB)) and len(cold.interests) == 1
    nobody = queries.user_vectors(small, "small", "fake", "nobody")
    assert nobody.reviews.shape == (0, len(VOCAB)) and nobody.overall is None


def test_data_stamp_changes_when_the_version_is_embedded_again(small) -> None:
    register_fake_version(small, "small", VOCAB)
    first = queries.data_stamp(small, "small", "fake")
    assert "None" not in first
    small.cursor().execute(
        "UPDATE embedding_sets SET created_at = created_at + INTERVAL 1 HOUR")
    assert queries.data_stamp(small, "small", "fake") != first
    assert queries.data_stamp(small, "small", "other").endswith("|None")
