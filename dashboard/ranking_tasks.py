"""The pages' slow core calls, each started once per key in the background (``background``).

At 100k users a ranking context takes seconds to minutes to fit and holds 1-3 GB, so one is
fitted per (dataset, version) and shared by the recommenders of every scorer
(``Recommender.load(..., context=)``); at most ``MAX_CONTEXTS`` are kept, and a forgotten
context's recommenders go with it. What pages show (one user's recommendations, a few
users' top-k lists, the catalogue map, stored profiles, a paired comparison) are tasks on
top. No Streamlit.

Keys start with ``(db, dataset, version, stamp)``: ``stamp`` is
``queries.profiles.data_stamp``, which changes when the dataset or its embeddings are
replaced.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dashboard.background import Task, registry
from dashboard.embedding_map import fit_item_map
from mgi_core.evaluation.compare import ComparisonReport, compare
from mgi_core.profiles.service import ensure_profiles
from mgi_core.ranking.model import load_ranking_context
from mgi_core.ranking.recommend import Recommender
from mgi_core.store import Store
from mgi_core.store.embeddings import item_vectors

MAX_CONTEXTS = 2  # fitted ranking contexts kept (each 1-3 GB at 100k users x 50k items)

Key = tuple[str, str, str, str]  # (db, dataset, version, stamp)

# Fits begin once the page that asked is drawn (deferred); what usually ends at once begins
# at once (a user's ranking on a fitted recommender, profiles already stored).
_contexts = registry("ranking-context", MAX_CONTEXTS, deferred=True)
_recommenders = registry("recommender", 8 * MAX_CONTEXTS, deferred=True)
_recommendations = registry("recommendation", 128)
_lists = registry("top-k lists", 64)
_item_maps = registry("item map", 4, deferred=True)
_profiles = registry("profiles", 16)
_comparisons = registry("comparison", 16, deferred=True)


def context(store: Store, key: Key) -> Task:
    """The fitted ``FeatureContext`` of (dataset, version), MF included (every scorer's)."""
    _, dataset, version, _ = key
    task = _contexts.start(key, f"Fitting the ranking of {dataset} for {version}",
                           lambda: load_ranking_context(store, dataset, version, with_mf=True))
    _forget_orphans()
    return task


def recommender(store: Store, key: Key, scorer: str) -> Task:
    """A ``Recommender`` for ``scorer`` on the shared context (fusion weights as stored, or
    learned now when none are)."""
    _, dataset, version, _ = key
    fitted = context(store, key)

    def load() -> Recommender:
        fitted.wait()
        return Recommender.load(store, dataset, version, scorer, context=fitted.result())

    return _recommenders.start(
        (key, scorer), f"Fitting the ranking of {dataset} for {version}, then {scorer}", load)


def recommendation(store: Store, key: Key, scorer: str, user_id: str, k: int) -> Task:
    """``Recommender.recommend(user_id, k)``: one user's ranked items with their reasons."""
    fitted = recommender(store, key, scorer)

    def rank() -> dict[str, Any]:
        fitted.wait()
        return fitted.result().recommend(user_id, k)

    return _recommendations.start((key, scorer, user_id, k),
                                  f"Ranking items for {user_id}", rank)


def top_k_lists(store: Store, key: Key, scorer: str, users: Sequence[str],
                evaluated: str | None) -> Task:
    """``Recommender.top_k(users)``: the lists the evaluation measured (``evaluated``: the
    evaluation's stamp, so a re-evaluation ranks again)."""
    fitted = recommender(store, key, scorer)

    def rank() -> dict[str, Any]:
        fitted.wait()
        return fitted.result().top_k(list(users))

    return _lists.start((key, scorer, tuple(users), evaluated),
                        f"Ranking items for {len(users)} users", rank)


def item_map(store: Store, key: Key) -> Task:
    """The catalogue's PCA map (``fit_item_map``) of (dataset, version)."""
    _, dataset, version, _ = key
    return _item_maps.start(key, f"Projecting the catalogue of {dataset}",
                            lambda: fit_item_map(*item_vectors(store, version, dataset)))


def profiles(store: Store, key: Key) -> Task:
    """Stored profiles of (dataset, version): ``ensure_profiles`` (at once when stored)."""
    _, dataset, version, _ = key

    def ensure() -> bool:
        ensure_profiles(store, dataset, version)
        return True

    return _profiles.start(key, f"Computing interest profiles for {version}", ensure)


def comparison(store: Store, dataset: str, a: str, b: str,
               evaluated: tuple[str | None, str | None]) -> Task:
    """``compare(a, b)``: the paired comparison with bootstrap CIs (seconds at 100k users),
    once per pair of stored evaluations (``evaluated``: their stamps)."""

    def paired() -> ComparisonReport:
        return compare(store, a, b, dataset)

    return _comparisons.start((str(store.path), dataset, a, b, evaluated),
                              f"Comparing {a} with {b} over every user", paired)


def _forget_orphans() -> None:
    """Drop the recommenders (and the lists and rankings on them) of forgotten contexts."""
    live = set(_contexts.keys())
    _recommenders.forget(lambda key: key[0] not in live)
    _recommendations.forget(lambda key: key[0] not in live)
