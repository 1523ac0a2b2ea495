"""Segment-aware fusion: cold users (one train item) get weights of their own."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from mgi_core.ranking import fusion
from mgi_core.ranking.fusion import (
    COLD,
    cold_rows,
    fused,
    learn_weights,
    split_weights,
    zscore_rows,
)
from mgi_core.ranking.recommend import COLD_WEIGHTS, weights_for


def test_fused_uses_each_users_segment_weights() -> None:
    # User 0 has one train item (cold), user 1 two (warm); item 0 is seen by both.
    exclude = np.array([[True, False, False, False], [True, True, False, False]])
    a = np.array([[0.0, 1.0, 2.0, 3.0], [0.0, 0.0, 5.0, 1.0]])
    b = np.array([[0.0, 3.0, 2.0, 1.0], [0.0, 0.0, 1.0, 5.0]])
    weights = {"a": 1.0, "b": 0.0, COLD: {"a": 0.0, "b": 2.0}}
    got = fused({"a": a, "b": b}, weights, exclude)
    # Cold row: 2 × z(b); warm row: 1 × z(a); excluded cells stay 0.
    np.testing.assert_allclose(got[0], 2 * zscore_rows(b, exclude)[0])
    np.testing.assert_allclose(got[1], zscore_rows(a, exclude)[1])
    # Without a cold entry everyone gets the same weights (the old behaviour).
    np.testing.assert_allclose(fused({"a": a, "b": b}, {"a": 1.0}, exclude),
                               zscore_rows(a, exclude))
    assert cold_rows(exclude).tolist() == [True, False]


def test_split_weights_and_weights_for() -> None:
    weights = {"content": 0.5, "item_knn": 1.0, COLD: {"content": 2.0}}
    assert split_weights(weights) == ({"content": 0.5, "item_knn": 1.0}, {"content": 2.0})
    assert weights_for(weights, cold=True) == {"content": 2.0}
    assert weights_for(weights, cold=False) == {"content": 0.5, "item_knn": 1.0}
    # No cold weights: a fused scorer ranks cold users as evaluation does, with its weights;
    # a single-feature scorer falls back explicitly.
    assert weights_for({"content": 0.5, "item_knn": 1.0}, cold=True) == {
        "content": 0.5, "item_knn": 1.0}
    assert weights_for({"content": 1.0}, cold=True) == COLD_WEIGHTS


def _context(n_cold: int, n_warm: int, n_items: int = 40, seed: int = 0):
    """Users 0..n_cold-1 own one train item, the rest three; each has a val item."""
    rng = np.random.default_rng(seed)
    n = n_cold + n_warm
    rows, cols = [], []
    for u in range(n):
        for i in rng.choice(n_items, size=1 if u < n_cold else 3, replace=False):
            rows.append(u)
            cols.append(i)
    train = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n_items))
    val_items = [int(rng.choice(np.flatnonzero(train[u].toarray()[0] == 0))) for u in range(n)]
    targets = {"val": pd.DataFrame({"u": np.arange(n), "i": val_items})}
    return SimpleNamespace(inter=SimpleNamespace(train=train, targets=targets)), val_items


def test_learn_weights_finds_what_predicts_each_segment(monkeypatch) -> None:
    ctx, val_items = _context(n_cold=60, n_warm=60)
    rng = np.random.default_rng(1)
    n, n_items = len(val_items), 40
    # "a" points at the val item for cold users only, "b" for warm users only.
    a, b = rng.normal(size=(n, n_items)), rng.normal(size=(n, n_items))
    for u, i in enumerate(val_items):
        (a if u < 60 else b)[u, i] += 4.0
    monkeypatch.setattr(fusion, "compute_features", lambda ctx, users, names: {"a": a, "b": b})
    weights = learn_weights(ctx, ("a", "b"), segments=True)
    # Each segment leans on its own signal (the other feature is noise there; with 60
    # positives per segment its weight is small but not zero).
    assert weights[COLD]["a"] > 1.0 and weights[COLD]["a"] > 3 * abs(weights[COLD]["b"])
    assert weights["b"] > 1.0 and weights["b"] > 2.5 * abs(weights["a"])
    # One set of weights when asked, or when a segment is too small to learn from.
    assert COLD not in learn_weights(ctx, ("a", "b"))  # off by default
    small, _ = _context(n_cold=5, n_warm=60)
    monkeypatch.setattr(fusion, "compute_features",
                        lambda ctx, users, names: {"a": a[:65], "b": b[:65]})
    assert COLD not in learn_weights(small, ("a", "b"), segments=True)


@pytest.mark.parametrize("cold", [True, False])
def test_fused_equals_the_segment_weights_alone(cold: bool) -> None:
    rng = np.random.default_rng(3)
    exclude = np.zeros((1, 6), dtype=bool)
    exclude[0, :1 if cold else 3] = True
    feats = {"x": rng.normal(size=(1, 6)), "y": rng.normal(size=(1, 6))}
    weights = {"x": 0.3, "y": -1.2, COLD: {"x": 2.0, "y": 0.7}}
    want = fused(feats, weights_for(weights, cold), exclude)
    np.testing.assert_allclose(fused(feats, weights, exclude), want)
