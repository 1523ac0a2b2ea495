"""Load what ranking needs for (dataset, version): interactions, item vectors, profiles."""

from __future__ import annotations

import numpy as np

from mgi_core.profiles.service import load_profiles, load_train_embeddings
from mgi_core.ranking.features import FeatureContext, build_context
from mgi_core.ranking.interactions import load_interactions
from mgi_core.store import Store
from mgi_core.store.embeddings import item_vectors
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
    else computed in memory: loading never writes.
    """
    inter = load_interactions(store, dataset)
    item_vecs = profiles = None
    review_vecs: dict[int, np.ndarray] = {}
    if version is not None:
        get_version(store, version)
        item_vecs = aligned_item_vectors(store, dataset, version, inter.items)
        reviews, vectors = load_train_embeddings(store, dataset, version)
        profiles = load_profiles(store, dataset, version, embeddings=(reviews, vectors))
        review_vecs = dict(zip(reviews["review_id"].astype(int), vectors, strict=True))
    ctx = build_context(inter, item_vecs, profiles, with_mf=with_mf, seed=seed)
    ctx.review_vecs = review_vecs
    return ctx
