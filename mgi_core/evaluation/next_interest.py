"""Next-interest evaluation: does a user's profile put the category of their next item first?

Measured per granularity, on the held-out reviews of the evaluation protocol (temporal
leave-last-out: each user with enough reviews gives their latest review to ``test`` and the
one before to ``val``; profiles, item vectors and every baseline read ``train`` only).

Target users, per level: the users with a held-out review in ``split`` whose held-out item
has a category at that level. Users whose item has none at a level are skipped at that
level only; ``n_users`` is reported per level. A level no item has (single-level categories
have no L2) is not reported.

Category levels (``l1``, ``l2``). The candidates are every category at that level among the
dataset's items. Each system orders all of them; the rank of the held-out item's category
gives the user's metrics. Four systems:

* ``profile``: the user's stored profile rows at that level (built from train reviews),
  by affinity (highest first; ties by share, highest first, then key), then the categories
  the user never reviewed in train, by global popularity. A category the user touched comes
  before every untouched one, whatever its affinity (a disliked category is still one they
  review).
* ``popular``: every category by global popularity, the number of train reviews of the
  dataset in it (most first; ties by key; categories without train reviews last).
* ``frequent``: the user's train reviews per category (most first), ties by the most recent
  (below), then the untouched categories by global popularity.
* ``recent``: the categories the user reviewed in train by the time of their latest train
  review there, latest first, then the untouched categories by global popularity. Reviews
  are ordered as the profiles order them: by timestamp, missing times first, ties by
  review_id.

A fifth system, ``learned``, scores every candidate category with a linear function of
per-(user, category) features read from the user's train reviews only (``LEARNED_FEATURES``:
counts, shares, recency, sentiment, popularity, the dataset's category-to-category
transitions, and the version's own signals: cosines between the user's train review
vectors and each category's centroid, the mean train review vector of the category, and
the version's category-head probabilities), ranked by score (ties by global popularity).
The weights are a listwise softmax fit (``listwise_softmax_weights``, features standardised
on the fitting users) on the ``val`` held-out categories, never on the split evaluated:
for ``split="test"`` one fit on the val users; for ``split="val"`` ``NEXT_INTEREST_FOLDS``-
fold cross-fitting over users (a user's fold from a hash of their id), each user scored by
the weights fitted on the other folds. At most ``NEXT_INTEREST_FIT_USERS`` val users, and
at most ``NEXT_INTEREST_FIT_CELLS`` (user, candidate) cells at the level with the most
candidates, are fitted on (the users of smallest hash); their features are the only
whole-fit array in memory. A level with fewer than ``LEARNED_MIN_FIT_USERS``
fitting users gets no ``learned`` system. Each version gets its own fit, so base and
fine-tuned versions differ through their vectors and heads. Not applied to interests.

Fine interests (``interest``). A user's interests are the clusters of their train reviews
in the profile; users with fewer than 2 are skipped (a single interest is always right).
The target interest is the one whose centroid is closest (cosine) to the held-out item's
vector, the mean of the item's *train* reviews (no held-out text is read; a held-out item
without train reviews has no vector, and its user is skipped). Two systems:

* ``profile``: the user's interests by share of their train reviews (largest first; ties by
  interest number).
* ``recent``: the interest whose centroid is closest to the user's latest train review first,
  then the others by share.

``popular`` does not apply (interests are a user's own), and ``frequent`` would be
``profile`` again: an interest's share is its count of reviews. Neither is reported.

Metrics per user, from the 1-based rank r of the target (binary relevance, one relevant
candidate): hit@1 = [r = 1], hit@3 = [r <= 3], ndcg@5 = 1 / log2(r + 1) when r <= 5 else 0.
With 2 or 3 interests, hit@3 is 1 for every system: compare interests on hit@1 and ndcg@5.

Users are processed ``batch_users`` at a time (in user order): each batch reads only its
users' held-out reviews, train activity, profile rows and vectors, so memory follows the
batch (plus one row of metrics per user and system), never users × categories; the numbers
do not depend on the batch size.
"""

from __future__ import annotations

import logging
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mgi_core.errors import ConfigError
from mgi_core.evaluation.metrics import metrics_from_ranks
from mgi_core.evaluation.stats import PairedResult, compare_paired
from mgi_core.profiles.service import ensure_profiles
from mgi_core.ranking.fusion import listwise_softmax_weights
from mgi_core.store import Store
from mgi_core.store import next_interest as ni_store
from mgi_core.store.datasets import get_dataset
from mgi_core.store.embeddings import embedding_dim, review_vectors
from mgi_core.store.profiles import profile_vectors
from mgi_core.store.versions import get_version

log = logging.getLogger(__name__)

CATEGORY_SYSTEMS = ("profile", "popular", "frequent", "recent")
INTEREST_SYSTEMS = ("profile", "recent")
LEVELS = ("l1", "l2", "interest")
METRICS = ("hit@1", "hit@3", "ndcg@5")
NEXT_INTEREST_BATCH_USERS = 5_000  # users whose rows and vectors are in memory at once

LEARNED_SYSTEM = "learned"
# Per-(user, category) features of the ``learned`` system, all from train reviews.
LEARNED_FEATURES = (
    "log_count",       # log(1 + the user's train reviews in the category)
    "share",           # that count / the user's train reviews
    "recent_share",    # the same, each review weighted 0.5 ** (reviews after it / half-life)
    "is_last",         # the user's latest train review is in the category
    "touched",         # the user has a train review in the category
    "sentiment",       # mean rating in the category - the user's mean rating (0: untouched)
    "log_popularity",  # log(1 + train reviews of the dataset in the category)
    "transition",      # log P(next category | category of the user's latest train review)
    "cos_profile",     # cos(recency-weighted mean train review vector, category centroid)
    "cos_latest",      # cos(latest train review vector, category centroid)
    "head_prob",       # the version's head probability of the category, user mean (0: none)
)
NEXT_INTEREST_FOLDS = 5  # cross-fitting folds of ``learned`` on the val split
NEXT_INTEREST_FIT_USERS = 20_000  # most val users ``learned`` is fitted on
NEXT_INTEREST_FIT_CELLS = 2_000_000  # most fitting users × candidates (× F × 8 bytes)
LEARNED_MIN_FIT_USERS = 10  # fewer fitting users at a level: no ``learned`` there
LEARNED_L2 = 1e-3  # ridge penalty of the listwise fit (features standardised)
RECENCY_HALF_LIFE = 2.0  # reviews: the weight of a review halves this many reviews back
TRANSITION_PRIOR = 5.0  # pseudo-count of the popularity prior in the transition estimate
_HEAD_TASKS = {"l1": "category", "l2": "subcategory"}

# (column, descending) sort keys of the categories a user touched, per system; ties after
# them by key. ``popular`` touches nothing: every category falls back to popularity.
_CATEGORY_ORDER: dict[str, tuple[tuple[str, bool], ...]] = {
    "profile": (("affinity", True), ("share", True)),
    "popular": (),
    "frequent": (("n_reviews", True), ("last", True)),
    "recent": (("last", True),),
}


@dataclass
class NextInterestResult:
    """Per-user next-interest metrics of one (version, dataset, split).

    ``per_user[(level, system)]`` is indexed by user_id (sorted) with the columns
    ``METRICS``; only levels with target users are present.
    """

    dataset: str
    version: str
    split: str
    per_user: dict[tuple[str, str], pd.DataFrame] = field(default_factory=dict)
    seconds: float = 0.0

    def levels(self) -> list[str]:
        """The levels measured, in ``LEVELS`` order."""
        present = {level for level, _ in self.per_user}
        return [lv for lv in LEVELS if lv in present]

    def summary(self) -> pd.DataFrame:
        """One row per (level, system): ``n_users`` and the mean of each metric."""
        rows = []
        for (level, system), frame in self.per_user.items():
            row: dict[str, Any] = {"level": level, "system": system, "n_users": len(frame)}
            row.update({m: float(frame[m].mean()) if len(frame) else float("nan")
                        for m in METRICS})
            rows.append(row)
        columns = ["level", "system", "n_users", *METRICS]
        return pd.DataFrame(rows, columns=columns).set_index(["level", "system"])

    def to_json(self) -> dict[str, Any]:
        """Plain data for ``evaluate --json``: per level its ``n_users`` and per system the
        mean metrics."""
        levels: dict[str, Any] = {}
        for (level, system), frame in self.per_user.items():
            entry = levels.setdefault(level, {"n_users": len(frame), "systems": {}})
            entry["systems"][system] = {m: float(frame[m].mean()) if len(frame) else None
                                        for m in METRICS}
        return {"dataset": self.dataset, "version": self.version, "split": self.split,
                "levels": {lv: levels[lv] for lv in LEVELS if lv in levels}}


# ------------------------------------------------------------------------ pure ranking


def next_interest_metrics(ranks: np.ndarray) -> dict[str, np.ndarray]:
    """hit@1, hit@3 and ndcg@5 per user from the 0-based rank of the target category.

    Args:
        ranks: (n_users,) 0-based ranks (0 = first).

    Returns:
        ``{"hit@1", "hit@3", "ndcg@5"}``, each (n_users,) float64.
    """
    ranks = np.asarray(ranks, dtype=np.int64)
    return {
        "hit@1": metrics_from_ranks(ranks, 1)["hit@1"],
        "hit@3": metrics_from_ranks(ranks, 3)["hit@3"],
        "ndcg@5": metrics_from_ranks(ranks, 5)["ndcg@5"],
    }


def popularity_ranks(popularity: pd.DataFrame) -> pd.Series:
    """key -> 0-based global rank: most train reviews first, ties by key.

    Args:
        popularity: columns ``key``, ``n_reviews`` (one row per candidate category).
    """
    ordered = popularity.sort_values(["n_reviews", "key"], ascending=[False, True],
                                     kind="stable")
    return pd.Series(np.arange(len(ordered), dtype=np.int64), index=ordered["key"].to_numpy())


def target_ranks(
    touched: pd.DataFrame,
    order: Sequence[tuple[str, bool]],
    targets: pd.Series,
    popularity_rank: pd.Series,
) -> np.ndarray:
    """0-based rank of each user's target among all candidates, without listing them.

    A user's ranking is the categories they touched, sorted by ``order`` (then by key),
    followed by every other candidate in global popularity order. So the target's rank is
    its position among the touched ones when touched, else (number touched) + (its
    popularity rank) - (touched categories more popular than it).

    Args:
        touched: one row per (user_id, key) the user touched, with the ``order`` columns.
        order: (column, descending) sort keys; missing values sort last.
        targets: user_id -> target key, one per user (the result's order).
        popularity_rank: key -> 0-based global rank of every candidate (``popularity_ranks``).

    Returns:
        (n_users,) int64 ranks in ``targets`` order.

    Raises:
        ValueError: a target is neither touched nor a candidate.
    """
    users = pd.Index(targets.index)
    target_keys = targets.to_numpy(dtype=object)  # (n_users,)
    target_pop = _lookup(popularity_rank, target_keys)  # (n_users,) float, NaN: no candidate
    user = users.get_indexer(touched["user_id"])  # (m,) row of the user in ``targets``
    keep = user >= 0
    user = user[keep]
    keys = touched["key"].to_numpy(dtype=object)[keep]
    # np.lexsort sorts by its last key first: user, then each column, then key.
    columns = []
    for column, descending in order:
        values = touched[column].to_numpy(dtype=np.float64)[keep]
        values = -values if descending else values
        columns.append(np.where(np.isnan(values), np.inf, values))  # missing last
    key_codes = (np.unique(keys, return_inverse=True)[1] if len(keys)
                 else np.zeros(0, dtype=np.int64))
    sort = np.lexsort((key_codes, *reversed(columns), user))
    user, keys = user[sort], keys[sort]
    at = np.arange(len(user))
    first = np.r_[True, user[1:] != user[:-1]] if len(user) else np.zeros(0, dtype=bool)
    position = at - np.maximum.accumulate(np.where(first, at, 0))  # within the user
    is_target = keys == target_keys[user]
    found = np.full(len(users), -1, dtype=np.int64)
    found[user[is_target]] = position[is_target]
    n_touched = np.bincount(user, minlength=len(users))
    more_popular = _lookup(popularity_rank, keys) < target_pop[user]  # NaN compares False
    lower = np.bincount(user, weights=more_popular, minlength=len(users)).astype(np.int64)
    missing = (found < 0) & np.isnan(target_pop)
    if missing.any():
        raise ValueError(f"target categories {list(target_keys[missing][:5])} are not "
                         "candidates")
    fallback = n_touched + np.nan_to_num(target_pop).astype(np.int64) - lower
    return np.where(found >= 0, found, fallback).astype(np.int64)


def _lookup(ranks: pd.Series, keys: np.ndarray) -> np.ndarray:
    """(n,) float values of ``ranks`` at ``keys``; NaN where a key is not in it."""
    at = ranks.index.get_indexer(keys) if len(ranks) else np.full(len(keys), -1)
    values = ranks.to_numpy(dtype=np.float64)
    return np.where(at >= 0, values[np.maximum(at, 0)] if len(values) else np.nan, np.nan)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def interest_targets(
    interests: pd.DataFrame, centroids: np.ndarray, user_vectors: Mapping[str, np.ndarray]
) -> pd.Series:
    """user_id -> the key of the user's interest whose centroid is closest (cosine) to the
    user's vector in ``user_vectors`` (ties: the lowest interest number).

    Args:
        interests: rows (user_id, key, ...) of the users' interests, row-aligned with
            ``centroids`` (m, d); users absent from ``user_vectors`` are left out.
        user_vectors: user_id -> (d,) vector (a held-out item's, a latest review's).
    """
    keep = interests["user_id"].isin(list(user_vectors)).to_numpy()
    rows = interests[keep].reset_index(drop=True)
    if rows.empty:
        return pd.Series(dtype=object)
    vectors = np.stack([user_vectors[u] for u in rows["user_id"]])  # (m', d)
    cosine = np.einsum("md,md->m", _unit(centroids[keep].astype(np.float64)),
                       _unit(vectors.astype(np.float64)))
    frame = rows.assign(cosine=cosine, number=rows["key"].astype(int))
    best = frame.sort_values(["user_id", "cosine", "number"], ascending=[True, False, True],
                             kind="stable").groupby("user_id", sort=True).head(1)
    return pd.Series(best["key"].to_numpy(), index=best["user_id"].to_numpy())


# ------------------------------------------------------------------------ learned system


@dataclass
class LevelContext:
    """What the ``learned`` features of one level read beyond a user's own reviews.

    ``keys`` are the candidates in global popularity order (most first, ties by key): a
    candidate's column everywhere, and the tie-break of equal scores.
    """

    keys: np.ndarray  # (m,) object
    log_popularity: np.ndarray  # (m,) log(1 + train reviews)
    transition: np.ndarray  # (m + 1, m) log P(next | previous); row m: no previous category
    centroids: np.ndarray  # (m, d) unit mean train review vector; zero without any
    head_map: np.ndarray | None = None  # (n_labels, m) 0/1: head label -> candidate

    def codes(self, keys: Sequence[object]) -> np.ndarray:
        """(n,) column of each key; -1 for a missing or unknown one."""
        return pd.Index(self.keys).get_indexer(pd.Index(keys, dtype=object))


@dataclass
class LearnedModel:
    """Standardisation and weights of one ``learned`` fit; ``score`` of (n, m, F) features."""

    mean: np.ndarray  # (F,)
    scale: np.ndarray  # (F,)
    weights: np.ndarray  # (F,)
    n_users: int

    def score(self, z: np.ndarray) -> np.ndarray:
        """(n, m) scores of raw features ``z`` (n, m, F)."""
        return ((z - self.mean) / self.scale) @ self.weights


def transition_log_probs(transitions: pd.DataFrame, keys: np.ndarray,
                         popularity: np.ndarray, prior: float = TRANSITION_PRIOR) -> np.ndarray:
    """(m + 1, m) log P(next = c | previous = p): (count(p -> c) + prior × pi_c) /
    (count(p -> ·) + prior), with pi the add-one popularity shares; row m (no previous
    category) is log pi.

    Args:
        transitions: columns ``prev``, ``next``, ``n`` (``category_transitions``).
        keys: (m,) the candidates; popularity: (m,) their train review counts.
    """
    m = len(keys)
    index = pd.Index(keys)
    counts = np.zeros((m + 1, m))
    prev = index.get_indexer(transitions["prev"])
    nxt = index.get_indexer(transitions["next"])
    keep = (prev >= 0) & (nxt >= 0)
    np.add.at(counts, (prev[keep], nxt[keep]), transitions["n"].to_numpy(np.float64)[keep])
    pi = (popularity + 1.0) / (popularity + 1.0).sum()
    probs = (counts + prior * pi) / (counts.sum(1, keepdims=True) + prior)
    return np.log(probs)


def head_label_map(labels: Sequence[str], keys: np.ndarray) -> np.ndarray | None:
    """(n_labels, m) 0/1: a head label maps to the candidate it equals or descends from
    (``"A > a > x"`` to ``"A > a"``); None when no label maps to a candidate."""
    out = np.zeros((len(labels), len(keys)))
    column = {str(k): j for j, k in enumerate(keys)}
    for i, label in enumerate(labels):
        parts = str(label).split(" > ")
        for depth in range(len(parts), 0, -1):
            j = column.get(" > ".join(parts[:depth]))
            if j is not None:
                out[i, j] = 1.0
                break
    return out if out.any() else None


def category_features(
    rows: pd.DataFrame,
    vectors: np.ndarray,
    head: np.ndarray | None,
    ctx: LevelContext,
    users: pd.Index,
    half_life: float = RECENCY_HALF_LIFE,
) -> np.ndarray:
    """(n_users, m, len(LEARNED_FEATURES)) features of every candidate for each user.

    Args:
        rows: the users' train reviews: ``user_id``, ``pos`` (1-based), ``n`` (the user's
            train reviews), ``rating``, ``key`` (the category at the level, or None).
        vectors: (len(rows), d) their vectors (zero rows: none).
        head: (len(rows), m) the head probability of each candidate per review, or None.
        ctx: the level's candidates, popularity, transitions and centroids.
        users: the users, in output order; rows of other users are ignored.
    """
    n_users, m = len(users), len(ctx.keys)
    z = np.zeros((n_users, m, len(LEARNED_FEATURES)))
    user = users.get_indexer(rows["user_id"])
    keep = user >= 0
    rows, user, vectors = rows[keep], user[keep], vectors[keep]
    head = head[keep] if head is not None else None
    code = ctx.codes(rows["key"].tolist())
    pos = rows["pos"].to_numpy(np.float64)
    n = rows["n"].to_numpy(np.float64)
    decay = 0.5 ** ((n - pos) / half_life)  # (r,) 1 for the latest review
    rating = rows["rating"].to_numpy(np.float64)
    rated = ~np.isnan(rating)
    user_mean = (np.bincount(user[rated], rating[rated], n_users)
                 / np.maximum(np.bincount(user[rated], minlength=n_users), 1))
    n_user = np.zeros(n_users)
    n_user[user] = n
    has = code >= 0
    cell = user[has] * m + code[has]

    def per_cell(weights: np.ndarray) -> np.ndarray:
        return np.bincount(cell, weights, n_users * m).reshape(n_users, m)

    count = per_cell(np.ones(has.sum()))
    z[..., 0] = np.log1p(count)
    z[..., 1] = count / np.maximum(n_user, 1)[:, None]
    z[..., 2] = per_cell(decay[has]) / np.maximum(np.bincount(user, decay, n_users), 1e-12)[:,
                                                                                          None]
    latest = pos == n
    last_code = np.full(n_users, m)  # m: no category (or no train review)
    last_code[user[latest & has]] = code[latest & has]
    z[..., 3] = last_code[:, None] == np.arange(m)[None]
    z[..., 4] = count > 0
    centred = np.where(rated, rating - user_mean[user], 0.0)[has]
    n_rated = per_cell(rated[has].astype(np.float64))
    z[..., 5] = per_cell(centred) / np.maximum(n_rated, 1)
    z[..., 6] = ctx.log_popularity[None]
    z[..., 7] = ctx.transition[last_code]
    unit = _unit(vectors.astype(np.float64))  # (r, d)
    profile = np.zeros((n_users, unit.shape[1]))
    np.add.at(profile, user, unit * decay[:, None])
    z[..., 8] = _unit(profile) @ ctx.centroids.T
    last_vec = np.zeros_like(profile)
    last_vec[user[latest]] = unit[latest]
    z[..., 9] = last_vec @ ctx.centroids.T
    if head is not None:
        mean_head = np.zeros((n_users, m))
        np.add.at(mean_head, user, head)
        z[..., 10] = mean_head / np.maximum(n_user, 1)[:, None]
    return z


def fit_learned(z: np.ndarray, targets: np.ndarray, l2: float = LEARNED_L2) -> LearnedModel:
    """Listwise softmax fit of the candidates' scores to each user's target column.

    Args:
        z: (n, m, F) raw features; targets: (n,) the target's column per user.
    """
    flat = z.reshape(-1, z.shape[-1])
    mean = flat.mean(0)
    scale = flat.std(0)
    scale = np.where(scale > 1e-12, scale, 1.0)
    zs = (z - mean) / scale
    order = np.tile(np.arange(z.shape[1]), (len(z), 1))  # positive first: swap 0 and t
    rows = np.arange(len(z))
    order[rows, 0], order[rows, targets] = targets, 0
    zs = np.take_along_axis(zs, order[..., None], axis=1)
    weights = listwise_softmax_weights(zs, np.ones(zs.shape[:2], dtype=bool), l2)
    return LearnedModel(mean, scale, weights, len(z))


def score_ranks(scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """(n,) 0-based rank of each user's target column: higher scores first, equal scores in
    column (popularity) order.

    Raises:
        ValueError: a target is -1 (not a candidate).
    """
    if (targets < 0).any():
        raise ValueError("a target category is not a candidate")
    at = scores[np.arange(len(scores)), targets][:, None]
    before = np.arange(scores.shape[1])[None] < targets[:, None]
    return ((scores > at) | ((scores == at) & before)).sum(1).astype(np.int64)


def user_fold(user: str, n_folds: int = NEXT_INTEREST_FOLDS) -> int:
    """The cross-fitting fold of a user: a hash of the id, independent of batches."""
    return zlib.crc32(f"fold:{user}".encode()) % n_folds


def fit_sample(users: Sequence[str], limit: int = NEXT_INTEREST_FIT_USERS) -> list[str]:
    """The (at most ``limit``) users to fit on: those of smallest hash, sorted."""
    if len(users) <= limit:
        return sorted(users)
    return sorted(sorted(users, key=lambda u: (zlib.crc32(f"fit:{u}".encode()), u))[:limit])


def level_contexts(
    store: Store, dataset: str, version: str, d: int, levels: Sequence[str],
    popularity: Mapping[str, pd.Series],
) -> dict[str, LevelContext]:
    """The ``LevelContext`` of each level: whole-dataset, small ((m, d) centroids, (m + 1, m)
    transitions); train review vectors are streamed."""
    heads = get_version(store, version, usable=False).get("heads") or {}
    out: dict[str, LevelContext] = {}
    for level in levels:
        keys = popularity[level].index.to_numpy(dtype=object)  # popularity order
        counts = ni_store.category_popularity(store, dataset, level).set_index("key")[
            "n_reviews"].reindex(keys).to_numpy(np.float64)
        labels = heads.get(_HEAD_TASKS[level])
        out[level] = LevelContext(
            keys=keys, log_popularity=np.log1p(counts),
            transition=transition_log_probs(ni_store.category_transitions(store, dataset,
                                                                          level), keys, counts),
            centroids=np.zeros((len(keys), d)),
            head_map=head_label_map(labels, keys) if labels else None)
    sums = {lv: np.zeros((len(out[lv].keys), d)) for lv in levels}
    for frame, vectors in ni_store.train_vectors_by_category(store, version, dataset, d):
        unit = _unit(vectors.astype(np.float64))
        for level in levels:
            code = out[level].codes(frame[level].tolist())
            np.add.at(sums[level], code[code >= 0], unit[code >= 0])
    for level in levels:
        out[level].centroids = np.where(np.linalg.norm(sums[level], axis=1, keepdims=True) > 0,
                                        _unit(sums[level]), 0.0)
    return out


def learned_batch_features(
    store: Store, dataset: str, version: str, d: int, span: tuple[str, str],
    contexts: Mapping[str, LevelContext], users: Mapping[str, pd.Index],
) -> dict[str, np.ndarray]:
    """level -> (n_users, m, F) ``category_features`` of ``users[level]``, users of one
    batch from ``span[0]`` to ``span[1]``: their train reviews, vectors and head
    probabilities only."""
    rows = ni_store.train_review_positions(store, dataset, span)
    ids, vecs = review_vectors(store, version, dataset, split="train", users=span)
    at = pd.Index(ids).get_indexer(rows["review_id"])
    vectors = np.zeros((len(rows), d), dtype=np.float32)  # zero: a review without a vector
    vectors[at >= 0] = vecs[at[at >= 0]]
    out = {}
    for level, ctx in contexts.items():
        head = None
        if ctx.head_map is not None:
            head_ids, probs = ni_store.train_head_probs(store, version, dataset,
                                                        _HEAD_TASKS[level], span)
            if len(head_ids):
                at = pd.Index(head_ids).get_indexer(rows["review_id"])
                matrix = np.asarray(probs, dtype=np.float64) @ ctx.head_map  # (h, m)
                head = np.where((at >= 0)[:, None], matrix[np.maximum(at, 0)], 0.0)
        frame = rows.assign(key=rows[level])
        out[level] = category_features(frame, vectors, head, ctx, users[level])
    return out


def _batch_targets(held_out: pd.DataFrame, level: str) -> pd.Series:
    with_target = held_out[held_out[level].notna()]
    return pd.Series(with_target[level].to_numpy(), index=with_target["user_id"].to_numpy())


def fit_learned_models(
    store: Store, dataset: str, version: str, d: int, contexts: Mapping[str, LevelContext],
    split: str, batch_users: int = NEXT_INTEREST_BATCH_USERS,
) -> dict[str, dict[int | None, LearnedModel]]:
    """level -> fold -> model, fitted on the val held-out categories of ``fit_sample`` of
    the val users (at most ``NEXT_INTEREST_FIT_USERS``, and ``NEXT_INTEREST_FIT_CELLS``
    over the largest level's candidates). For ``split="test"`` one model (fold None) on
    all of them; for ``split="val"`` one per fold, fitted on the users of the other folds.
    Levels with fewer than ``LEARNED_MIN_FIT_USERS`` fitting users are left out."""
    most_candidates = max(len(ctx.keys) for ctx in contexts.values())
    limit = max(LEARNED_MIN_FIT_USERS, min(NEXT_INTEREST_FIT_USERS,
                                           NEXT_INTEREST_FIT_CELLS // max(most_candidates, 1)))
    sample = fit_sample(ni_store.held_out_users(store, dataset, "val"), limit)
    chosen = set(sample)
    parts: dict[str, list[tuple[pd.Index, np.ndarray, np.ndarray]]] = {}
    for start in range(0, len(sample), batch_users):
        span = (sample[start], sample[min(start + batch_users, len(sample)) - 1])
        held_out = ni_store.held_out_targets(store, dataset, "val", span)
        held_out = held_out[held_out["user_id"].isin(chosen)]
        targets = {lv: _batch_targets(held_out, lv) for lv in contexts}
        feats = learned_batch_features(store, dataset, version, d, span, contexts,
                                        {lv: pd.Index(t.index) for lv, t in targets.items()})
        for level, z in feats.items():
            t = contexts[level].codes(targets[level].tolist())
            parts.setdefault(level, []).append((pd.Index(targets[level].index), z, t))
    models: dict[str, dict[int | None, LearnedModel]] = {}
    for level, chunks in parts.items():
        users = pd.Index(np.concatenate([u.to_numpy(dtype=object) for u, _, _ in chunks]))
        z = np.concatenate([c[1] for c in chunks])
        t = np.concatenate([c[2] for c in chunks])
        if len(users) < LEARNED_MIN_FIT_USERS:
            log.info("next-interest: %d val users at %s, fewer than %d: no learned system",
                     len(users), level, LEARNED_MIN_FIT_USERS)
            continue
        if split == "test":
            models[level] = {None: fit_learned(z, t)}
        else:
            folds = np.array([user_fold(u) for u in users])
            models[level] = {k: fit_learned(z[folds != k], t[folds != k])
                             for k in range(NEXT_INTEREST_FOLDS)}
    return models


def _learned_batch(
    store: Store, dataset: str, version: str, d: int, span: tuple[str, str],
    held_out: pd.DataFrame, contexts: Mapping[str, LevelContext],
    models: Mapping[str, Mapping[int | None, LearnedModel]],
) -> dict[str, pd.DataFrame]:
    """level -> per-user metrics of ``learned`` for one batch of users."""
    targets = {lv: _batch_targets(held_out, lv) for lv in models}
    targets = {lv: t for lv, t in targets.items() if len(t)}
    if not targets:
        return {}
    feats = learned_batch_features(store, dataset, version, d, span,
                                    {lv: contexts[lv] for lv in targets},
                                    {lv: pd.Index(t.index) for lv, t in targets.items()})
    out = {}
    for level, z in feats.items():
        t = contexts[level].codes(targets[level].tolist())
        by_fold = models[level]
        if None in by_fold:
            scores = by_fold[None].score(z)
        else:
            folds = np.array([user_fold(u) for u in targets[level].index])
            scores = np.zeros(z.shape[:2])
            for k, model in by_fold.items():
                scores[folds == k] = model.score(z[folds == k])
        out[level] = _metrics_frame(targets[level].index, score_ranks(scores, t))
    return out


# ------------------------------------------------------------------------ the evaluation


def next_interest(
    store: Store,
    dataset: str,
    version: str,
    split: str = "test",
    batch_users: int = NEXT_INTEREST_BATCH_USERS,
    save: bool = True,
    progress: Callable[[int, int], None] | None = None,
    learned: bool = True,
) -> NextInterestResult:
    """Next-interest metrics of ``version``'s profiles and the baselines on ``dataset``.

    The version's profiles are computed and stored first when they are not
    (``ensure_profiles``). With ``save`` the per-user metrics replace the stored ones of
    (version, dataset, split) (``save_next_interest``). ``progress(done, total)`` is called
    after each batch with the target users done so far and their total. With ``learned``
    the ``learned`` system is fitted on the val split (``fit_learned_models``) and scored.

    Raises:
        ConfigError: ``split`` is not val or test, or ``batch_users`` is below 1.
        DatasetNotFoundError: no such dataset.
        ModelVersionNotFound: the version has no embeddings of the dataset.
    """
    if split not in ("val", "test"):
        raise ConfigError(f"split must be 'val' or 'test', got {split!r}")
    if batch_users < 1:
        raise ConfigError(f"batch_users must be at least 1, got {batch_users}")
    started = time.monotonic()
    get_dataset(store, dataset)
    d = embedding_dim(store, version, dataset)
    ensure_profiles(store, dataset, version)
    levels = ni_store.category_levels(store, dataset)
    popularity = {lv: popularity_ranks(ni_store.category_popularity(store, dataset, lv))
                  for lv in levels}
    contexts: dict[str, LevelContext] = {}
    models: dict[str, dict[int | None, LearnedModel]] = {}
    if learned and levels:
        contexts = level_contexts(store, dataset, version, d, levels, popularity)
        models = fit_learned_models(store, dataset, version, d, contexts, split, batch_users)
    users = ni_store.held_out_users(store, dataset, split)
    parts: dict[tuple[str, str], list[pd.DataFrame]] = {}
    for start in range(0, len(users), batch_users):
        stop = min(start + batch_users, len(users))
        span = (users[start], users[stop - 1])
        held_out = ni_store.held_out_targets(store, dataset, split, span)
        for level in levels:
            for system, frame in _category_batch(store, dataset, version, level, span,
                                                 held_out, popularity[level]).items():
                parts.setdefault((level, system), []).append(frame)
        if models:
            for level, frame in _learned_batch(store, dataset, version, d, span, held_out,
                                               contexts, models).items():
                parts.setdefault((level, LEARNED_SYSTEM), []).append(frame)
        for system, frame in _interest_batch(store, dataset, version, d, span,
                                             held_out).items():
            parts.setdefault(("interest", system), []).append(frame)
        if progress is not None:
            progress(stop, len(users))
    result = NextInterestResult(dataset, version, split)
    for level in LEVELS:
        for system in (INTEREST_SYSTEMS if level == "interest"
                       else (*CATEGORY_SYSTEMS, LEARNED_SYSTEM)):
            frames = [f for f in parts.get((level, system), []) if len(f)]
            if frames:
                result.per_user[(level, system)] = pd.concat(frames).sort_index()
    result.seconds = time.monotonic() - started
    if save:
        save_next_interest(store, result)
    return result


def _metrics_frame(users: pd.Index, ranks: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(next_interest_metrics(ranks), index=pd.Index(users, name="user_id"))


def _category_batch(
    store: Store, dataset: str, version: str, level: str, span: tuple[str, str],
    held_out: pd.DataFrame, popularity_rank: pd.Series,
) -> dict[str, pd.DataFrame]:
    """Per-user metrics of every category system at ``level`` for one batch of users."""
    with_target = held_out[held_out[level].notna()]
    targets = pd.Series(with_target[level].to_numpy(), index=with_target["user_id"].to_numpy())
    if targets.empty:
        return {}
    activity = ni_store.train_category_activity(store, dataset, level, span)
    profile = ni_store.profile_interest_rows(store, version, dataset, level, span)
    touched = {"profile": profile, "popular": activity.iloc[:0], "frequent": activity,
               "recent": activity}
    return {
        system: _metrics_frame(targets.index, target_ranks(
            touched[system], _CATEGORY_ORDER[system], targets, popularity_rank))
        for system in CATEGORY_SYSTEMS
    }


def _interest_batch(
    store: Store, dataset: str, version: str, d: int, span: tuple[str, str],
    held_out: pd.DataFrame,
) -> dict[str, pd.DataFrame]:
    """Per-user metrics of the interest systems for one batch of users (those with at
    least 2 interests and a held-out item with a vector)."""
    rows = ni_store.profile_interest_rows(store, version, dataset, "interest", span)
    counts = rows["user_id"].value_counts()
    rows = rows[rows["user_id"].isin(counts.index[counts >= 2])].reset_index(drop=True)
    items = held_out[held_out["user_id"].isin(rows["user_id"])]
    item_ids, item_vecs = ni_store.item_vectors_of(store, version, dataset, d,
                                                   items["item_id"].tolist())
    by_item = dict(zip(item_ids, item_vecs, strict=True))
    held_vectors = {u: by_item[i] for u, i in zip(items["user_id"], items["item_id"],
                                                   strict=True) if i in by_item}
    rows = rows[rows["user_id"].isin(list(held_vectors))].reset_index(drop=True)
    if rows.empty:
        return {}
    vector_rows, centroids = profile_vectors(store, version, dataset, d,
                                             vector_rows=rows["vector_row"].tolist())
    position = {int(r): k for k, r in enumerate(vector_rows)}
    centroids = centroids[[position[int(r)] for r in rows["vector_row"]]]  # (m, d)
    targets = interest_targets(rows, centroids, held_vectors)
    latest_users, latest = ni_store.latest_train_vectors(
        store, version, dataset, d, span, only=sorted(targets.index))
    nearest_latest = interest_targets(rows, centroids, dict(zip(latest_users, latest,
                                                                strict=True)))
    is_latest = (rows["key"].to_numpy()
                 == rows["user_id"].map(nearest_latest).to_numpy()).astype(np.int64)
    touched = rows.assign(number=rows["key"].astype(int), latest=is_latest)
    no_fallback = pd.Series(dtype=np.int64)  # every interest of the user is a candidate
    orders = {"profile": (("share", True), ("number", False)),
              "recent": (("latest", True), ("share", True), ("number", False))}
    return {
        system: _metrics_frame(targets.index, target_ranks(touched, orders[system], targets,
                                                           no_fallback))
        for system in INTEREST_SYSTEMS
    }


# ------------------------------------------------------------------------ store and compare


def save_next_interest(store: Store, result: NextInterestResult) -> None:
    """Replace the stored next-interest metrics of (version, dataset, split) with
    ``result``'s, in one transaction."""
    long = [
        pd.DataFrame({
            "level": level, "system": system, "user_id": frame.index.to_numpy(dtype=object),
            "hit1": frame["hit@1"].to_numpy(), "hit3": frame["hit@3"].to_numpy(),
            "ndcg5": frame["ndcg@5"].to_numpy(),
        })
        for (level, system), frame in result.per_user.items()
    ]
    rows = (pd.concat(long, ignore_index=True) if long
            else pd.DataFrame(columns=list(ni_store.METRIC_COLUMNS)))
    ni_store.replace_next_interest_metrics(store, result.version, result.dataset,
                                           result.split, rows)


def load_next_interest(
    store: Store, dataset: str, version: str, split: str = "test"
) -> NextInterestResult:
    """The stored next-interest metrics of (version, dataset, split) as a result (empty
    ``per_user`` when none is stored). Never computes."""
    result = NextInterestResult(dataset, version, split)
    summary = ni_store.next_interest_summary(store, version, dataset, split)
    for level, system in zip(summary["level"], summary["system"], strict=True):
        result.per_user[(level, system)] = ni_store.read_next_interest_metrics(
            store, version, dataset, split, level, system)
    return result


def compare_next_interest(
    a: NextInterestResult,
    b: NextInterestResult,
    level: str,
    system: str = "profile",
    metric: str = "hit@1",
) -> PairedResult:
    """Paired comparison of ``b`` against ``a`` (e.g. base vs fine-tuned version) on one
    (level, system) and metric, over the users both measured (``compare_paired``).

    Raises:
        ConfigError: the metric is unknown, or either result lacks (level, system).
    """
    if metric not in METRICS:
        raise ConfigError(f"Unknown metric {metric!r}; choose from {list(METRICS)}")
    for name, result in (("a", a), ("b", b)):
        if (level, system) not in result.per_user:
            raise ConfigError(
                f"Result {name} ({result.version}) has no next-interest metrics for level "
                f"{level!r} and system {system!r}; it has {sorted(result.per_user)}."
            )
    return compare_paired(a.per_user[(level, system)], b.per_user[(level, system)],
                          [metric])[0]
