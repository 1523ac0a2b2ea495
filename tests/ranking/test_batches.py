"""Ranking in batches: the batch size arithmetic, item-kNN without an item × item matrix,
and validation designs and top-k lists that do not depend on the batch size."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import scipy.sparse as sp

from mgi_core.errors import ConfigError
from mgi_core.ranking import fusion, recommend
from mgi_core.ranking.batches import default_batch_size, user_batches
from mgi_core.ranking.features import item_knn_similarity
from mgi_core.ranking.fusion import SCORERS, validation_design
from mgi_core.ranking.model import load_ranking_context
from mgi_core.ranking.recommend import Recommender
from mgi_core.ranking.signals.collaborative import ItemKnn
from mgi_core.store import Store


def test_default_batch_size_keeps_the_dense_arrays_under_the_budget() -> None:
    # 1,000 items, 6 features + 4 work arrays, float64: 80,000 bytes a user; 1 MB → 12 users.
    assert default_batch_size(1000, 6, budget_bytes=10**6) == 12
    # Never below one user, however large the catalogue.
    assert default_batch_size(10**9, 10, budget_bytes=10**6) == 1


def test_user_batches_cover_every_user_once_in_order() -> None:
    users = np.arange(10) * 7
    batches = list(user_batches(users, 4))
    assert [start for start, _ in batches] == [0, 4, 8]
    assert np.array_equal(np.concatenate([b for _, b in batches]), users)
    with pytest.raises(ConfigError, match="batch_size"):
        list(user_batches(users, 0))


def _knn(train: sp.csr_matrix) -> ItemKnn:
    return ItemKnn().fit(SimpleNamespace(inter=SimpleNamespace(train=train)))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_item_knn_scores_equal_the_dense_similarity_product_bit_for_bit(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_users, n_items = 120, 40
    dense = rng.random((n_users, n_items)) < rng.uniform(0.03, 0.3)
    dense[:, 7] = False  # an item nobody reviewed: zero norm, zero similarity
    train = sp.csr_matrix(dense.astype(np.float32))
    expected = np.asarray(train @ item_knn_similarity(train))  # (n_users, n_items) float32
    knn = _knn(train)
    users = rng.permutation(n_users)
    # Whole batch; parts of 3 items' rows; one row at a time (every history is "long").
    for row_bytes in (ItemKnn.row_bytes, 4 * n_items * 3, 4 * n_items):
        knn.row_bytes = row_bytes
        got = knn.score(users)
        assert got.dtype == np.float32
        assert np.array_equal(got, expected[users]), row_bytes


def test_item_knn_fit_keeps_no_dense_item_by_item_matrix() -> None:
    train = sp.csr_matrix(np.eye(5, dtype=np.float32))
    knn = _knn(train)
    assert not any(isinstance(v, np.ndarray) and v.ndim == 2 for v in vars(knn).values())
    assert sp.issparse(knn.cooccurrence)


@pytest.fixture(scope="module")
def demo_context(demo: Store):
    return load_ranking_context(demo, "demo", "fake")


def test_validation_design_is_the_same_in_batches_of_three(demo_context) -> None:
    names = SCORERS["mgi_hybrid"].features
    # 60 candidates: the demo's users sample from their unseen items (one random stream).
    whole = validation_design(demo_context, names, max_candidates=60, batch_size=10_000)
    small = validation_design(demo_context, names, max_candidates=60, batch_size=3)
    assert whole.names == small.names == names
    for field in ("z", "valid", "cold", "usable"):
        assert np.array_equal(getattr(whole, field), getattr(small, field)), field


def test_validation_design_samples_users_only_above_its_memory_cap(demo_context) -> None:
    names = ("popularity", "item_knn")
    whole = validation_design(demo_context, names, max_candidates=50)
    # A cap of 40 users' designs (40 × 50 candidates × 2 features × 8 bytes).
    capped = validation_design(demo_context, names, max_candidates=50,
                               max_design_bytes=40 * 50 * 2 * 8)
    assert len(whole.z) > 40 and len(capped.z) == 40
    assert capped.z.shape[1:] == whole.z.shape[1:]


def test_validation_design_scores_no_more_users_than_the_batch(demo_context,
                                                                monkeypatch) -> None:
    seen: list[int] = []
    real = fusion.compute_features

    def spy(ctx, users, names):
        seen.append(len(users))
        return real(ctx, users, names)

    monkeypatch.setattr(fusion, "compute_features", spy)
    validation_design(demo_context, ("popularity", "content"), batch_size=7)
    assert seen and max(seen) <= 7 and len(seen) > 1


@pytest.mark.parametrize("scorer", ["mgi_hybrid", "item_knn", "random"])
def test_top_k_is_the_same_in_batches_of_three(demo: Store, monkeypatch, scorer: str) -> None:
    rec = Recommender.load(demo, "demo", "fake", scorer)
    users = list(rec.ctx.inter.users[:40])
    whole = rec.top_k(users, batch_size=10_000)
    seen: list[int] = []
    real = recommend.compute_features

    def spy(ctx, batch, names):
        seen.append(len(batch))
        return real(ctx, batch, names)

    monkeypatch.setattr(recommend, "compute_features", spy)
    small = rec.top_k(users, batch_size=3)
    assert list(whole) == list(small) == users
    for user in users:
        assert whole[user].equals(small[user]), user
    assert scorer == "random" or (seen and max(seen) <= 3)
