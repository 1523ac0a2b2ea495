"""Scorers as weighted sums of per-user z-scored features; weights learned on validation.

A scorer is a name and a feature list. Single-feature scorers use the raw feature; fused
scorers z-score each feature per user over the candidate items (items not seen in train)
and add them with weights. ``untuned_hybrid`` uses fixed weights (content + item-kNN +
0.5 × popularity); the others learn their weights on the validation split with a pairwise
logistic model (the held-out validation item against sampled unseen items), so nothing of
the test split is used. Weights may come out zero or negative.
"""

from __future__ import annotations

from dataclasses import dataclass

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


def fused(
    features: dict[str, np.ndarray], weights: dict[str, float], exclude: np.ndarray
) -> np.ndarray:
    total = np.zeros(exclude.shape)
    for name, w in weights.items():
        if w and name in features:
            total += w * zscore_rows(features[name], exclude)
    return total


def learn_weights(
    ctx: FeatureContext,
    names: tuple[str, ...],
    split: str = "val",
    n_negatives: int = 50,
    seed: int = 0,
    c: float = 1.0,
) -> dict[str, float]:
    """Pairwise logistic weights from validation targets (positive vs sampled unseen items)."""
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
    diffs = []
    for row, (u_pos, item) in enumerate(zip(range(len(users)), targets["i"], strict=True)):
        cand = np.flatnonzero(~exclude[row])
        cand = cand[cand != item]
        if not len(cand):
            continue
        neg = rng.choice(cand, size=min(n_negatives, len(cand)), replace=False)
        diffs.append(z[u_pos, item][None, :] - z[u_pos, neg])
    x = np.concatenate(diffs)
    x = np.concatenate([x, -x])
    y = np.concatenate([np.ones(len(x) // 2), np.zeros(len(x) // 2)])
    model = LogisticRegression(fit_intercept=False, C=c, max_iter=1000).fit(x, y)
    return {n: float(w) for n, w in zip(names, model.coef_[0], strict=True)}
