"""Content match at each granularity: item vectors against the user's profile vectors.

Item vectors are the mean of each item's train review embeddings (zero rows for items
without one); profile vectors come from the user's train reviews. A user without a profile
scores zero everywhere.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import TYPE_CHECKING

import numpy as np

from mgi_core.ranking.signals.base import Signal
from mgi_core.ranking.signals.profile_index import (
    ProfileIndex,
    ProfileLevel,
    StoredProfileIndex,
)

if TYPE_CHECKING:
    from mgi_core.ranking.features import FeatureContext


class ContentSignal(Signal):
    """Shared by the content signals: item vectors, the profile index, the user ids."""

    needs = ("item_vectors", "profiles")

    def fit(self, context: FeatureContext) -> ContentSignal:
        self.item_vecs = context.item_vecs  # (n_items, d)
        self.index: ProfileIndex | StoredProfileIndex = context.profile_index
        self.user_ids = context.inter.users
        return self

    def score(self, users: np.ndarray) -> np.ndarray:
        out = np.zeros((len(users), len(self.item_vecs)))
        index = self.index.batch(self.user_ids[users])  # these users' profiles, in memory
        for k, u in enumerate(users):
            levels = index.levels(self.user_ids[u])
            if levels is not None:
                self.score_user(out[k], self.user_ids[u], levels, index)
        return out

    @abstractmethod
    def score_user(self, row: np.ndarray, user_id: str, levels: dict[str, ProfileLevel],
                   index: ProfileIndex) -> None:
        """Write one user's scores into ``row`` (n_items,), zeros on entry; ``levels`` are
        the user's rows in ``index``."""


class Content(ContentSignal):
    """Cosine of the item vector with the user's overall vector."""

    name = "content"
    granularity = "overall"

    def score_user(self, row: np.ndarray, user_id: str, levels: dict[str, ProfileLevel],
                   index: ProfileIndex) -> None:
        overall = index.vectors(levels["overall"])[0]  # (d,)
        row[:] = self.item_vecs @ overall


class ContentLast(ContentSignal):
    """Cosine of the item vector with the user's latest liked train review."""

    name = "content_last"
    granularity = "fine"

    def score_user(self, row: np.ndarray, user_id: str, levels: dict[str, ProfileLevel],
                   index: ProfileIndex) -> None:
        last = index.last_liked(user_id)
        if last is not None:
            row[:] = self.item_vecs @ last


class ContentInterest(ContentSignal):
    """Best cosine of the item vector with any of the user's fine interests."""

    name = "content_interest"
    granularity = "fine"

    def score_user(self, row: np.ndarray, user_id: str, levels: dict[str, ProfileLevel],
                   index: ProfileIndex) -> None:
        if "interest" in levels:
            centroids = index.vectors(levels["interest"])  # (n_interests, d)
            row[:] = (self.item_vecs @ centroids.T).max(axis=1)


class ContentCategory(ContentSignal):
    """Cosine of the item vector with the user's vector for the item's L1 category."""

    name = "content_category"
    granularity = "category"

    def fit(self, context: FeatureContext) -> ContentCategory:
        super().fit(context)
        self.item_l1 = context.inter.item_l1
        return self

    def score_user(self, row: np.ndarray, user_id: str, levels: dict[str, ProfileLevel],
                   index: ProfileIndex) -> None:
        if "l1" in levels:
            cols = levels["l1"].item_columns(self.item_l1)
            has = cols >= 0
            sims = self.item_vecs @ index.vectors(levels["l1"]).T  # (n_items, n_cat)
            row[has] = sims[has, cols[has]]
