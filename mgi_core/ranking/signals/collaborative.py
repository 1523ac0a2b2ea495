"""Collaborative signals from the train user-item matrix: item-kNN and matrix factorisation."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

from mgi_core.ranking.signals.base import Signal

if TYPE_CHECKING:
    from mgi_core.ranking.features import FeatureContext


def item_knn_similarity(train: sp.csr_matrix) -> np.ndarray:
    """Cosine similarity between items' binary user vectors, zero diagonal. (n_i, n_i)"""
    x = (train > 0).astype(np.float32).tocsc()
    norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=0)).ravel())
    sim = (x.T @ x).toarray()
    sim /= np.maximum(np.outer(norms, norms), 1e-12)
    np.fill_diagonal(sim, 0.0)
    return sim


def fit_mf(
    train: sp.csr_matrix,
    factors: int = 32,
    regularization: float = 5.0,
    alpha: float = 20.0,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Implicit-feedback ALS (the ``implicit`` library): (user_factors, item_factors).

    ``regularization`` and ``alpha`` were chosen on validation (README, "What was tried";
    ``bench/ranking_choices.py``): strong confidence on the few observed items with strong
    shrinkage suits sparse review data, where most users have 1–5 items.

    ``implicit`` runs its own threads and warns ("OpenBLAS is configured to use N threads")
    from the model's constructor when BLAS may use more than one. BLAS is limited to one
    thread around the construction and the fit, so the check passes and nothing is warned.
    """
    from implicit.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, "blas"), warnings.catch_warnings():
        # Should threadpoolctl not see this BLAS, the limit does not apply: still no warning.
        warnings.filterwarnings("ignore", message=r".* is configured to use \d+ threads",
                                category=RuntimeWarning)
        model = AlternatingLeastSquares(
            factors=factors,
            regularization=regularization,
            iterations=20,
            alpha=alpha,
            random_state=seed,
            use_gpu=False,
        )
        model.fit(train.astype(np.float32), show_progress=False)
    return np.asarray(model.user_factors), np.asarray(model.item_factors)


class ItemKnn(Signal):
    """Sum of the item's cosine similarities to the user's train items."""

    name = "item_knn"
    granularity = "collaborative"

    def fit(self, context: FeatureContext) -> ItemKnn:
        self.train = context.inter.train
        self.similarity = item_knn_similarity(self.train)  # (n_i, n_i)
        return self

    def score(self, users: np.ndarray) -> np.ndarray:
        return np.asarray(self.train[users] @ self.similarity)


class MatrixFactorisation(Signal):
    """Dot product of the user's and the item's ALS factors (``fit_mf``, seeded)."""

    name = "mf"
    granularity = "collaborative"

    def fit(self, context: FeatureContext) -> MatrixFactorisation:
        self.user_factors, self.item_factors = fit_mf(context.inter.train, seed=context.seed)
        return self

    def score(self, users: np.ndarray) -> np.ndarray:
        return self.user_factors[users] @ self.item_factors.T
