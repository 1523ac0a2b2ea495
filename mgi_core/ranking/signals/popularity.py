"""Popularity: how many train reviews each item has, the same for every user."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from mgi_core.ranking.signals.base import Signal

if TYPE_CHECKING:
    from mgi_core.ranking.features import FeatureContext


class Popularity(Signal):
    """log(1 + the item's train review count)."""

    name = "popularity"
    granularity = "popularity"

    def fit(self, context: FeatureContext) -> Popularity:
        self.log_counts = np.log1p(np.asarray(context.inter.train.sum(axis=0)).ravel())  # (n_i,)
        return self

    def score(self, users: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.log_counts, (len(users), len(self.log_counts))).copy()
