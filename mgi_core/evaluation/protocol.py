"""The evaluation protocol: temporal leave-last-out, full ranking.

For every user with a held-out item in ``split`` (users with ≥ 3 reviews), all items the
user did not review in train are ranked; the held-out item's rank gives Recall@K, NDCG@K,
HitRate@K and MRR. Beyond accuracy: catalog coverage, intra-list diversity and category
entropy of the top-10. Whether the top-10 leads with the category of the held-out item
(``top_l1_hit@1``, ``top_l1_ndcg@5``, and at L2 where items have one): next-interest read
from the ranked list, so every scorer (and every ablation variant) has a number for it.
Per-user metrics are stored so comparisons are paired.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mgi_core.errors import ConfigError
from mgi_core.evaluation.metrics import (
    catalog_coverage,
    category_entropy,
    intra_list_diversity,
    list_category_ranks,
    metrics_from_ranks,
    target_ranks,
    top_k,
)
from mgi_core.profiles.service import ensure_profiles
from mgi_core.ranking.batches import default_batch_size, user_batches
from mgi_core.ranking.features import FeatureContext, compute_features
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
    batch_size: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> EvaluationResult:
    """Evaluate ``scorers`` with ``version``'s embeddings on ``dataset``.

    Fused scorers learn their weights on the validation split first (stored with the
    version in ``fusion_weights``). With ``save`` the version's user profiles are computed
    and stored first when they are not (``ensure_profiles``); without it nothing is written.

    Target users are ranked ``batch_size`` at a time (default: ``default_batch_size`` for
    the features the scorers use together), so memory follows the batch, not users × items;
    the numbers do not depend on the batch size. ``progress(done, total)`` is called after
    each batch with the target users ranked so far and their total.
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
    result = EvaluationResult(dataset, version, split, {})
    weights: dict[str, dict[str, Any] | None] = {}
    for scorer in scorers:
        weights[scorer] = None
        if SCORERS[scorer].tuned:
            weights[scorer] = result.weights[scorer] = learn_weights(
                ctx, SCORERS[scorer].features, "val", seed=seed, batch_size=batch_size
            )
    features = tuple(dict.fromkeys(f for s in scorers for f in SCORERS[s].features))
    # The batch's features, and the z-scores of those a fused scorer standardises (cached
    # for the other fused scorers of the batch), fit the budget together.
    standardised = {f for s in scorers if len(SCORERS[s].features) > 1
                    for f in SCORERS[s].features}
    batch_size = batch_size or default_batch_size(inter.n_items,
                                                  len(features) + len(standardised))
    rngs = {s: np.random.default_rng(seed) for s in scorers}  # random: one stream per scorer
    ranks = {s: np.zeros(len(users), dtype=np.int64) for s in scorers}
    tops = {s: np.full((len(users), 10), -1, dtype=np.int64) for s in scorers}
    for start, batch in user_batches(users, batch_size):
        stop = start + len(batch)
        exclude = inter.train[batch].toarray() > 0  # (b, n_items) seen in train
        feats = compute_features(ctx, batch, features)  # shared by the scorers
        zscores: dict[str, np.ndarray] = {}  # and so are their standardised values
        for scorer in scorers:
            scores = scorer_scores(ctx, scorer, batch, exclude, weights[scorer], rngs[scorer],
                                   features=feats, zscores=zscores)
            ranks[scorer][start:stop] = target_ranks(scores, items[start:stop], exclude)
            tops[scorer][start:stop] = top_k(scores, 10, exclude)
        del feats, zscores
        if progress is not None:
            progress(stop, len(users))
    levels = category_codes(ctx)
    for scorer in scorers:
        per_user: dict[str, np.ndarray] = {}
        for k in KS:
            per_user.update(metrics_from_ranks(ranks[scorer], k))
        for level, (codes, popularity) in levels.items():
            per_user.update(list_category_metrics(
                list_category_ranks(tops[scorer], codes, codes[items], popularity), level))
        frame = pd.DataFrame(per_user, index=pd.Index(inter.users[users], name="user_id"))
        result.per_user[scorer] = frame
        result.beyond[scorer] = _beyond(ctx, tops[scorer])
    result.seconds = time.monotonic() - started
    if save:
        save_evaluation(store, result)
    return result


def category_codes(ctx: FeatureContext) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per category level some item has (l1, l2): (each item's category code, -1 = none;
    each code's 0-based popularity rank by train interactions, ties by name)."""
    inter = ctx.inter
    counts = np.asarray(inter.train.sum(axis=0)).ravel()  # (n_items,) train users per item
    out = {}
    for level, labels in (("l1", inter.item_l1), ("l2", inter.item_l2)):
        known = np.array([isinstance(c, str) for c in labels], dtype=bool)
        if not known.any():
            continue
        names, codes = np.unique(labels[known].astype(str), return_inverse=True)
        item_codes = np.full(len(labels), -1, dtype=np.int64)
        item_codes[known] = codes
        per_category = np.bincount(codes, weights=counts[known], minlength=len(names))
        order = np.lexsort((np.arange(len(names)), -per_category))  # names are sorted
        popularity = np.empty(len(names), dtype=np.int64)
        popularity[order] = np.arange(len(names))
        out[level] = (item_codes, popularity)
    return out


def list_category_metrics(ranks: np.ndarray, level: str) -> dict[str, np.ndarray]:
    """``top_<level>_hit@1`` and ``top_<level>_ndcg@5`` per user from the rank of the
    held-out item's category in the top-10 list (``list_category_ranks``); NaN for users
    whose held-out item has no category at that level (their rank is -1)."""
    missing = ranks < 0
    safe = np.where(missing, 0, ranks)
    hit = metrics_from_ranks(safe, 1)["hit@1"]
    ndcg = metrics_from_ranks(safe, 5)["ndcg@5"]
    return {f"top_{level}_hit@1": np.where(missing, np.nan, hit),
            f"top_{level}_ndcg@5": np.where(missing, np.nan, ndcg)}


def _beyond(ctx: FeatureContext, tops: np.ndarray) -> dict[str, float]:
    out = {"coverage@10": catalog_coverage(tops, ctx.inter.n_items)}
    if ctx.item_vecs is not None:
        # Each list's own vectors: the same numbers as indexing all of them, without a
        # float64 copy of every item vector per list.
        out["diversity@10"] = _mean_or_nan([
            intra_list_diversity(np.arange(int((t >= 0).sum())), ctx.item_vecs[t[t >= 0]])
            for t in tops
        ])
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
        melted = melted[melted["value"].notna()]  # a user without a category at a level
        melted.insert(0, "split", result.split)
        melted.insert(0, "scorer", scorer)
        long.append(melted)
        details = json.dumps({"weights": result.weights.get(scorer)})
        counts = frame.count()  # users with a value (a category metric skips some)
        for metric, value in {**frame.mean().to_dict(), **result.beyond[scorer]}.items():
            n_users = int(counts[metric]) if metric in counts else len(frame)
            summary.append((scorer, metric, float(value), n_users, details))
    replace_evaluation(
        store, result.dataset, result.version, result.split, list(result.per_user),
        pd.concat(long, ignore_index=True), summary, result.weights,
    )
