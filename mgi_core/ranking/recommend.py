"""Recommendations for one user with the reasons a person reads.

Each recommended item carries its score broken down per feature (the weighted z-scores
that add up to the fused score, grouped by granularity) and the user's past train reviews
whose embeddings match the item best. Items the user reviewed in train are excluded.
Cold users (one train review) are flagged. A fused scorer ranks them with its fusion weights,
as evaluation does (its cold segment's weights where they were learned): on the Digital Music
data this beats a hand-set fallback for them (README, "Ranking on the shared Digital Music
data"). A single-feature scorer gets the explicit fallback instead: popularity within the
categories the user touched, blended with content match to their one review.

:meth:`Recommender.top_k` ranks many users at once exactly as evaluation ranks them
(``scorer_scores``): the lists behind each user's stored metrics.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mgi_core.errors import ConfigError, UnknownUserError
from mgi_core.ranking.batches import default_batch_size, user_batches
from mgi_core.ranking.features import FeatureContext, compute_features
from mgi_core.ranking.fusion import SCORERS, fused, learn_weights, split_weights, zscore_rows
from mgi_core.ranking.model import load_ranking_context
from mgi_core.ranking.signals import GRANULARITY  # signal name -> reason label
from mgi_core.store import Store
from mgi_core.store.evaluations import fusion_weights
from mgi_core.store.profiles import item_titles

COLD_WEIGHTS = {"content": 1.0, "affinity_l1": 1.0, "popularity": 1.0}


def weights_for(weights: dict[str, Any], cold: bool) -> dict[str, float]:
    """The weights one user is ranked with (the same as evaluation's for a fused scorer)."""
    warm, cold_weights = split_weights(weights)
    if not cold:
        return warm
    if cold_weights:
        return cold_weights
    return warm if len(warm) > 1 else COLD_WEIGHTS


def cold_note(weights: dict[str, Any]) -> str:
    if split_weights(weights)[1]:
        return ("Cold user (one review): ranked with the weights learned for one-review users "
                "on the validation split.")
    if len(weights) > 1:
        return ("Cold user (one review): one review is thin evidence, so collaborative and "
                "popularity signals weigh as much as that review's content.")
    return "Cold user (one review): popularity in their categories plus similarity to that review."


@dataclass
class Recommendation:
    item_id: str
    title: str | None
    category: str | None
    score: float
    parts: dict[str, float]  # granularity -> contribution
    features: dict[str, float]  # feature -> weighted z-score
    matching_reviews: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def scorer_scores(
    ctx: FeatureContext,
    scorer: str,
    users: np.ndarray,
    exclude: np.ndarray,
    weights: dict[str, Any] | None,
    seed: int | np.random.Generator = 0,
    features: dict[str, np.ndarray] | None = None,
    zscores: dict[str, np.ndarray] | None = None,
) -> np.ndarray:
    """(len(users), n_items) scores of one scorer, as evaluation ranks with them.

    A single-feature scorer scores with its feature; a fused one with ``fused`` (the cold
    segment's weights for users with one train item, where ``weights`` has them; the
    scorer's fixed weights when ``weights`` is None); ``random`` with uniform noise from
    ``seed``. Scoring users in batches, pass one generator as ``seed`` to every batch: the
    batches then draw the numbers one call over all the users would. ``features``: the
    batch's features when the caller computed them already (``compute_features`` for at
    least this scorer's signals), so that several scorers share one computation;
    ``zscores``: the batch's cache of standardised features (``fused``), shared likewise.
    """
    spec = SCORERS[scorer]
    if scorer == "random":
        return np.random.default_rng(seed).random((len(users), ctx.inter.n_items))
    feats = features if features is not None else compute_features(ctx, users, spec.features)
    if len(spec.features) == 1:
        return feats[spec.features[0]]
    return fused(feats, weights or spec.fixed_weights or {}, exclude, zscores)


def recommend_with_context(
    ctx: FeatureContext,
    user_id: str,
    k: int,
    weights: dict[str, float],
    n_reasons: int = 2,
) -> tuple[list[Recommendation], bool]:
    """Top ``k`` items for ``user_id`` and whether the cold-start fallback was used."""
    inter = ctx.inter
    index = inter.user_index()
    if user_id not in index:
        raise UnknownUserError(f"User {user_id!r} is not in dataset {inter.dataset!r}.")
    u = np.array([index[user_id]])
    exclude = inter.train[u].toarray() > 0
    seen = int(exclude.sum())
    cold = seen <= 1
    use = weights_for(weights, cold)
    feats = compute_features(ctx, u, tuple(use))
    contrib = {n: w * zscore_rows(feats[n], exclude)[0] for n, w in use.items() if n in feats}
    total = fused(feats, use, exclude)[0]
    total[exclude[0]] = -np.inf
    order = np.argsort(-total, kind="stable")[:k]
    reviews = inter.train_reviews[inter.train_reviews["u"] == u[0]]
    review_vecs = texts = None
    if ctx.review_lookup is not None and len(reviews):
        review_vecs, texts = ctx.review_lookup(reviews["review_id"].to_numpy())
    recs = []
    for i in order:
        if not np.isfinite(total[i]):
            break
        feature_parts = {n: float(c[i]) for n, c in contrib.items()}
        parts: dict[str, float] = {}
        for n, v in feature_parts.items():
            parts[GRANULARITY.get(n, n)] = parts.get(GRANULARITY.get(n, n), 0.0) + v
        matches = []
        if review_vecs is not None and ctx.item_vecs is not None and len(reviews):
            sims = review_vecs @ ctx.item_vecs[i]
            for j in np.argsort(-sims)[:n_reasons]:
                row = reviews.iloc[int(j)]
                matches.append(
                    {
                        "review_id": int(row["review_id"]),
                        "item_id": inter.items[int(row["i"])],
                        "rating": float(row["rating"]),
                        "similarity": float(sims[j]),
                        "text": str(texts[int(j)]),
                    }
                )
        recs.append(
            Recommendation(
                item_id=str(inter.items[i]),
                title=None,
                category=inter.item_l2[i] or inter.item_l1[i],
                score=float(total[i]),
                parts=parts,
                features=feature_parts,
                matching_reviews=matches,
            )
        )
    return recs, cold


@dataclass
class Recommender:
    """What ``recommend`` fits once per (dataset, version, scorer), reused for every user.

    Fitting (interactions, item-kNN, MF, profiles, fusion weights) takes seconds; one user's
    ranking from a fitted recommender takes milliseconds. The dashboard caches one.
    """

    dataset: str
    version: str
    scorer: str
    ctx: FeatureContext
    weights: dict[str, float]
    titles: dict[str, str | None]

    @classmethod
    def load(
        cls, store: Store, dataset: str, version: str, scorer: str = "mgi_hybrid",
        context: FeatureContext | None = None,
    ) -> Recommender:
        """Fit the ranking context for (dataset, version) and ``scorer``'s fusion weights.

        ``context``: a context already fitted for (dataset, version) (``load_ranking_context``
        with MF when the scorer uses it), shared by the recommenders of several scorers so
        that a large dataset is fitted once.

        Raises:
            ConfigError: ``scorer`` is not one of ``SCORERS``, or ``context`` lacks MF that
                the scorer needs.
        """
        if scorer not in SCORERS:
            raise ConfigError(f"Unknown scorer {scorer!r}; choose one of {', '.join(SCORERS)}.")
        spec = SCORERS[scorer]
        if context is not None and "mf" in spec.features and not context.with_mf:
            raise ConfigError(f"The context was fitted without MF, which {scorer} uses.")
        ctx = context or load_ranking_context(store, dataset, version,
                                              with_mf="mf" in spec.features)
        weights = fusion_weights(store, dataset, version, scorer)
        if weights is None:
            weights = spec.fixed_weights or (
                learn_weights(ctx, spec.features) if spec.tuned
                else dict.fromkeys(spec.features, 1.0)  # random: none
            )
        return cls(dataset, version, scorer, ctx, weights, item_titles(store, dataset))

    def recommend(self, user_id: str, k: int = 10) -> dict[str, Any]:
        """Ranked items for one user with per-granularity score parts and matching reviews."""
        recs, cold = recommend_with_context(self.ctx, user_id, k, self.weights)
        for r in recs:
            r.title = self.titles.get(r.item_id)
        return {
            "user_id": user_id,
            "dataset": self.dataset,
            "version": self.version,
            "scorer": self.scorer,
            "cold_start": cold,
            "note": cold_note(self.weights) if cold else None,
            "weights": weights_for(self.weights, cold),
            "items": [r.to_dict() for r in recs],
        }

    def top_k(
        self, user_ids: Sequence[str], k: int = 10, batch_size: int | None = None
    ) -> dict[str, pd.DataFrame]:
        """Top-``k`` items of each user in ``user_ids``, ranked exactly as evaluation ranks.

        Users are scored ``batch_size`` at a time (default: ``default_batch_size`` for the
        scorer's signals) by ``scorer_scores`` with this recommender's weights (a fused
        scorer's cold segment's weights for cold users, where learned); items the user
        reviewed in train are left out; ties keep item order. These are the lists a user's
        stored metrics were measured on. ``recommend`` ranks a user the same way, except that
        it gives a cold user of a single-feature scorer the explicit fallback
        (``COLD_WEIGHTS``), which evaluation does not.

        Returns:
            user_id -> frame with columns ``rank`` (1-based), ``item_id``, ``title``,
            ``l1``, ``l2``; fewer than ``k`` rows when the user has fewer candidates. Users
            not in the dataset are left out.
        """
        inter = self.ctx.inter
        index = inter.user_index()
        known = [u for u in dict.fromkeys(user_ids) if u in index]
        if not known:
            return {}
        users = np.array([index[u] for u in known])
        features = SCORERS[self.scorer].features
        batch_size = batch_size or default_batch_size(inter.n_items, len(features))
        rng = np.random.default_rng(0)  # random: one stream over the batches, as evaluation
        out = {}
        for start, batch in user_batches(users, batch_size):
            exclude = inter.train[batch].toarray() > 0  # (b, n_items) seen in train
            scores = scorer_scores(self.ctx, self.scorer, batch, exclude, self.weights, rng)
            scores = np.where(exclude, -np.inf, scores)
            order = np.argsort(-scores, axis=1, kind="stable")[:, :k]  # (b, k)
            for row, top in enumerate(order):
                top = top[np.isfinite(scores[row, top])]  # fewer candidates than k
                items = [str(inter.items[i]) for i in top]
                out[known[start + row]] = pd.DataFrame({
                    "rank": np.arange(1, len(top) + 1), "item_id": items,
                    "title": [self.titles.get(i) for i in items],
                    "l1": list(inter.item_l1[top]), "l2": list(inter.item_l2[top]),
                })
        return out


def recommend(
    store: Store, dataset: str, version: str, user_id: str, k: int = 10, scorer: str = "mgi_hybrid"
) -> dict[str, Any]:
    """Ranked items for one user with per-granularity score parts and matching reviews.

    Fits everything for this one call; to rank many users, load a :class:`Recommender` once.
    """
    return Recommender.load(store, dataset, version, scorer).recommend(user_id, k)
