"""The evaluation protocol: temporal leave-last-out, full ranking.

For every user with a held-out item in ``split`` (users with ≥ 3 reviews), all items the
user did not review in train are ranked; the held-out item's rank gives Recall@K, NDCG@K,
HitRate@K and MRR. Beyond accuracy: catalog coverage, intra-list diversity and category
entropy of the top-10. Per-user metrics are stored so comparisons are paired.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mgi_core.errors import ConfigError
from mgi_core.evaluation.metrics import (
    catalog_coverage,
    category_entropy,
    intra_list_diversity,
    metrics_from_ranks,
    target_ranks,
    top_k,
)
from mgi_core.profiles.service import ensure_profiles
from mgi_core.ranking.features import FeatureContext
from mgi_core.ranking.fusion import DEFAULT_SCORERS, SCORERS, learn_weights
from mgi_core.ranking.model import load_ranking_context
from mgi_core.ranking.recommend import scorer_scores
from mgi_core.store import Store
from mgi_core.store.evaluations import replace_evaluation

log = logging.getLogger(__name__)
KS = (10, 20)


@dataclass
class EvaluationResult:
    dataset: str
    version: str
    split: str
    per_user: dict[str, pd.DataFrame]  # scorer -> frame indexed by user_id, metric columns
    weights: dict[str, dict[str, float]] = field(default_factory=dict)
    beyond: dict[str, dict[str, float]] = field(default_factory=dict)
    seconds: float = 0.0

    def summary(self) -> pd.DataFrame:
        rows = []
        for scorer, frame in self.per_user.items():
            row: dict[str, Any] = {"scorer": scorer, "n_users": len(frame)}
            row.update(frame.mean().to_dict())
            row.update(self.beyond.get(scorer, {}))
            rows.append(row)
        return pd.DataFrame(rows).set_index("scorer")


def evaluate(
    store: Store,
    dataset: str,
    version: str,
    scorers: Sequence[str] = DEFAULT_SCORERS,
    split: str = "test",
    seed: int = 0,
    save: bool = True,
) -> EvaluationResult:
    """Evaluate ``scorers`` with ``version``'s embeddings on ``dataset``.

    Fused scorers learn their weights on the validation split first (stored with the
    version in ``fusion_weights``). With ``save`` the version's user profiles are computed
    and stored first when they are not (``ensure_profiles``); without it nothing is written.
    """
    unknown = [s for s in scorers if s not in SCORERS]
    if unknown:
        raise ConfigError(f"Unknown scorer(s) {unknown}; choose from {list(SCORERS)}")
    if split not in ("val", "test"):
        raise ConfigError("split must be 'val' or 'test'")
    started = time.monotonic()
    if save:
        ensure_profiles(store, dataset, version)
    ctx = load_ranking_context(
        store, dataset, version, with_mf=any("mf" in SCORERS[s].features for s in scorers)
    )
    inter = ctx.inter
    targets = inter.targets[split]
    users = targets["u"].to_numpy()
    items = targets["i"].to_numpy()
    exclude = inter.train[users].toarray() > 0
    result = EvaluationResult(dataset, version, split, {})
    for scorer in scorers:
        spec = SCORERS[scorer]
        weights = None
        if spec.tuned:
            weights = learn_weights(ctx, spec.features, "val", seed=seed)
            result.weights[scorer] = weights
        scores = scorer_scores(ctx, scorer, users, exclude, weights, seed)
        ranks = target_ranks(scores, items, exclude)
        per_user: dict[str, np.ndarray] = {}
        for k in KS:
            per_user.update(metrics_from_ranks(ranks, k))
        frame = pd.DataFrame(per_user, index=pd.Index(inter.users[users], name="user_id"))
        result.per_user[scorer] = frame
        tops = top_k(scores, 10, exclude)
        result.beyond[scorer] = _beyond(ctx, tops)
    result.seconds = time.monotonic() - started
    if save:
        save_evaluation(store, result)
    return result


def _beyond(ctx: FeatureContext, tops: np.ndarray) -> dict[str, float]:
    out = {"coverage@10": catalog_coverage(tops, ctx.inter.n_items)}
    if ctx.item_vecs is not None:
        out["diversity@10"] = _mean_or_nan([intra_list_diversity(t, ctx.item_vecs) for t in tops])
    out["category_entropy@10"] = _mean_or_nan(
        [category_entropy(list(ctx.inter.item_l1[t[t >= 0]])) for t in tops]  # -1 = padding
    )
    return out


def _mean_or_nan(values: list[float]) -> float:
    """Mean over the defined values; NaN (without a warning) when there are none."""
    finite = np.asarray(values, dtype=float)
    finite = finite[~np.isnan(finite)]
    return float(finite.mean()) if len(finite) else float("nan")


def save_evaluation(store: Store, result: EvaluationResult) -> None:
    """Replace the stored results of (dataset, version, scorer, split) in one transaction,
    with the fusion weights the fused scorers learned."""
    long = []
    summary = []
    for scorer, frame in result.per_user.items():
        melted = frame.reset_index().melt(id_vars="user_id", var_name="metric", value_name="value")
        melted.insert(0, "split", result.split)
        melted.insert(0, "scorer", scorer)
        long.append(melted)
        details = json.dumps({"weights": result.weights.get(scorer)})
        for metric, value in {**frame.mean().to_dict(), **result.beyond[scorer]}.items():
            summary.append((scorer, metric, float(value), len(frame), details))
    replace_evaluation(
        store, result.dataset, result.version, result.split, list(result.per_user),
        pd.concat(long, ignore_index=True), summary, result.weights,
    )
