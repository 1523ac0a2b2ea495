"""Scorers as weighted sums of per-user z-scored features; weights learned on validation.

A scorer is a name and a feature list. Single-feature scorers use the raw feature; fused
scorers z-score each feature per user over the candidate items (items not seen in train)
and add them with weights. ``untuned_hybrid`` uses fixed weights (content + item-kNN +
0.5 × popularity); the others learn their weights on the validation split with a pairwise
logistic model (the held-out validation item against sampled unseen items), so nothing of
the test split is used. Weights may come out zero or negative.

Weights can also be learned per segment (``segments=True``): users with one train review
(cold) then get weights of their own under the key ``"cold"``, and ``fused`` picks each
user's segment from the train items it excludes. It is off by default: on the Digital Music
data it lowered NDCG@10 (base mgi_hybrid 0.205 → 0.199; the cold segment's 300 validation
positives are too few to fit seven weights well).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mgi_core.ranking.features import (
    ALL_FEATURES,
    CATEGORY_FEATURES,
    CONTENT_FEATURES,
    FeatureContext,
    compute_features,
)


@dataclass(frozen=True)
class ScorerSpec:
    name: str
    features: tuple[str, ...]
    fixed_weights: dict[str, float] | None = None  # None → learned on validation
    needs_version: bool = True

    @property
    def tuned(self) -> bool:
        return len(self.features) > 1 and self.fixed_weights is None


SCORERS: dict[str, ScorerSpec] = {
    s.name: s
    for s in [
        ScorerSpec("random", (), needs_version=False),
        ScorerSpec("popularity", ("popularity",), needs_version=False),
        ScorerSpec("item_knn", ("item_knn",), needs_version=False),
        ScorerSpec("mf", ("mf",), needs_version=False),
        ScorerSpec("content", ("content",)),
        ScorerSpec("content_last", ("content_last",)),
        ScorerSpec("content_interest", ("content_interest",)),
        ScorerSpec("content_category", ("content_category",)),
        ScorerSpec(
            "untuned_hybrid",
            ("content", "item_knn", "popularity"),
            {"content": 1.0, "item_knn": 1.0, "popularity": 0.5},
        ),
        ScorerSpec("content_hybrid", ("content", "item_knn", "popularity")),
        ScorerSpec("mg_fusion", CONTENT_FEATURES + CATEGORY_FEATURES),
        ScorerSpec("mgi_hybrid", ALL_FEATURES),
    ]
}
DEFAULT_SCORERS = tuple(SCORERS)


def zscore_rows(m: np.ndarray, exclude: np.ndarray) -> np.ndarray:
    """Standardise each row over its candidate (non-excluded) entries; excluded → 0."""
    cand = ~exclude
    n = np.maximum(cand.sum(axis=1, keepdims=True), 1)
    mean = np.where(cand, m, 0.0).sum(axis=1, keepdims=True) / n
    var = np.where(cand, (m - mean) ** 2, 0.0).sum(axis=1, keepdims=True) / n
    z = (m - mean) / np.sqrt(np.maximum(var, 1e-12))
    return np.where(cand, z, 0.0)


COLD = "cold"  # key of the cold-user weights inside a weights dict
MIN_SEGMENT_USERS = 30  # validation users a segment needs for weights of its own


def cold_rows(exclude: np.ndarray) -> np.ndarray:
    """(n_users,) True where the user has at most one train item (the cold segment)."""
    return exclude.sum(axis=1) <= 1


def split_weights(
    weights: dict[str, Any],
) -> tuple[dict[str, float], dict[str, float] | None]:
    """(weights for users with a history, weights for cold users or None)."""
    warm = {k: float(v) for k, v in weights.items() if k != COLD}
    cold = weights.get(COLD)
    return warm, ({k: float(v) for k, v in cold.items()} if cold else None)


def fused(
    features: dict[str, np.ndarray], weights: dict[str, Any], exclude: np.ndarray
) -> np.ndarray:
    """Σ_f w_f · z_f per user, with the cold segment's weights for cold users if given."""
    warm, cold = split_weights(weights)
    rows = cold_rows(exclude) if cold else np.zeros(len(exclude), dtype=bool)
    total = np.zeros(exclude.shape)
    for name in dict.fromkeys([*warm, *(cold or {})]):
        w = np.where(rows, (cold or {}).get(name, 0.0), warm.get(name, 0.0))  # (n_users,)
        if name in features and np.any(w):
            total += w[:, None] * zscore_rows(features[name], exclude)
    return total


def learn_weights(
    ctx: FeatureContext,
    names: tuple[str, ...],
    split: str = "val",
    n_negatives: int = 50,
    seed: int = 0,
    c: float = 1.0,
    segments: bool = False,
) -> dict[str, Any]:
    """Pairwise logistic weights from validation targets (positive vs sampled unseen items).

    With ``segments``, cold users (one train item) get weights of their own under ``"cold"``
    when validation holds at least ``MIN_SEGMENT_USERS`` cold and warm users each.
    """
    from sklearn.linear_model import LogisticRegression

    inter = ctx.inter
    targets = inter.targets[split]
    if targets.empty:
        return dict.fromkeys(names, 1.0)
    users = targets["u"].to_numpy()
    exclude = inter.train[users].toarray() > 0
    feats = compute_features(ctx, users, names)
    names = tuple(n for n in names if n in feats)
    z = np.stack([zscore_rows(feats[n], exclude) for n in names], axis=-1)  # (u, i, f)
    rng = np.random.default_rng(seed)
    diffs, row_of = [], []
    for row, item in enumerate(targets["i"]):
        cand = np.flatnonzero(~exclude[row])
        cand = cand[cand != item]
        if not len(cand):
            continue
        neg = rng.choice(cand, size=min(n_negatives, len(cand)), replace=False)
        diffs.append(z[row, item][None, :] - z[row, neg])  # (n_neg, f)
        row_of.append(np.full(len(neg), row))
    if not diffs:
        return dict.fromkeys(names, 1.0)
    x, rows = np.concatenate(diffs), np.concatenate(row_of)

    def fit(keep: np.ndarray) -> dict[str, float]:
        xs = np.concatenate([x[keep], -x[keep]])
        y = np.concatenate([np.ones(int(keep.sum())), np.zeros(int(keep.sum()))])
        model = LogisticRegression(fit_intercept=False, C=c, max_iter=1000).fit(xs, y)
        return {n: float(w) for n, w in zip(names, model.coef_[0], strict=True)}

    cold_user = cold_rows(exclude)
    n_cold = len(np.unique(rows[cold_user[rows]]))
    n_warm = len(np.unique(rows[~cold_user[rows]]))
    if not segments or min(n_cold, n_warm) < MIN_SEGMENT_USERS:
        return fit(np.ones(len(x), dtype=bool))
    return {**fit(~cold_user[rows]), COLD: fit(cold_user[rows])}
