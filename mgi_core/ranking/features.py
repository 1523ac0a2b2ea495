"""Per-(user, item) features: the registered signals, fitted once and scored per batch.

Each feature is a dense (n_users_in_batch, n_items) matrix from one signal of
``mgi_core.ranking.signals``, fitted on *train* data only: train interactions, item vectors
(mean of train review embeddings), and the users' train profiles. Feature names are the
signals' names and stable: fusion weights are stored under them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from mgi_core.profiles.builder import UserProfiles
from mgi_core.ranking.interactions import Interactions
from mgi_core.ranking.signals import DATA_NEEDS, SIGNALS, Signal
from mgi_core.ranking.signals.collaborative import fit_mf, item_knn_similarity
from mgi_core.ranking.signals.profile_index import ProfileIndex, StoredProfileIndex

__all__ = [
    "ALL_FEATURES",
    "FeatureContext",
    "build_context",
    "compute_features",
    "fit_mf",
    "item_knn_similarity",
]

log = logging.getLogger(__name__)

ALL_FEATURES = tuple(SIGNALS)  # the built-in signals, in registration order


@dataclass
class FeatureContext:
    """Everything fitted once per (dataset, version) before scoring batches of users."""

    inter: Interactions
    item_vecs: np.ndarray | None  # (n_items, d), zero rows for items without a vector
    profiles: UserProfiles | StoredProfileIndex | None  # in memory, or read per batch
    seed: int = 0  # for signals that draw at random (MF)
    # ``profiles`` grouped by user and level; signals read ``profile_index.batch(users)``
    profile_index: ProfileIndex | StoredProfileIndex | None = None
    signals: dict[str, Signal] = field(default_factory=dict)  # name -> fitted signal
    # review ids -> (their train vectors (n, d), texts), for a user's matching reviews;
    # None without a version
    review_lookup: Callable[[np.ndarray], tuple[np.ndarray, list[str]]] | None = None
    with_mf: bool = True  # False: MF was left out when fitting (``build_context``)

    def provides(self, need: str) -> bool:
        """Whether a signal's ``need`` (a data need or a fitted signal's name) is here."""
        if need in DATA_NEEDS:
            return DATA_NEEDS[need](self)
        return need in self.signals


def build_context(
    inter: Interactions,
    item_vecs: np.ndarray | None,
    profiles: UserProfiles | StoredProfileIndex | None,
    with_mf: bool = True,
    seed: int = 0,
) -> FeatureContext:
    """Fit every registered signal whose needs the data meets, in registration order.

    ``with_mf=False`` leaves out matrix factorisation (the slowest fit) for callers that
    do not score with it. A signal left out is absent from ``compute_features``' answer.
    """
    ctx = FeatureContext(
        inter=inter,
        item_vecs=item_vecs,
        profiles=profiles,
        seed=seed,
        profile_index=(None if profiles is None else profiles
                       if isinstance(profiles, StoredProfileIndex) else ProfileIndex(profiles)),
        with_mf=with_mf,
    )
    for name, signal in SIGNALS.items():
        if name == "mf" and not with_mf:
            continue
        if all(ctx.provides(need) for need in signal.needs):
            ctx.signals[name] = signal().fit(ctx)
        else:
            log.debug("signal %s left out: needs %s", name, signal.needs)
    return ctx


def compute_features(
    ctx: FeatureContext, users: np.ndarray, names: tuple[str, ...]
) -> dict[str, np.ndarray]:
    """The requested features for user indices ``users``: name -> (len(users), n_items).

    Names of signals ``ctx`` has not fitted (unknown, or whose needs were not met) are left
    out of the answer.
    """
    return {name: ctx.signals[name].score(users) for name in names if name in ctx.signals}
