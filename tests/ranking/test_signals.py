"""Signals that plug in: the registry, a toy signal registered here, what fitting may read."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from mgi_core.data.ingest import ingest_file
from mgi_core.errors import ConfigError
from mgi_core.evaluation.protocol import evaluate
from mgi_core.ranking.features import ALL_FEATURES, build_context, compute_features
from mgi_core.ranking.fusion import SCORERS, ScorerSpec, zscore_rows
from mgi_core.ranking.model import load_ranking_context
from mgi_core.ranking.recommend import GRANULARITY, Recommender
from mgi_core.ranking.signals import SIGNALS, Signal, register, unregister
from mgi_core.ranking.signals.profile_index import ProfileIndex
from tests.conftest import write_csv
from tests.fake_encoder import register_fake_version
from tests.ranking.test_ranking import VOCAB, _rows


@pytest.fixture
def toy_store(store, tmp_path):
    """4 users × 9 items (b1..b3, h1..h3, l1..l3) with the fake keyword encoder."""
    ingest_file(store, write_csv(tmp_path / "r.csv", _rows()), "toy")
    register_fake_version(store, "toy", VOCAB)
    return store


class ItemParity(Signal):
    """1 for the items at even positions of the catalogue, 0 for the others."""

    name = "item_parity"
    granularity = "parity"

    def fit(self, context) -> ItemParity:
        self.even = (np.arange(context.inter.n_items) % 2 == 0).astype(float)  # (n_items,)
        return self

    def score(self, users: np.ndarray) -> np.ndarray:
        return np.tile(self.even, (len(users), 1))


@pytest.fixture
def parity_scorer(monkeypatch):
    """``item_parity`` registered, and a scorer fusing it with item-kNN; both removed after."""
    register(ItemParity)
    monkeypatch.setitem(
        SCORERS, "parity_hybrid", ScorerSpec("parity_hybrid", ("item_parity", "item_knn")))
    yield SCORERS["parity_hybrid"]
    unregister("item_parity")


def test_the_registry_lists_the_built_in_signals_with_their_reason_labels() -> None:
    assert ALL_FEATURES == (
        "popularity", "item_knn", "mf", "content", "content_last", "content_interest",
        "content_category", "affinity_l1", "affinity_l2", "transition_l1",
    )
    assert tuple(SIGNALS) == ALL_FEATURES
    # The labels recommend groups a score's parts by (the same as before signals were classes).
    assert dict(GRANULARITY) == {
        "popularity": "popularity", "item_knn": "collaborative", "mf": "collaborative",
        "content": "overall", "content_last": "fine", "content_interest": "fine",
        "content_category": "category", "affinity_l1": "category",
        "affinity_l2": "subcategory", "transition_l1": "category",
    }
    # Every scorer names registered signals; the CF-only ones need no model version.
    assert all(name in SIGNALS for spec in SCORERS.values() for name in spec.features)
    assert [s for s, spec in SCORERS.items() if not spec.needs_version] == [
        "random", "popularity", "item_knn", "mf"]


def test_a_signal_registered_in_a_test_is_fitted_scored_fused_and_explained(
    toy_store, parity_scorer
) -> None:
    ctx = load_ranking_context(toy_store, "toy", "fake", with_mf=False)
    assert "item_parity" in ctx.signals  # fitted with the others, nothing else edited
    users = np.arange(ctx.inter.n_users)
    parity = compute_features(ctx, users, ("item_parity",))["item_parity"]
    # Items sorted b1 b2 b3 h1 h2 h3 l1 l2 l3: even positions are b1, b3, h2, l1, l3.
    assert list(ctx.inter.items) == ["b1", "b2", "b3", "h1", "h2", "h3", "l1", "l2", "l3"]
    np.testing.assert_array_equal(parity, np.tile([1, 0, 1, 0, 1, 0, 1, 0, 1], (4, 1)))

    # Evaluation learns a weight for it on validation, like for any built-in signal.
    result = evaluate(toy_store, "toy", "fake", ("parity_hybrid",))
    weights = result.weights["parity_hybrid"]
    assert set(weights) == {"item_parity", "item_knn"}
    assert list(result.summary()["n_users"]) == [4]

    # A recommendation shows its part under the signal's granularity, and the parts add up
    # to the fused score: w_parity · z(parity) + w_knn · z(knn) over a's candidates.
    out = Recommender.load(toy_store, "toy", "fake", "parity_hybrid").recommend("a", 3)
    assert out["weights"] == weights  # the weights evaluation stored
    a = np.array([list(ctx.inter.users).index("a")])
    exclude = ctx.inter.train[a].toarray() > 0
    feats = compute_features(ctx, a, ("item_parity", "item_knn"))
    by_hand = sum(w * zscore_rows(feats[n], exclude)[0] for n, w in weights.items())
    for item in out["items"]:
        assert set(item["parts"]) == {"parity", "collaborative"}
        assert item["parts"]["parity"] == pytest.approx(item["features"]["item_parity"])
        i = list(ctx.inter.items).index(item["item_id"])
        assert item["score"] == pytest.approx(by_hand[i])


def test_an_unregistered_signal_is_no_longer_fitted(toy_store) -> None:
    register(ItemParity)
    try:
        assert "item_parity" in load_ranking_context(toy_store, "toy", None, False).signals
    finally:
        unregister("item_parity")
    assert "item_parity" not in SIGNALS
    assert "item_parity" not in load_ranking_context(toy_store, "toy", None, False).signals
    with pytest.raises(ConfigError, match="unknown signal"):
        ScorerSpec("parity_hybrid", ("item_parity", "item_knn"))


def test_register_rejects_a_taken_name_a_missing_label_and_unknown_needs() -> None:
    class OtherPopularity(ItemParity):
        name = "popularity"

    class NoLabel(ItemParity):
        name = "no_label"
        granularity = ""

    class NeedsRatings(ItemParity):
        name = "needs_ratings"
        needs = ("ratings",)

    with pytest.raises(ConfigError, match="'popularity' is taken"):
        register(OtherPopularity)
    with pytest.raises(ConfigError, match="a name and a granularity"):
        register(NoLabel)
    with pytest.raises(ConfigError, match=r"needs \['ratings'\]"):
        register(NeedsRatings)
    with pytest.raises(ConfigError, match="No signal named 'nope'"):
        unregister("nope")
    assert tuple(SIGNALS) == ALL_FEATURES  # nothing was added


def test_signals_whose_needs_are_missing_are_left_out(toy_store) -> None:
    # Without a version: no item vectors, no profiles → only the train-only signals.
    ctx = load_ranking_context(toy_store, "toy", None, with_mf=False)
    assert set(ctx.signals) == {"popularity", "item_knn", "transition_l1"}
    feats = compute_features(ctx, np.arange(4), ("content", "popularity", "mf"))
    assert set(feats) == {"popularity"}


def test_signals_fit_on_train_data_only(toy_store) -> None:
    # The held-out targets removed before fitting: every signal scores the same.
    ctx = load_ranking_context(toy_store, "toy", "fake", with_mf=False)
    train_only = dataclasses.replace(ctx.inter, targets={})
    blind = build_context(train_only, ctx.item_vecs, ctx.profiles, with_mf=False)
    users = np.arange(ctx.inter.n_users)
    names = tuple(n for n in ALL_FEATURES if n != "mf")
    got, want = compute_features(blind, users, names), compute_features(ctx, users, names)
    assert set(got) == set(names)
    for name in names:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)


def test_profile_index_groups_rows_by_user_and_level(toy_store) -> None:
    ctx = load_ranking_context(toy_store, "toy", "fake", with_mf=False)
    index = ProfileIndex(ctx.profiles)
    rows = ctx.profiles.rows
    a_l1 = rows[(rows["user_id"] == "a") & (rows["level"] == "l1")]
    level = index.levels("a")["l1"]
    assert list(level.keys) == list(a_l1["key"])  # stored row order kept
    np.testing.assert_array_equal(level.vector_rows, a_l1["vector_row"].to_numpy())
    assert index.levels("nobody") is None
    # a's train items are h1, h2 (Audio): Audio items map to a's Audio row, others to -1.
    assert list(level.keys) == ["Audio"]
    cols = level.item_columns(ctx.inter.item_l1)
    assert list(cols) == [0 if l1 == "Audio" else -1 for l1 in ctx.inter.item_l1]
    assert cols[list(ctx.inter.items).index("h3")] == 0
