"""Build interest profiles from a version's embeddings of each user's *train* reviews.

Per user: an overall vector (rating- and recency-weighted mean); per L1 and per L2
category the user touched, a vector and an affinity = activity share × sentiment, where the
share blends the observed share with the category head's mean probability when the version
has heads; fine interests = k clusters of the review embeddings (k = 1..max chosen by
silhouette), each with c-TF-IDF keywords and its most representative reviews. Users with a
single review are flagged cold: their profile is that review, and ranking falls back to
popularity within their categories (see ``mgi_core.ranking``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from mgi_core.config import ProfileConfig
from mgi_core.profiles.keywords import CorpusFrequencies, ctfidf_keywords

log = logging.getLogger(__name__)


@dataclass
class UserProfiles:
    """All users' profiles for one (version, dataset); vectors are L2-normalised.

    ``rows`` has one row per (user, level, key) with level in overall | l1 | l2 | interest
    and ``vector_row`` indexing ``vectors`` (m, d).
    """

    version: str
    dataset: str
    rows: pd.DataFrame
    vectors: np.ndarray
    last_liked: dict[str, np.ndarray] = field(default_factory=dict)
    # user_id, review_id, interest: which fine interest each train review is in (what the
    # keywords of an interest are counted over; ``profiles.incremental`` ranks them again)
    members: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(
        {"user_id": [], "review_id": [], "interest": []}))

    def for_user(self, user_id: str) -> pd.DataFrame:
        return self.rows[self.rows["user_id"] == user_id]

    def vectors_of(self, level: str) -> tuple[pd.DataFrame, np.ndarray]:
        rows = self.rows[self.rows["level"] == level]
        return rows, self.vectors[rows["vector_row"].to_numpy()]


def _normalise(v: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.maximum(norm, 1e-12)


def review_weights(reviews: pd.DataFrame, config: ProfileConfig) -> np.ndarray:
    """Weight of each review in its user's vectors: rating × recency decay."""
    w = reviews["rating"].to_numpy(dtype=np.float64).copy()
    if config.rating_weighting == "none":
        w[:] = 1.0
    if config.half_life_days is not None and reviews["ts"].notna().any():
        ts = pd.to_datetime(reviews["ts"])
        latest = ts.groupby(reviews["user_id"]).transform("max")
        age = (latest - ts).dt.total_seconds().fillna(0).to_numpy() / 86400.0
        w = w * np.power(0.5, age / config.half_life_days)
    return np.maximum(w, 1e-6)


def spherical_kmeans(x: np.ndarray, k: int, seed: int = 0, n_iter: int = 20) -> np.ndarray:
    """Cluster labels of unit vectors ``x`` (n, d) by cosine k-means with k-means++ seeds."""
    rng = np.random.default_rng(seed)
    n = len(x)
    centres = [x[int(rng.integers(n))]]
    for _ in range(1, k):
        dist = np.clip(1 - np.max(x @ np.stack(centres).T, axis=1), 0, None)
        total = dist.sum()
        pick = int(rng.choice(n, p=dist / total)) if total > 0 else int(rng.integers(n))
        centres.append(x[pick])
    c = np.stack(centres)
    labels = np.zeros(n, dtype=int)
    for _ in range(n_iter):
        new = np.argmax(x @ c.T, axis=1)
        if _ > 0 and np.array_equal(new, labels):
            break
        labels = new
        for j in range(k):
            members = x[labels == j]
            if len(members):
                c[j] = _normalise(members.sum(0))
    return labels


def silhouette_cosine(x: np.ndarray, labels: np.ndarray) -> float:
    """Mean silhouette with cosine distance (0 for singleton clusters, as scikit-learn).

    Not ``sklearn.metrics.silhouette_score(x, labels, metric="cosine")``: on near-duplicate
    reviews split across clusters, both divide float32 rounding noise by rounding noise,
    each its own way, so scikit-learn's answer picks a different k for a few users and the
    profiles and rankings (README figures) would change.
    """
    dist = np.clip(1 - x @ x.T, 0, None)  # (n, n)
    ks = np.unique(labels)
    scores = np.zeros(len(x))
    for i in range(len(x)):
        own = labels == labels[i]
        if own.sum() <= 1:
            continue
        a = dist[i, own].sum() / (own.sum() - 1)
        b = min(dist[i, labels == k].mean() for k in ks if k != labels[i])
        scores[i] = (b - a) / max(a, b, 1e-12)
    return float(scores.mean())


def choose_k(x: np.ndarray, config: ProfileConfig, seed: int = 0) -> tuple[int, np.ndarray]:
    """Number of fine interests and labels: k in 2..max kept only if silhouette is high."""
    n = len(x)
    best_k, best_labels, best_score = 1, np.zeros(n, dtype=int), config.min_silhouette
    spread = float(np.mean(1 - x @ x.T)) * n / max(n - 1, 1)  # mean pairwise cos distance
    max_k = min(config.max_interests, n - 1) if spread >= config.min_spread else 1
    for k in range(2, max_k + 1):
        labels = spherical_kmeans(x, k, seed)
        if len(set(labels)) < 2:
            continue
        score = silhouette_cosine(x, labels)
        if score > best_score:
            best_k, best_labels, best_score = k, labels, score
    # Relabel by size so interest 0 is the largest.
    order = {
        old: new
        for new, old in enumerate(sorted(set(best_labels), key=lambda c: -np.sum(best_labels == c)))
    }
    return best_k, np.array([order[c] for c in best_labels])


def build_user_profiles(
    reviews: pd.DataFrame,
    vectors: np.ndarray,
    config: ProfileConfig | None = None,
    head_probs: dict[str, tuple[list[str], np.ndarray]] | None = None,
    version: str = "",
    dataset: str = "",
    corpus: CorpusFrequencies | None = None,
    first_vector_row: int = 0,
) -> UserProfiles:
    """Profiles from train reviews.

    Args:
        reviews: the *train* reviews — review_id, user_id, item_id, text, rating, ts, l1, l2
            (one row per review, aligned with ``vectors``). Rows of other splits are refused.
        vectors: (n, d) normalised review embeddings of the version.
        head_probs: optional ``{'category': (labels, probs (n, n_labels)), 'subcategory': …}``
            from the version's heads, aligned with ``reviews``.
        corpus: the keyword reference corpus (default: the texts of ``reviews``); a caller
            that builds the profiles of a dataset in batches of users passes the frequencies
            of all its train reviews, so that keywords do not depend on the batch.
        first_vector_row: ``vector_row`` of the first vector (rows of earlier batches).
    """
    config = config or ProfileConfig()
    if "split" in reviews and (reviews["split"] != "train").any():
        raise ValueError("profiles are built from train reviews only")
    reviews = reviews.reset_index(drop=True)
    weights = review_weights(reviews, config)
    sentiment = np.clip(
        (reviews["rating"].to_numpy(dtype=np.float64) - config.rating_midpoint)
        / config.rating_spread,
        -1.0,
        1.0,
    )
    corpus = corpus if corpus is not None else CorpusFrequencies(reviews["text"].astype(str))
    rows: list[dict] = []
    vecs: list[np.ndarray] = []
    last_liked: dict[str, np.ndarray] = {}
    member_users: list[str] = []
    member_reviews: list[np.ndarray] = []
    member_interests: list[np.ndarray] = []
    head_index = {
        task: ({label: j for j, label in enumerate(labels)}, probs)
        for task, (labels, probs) in (head_probs or {}).items()
    }
    order = reviews.sort_values(["user_id", "ts"], na_position="first", kind="stable").index
    # Columns as numpy arrays once: converting a column inside the per-user loop would cost
    # O(n_reviews) per user.
    ratings = reviews["rating"].to_numpy()
    texts = reviews["text"].astype(str).to_numpy()
    review_ids = reviews["review_id"].to_numpy()
    levels = {lv: reviews[lv].to_numpy() for lv in ("l1", "l2") if lv in reviews}
    for user, idx in reviews.loc[order].groupby("user_id", sort=True).groups.items():
        idx = np.asarray(idx)
        x, w = vectors[idx], weights[idx]
        n = len(idx)
        cold = n <= 1
        overall = _normalise((x * w[:, None]).sum(0))
        rows.append(
            dict(
                user_id=user,
                level="overall",
                key="",
                n_reviews=n,
                share=1.0,
                sentiment=float(sentiment[idx].mean()),
                head_prob=None,
                affinity=None,
                keywords=None,
                review_ids=None,
                cold=cold,
                vector_row=first_vector_row + len(vecs),
            )
        )
        vecs.append(overall)
        liked = idx[ratings[idx] >= config.like_threshold]
        last_liked[user] = vectors[liked[-1] if len(liked) else idx[-1]]
        for level, task in (("l1", "category"), ("l2", "subcategory")):
            cats = levels[level][idx] if level in levels else np.array([None] * n)
            for cat in sorted({c for c in cats if isinstance(c, str)}):
                members = idx[cats == cat]
                share = len(members) / n
                head_prob = None
                if task in head_index and cat in head_index[task][0]:
                    j = head_index[task][0][cat]
                    head_prob = float(head_index[task][1][idx, j].mean())
                blended = share if head_prob is None else 0.5 * share + 0.5 * head_prob
                senti = float(sentiment[members].mean())
                rows.append(
                    dict(
                        user_id=user,
                        level=level,
                        key=cat,
                        n_reviews=len(members),
                        share=share,
                        sentiment=senti,
                        head_prob=head_prob,
                        affinity=blended * senti,
                        keywords=None,
                        review_ids=None,
                        cold=cold,
                        vector_row=first_vector_row + len(vecs),
                    )
                )
                vecs.append(_normalise((vectors[members] * weights[members, None]).sum(0)))
        k, labels = choose_k(x, config) if n >= 4 else (1, np.zeros(n, dtype=int))
        groups = [idx[labels == c] for c in range(k)]
        member_users += [user] * n
        member_reviews.append(review_ids[idx])
        member_interests.append(labels.astype(np.int32))
        keywords = ctfidf_keywords(
            [texts[g] for g in groups],
            corpus,
            config.n_keywords,
        )
        for c, (members, words) in enumerate(zip(groups, keywords, strict=True)):
            centroid = _normalise((vectors[members] * weights[members, None]).sum(0))
            closest = members[np.argsort(-(vectors[members] @ centroid))]
            rows.append(
                dict(
                    user_id=user,
                    level="interest",
                    key=str(c),
                    n_reviews=len(members),
                    share=len(members) / n,
                    sentiment=float(sentiment[members].mean()),
                    head_prob=None,
                    affinity=None,
                    keywords=words,
                    review_ids=[
                        int(r)
                        for r in review_ids[closest[: config.n_representative]]
                    ],
                    cold=cold,
                    vector_row=first_vector_row + len(vecs),
                )
            )
            vecs.append(centroid)
    frame = pd.DataFrame(rows)
    dim = vectors.shape[1] if vectors.ndim == 2 else 0
    matrix = np.stack(vecs).astype(np.float32) if vecs else np.zeros((0, dim), np.float32)
    members = pd.DataFrame({
        "user_id": member_users,
        "review_id": (np.concatenate(member_reviews) if member_reviews
                      else np.zeros(0)).astype(np.int64),
        "interest": (np.concatenate(member_interests) if member_interests
                     else np.zeros(0)).astype(np.int32),
    })
    return UserProfiles(version, dataset, frame, matrix, last_liked, members)
