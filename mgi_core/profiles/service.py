"""Profiles of a (version, dataset): compute them from the version's train embeddings, store
them, read them back.

``ensure_profiles`` is the work: it computes and stores the profiles once, and is called
where work is expected (evaluation, ``user_profile`` for the CLI's ``profile``, the Profiles
page before it reads). ``stored_profiles`` and ``load_profiles`` never write.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd

from mgi_core.config import ProfileConfig
from mgi_core.data.datasets import get_dataset
from mgi_core.errors import UnknownUserError
from mgi_core.profiles.builder import UserProfiles, build_user_profiles
from mgi_core.profiles.keywords import CorpusFrequencies
from mgi_core.store import Store
from mgi_core.store import profiles as profile_store
from mgi_core.store.datasets import profile_half_life
from mgi_core.store.embeddings import embedding_dim, review_vectors
from mgi_core.store.versions import get_version

HEAD_TASKS = ("category", "subcategory")  # the heads whose probabilities profiles use


PROFILE_BATCH_USERS = 5_000  # users whose reviews, vectors and profiles are in memory at once


def head_probabilities(
    store: Store,
    version: str,
    dataset: str,
    review_ids: np.ndarray,
    heads: dict[str, list[str]] | None,
    users: tuple[str, str] | None = None,
) -> dict[str, tuple[list[str], np.ndarray]]:
    """task -> (labels, (n_reviews, n_labels) probabilities in ``review_ids`` order)."""
    out = {}
    for task, labels in (heads or {}).items():
        if task not in HEAD_TASKS:
            continue
        by_id = profile_store.head_probs(store, version, dataset, task, users)
        if not by_id:
            continue
        probs = np.array(
            [by_id.get(int(r), [0.0] * len(labels)) for r in review_ids], dtype=np.float32
        )
        out[task] = (labels, probs)
    return out


def dataset_profile_config(store: Store, dataset: str) -> ProfileConfig:
    """The profile settings of ``dataset``: the defaults, with its recency half-life
    (``mgi half-life``; README, "Appending reviews")."""
    return ProfileConfig(half_life_days=profile_half_life(store, dataset))


def load_train_embeddings(
    store: Store, dataset: str, version: str, users: tuple[str, str] | None = None
) -> tuple[pd.DataFrame, np.ndarray]:
    """The dataset's train reviews and their ``version`` embeddings, row-aligned (only the
    users from ``users[0]`` to ``users[1]`` when given). Reviews appended since the
    version's last update have no vector of it yet and are left out."""
    get_dataset(store, dataset)
    reviews = profile_store.train_reviews(store, dataset, users)
    ids, vecs = review_vectors(store, version, dataset, split="train", users=users)
    position = {int(r): k for k, r in enumerate(ids)}
    embedded = np.array([int(r) in position for r in reviews["review_id"]], dtype=bool)
    if not embedded.all():  # appended since the version's last update (``mgi update``)
        reviews = reviews[embedded].reset_index(drop=True)
    return reviews, vecs[[position[int(r)] for r in reviews["review_id"]]]


def train_corpus(store: Store, dataset: str) -> CorpusFrequencies:
    """Keyword frequencies over all train reviews of a dataset, read in chunks."""
    corpus = CorpusFrequencies()
    for texts in profile_store.train_texts(store, dataset):
        corpus.add(texts)
    return corpus


def profile_batches(
    store: Store,
    dataset: str,
    version: str,
    config: ProfileConfig | None = None,
    batch_users: int = PROFILE_BATCH_USERS,
) -> Iterator[UserProfiles]:
    """The profiles of every user of ``dataset`` under ``version``, ``batch_users`` users at
    a time (in user order): each batch reads only its users' train reviews, embeddings and
    head probabilities. ``vector_row`` numbers the vectors across batches, and keywords use
    the frequencies of all train reviews, so the batches together equal one
    ``build_user_profiles`` call on the whole dataset, whatever the batch size."""
    if batch_users < 1:
        raise ValueError(f"batch_users must be at least 1, got {batch_users}")
    info = get_version(store, version)
    heads = info.get("heads") or {}
    get_dataset(store, dataset)
    users = profile_store.train_users(store, dataset)
    corpus = train_corpus(store, dataset)
    first = 0
    for start in range(0, len(users), batch_users):
        span = (users[start], users[min(start + batch_users, len(users)) - 1])
        reviews, vectors = load_train_embeddings(store, dataset, version, span)
        part = _build(store, dataset, version, reviews, vectors, config, heads, span, corpus,
                      first)
        first += len(part.vectors)
        yield part


def _build(
    store: Store, dataset: str, version: str, reviews: pd.DataFrame, vectors: np.ndarray,
    config: ProfileConfig | None, heads: dict[str, list[str]],
    users: tuple[str, str] | None = None, corpus: CorpusFrequencies | None = None,
    first_vector_row: int = 0,
) -> UserProfiles:
    """``build_user_profiles`` of these train reviews with their head probabilities (and
    the dataset's recency half-life unless ``config`` is given)."""
    config = config or dataset_profile_config(store, dataset)
    probs = head_probabilities(store, version, dataset, reviews["review_id"].to_numpy(), heads,
                               users)
    return build_user_profiles(reviews, vectors, config, probs, version, dataset,
                               corpus=corpus, first_vector_row=first_vector_row)


def compute_profiles(
    store: Store,
    dataset: str,
    version: str,
    config: ProfileConfig | None = None,
    embeddings: tuple[pd.DataFrame, np.ndarray] | None = None,
) -> UserProfiles:
    """Profiles of every user of ``dataset`` under ``version`` (train reviews only), in
    memory: from ``embeddings`` when given, else from the store in batches."""
    if embeddings is not None:
        heads = get_version(store, version).get("heads") or {}
        return _build(store, dataset, version, *embeddings, config, heads)
    parts = list(profile_batches(store, dataset, version, config))
    d = embedding_dim(store, version, dataset)
    rows = pd.concat([p.rows for p in parts], ignore_index=True) if parts else pd.DataFrame()
    vectors = (np.concatenate([p.vectors for p in parts]) if parts
               else np.zeros((0, d), np.float32))
    last = {u: v for p in parts for u, v in p.last_liked.items()}
    return UserProfiles(version, dataset, rows, vectors, last)


def save_profiles(store: Store, profiles: UserProfiles) -> None:
    """Replace the stored profiles of (version, dataset) in one transaction."""
    profile_store.replace_profiles(
        store, profiles.version, profiles.dataset, profiles.rows, profiles.vectors,
        profiles.members,
    )


def ensure_profiles(
    store: Store, dataset: str, version: str, batch_users: int = PROFILE_BATCH_USERS
) -> None:
    """Compute and store profiles once per (version, dataset); nothing when stored.

    Built and written ``batch_users`` users at a time in one transaction: memory follows
    the batch, and readers see the old profiles or all the new ones.
    """
    if profile_store.has_profiles(store, version, dataset):
        return
    d = embedding_dim(store, version, dataset)
    profile_store.replace_profiles_in_batches(
        store, version, dataset, d,
        ((p.rows, p.vectors, p.members)
         for p in profile_batches(store, dataset, version, batch_users=batch_users)),
    )


def last_liked_vectors(
    reviews: pd.DataFrame, vectors: np.ndarray, config: ProfileConfig | None = None
) -> dict[str, np.ndarray]:
    """Each user's latest liked train review vector (latest review when none is liked).

    The same rule as ``build_user_profiles``: reviews ordered by (user, ts), missing times
    first, ties in row order. ``reviews`` and ``vectors`` (n, d) are row-aligned.
    """
    config = config or ProfileConfig()
    frame = pd.DataFrame({
        "user_id": reviews["user_id"].to_numpy(),
        "ts": reviews["ts"].to_numpy(),
        "liked": reviews["rating"].to_numpy(dtype=np.float64) >= config.like_threshold,
        "row": np.arange(len(reviews)),
    }).sort_values(["user_id", "ts"], na_position="first", kind="stable")
    last = frame.groupby("user_id", sort=False)["row"].last()
    last_liked = frame[frame["liked"]].groupby("user_id", sort=False)["row"].last()
    rows = last_liked.reindex(last.index).fillna(last).astype(int)
    return {user: vectors[row] for user, row in rows.items()}


def stored_profiles(
    store: Store,
    dataset: str,
    version: str,
    embeddings: tuple[pd.DataFrame, np.ndarray] | None = None,
) -> UserProfiles | None:
    """The stored profiles of (version, dataset) as ``UserProfiles``; None when not stored.

    Rows come back in ``vector_row`` order, as ``build_user_profiles`` made them, and
    ``last_liked`` (not stored) is derived from the train embeddings.
    """
    if not profile_store.has_profiles(store, version, dataset):
        return None
    reviews, vectors = embeddings or load_train_embeddings(store, dataset, version)
    d = int(vectors.shape[1])
    rows = profile_store.profile_rows(store, version, dataset)
    vector_rows, matrix = profile_store.profile_vectors(store, version, dataset, d)  # (m, d)
    complete = np.arange(len(vector_rows))
    if not (np.array_equal(vector_rows, complete)
            and np.array_equal(rows["vector_row"].to_numpy(), complete)):
        return None  # not one complete set: computed again by the caller
    return UserProfiles(version, dataset, rows, matrix, last_liked_vectors(reviews, vectors))


def load_profiles(
    store: Store,
    dataset: str,
    version: str,
    embeddings: tuple[pd.DataFrame, np.ndarray] | None = None,
) -> UserProfiles:
    """The profiles of (version, dataset): the stored ones, else computed now in memory.

    Never writes (call ``ensure_profiles`` first to compute them once and store them).
    ``embeddings``: the train reviews and their vectors when the caller has them already
    (``load_train_embeddings``), so they are read once.
    """
    embeddings = embeddings or load_train_embeddings(store, dataset, version)
    profiles = stored_profiles(store, dataset, version, embeddings)
    if profiles is None:
        profiles = compute_profiles(store, dataset, version, embeddings=embeddings)
    return profiles


def user_profile(store: Store, dataset: str, version: str, user_id: str) -> dict[str, Any]:
    """One user's stored profile as plain data (computes and stores all profiles of the
    version on first use, ``ensure_profiles``).

    Raises:
        UnknownUserError: the user has no train reviews in the dataset.
    """
    ensure_profiles(store, dataset, version)
    items = profile_store.user_profile_rows(store, version, dataset, user_id)
    if not items:
        raise UnknownUserError(
            f"User {user_id!r} has no training reviews in dataset {dataset!r}. Check the id "
            "(the Profiles page lists users), or pick another dataset."
        )
    texts = profile_store.profile_review_texts(store, version, dataset, user_id)
    overall = next(i for i in items if i["level"] == "overall")
    return {
        "user_id": user_id,
        "version": version,
        "dataset": dataset,
        "cold": bool(overall["cold"]),
        "n_train_reviews": overall["n_reviews"],
        "mean_sentiment": overall["sentiment"],
        "l1": [_cat(i) for i in items if i["level"] == "l1"],
        "l2": [_cat(i) for i in items if i["level"] == "l2"],
        "interests": [
            {
                "interest": int(i["key"]),
                "n_reviews": i["n_reviews"],
                "share": i["share"],
                "sentiment": i["sentiment"],
                "keywords": list(i["keywords"] or []),
                "representative_reviews": [
                    {"review_id": r, "text": texts.get(r, "")} for r in (i["review_ids"] or [])
                ],
            }
            for i in sorted(
                (i for i in items if i["level"] == "interest"), key=lambda i: -i["n_reviews"]
            )
        ],
    }


def _cat(row: dict[str, Any]) -> dict[str, Any]:
    return {
        k: row[k] for k in ("key", "n_reviews", "share", "sentiment", "head_prob", "affinity")
    } | {"category": row["key"]}
