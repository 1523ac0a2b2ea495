"""Profiles recover the demo's planted interests; keywords, cold users, clustering."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mgi_core.cli import DEMO_DIR
from mgi_core.config import ProfileConfig
from mgi_core.data.ingest import ingest_file
from mgi_core.profiles.builder import build_user_profiles, choose_k
from mgi_core.profiles.keywords import CorpusFrequencies, ctfidf_keywords, tokenize
from mgi_core.profiles.service import (
    compute_profiles,
    last_liked_vectors,
    save_profiles,
    stored_profiles,
    user_profile,
)
from tests.fake_encoder import DEMO_VOCAB, register_fake_version


def test_profiles_recover_the_planted_interests_of_the_demo(store) -> None:
    ingest_file(store, DEMO_DIR / "reviews.csv", "demo")
    register_fake_version(store, "demo", DEMO_VOCAB)
    profiles = compute_profiles(store, "demo", "fake")
    planted = json.loads((DEMO_DIR / "planted.json").read_text())["users"]
    rows = profiles.rows
    top = {
        level: rows[rows["level"] == level].sort_values("affinity", ascending=False)
        .groupby("user_id").head(1).set_index("user_id")["key"]
        for level in ("l1", "l2")
    }
    l1 = np.mean([top["l1"].get(u) == p["favourite_l1"] for u, p in planted.items()])
    l2 = np.mean([top["l2"].get(u) == p["favourite_l2"] for u, p in planted.items()])
    assert l1 >= 0.9, l1
    assert l2 >= 0.8, l2
    disliked = [(u, p["disliked_l1"]) for u, p in planted.items() if p["disliked_l1"]]
    aff = rows[rows["level"] == "l1"].set_index(["user_id", "key"])["affinity"]
    negative = np.mean([aff.get((u, c), -1.0) < 0 for u, c in disliked])
    assert negative >= 0.9, negative
    cold = rows[(rows["level"] == "overall") & rows["cold"]]["user_id"]
    assert set(cold) == {u for u, p in planted.items() if p["cold"]}


def test_profiles_are_stored_and_read_back(store) -> None:
    ingest_file(store, DEMO_DIR / "reviews.csv", "demo")
    register_fake_version(store, "demo", DEMO_VOCAB)
    save_profiles(store, compute_profiles(store, "demo", "fake"))
    out = user_profile(store, "demo", "fake", "U0001")
    assert out["l1"][0]["affinity"] == max(c["affinity"] for c in out["l1"])
    assert out["interests"] and all(i["keywords"] for i in out["interests"])
    assert out["interests"][0]["representative_reviews"][0]["text"]


def test_weights_rating_and_recency() -> None:
    reviews = pd.DataFrame({
        "review_id": [1, 2], "user_id": ["u", "u"], "item_id": ["a", "b"],
        "text": ["x", "y"], "rating": [5.0, 1.0],
        "ts": pd.to_datetime(["2024-01-01", "2024-01-11"]), "l1": ["A", "B"], "l2": [None, None],
    })
    vecs = np.eye(2, dtype=np.float32)
    # Rating weights 5 and 1 → overall ∝ (5, 1).
    p = build_user_profiles(reviews, vecs, ProfileConfig())
    overall = p.vectors[p.rows.query("level == 'overall'")["vector_row"].iloc[0]]
    np.testing.assert_allclose(overall, np.array([5, 1]) / np.sqrt(26), atol=1e-6)
    # Half-life 10 days: the older review (10 days before the latest) counts half → (2.5, 1).
    p = build_user_profiles(reviews, vecs, ProfileConfig(half_life_days=10))
    overall = p.vectors[p.rows.query("level == 'overall'")["vector_row"].iloc[0]]
    np.testing.assert_allclose(overall, np.array([2.5, 1]) / np.sqrt(7.25), atol=1e-6)
    # Affinity = share × sentiment: A = 0.5 × (5-3)/2 = 0.5; B = 0.5 × (1-3)/2 = -0.5.
    aff = p.rows.query("level == 'l1'").set_index("key")["affinity"]
    assert aff["A"] == pytest.approx(0.5) and aff["B"] == pytest.approx(-0.5)
    with pytest.raises(ValueError, match="train reviews only"):
        build_user_profiles(reviews.assign(split=["train", "test"]), vecs)


def test_choose_k_finds_separate_groups_and_keeps_one_for_a_blob() -> None:
    rng = np.random.default_rng(0)
    centres = np.eye(8)[:3]
    x = np.concatenate([c + 0.05 * rng.standard_normal((6, 8)) for c in centres])
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    k, labels = choose_k(x, ProfileConfig())
    assert k == 3 and all(len(set(labels[i:i + 6])) == 1 for i in (0, 6, 12))
    sizes = np.bincount(labels)
    assert list(sizes) == sorted(sizes, reverse=True)  # interest 0 is the largest
    blob = np.ones((6, 8)) + 0.01 * rng.standard_normal((6, 8))
    blob /= np.linalg.norm(blob, axis=1, keepdims=True)
    assert choose_k(blob, ProfileConfig())[0] == 1


def test_ctfidf_keywords_and_chinese_bigrams() -> None:
    corpus = CorpusFrequencies(["the bass is deep", "sharp lens", "deep bass sound",
                                "zoom lens is sharp", "good sound"])
    # Group 0 says "bass" three times, "deep" twice: bass leads. Group 1 has no bass at all.
    words = ctfidf_keywords([["deep bass sound", "the bass is deep bass"],
                             ["zoom lens is sharp"]], corpus, n=2)
    assert words[0] == ["bass", "deep"] and set(words[1]) <= {"lens", "sharp", "zoom"}
    assert tokenize("音质很好") == ["音质", "质很", "很好"]
    assert "the" not in tokenize("The bass")


def test_stored_profiles_read_back_equal_the_computed_ones(store) -> None:
    ingest_file(store, DEMO_DIR / "reviews.csv", "demo")
    register_fake_version(store, "demo", DEMO_VOCAB)
    assert stored_profiles(store, "demo", "fake") is None  # nothing stored yet
    computed = compute_profiles(store, "demo", "fake")
    save_profiles(store, computed)
    stored = stored_profiles(store, "demo", "fake")
    assert stored is not None
    # Same rows in the same (vector_row) order, same vectors (float32 in, float32 out).
    cols = ["user_id", "level", "key", "n_reviews", "cold", "vector_row"]
    pd.testing.assert_frame_equal(stored.rows[cols], computed.rows[cols], check_dtype=False)
    np.testing.assert_allclose(stored.rows["affinity"], computed.rows["affinity"].astype(float))
    np.testing.assert_array_equal(stored.vectors, computed.vectors)
    # last_liked is not stored: it is derived again by the builder's rule, for every user.
    assert stored.last_liked.keys() == computed.last_liked.keys()
    for user, vector in computed.last_liked.items():
        np.testing.assert_array_equal(stored.last_liked[user], vector, err_msg=user)
    # A set missing vectors is not used (the caller computes and stores it again).
    store.cursor().execute(f"DELETE FROM user_profile_vectors_{len(DEMO_VOCAB)} "
                           "WHERE vector_row = 7")
    assert stored_profiles(store, "demo", "fake") is None


def test_last_liked_is_the_latest_liked_review_else_the_latest() -> None:
    reviews = pd.DataFrame({
        "user_id": ["u", "u", "u", "v", "v", "w"],
        "rating": [5.0, 2.0, 4.0, 1.0, 2.0, 5.0],
        # u: rows 0, 2 liked (>= 4); row 2 is later in time though earlier rows come first.
        # v: nothing liked → its latest review (row 3: ts 2024-03). w: no timestamp.
        "ts": pd.to_datetime(["2024-01-01", "2024-05-01", "2024-02-01", "2024-03-01",
                              "2024-02-01", None]),
    })
    vecs = np.arange(6, dtype=np.float32)[:, None] * np.ones((1, 2), np.float32)  # row k → k
    out = last_liked_vectors(reviews, vecs)
    assert {u: int(v[0]) for u, v in out.items()} == {"u": 2, "v": 3, "w": 5}
