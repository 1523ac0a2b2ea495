"""Load what ranking needs for (dataset, version): interactions, item vectors, profiles."""

from __future__ import annotations

from functools import partial

import numpy as np

from mgi_core.profiles.service import load_profiles
from mgi_core.ranking.features import FeatureContext, build_context
from mgi_core.ranking.interactions import load_interactions
from mgi_core.ranking.signals.profile_index import StoredProfileIndex
from mgi_core.store import Store
from mgi_core.store.embeddings import item_vectors, review_vectors
from mgi_core.store.profiles import has_profiles, review_texts
from mgi_core.store.versions import get_version


def aligned_item_vectors(store: Store, dataset: str, version: str, items: np.ndarray) -> np.ndarray:
    """(n_items, d) item vectors in the order of ``items``; zero rows where absent."""
    ids, vecs = item_vectors(store, version, dataset)
    out = np.zeros((len(items), vecs.shape[1]), dtype=np.float32)
    position = {i: k for k, i in enumerate(ids)}
    for k, item in enumerate(items):
        j = position.get(item)
        if j is not None:
            out[k] = vecs[j]
    return out


def load_ranking_context(
    store: Store, dataset: str, version: str | None, with_mf: bool = True, seed: int = 0
) -> FeatureContext:
    """Fit every feature source once: CF on train interactions, content from ``version``.

    The version's user profiles are the stored ones (``user_profiles``; evaluation and the
    Profiles page store them first with ``ensure_profiles``, so they share one computation),
    read from the store a window of users at a time (``StoredProfileIndex``); else computed
    now in memory: loading never writes. A user's train review vectors and texts (the
    reasons ``recommend`` gives) are read when asked for.
    """
    inter = load_interactions(store, dataset)
    item_vecs = profiles = lookup = None
    if version is not None:
        get_version(store, version)
        item_vecs = aligned_item_vectors(store, dataset, version, inter.items)
        if has_profiles(store, version, dataset):
            profiles = StoredProfileIndex(store, version, dataset, item_vecs.shape[1],
                                          inter.users)
        else:
            profiles = load_profiles(store, dataset, version)
        lookup = partial(_train_reviews_of, store, dataset, version)
    ctx = build_context(inter, item_vecs, profiles, with_mf=with_mf, seed=seed)
    ctx.review_lookup = lookup
    return ctx


def _train_reviews_of(store: Store, dataset: str, version: str,
                      review_ids: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """(vectors (n, d), texts) of ``review_ids`` under ``version``, in the order given."""
    ids, vectors = review_vectors(store, version, dataset, review_ids=review_ids)
    texts = review_texts(store, dataset, review_ids)
    at = {int(r): k for k, r in enumerate(ids)}
    order = [at[int(r)] for r in review_ids]
    return vectors[order], [texts.get(int(r), "") for r in review_ids]
