"""Next-interest evaluation: ranks of the held-out item's category under the profile and the
three baselines, worked by hand on a tiny dataset; the demo's planted favourites; batches,
skipped users, single-level categories, no leakage of held-out text; storage and pairing."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mgi_core.cli import DEMO_DIR
from mgi_core.data.ingest import ingest_file
from mgi_core.errors import ConfigError
from mgi_core.evaluation.next_interest import (
    METRICS,
    NextInterestResult,
    compare_next_interest,
    interest_targets,
    load_next_interest,
    next_interest,
    next_interest_metrics,
    popularity_ranks,
    target_ranks,
)
from mgi_core.store import Store
from mgi_core.store.next_interest import (
    next_interest_summary,
    purge_next_interest_metrics,
    read_next_interest_metrics,
)
from mgi_core.store.queries.datasets import sample_reviews
from tests.conftest import write_csv
from tests.fake_encoder import register_fake_version
from tests.profiles.test_profiles import DEMO_VOCAB

TINY_VOCAB = ["alpha", "beta", "gamma", "delta", "other"]


def tiny_rows() -> list[list[object]]:
    """Four users over L1 categories A..E (one item per review).

    Splits (latest review = test, the one before = val, for users with >= 3 reviews):
    u1 train B(r1, t1) B(r2, t2) A(r5, t3)      val C   test A
    u2 train C(r5, t1) D(r5, t2)                val A   test D
    u3 train B(r4, t1) A(r2, t2) B(r4, t3)      val D   test C (L1 only: no L2)
    u4 train E(r5)                              (one review: no held-out item)
    Train popularity: B 4, A 2, C 1, D 1, E 1 -> ranks B0 A1 C2 D3 E4 (ties by key).
    """
    t = 1_600_000_000
    rows = [
        ["u1", "b1", "beta", 1, t + 1, "B > b"], ["u1", "b2", "beta", 2, t + 2, "B > b"],
        ["u1", "a1", "alpha", 5, t + 3, "A > a"], ["u1", "c1", "gamma", 4, t + 4, "C > c"],
        ["u1", "a2", "alpha", 5, t + 5, "A > a"],
        ["u2", "c2", "gamma", 5, t + 1, "C > c"], ["u2", "d1", "delta", 5, t + 2, "D > d"],
        ["u2", "a3", "alpha", 3, t + 3, "A > a"], ["u2", "d2", "delta", 5, t + 4, "D > d"],
        ["u3", "b3", "beta", 4, t + 1, "B > b"], ["u3", "a4", "alpha", 2, t + 2, "A > a"],
        ["u3", "b4", "beta", 4, t + 3, "B > b"], ["u3", "d3", "delta", 3, t + 4, "D > d"],
        ["u3", "c3", "gamma", 5, t + 5, "C"],
        ["u4", "e1", "other", 5, t + 1, "E > e"],
    ]
    return [[u, i, text, r, ts, cat, f"item {i}"] for u, i, text, r, ts, cat in rows]


@pytest.fixture
def tiny(store: Store, tmp_path: Path) -> Store:
    ingest_file(store, write_csv(tmp_path / "tiny.csv", tiny_rows()), "tiny")
    register_fake_version(store, "tiny", TINY_VOCAB)
    return store


@pytest.fixture(scope="module")
def demo_result(demo: Store) -> NextInterestResult:
    return next_interest(demo, "demo", "fake")


def _first_ranks(result: NextInterestResult, level: str) -> dict[str, dict[str, float]]:
    """system -> user -> hit@1, at ``level``."""
    return {system: frame["hit@1"].to_dict()
            for (lv, system), frame in result.per_user.items() if lv == level}


# ------------------------------------------------------------------------ pure functions


def test_metrics_from_ranks_by_hand() -> None:
    # 0-based ranks 0, 1, 2, 4, 5 are 1-based 1, 2, 3, 5, 6: hit@1 only the first, hit@3 the
    # first three, ndcg@5 = 1 / log2(r + 1) for r <= 5 and 0 for r = 6.
    out = next_interest_metrics(np.array([0, 1, 2, 4, 5]))
    assert list(out["hit@1"]) == [1, 0, 0, 0, 0]
    assert list(out["hit@3"]) == [1, 1, 1, 0, 0]
    np.testing.assert_allclose(out["ndcg@5"], [1, 1 / math.log2(3), 0.5, 1 / math.log2(6), 0])


def test_popularity_ranks_break_ties_by_key() -> None:
    pop = pd.DataFrame({"key": ["D", "C", "A", "B", "E"], "n_reviews": [1, 1, 2, 4, 0]})
    assert popularity_ranks(pop).to_dict() == {"B": 0, "A": 1, "C": 2, "D": 3, "E": 4}


def test_target_ranks_touched_first_then_popularity() -> None:
    pop = pd.Series({"B": 0, "A": 1, "C": 2, "D": 3, "E": 4})
    touched = pd.DataFrame({"user_id": ["x", "x", "y", "y"], "key": ["D", "E", "A", "C"],
                            "score": [2.0, 1.0, 1.0, 1.0]})
    targets = pd.Series({"x": "A", "y": "C", "z": "D"})
    # x: D, E (by score) then B, A, C -> A is fourth (rank 3).
    # y: A and C tie on score -> by key A, C -> C is second (rank 1).
    # z touched nothing -> the popularity rank of D (3).
    ranks = target_ranks(touched, [("score", True)], targets, pop)
    assert list(ranks) == [3, 1, 3]
    # Missing scores sort last among the touched ones.
    touched.loc[2, "score"] = np.nan  # y's A
    assert list(target_ranks(touched, [("score", True)], targets, pop)) == [3, 0, 3]
    with pytest.raises(ValueError, match="not candidates"):
        target_ranks(touched, [], pd.Series({"z": "Q"}), pop)


def test_target_ranks_equal_a_full_ordering() -> None:
    # Against the definition itself: list every candidate for the user and find the target.
    rng = np.random.default_rng(0)
    keys = [f"k{j}" for j in range(8)]
    pop = pd.Series(np.arange(8), index=rng.permutation(keys))
    rows = []
    for u in range(40):
        for key in rng.choice(keys, size=int(rng.integers(0, 6)), replace=False):
            rows.append((f"u{u:02d}", key, float(rng.integers(0, 3)), float(rng.integers(0, 3))))
    touched = pd.DataFrame(rows, columns=["user_id", "key", "a", "b"])
    targets = pd.Series({f"u{u:02d}": keys[int(rng.integers(0, 8))] for u in range(40)})
    ranks = target_ranks(touched, [("a", True), ("b", False)], targets, pop)
    for (user, target), rank in zip(targets.items(), ranks, strict=True):
        mine = touched[touched["user_id"] == user]
        ordered = [k for _, _, k in sorted(zip(-mine["a"], mine["b"], mine["key"],
                                               strict=True))]
        ordered += [k for k in pop.sort_values().index if k not in ordered]
        assert ordered.index(target) == rank, user


def test_interest_targets_nearest_centroid_ties_to_the_lowest_number() -> None:
    interests = pd.DataFrame({"user_id": ["x", "x", "y", "y", "y"],
                              "key": ["0", "1", "0", "1", "2"]})
    centroids = np.array([[1, 0], [0, 1], [1, 1], [1, 1], [0, 1]], dtype=np.float32)
    vectors = {"x": np.array([0.1, 0.9]), "y": np.array([2.0, 2.0])}
    # x is nearest to interest 1; y is equally near 0 and 1 (same centroid): 0.
    assert interest_targets(interests, centroids, vectors).to_dict() == {"x": "1", "y": "0"}


# ------------------------------------------------------------------------ hand-worked store


def test_each_system_ranks_the_tiny_dataset_as_worked_by_hand(tiny: Store) -> None:
    result = next_interest(tiny, "tiny", "fake", save=False)
    ranks = {(lv, s): f for (lv, s), f in result.per_user.items()}
    # 0-based rank of the test category, per system (see tiny_rows):
    # popular: A 1, D 3, C 2.
    # frequent: u1 B(2) A(1) -> 1; u2 C(1) D(1) tie -> latest first: D -> 0;
    #   u3 B(2) A(1), C untouched -> 2 + pop(C) 2 - (B, A more popular) 2 = 2.
    # recent: u1 A (t3) before B (t2) -> 0; u2 D -> 0; u3 B, A, then C -> 2.
    # profile (affinity = share × (rating - 3) / 2): u1 A 1/3 > B 2/3 × -0.75 -> 0;
    #   u2 C and D both 0.5 × 1, same share -> by key C, D -> 1; u3 B 1/3, A -1/6, C -> 2.
    expected = {"popular": [1, 3, 2], "frequent": [1, 0, 2], "recent": [0, 0, 2],
                "profile": [0, 1, 2]}
    for system, rank in expected.items():
        frame = ranks[("l1", system)]
        assert list(frame.index) == ["u1", "u2", "u3"]
        np.testing.assert_allclose(frame["ndcg@5"], [1 / math.log2(r + 2) for r in rank])
        assert list(frame["hit@1"]) == [float(r == 0) for r in rank], system
    # L2: u3's test item has no L2 category, so u3 is skipped there; u4 has no test item.
    assert all(list(ranks[("l2", s)].index) == ["u1", "u2"] for s in expected)
    summary = result.summary()
    assert summary.loc[("l1", "profile"), "n_users"] == 3
    assert summary.loc[("l2", "profile"), "n_users"] == 2
    # Nobody has 4 train reviews, so nobody has 2 interests: no interest level at all.
    assert result.levels() == ["l1", "l2"]
    assert set(result.to_json()["levels"]) == {"l1", "l2"}


def test_single_level_categories_report_l1_only(store: Store, tmp_path: Path) -> None:
    rows = [[*r[:5], str(r[5]).split(" > ")[0], *r[6:]] for r in tiny_rows()]
    ingest_file(store, write_csv(tmp_path / "flat.csv", rows), "flat")
    register_fake_version(store, "flat", TINY_VOCAB)
    result = next_interest(store, "flat", "fake")
    assert result.levels() == ["l1"]
    out = result.to_json()
    assert list(out["levels"]) == ["l1"] and out["levels"]["l1"]["n_users"] == 3
    assert set(out["levels"]["l1"]["systems"]) == {"profile", "popular", "frequent", "recent"}


def test_a_bad_split_or_batch_size_is_refused(tiny: Store) -> None:
    with pytest.raises(ConfigError, match="split"):
        next_interest(tiny, "tiny", "fake", split="train")
    with pytest.raises(ConfigError, match="batch_users"):
        next_interest(tiny, "tiny", "fake", batch_users=0)


# ------------------------------------------------------------------------ the demo


def test_on_the_demo_the_profile_finds_the_next_l1_better_than_popularity(
    demo_result: NextInterestResult,
) -> None:
    summary = demo_result.summary()
    assert summary.loc[("l1", "profile"), "hit@1"] > summary.loc[("l1", "popular"), "hit@1"]
    assert summary.loc[("l2", "profile"), "hit@1"] > summary.loc[("l2", "popular"), "hit@1"]
    assert set(summary.index) == {
        *itertools.product(("l1", "l2"),
                           ("profile", "popular", "frequent", "recent", "learned")),
        ("interest", "profile"), ("interest", "recent"),
    }
    for frame in demo_result.per_user.values():
        assert list(frame.columns) == list(METRICS) and frame.index.is_monotonic_increasing
        assert ((frame >= 0) & (frame <= 1)).all().all()


def test_batch_size_does_not_change_the_numbers(tmp_path: Path) -> None:
    # The first 40 demo users (every level, interests included), so that batches of one
    # user stay quick.
    demo = pd.read_csv(DEMO_DIR / "reviews.csv")
    demo[demo["user_id"] <= "U0040"].to_csv(tmp_path / "part.csv", index=False)
    store = Store(tmp_path / "part.duckdb")
    ingest_file(store, tmp_path / "part.csv", "part")
    register_fake_version(store, "part", DEMO_VOCAB)
    whole = next_interest(store, "part", "fake", batch_users=10_000, save=False)
    assert set(whole.levels()) == {"l1", "l2", "interest"}
    assert {("l1", "learned"), ("l2", "learned")} <= set(whole.per_user)
    seen: list[tuple[int, int]] = []
    for batch in (1, 7):
        other = next_interest(store, "part", "fake", batch_users=batch, save=False,
                              progress=lambda done, total: seen.append((done, total)))
        assert set(other.per_user) == set(whole.per_user)
        for key, frame in whole.per_user.items():
            pd.testing.assert_frame_equal(other.per_user[key], frame)
    store.close()
    n = len(whole.per_user[("l1", "popular")])
    assert seen[-1] == (n, n) and len(seen) == n + -(-n // 7)  # one call per batch


def test_no_held_out_text_is_read(demo_result: NextInterestResult, tmp_path: Path) -> None:
    # The same demo with every test review's text (each user's latest review, of users
    # with 3 or more) replaced by other products' words: their embeddings change, nothing
    # the evaluation reads does.
    reviews = pd.read_csv(DEMO_DIR / "reviews.csv")
    latest = (reviews.assign(row=np.arange(len(reviews)))
              .sort_values(["timestamp", "row"]).groupby("user_id").tail(1).index)
    counts = reviews["user_id"].map(reviews["user_id"].value_counts())
    held_out = latest[counts[latest] >= 3]
    reviews.loc[held_out, "text"] = "coffee knife novel plot tent bike"
    reviews.to_csv(tmp_path / "changed.csv", index=False)
    other = Store(tmp_path / "other.duckdb")
    ingest_file(other, tmp_path / "changed.csv", "demo")
    stored = sample_reviews(other, "demo", limit=len(reviews))
    changed_text = stored["text"] == "coffee knife novel plot tent bike"
    assert (changed_text == (stored["split"] == "test")).all()  # the test reviews, only
    register_fake_version(other, "demo", DEMO_VOCAB)
    changed = next_interest(other, "demo", "fake")
    other.close()
    assert set(changed.per_user) == set(demo_result.per_user)
    for key, frame in demo_result.per_user.items():
        pd.testing.assert_frame_equal(changed.per_user[key], frame)


# ------------------------------------------------------------------------ store, compare


def test_results_are_stored_replaced_per_split_and_purged(tiny: Store) -> None:
    assert read_next_interest_metrics(tiny, "fake", "tiny", "test", "l1", "profile").empty
    assert next_interest_summary(tiny, "fake", "tiny").empty
    purge_next_interest_metrics(tiny, "tiny")  # no table yet: nothing to do
    test = next_interest(tiny, "tiny", "fake")
    val = next_interest(tiny, "tiny", "fake", split="val")
    next_interest(tiny, "tiny", "fake")  # again: replaces test, keeps val
    for result in (test, val):
        loaded = load_next_interest(tiny, "tiny", "fake", result.split)
        assert set(loaded.per_user) == set(result.per_user)
        for key, frame in result.per_user.items():
            pd.testing.assert_frame_equal(loaded.per_user[key], frame, check_dtype=False)
        stored = next_interest_summary(tiny, "fake", "tiny", result.split)
        pd.testing.assert_frame_equal(stored.set_index(["level", "system"]),
                                      result.summary(), check_dtype=False, check_like=True)
    purge_next_interest_metrics(tiny, "tiny")
    assert load_next_interest(tiny, "tiny", "fake").per_user == {}


def test_versions_are_compared_on_the_same_users(demo: Store,
                                                 demo_result: NextInterestResult) -> None:
    register_fake_version(demo, "demo", [*DEMO_VOCAB[:6], "sound"], version="fake_small")
    small = next_interest(demo, "demo", "fake_small", save=False)
    paired = compare_next_interest(small, demo_result, "interest", metric="ndcg@5")
    a = small.per_user[("interest", "profile")]["ndcg@5"]
    b = demo_result.per_user[("interest", "profile")]["ndcg@5"]
    common = a.index.intersection(b.index)
    assert paired.n_users == len(common) > 0
    assert paired.mean_a == pytest.approx(a[common].mean())
    assert paired.diff == pytest.approx((b[common] - a[common]).mean())
    same = compare_next_interest(demo_result, demo_result, "l1", system="recent")
    assert same.diff == 0 and same.p_value == 1.0
    with pytest.raises(ConfigError, match="no next-interest metrics for level 'l3'"):
        compare_next_interest(small, demo_result, "l3")
    with pytest.raises(ConfigError, match="Unknown metric"):
        compare_next_interest(small, demo_result, "l1", metric="mrr")
