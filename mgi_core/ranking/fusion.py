"""Scorers as weighted sums of per-user z-scored features; weights learned on validation.

A scorer is a name and the signals it uses (``mgi_core.ranking.signals``). Single-signal
scorers use the raw score; fused scorers z-score each signal per user over the candidate
items (items not seen in train) and add them with weights. ``untuned_hybrid`` uses fixed
weights (content + item-kNN + 0.5 × popularity); the others learn their weights on the
validation split, so nothing of the test split is used. Weights may come out zero or
negative.

The weights maximise the listwise softmax likelihood of each validation user's held-out
item among all the items that user could be recommended (``learn_weights``). An earlier
version fitted a pairwise logistic model against 50 random unseen items; the listwise fit
was chosen on validation (README, "What was tried"; ``bench/ranking_choices.py``). Random
negatives are mostly easy; the softmax weighs the items that compete for the top of the
list.

Weights can also be learned per segment (``segments=True``): users with one train review
(cold) then get weights of their own under the key ``"cold"``, and ``fused`` picks each
user's segment from the train items it excludes. It is off by default: it ranked worse on
the Digital Music data (README, "What was tried"), the cold segment's validation positives
being too few to fit a weight per signal well.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mgi_core.errors import ConfigError
from mgi_core.ranking.batches import default_batch_size, user_batches
from mgi_core.ranking.features import FeatureContext, compute_features
from mgi_core.ranking.signals import SIGNALS


@dataclass(frozen=True)
class ScorerSpec:
    """A scorer: the signals it ranks with, and fixed weights or None to learn them.

    Raises:
        ConfigError: a feature or fixed weight names no registered signal.
    """

    name: str
    features: tuple[str, ...]  # names of registered signals
    fixed_weights: dict[str, float] | None = None  # None → learned on validation

    def __post_init__(self) -> None:
        unknown = [n for n in (*self.features, *(self.fixed_weights or {})) if n not in SIGNALS]
        if unknown:
            raise ConfigError(
                f"Scorer {self.name!r} names unknown signal(s) {unknown}; "
                f"registered: {', '.join(SIGNALS)}."
            )

    @property
    def tuned(self) -> bool:
        return len(self.features) > 1 and self.fixed_weights is None

    @property
    def needs_version(self) -> bool:
        """Whether a signal it uses reads a version's embeddings (item vectors, profiles)."""
        return any(_needs_embeddings(name) for name in self.features)


def _needs_embeddings(signal: str) -> bool:
    needs = SIGNALS[signal].needs
    return any(n in ("item_vectors", "profiles") or (n in SIGNALS and _needs_embeddings(n))
               for n in needs)


# The feature groups of the full system, as the ablation removes them (``ABLATION_SCORERS``):
# collaborative filtering, the overall content match, content at the finer granularities
# (last liked review, fine interests, categories), and the category signals.
FEATURE_GROUPS: dict[str, tuple[str, ...]] = {
    "cf": ("popularity", "item_knn", "mf"),
    "overall_content": ("content",),
    "granular_content": ("content_last", "content_interest", "content_category"),
    "category": ("affinity_l1", "affinity_l2", "transition_l1"),
}
GROUP_LABELS = {
    "cf": "CF (popularity, item-kNN, MF)",
    "overall_content": "overall content",
    "granular_content": "finer content (last review, interests, categories)",
    "category": "category affinities, transitions",
}

# The multi-granularity content signals: each content level, category affinities, transitions.
MG_SIGNALS = (
    *FEATURE_GROUPS["overall_content"],
    *FEATURE_GROUPS["granular_content"],
    *FEATURE_GROUPS["category"],
)
FULL_SCORER = "mgi_hybrid"  # every feature group
# The strongest system without granularity: CF + overall content, fused the same way. The
# claim that granularity helps is made against it (the Compare page's default A).
REFERENCE_SCORER = "cf_content"
ABLATION_SCORERS = {group: f"without_{group}" for group in FEATURE_GROUPS}


SCORERS: dict[str, ScorerSpec] = {
    s.name: s
    for s in [
        ScorerSpec("random", ()),
        ScorerSpec("popularity", ("popularity",)),
        ScorerSpec("item_knn", ("item_knn",)),
        ScorerSpec("mf", ("mf",)),
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
        ScorerSpec("mg_fusion", MG_SIGNALS),
        ScorerSpec(REFERENCE_SCORER, (*FEATURE_GROUPS["cf"], *FEATURE_GROUPS["overall_content"])),
        ScorerSpec(FULL_SCORER, (*FEATURE_GROUPS["cf"], *MG_SIGNALS)),
        *(
            ScorerSpec(name, tuple(f for g, fs in FEATURE_GROUPS.items() if g != group
                                   for f in fs))
            for group, name in ABLATION_SCORERS.items()
        ),
    ]
}
# What ``evaluate`` runs by default: every scorer but the ablation variants (``ablate``).
DEFAULT_SCORERS = tuple(s for s in SCORERS if s not in ABLATION_SCORERS.values())


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
    features: dict[str, np.ndarray], weights: dict[str, Any], exclude: np.ndarray,
    zscores: dict[str, np.ndarray] | None = None,
) -> np.ndarray:
    """Σ_f w_f · z_f per user, with the cold segment's weights for cold users if given.

    ``zscores``: a cache of ``zscore_rows(features[f], exclude)`` by feature name for these
    users, filled as features are standardised, so that several fused scorers of one batch
    standardise each feature once.
    """
    warm, cold = split_weights(weights)
    rows = cold_rows(exclude) if cold else np.zeros(len(exclude), dtype=bool)
    total = np.zeros(exclude.shape)
    for name in dict.fromkeys([*warm, *(cold or {})]):
        w = np.where(rows, (cold or {}).get(name, 0.0), warm.get(name, 0.0))  # (n_users,)
        if name in features and np.any(w):
            z = zscores.get(name) if zscores is not None else None
            if z is None:
                z = zscore_rows(features[name], exclude)
                if zscores is not None:
                    zscores[name] = z
            total += w[:, None] * z
    return total


METHODS = ("listwise", "pairwise")


@dataclass
class ValidationDesign:
    """Z-scored features of each validation user's candidates, held-out item in column 0."""

    names: tuple[str, ...]
    z: np.ndarray  # (n_users, m, n_features)
    valid: np.ndarray  # (n_users, m) bool; False = padding
    cold: np.ndarray  # (n_users,) bool, one train item
    usable: np.ndarray  # (n_users,) bool, at least one candidate besides the held-out item


DESIGN_BYTES = 512 * 2**20  # the validation design's z-scores, float64, at most


def validation_design(
    ctx: FeatureContext,
    names: tuple[str, ...],
    split: str = "val",
    max_candidates: int = 2000,
    seed: int = 0,
    batch_size: int | None = None,
    max_design_bytes: int = DESIGN_BYTES,
) -> ValidationDesign | None:
    """The data fusion weights are fitted on; None when ``split`` holds no targets.

    Validation users are scored ``batch_size`` at a time (default: ``default_batch_size``
    for ``names``), so no (users, items) array of all of them is built; only each user's
    ``max_candidates`` columns are kept. When the design of every validation user would pass
    ``max_design_bytes`` (large datasets: (users, candidates, features) float64), a seeded
    uniform sample of the users that fits is used instead; below that every user is in it.
    """
    targets = ctx.inter.targets[split]
    if targets.empty:
        return None
    users = targets["u"].to_numpy()
    items = targets["i"].to_numpy()
    n_items = ctx.inter.train.shape[1]
    m = min(n_items, max_candidates)
    max_users = max(1, max_design_bytes // (8 * m * max(1, len(names))))
    if len(users) > max_users:
        keep = np.sort(np.random.default_rng([seed, 1]).choice(len(users), max_users,
                                                                 replace=False))
        users, items = users[keep], items[keep]
    batch_size = batch_size or default_batch_size(n_items, len(names))
    rng = np.random.default_rng(seed)  # one stream for every batch: as one call would draw
    valid = np.zeros((len(users), m), dtype=bool)
    cold = np.zeros(len(users), dtype=bool)
    z = None  # (u, m, f), once the first batch tells which features the context has
    for start, batch in user_batches(users, batch_size):
        stop = start + len(batch)
        exclude = ctx.inter.train[batch].toarray() > 0  # (b, n_items)
        cols, valid[start:stop] = candidate_columns(exclude, items[start:stop],
                                                    max_candidates, rng)
        feats = compute_features(ctx, batch, names)
        if z is None:
            names = tuple(n for n in names if n in feats)
            z = np.zeros((len(users), m, len(names)))
        rows = np.arange(len(batch))[:, None]
        for f, name in enumerate(names):
            z[start:stop, :, f] = zscore_rows(feats[name], exclude)[rows, cols]
        cold[start:stop] = cold_rows(exclude)
    return ValidationDesign(names, z, valid, cold, valid[:, 1:].any(axis=1))


def fit_weights(
    z: np.ndarray, valid: np.ndarray, method: str = "listwise", l2: float = 1e-3, seed: int = 0
) -> np.ndarray:
    """(n_features,) weights from a design's rows (see :class:`ValidationDesign`)."""
    if method == "listwise":
        return listwise_softmax_weights(z, valid, l2)
    if method == "pairwise":
        return pairwise_logistic_weights(z, valid, seed=seed)
    raise ValueError(f"method must be one of {METHODS}, not {method!r}")


def learn_weights(
    ctx: FeatureContext,
    names: tuple[str, ...],
    split: str = "val",
    seed: int = 0,
    l2: float = 1e-3,
    max_candidates: int = 2000,
    segments: bool = False,
    method: str = "listwise",
    batch_size: int | None = None,
) -> dict[str, Any]:
    """Listwise weights from validation targets: softmax of the held-out item over candidates.

    Each validation user contributes ``log softmax(Σ_f w_f · z_f)`` of their held-out item
    among the items they did not review in train (all of them, or ``max_candidates`` sampled
    when the catalogue is larger), plus ``l2 · |w|²``; L-BFGS finds the weights. This is the
    full-ranking task evaluation measures, so the weights care about the top of the list.
    ``method="pairwise"`` fits the earlier pairwise logistic model instead (the held-out item
    against 50 sampled candidates; kept for the comparison in ``bench/ranking_choices.py``).

    With ``segments``, cold users (one train item) get weights of their own under ``"cold"``
    when validation holds at least ``MIN_SEGMENT_USERS`` cold and warm users each.
    Validation users are scored in batches of ``batch_size`` (``validation_design``).
    """
    design = validation_design(ctx, names, split, max_candidates, seed, batch_size)
    if design is None or not design.usable.any():
        return dict.fromkeys(names, 1.0)

    def fit(keep: np.ndarray) -> dict[str, float]:
        every = bool(keep.all())  # no copy of the design when every user is kept
        z, valid = (design.z, design.valid) if every else (design.z[keep], design.valid[keep])
        w = fit_weights(z, valid, method, l2, seed)
        return {n: float(x) for n, x in zip(design.names, w, strict=True)}

    usable, cold = design.usable, design.cold
    n_cold, n_warm = int((cold & usable).sum()), int((~cold & usable).sum())
    if not segments or min(n_cold, n_warm) < MIN_SEGMENT_USERS:
        return fit(usable)
    return {**fit(usable & ~cold), COLD: fit(usable & cold)}


def candidate_columns(
    exclude: np.ndarray,
    items: np.ndarray,
    max_candidates: int,
    seed: int | np.random.Generator = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """(cols, valid), both (n_users, m): column 0 is each user's held-out item, the rest the
    items they did not review in train (all, or ``max_candidates - 1`` sampled), padded.

    ``seed`` may be a generator: batches of users passing the same one draw the samples one
    call over all of them would draw."""
    n_users, n_items = exclude.shape
    cand = ~exclude
    cand[np.arange(n_users), items] = False
    m = min(n_items, max_candidates)
    cols = np.zeros((n_users, m), dtype=np.int64)
    valid = np.zeros((n_users, m), dtype=bool)
    rng = np.random.default_rng(seed)
    for row in range(n_users):
        others = np.flatnonzero(cand[row])
        if len(others) > m - 1:
            others = rng.choice(others, size=m - 1, replace=False)
        cols[row, 0] = items[row]
        cols[row, 1 : 1 + len(others)] = others
        valid[row, : 1 + len(others)] = True
    return cols, valid


def listwise_softmax_weights(z: np.ndarray, valid: np.ndarray, l2: float) -> np.ndarray:
    """argmin_w mean_u −log softmax_u(z_u · w)[0] + l2·|w|², over each row's valid columns.

    ``z`` is (n_users, m, n_features) with the positive in column 0. Convex; L-BFGS with the
    exact gradient.
    """
    from scipy.optimize import minimize

    n = len(z)

    def objective(w: np.ndarray) -> tuple[float, np.ndarray]:
        s = np.where(valid, z @ w, -np.inf)
        top = s.max(axis=1, keepdims=True)
        e = np.exp(s - top)
        total = e.sum(axis=1, keepdims=True)
        p = e / total
        log_norm = np.log(total[:, 0]) + top[:, 0]
        loss = float(np.mean(log_norm - s[:, 0])) + l2 * float(w @ w)
        expected = np.einsum("um,umf->uf", p, z)
        grad = (expected - z[:, 0]).sum(axis=0) / n + 2 * l2 * w
        return loss, grad

    w0 = np.zeros(z.shape[-1])
    return minimize(objective, w0, jac=True, method="L-BFGS-B").x


def pairwise_logistic_weights(
    z: np.ndarray, valid: np.ndarray, n_negatives: int = 50, seed: int = 0, c: float = 1.0
) -> np.ndarray:
    """Logistic regression on (positive − negative) feature differences, ``n_negatives``
    valid columns sampled per user; same layout as :func:`listwise_softmax_weights`."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(seed)
    diffs = []
    for row in range(len(z)):
        others = np.flatnonzero(valid[row, 1:]) + 1
        neg = rng.choice(others, size=min(n_negatives, len(others)), replace=False)
        diffs.append(z[row, 0][None, :] - z[row, neg])
    x = np.concatenate(diffs)
    xs = np.concatenate([x, -x])
    y = np.concatenate([np.ones(len(x)), np.zeros(len(x))])
    return LogisticRegression(fit_intercept=False, C=c, max_iter=1000).fit(xs, y).coef_[0]
