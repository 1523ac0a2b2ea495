"""The pages' slow core calls, each started once per key in the background (``background``).

At 100k users a ranking context takes seconds to minutes to fit and holds 1-3 GB, so one is
fitted per (dataset, version) and shared by the recommenders of every scorer
(``Recommender.load(..., context=)``); at most ``MAX_CONTEXTS`` are kept, and a forgotten
context's recommenders go with it. What pages show (one user's recommendations, a few
users' top-k lists, the catalogue map, stored profiles, a paired comparison) are tasks on
top, and so is the work a page's button asks for that stores its result (an evaluation with
its next-interest metrics, an ablation). No Streamlit.

Keys start with ``(db, dataset, version, stamp)``: ``stamp`` is
``queries.profiles.data_stamp``, which changes when the dataset or its embeddings are
replaced.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from dashboard.background import Task, registry
from dashboard.embedding_map import fit_item_map
from mgi_core.evaluation.ablation import AblationReport, load_ablation, run_ablation
from mgi_core.evaluation.compare import ComparisonReport, compare, parse_spec
from mgi_core.evaluation.next_interest import NextInterestResult, load_next_interest, next_interest
from mgi_core.evaluation.protocol import evaluate
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
# Work that stores its result, started by a button (evaluate, next interest, ablation).
_stored = registry("stored work", 16, deferred=True)


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


def next_interest_results(store: Store, dataset: str, versions: tuple[str, str],
                          stamps: tuple[object, object]) -> Task:
    """Both versions' stored next-interest metrics (``load_next_interest``), read once per
    pair of stored results (``stamps``: e.g. their summaries)."""

    def load() -> tuple[NextInterestResult, NextInterestResult]:
        a, b = (load_next_interest(store, dataset, v) for v in versions)
        return a, b

    return _comparisons.start((str(store.path), dataset, "next-interest", versions, stamps),
                              f"Reading the next-interest metrics of {' and '.join(versions)}",
                              load)


def ablation(store: Store, dataset: str, version: str, stamps: tuple[object, ...]) -> Task:
    """``load_ablation``: the stored ablation of ``version`` compared with the full system
    (bootstrap CIs), once per set of stored evaluations (``stamps``)."""

    def load() -> AblationReport:
        return load_ablation(store, dataset, version)

    return _comparisons.start((str(store.path), dataset, "ablation", version, stamps),
                              f"Comparing the ablation variants of {version}", load)


def _stored_work(key: tuple, label: str, work: Callable[[], Any], start: bool) -> Task | None:
    """The kept task of ``key``; with ``start``, a new one unless one is running."""
    if start:
        _stored.forget(lambda k: k == key)  # a finished run may be run again
        return _stored.start(key, label, work)
    return _stored.get(key)


def evaluation(store: Store, dataset: str, systems: Sequence[str],
               start: bool = False) -> Task | None:
    """``evaluate`` of ``systems`` ('version:scorer'), then ``next_interest`` of each of their
    versions, stored: what the Compare and Metrics pages read. None when never started;
    ``start`` starts it (again, once a previous run ended)."""
    by_version: dict[str, list[str]] = {}
    for system in systems:
        version, scorer = parse_spec(system)
        by_version.setdefault(version, []).append(scorer)

    def run() -> bool:
        for version, scorers in by_version.items():
            evaluate(store, dataset, version, scorers)
            next_interest(store, dataset, version)
        return True

    return _stored_work((str(store.path), dataset, "evaluate", tuple(systems)),
                        f"Evaluating {' and '.join(systems)} on {dataset}", run, start)


def next_interest_run(store: Store, dataset: str, version: str,
                      start: bool = False) -> Task | None:
    """``next_interest`` of ``version`` on ``dataset``, stored (profiles built first when
    they are not). None when never started; ``start`` starts it."""

    def run() -> bool:
        next_interest(store, dataset, version)
        return True

    return _stored_work((str(store.path), dataset, "next-interest", version),
                        f"Measuring next interest for {version} on {dataset}", run, start)


def ablation_run(store: Store, dataset: str, version: str,
                 start: bool = False) -> Task | None:
    """``run_ablation`` of ``version`` on ``dataset``: the full system, the reference and
    every variant without one feature group, evaluated and stored. None when never
    started; ``start`` starts it."""

    def run() -> bool:
        run_ablation(store, dataset, version)
        return True

    return _stored_work((str(store.path), dataset, "ablation", version),
                        f"Running the ablation of {version} on {dataset}", run, start)


def _forget_orphans() -> None:
    """Drop the recommenders (and the lists and rankings on them) of forgotten contexts."""
    live = set(_contexts.keys())
    _recommenders.forget(lambda key: key[0] not in live)
    _recommendations.forget(lambda key: key[0] not in live)
