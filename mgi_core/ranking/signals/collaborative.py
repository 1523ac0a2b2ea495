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
    """Cosine similarity between items' binary user vectors, zero diagonal. (n_i, n_i)

    Dense: the reference ``ItemKnn`` is tested against; ``ItemKnn`` itself computes only
    the rows of the items a batch of users reviewed, with the same float32 numbers.
    """
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
    """Sum of the item's cosine similarities to the user's train items.

    score_u(i) = Σ_j t_uj · sim(j, i) over the user's train items j, with sim the cosine of
    the items' binary user vectors and a zero diagonal (``item_knn_similarity``). No
    item × item matrix is held dense: ``fit`` keeps the sparse co-occurrence counts XᵀX and
    the item norms, and ``score`` builds only the similarity rows of the items the batch's
    users reviewed, at most ``row_bytes`` of them at a time, then multiplies exactly as the
    dense product did (float32, each user's items in stored order), so the scores are the
    same to the last bit.
    """

    name = "item_knn"
    granularity = "collaborative"
    row_bytes: int = 128 * 2**20  # dense float32 similarity rows one scoring step holds

    def fit(self, context: FeatureContext) -> ItemKnn:
        self.train = context.inter.train
        x = (self.train > 0).astype(np.float32).tocsc()
        self.norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=0)).ravel())  # (n_i,) float32
        self.cooccurrence = (x.T @ x).tocsr()  # (n_i, n_i) sparse: users sharing both items
        return self

    def similarity_rows(self, items: np.ndarray) -> np.ndarray:
        """Rows ``items`` of the item × item cosine similarity. (len(items), n_i) float32"""
        sim = self.cooccurrence[items].toarray()
        sim /= np.maximum(np.outer(self.norms[items], self.norms), 1e-12)
        sim[np.arange(len(items)), items] = 0.0
        return sim

    def score(self, users: np.ndarray) -> np.ndarray:
        history = self.train[users]  # (n_users, n_i) sparse
        n_items = history.shape[1]
        out = np.zeros((len(users), n_items), dtype=np.float32)
        max_rows = max(1, self.row_bytes // (4 * max(1, n_items)))
        lengths = np.diff(history.indptr)
        start = 0
        while start < len(users):
            # The next users whose histories hold at most max_rows items together (one at least).
            stop = start + max(1, int(np.searchsorted(
                np.cumsum(lengths[start:]), max_rows, side="right")))
            if stop - start == 1 and lengths[start] > max_rows:
                out[start] = self._score_long_history(history[start], max_rows)
            else:
                part = history[start:stop]
                items = np.unique(part.indices)  # sorted: columns keep their stored order
                local = sp.csr_matrix(
                    (part.data, np.searchsorted(items, part.indices), part.indptr),
                    shape=(stop - start, len(items)),
                )
                out[start:stop] = local @ self.similarity_rows(items)
            start = stop
        return out

    def _score_long_history(self, row: sp.csr_matrix, max_rows: int) -> np.ndarray:
        """One user with more than ``max_rows`` train items: their similarity rows a chunk at
        a time, added in stored order as the sparse × dense product adds them."""
        scores = np.zeros(row.shape[1], dtype=np.float32)
        for at in range(0, row.nnz, max_rows):
            items = row.indices[at : at + max_rows]
            sim = self.similarity_rows(items)
            for k, weight in enumerate(row.data[at : at + max_rows]):
                scores += weight * sim[k]
        return scores


class MatrixFactorisation(Signal):
    """Dot product of the user's and the item's ALS factors (``fit_mf``, seeded).

    Several users are scored ``block`` at a time, the last block padded with zero rows:
    BLAS picks its float32 kernel by the matrix shape, and a product over 2–3 users can
    differ from a larger one in the last bit. Fixed-size blocks make a user's scores the
    same whatever batch of several users it comes in (checked on catalogues of 50 items and
    more). One user alone (``recommend``) keeps the plain matrix-vector product, the numbers
    recommendations have always shown; they may differ from a batch's in the last bit.
    """

    name = "mf"
    granularity = "collaborative"
    block = 64  # users per matrix product

    def fit(self, context: FeatureContext) -> MatrixFactorisation:
        self.user_factors, self.item_factors = fit_mf(context.inter.train, seed=context.seed)
        return self

    def score(self, users: np.ndarray) -> np.ndarray:
        factors = self.user_factors[users]  # (n_users, f)
        if len(users) == 1:
            return factors @ self.item_factors.T
        out = np.empty((len(users), len(self.item_factors)), dtype=factors.dtype)
        padded = np.zeros((self.block, factors.shape[1]), dtype=factors.dtype)
        for start in range(0, len(users), self.block):
            rows = factors[start : start + self.block]
            padded[: len(rows)] = rows
            padded[len(rows) :] = 0.0
            out[start : start + len(rows)] = (padded @ self.item_factors.T)[: len(rows)]
        return out
