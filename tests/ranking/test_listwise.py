"""Listwise fusion fit: candidate layout, exact gradient, and weights that rank the target."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from scipy.optimize import check_grad

from mgi_core.ranking import fusion
from mgi_core.ranking.fusion import (
    candidate_columns,
    fit_weights,
    learn_weights,
    listwise_softmax_weights,
    validation_design,
)


def test_candidate_columns_put_the_target_first_and_skip_train_items() -> None:
    exclude = np.array([[True, False, False, False, False], [False, False, True, True, True]])
    cols, valid = candidate_columns(exclude, np.array([3, 1]), max_candidates=10)
    assert cols.shape == (2, 5)
    assert cols[0, 0] == 3 and sorted(cols[0, 1:][valid[0, 1:]]) == [1, 2, 4]
    assert cols[1, 0] == 1 and sorted(cols[1, 1:][valid[1, 1:]]) == [0]
    assert valid.sum(axis=1).tolist() == [4, 2]  # the rest is padding


def test_candidate_columns_sample_when_the_catalogue_is_large() -> None:
    exclude = np.zeros((3, 100), dtype=bool)
    exclude[:, :10] = True
    cols, valid = candidate_columns(exclude, np.array([50, 60, 70]), max_candidates=20, seed=1)
    assert cols.shape == (3, 20) and valid.all()
    for row, target in enumerate((50, 60, 70)):
        assert cols[row, 0] == target
        others = cols[row, 1:]
        assert len(set(others)) == 19 and target not in others and (others >= 10).all()


def _objective(z: np.ndarray, valid: np.ndarray, l2: float, monkeypatch):
    """The (loss, gradient) function listwise_softmax_weights hands to the optimiser."""
    captured = {}

    def spy(fun, x0, jac, method):
        captured["fun"] = fun
        return SimpleNamespace(x=x0)

    with monkeypatch.context() as m:
        m.setattr("scipy.optimize.minimize", spy)
        listwise_softmax_weights(z, valid, l2)
    return captured["fun"]


def test_listwise_gradient_is_exact_and_padding_never_counts(monkeypatch) -> None:
    rng = np.random.default_rng(0)
    z = rng.normal(size=(7, 6, 3))
    valid = np.ones((7, 6), dtype=bool)
    valid[2, 4:] = False
    fun = _objective(z, valid, 0.01, monkeypatch)
    for w in rng.normal(size=(3, 3)):
        assert check_grad(lambda v: fun(v)[0], lambda v: fun(v)[1], w) < 1e-5
    padded = z.copy()
    padded[2, 5] = 100.0  # a padded column with a huge score changes nothing
    fun_padded = _objective(padded, valid, 0.01, monkeypatch)
    w = rng.normal(size=3)
    assert fun_padded(w)[0] == pytest.approx(fun(w)[0])
    np.testing.assert_allclose(fun_padded(w)[1], fun(w)[1])


def test_listwise_weights_recover_the_signal_and_ignore_noise() -> None:
    rng = np.random.default_rng(2)
    z = rng.normal(size=(300, 40, 3))
    z[:, 0, 0] += 2.0  # feature 0 points at the target, 1 is noise, 2 points away from it
    z[:, 0, 2] -= 1.0
    w = listwise_softmax_weights(z, np.ones((300, 40), dtype=bool), l2=1e-3)
    assert w[0] > 1.0 and w[2] < -0.5 and abs(w[1]) < 0.3
    # Both fits agree on the signs; the listwise fit ranks the target at least as well.
    p = fit_weights(z, np.ones((300, 40), dtype=bool), "pairwise")
    assert np.sign(p[0]) == 1 and np.sign(p[2]) == -1

    def mean_rank(weights: np.ndarray) -> float:
        s = z @ weights
        return float((s[:, 1:] > s[:, :1]).sum(axis=1).mean())

    assert mean_rank(w) <= mean_rank(p) + 0.05
    with pytest.raises(ValueError, match="method"):
        fit_weights(z, np.ones((300, 40), dtype=bool), "pointwise")


def _ctx(n_users: int = 80, n_items: int = 30, seed: int = 0):
    rng = np.random.default_rng(seed)
    rows, cols = [], []
    for u in range(n_users):
        for i in rng.choice(n_items, size=2, replace=False):
            rows.append(u)
            cols.append(i)
    train = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n_users, n_items))
    val = [int(rng.choice(np.flatnonzero(train[u].toarray()[0] == 0))) for u in range(n_users)]
    targets = {"val": pd.DataFrame({"u": np.arange(n_users), "i": val})}
    return SimpleNamespace(inter=SimpleNamespace(train=train, targets=targets)), val


def test_learn_weights_on_validation_targets(monkeypatch) -> None:
    ctx, val = _ctx()
    rng = np.random.default_rng(5)
    good, noise = rng.normal(size=(80, 30)), rng.normal(size=(80, 30))
    good[np.arange(80), val] += 3.0
    monkeypatch.setattr(fusion, "compute_features",
                        lambda ctx, users, names: {"good": good, "noise": noise})
    design = validation_design(ctx, ("good", "noise"))
    assert design.z.shape == (80, 30, 2) and design.valid.sum(axis=1).tolist() == [28] * 80
    assert design.usable.all() and not design.cold.any()
    # Column 0 holds the target's z-scores.
    z_good = fusion.zscore_rows(good, ctx.inter.train.toarray() > 0)
    np.testing.assert_allclose(design.z[:, 0, 0], z_good[np.arange(80), val])
    for method in ("listwise", "pairwise"):
        w = learn_weights(ctx, ("good", "noise"), method=method)
        assert w["good"] > 1.0 and abs(w["noise"]) < 0.5 * w["good"]
    empty = SimpleNamespace(inter=SimpleNamespace(
        train=ctx.inter.train, targets={"val": pd.DataFrame({"u": [], "i": []})}))
    assert validation_design(empty, ("good",)) is None
    assert learn_weights(empty, ("good", "noise")) == {"good": 1.0, "noise": 1.0}
