"""Category signals: the user's affinity for the item's L1 and L2 category, L1 transitions."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from mgi_core.ranking.signals.base import Signal
from mgi_core.ranking.signals.profile_index import ProfileIndex, StoredProfileIndex

if TYPE_CHECKING:
    from mgi_core.ranking.features import FeatureContext


class CategoryAffinity(Signal):
    """The user's profile affinity for the item's category at ``level`` (0 where none)."""

    needs = ("profiles",)
    level: str  # "l1" | "l2"

    def fit(self, context: FeatureContext) -> CategoryAffinity:
        self.index: ProfileIndex | StoredProfileIndex = context.profile_index
        self.user_ids = context.inter.users
        inter = context.inter
        self.item_keys = inter.item_l1 if self.level == "l1" else inter.item_l2  # (n_items,)
        return self

    def score(self, users: np.ndarray) -> np.ndarray:
        out = np.zeros((len(users), len(self.item_keys)))
        index = self.index.batch(self.user_ids[users])  # these users' profiles, in memory
        for k, u in enumerate(users):
            levels = index.levels(self.user_ids[u])
            if levels is not None and self.level in levels:
                rows = levels[self.level]
                cols = rows.item_columns(self.item_keys)
                has = cols >= 0
                out[k, has] = rows.affinity[cols[has]]
        return out


class AffinityL1(CategoryAffinity):
    name = "affinity_l1"
    granularity = "category"
    level = "l1"


class AffinityL2(CategoryAffinity):
    name = "affinity_l2"
    granularity = "subcategory"
    level = "l2"


class TransitionL1(Signal):
    """P(next item's L1 | the L1 of the user's latest train item), add-one smoothed.

    Counted over consecutive train reviews of the same user; 0 for users whose latest item
    has no L1 and for items without one.
    """

    name = "transition_l1"
    granularity = "category"
    needs = ("categories",)

    def fit(self, context: FeatureContext) -> TransitionL1:
        inter = context.inter
        l1_names = sorted({c for c in inter.item_l1 if isinstance(c, str)})
        code = {c: k for k, c in enumerate(l1_names)}
        self.l1_codes = np.array(  # (n_items,) int, -1 when missing
            [code.get(c, -1) if isinstance(c, str) else -1 for c in inter.item_l1]
        )
        tr = inter.train_reviews  # ordered by user, time
        seq_u = tr["u"].to_numpy()
        seq_c = self.l1_codes[tr["i"].to_numpy()]
        self.last_l1 = np.full(inter.n_users, -1)  # (n_users,) code of the latest item's L1
        self.last_l1[seq_u] = seq_c  # later rows overwrite: the latest train item's L1
        same_user = seq_u[1:] == seq_u[:-1]
        counts = np.ones((len(l1_names), len(l1_names)))  # add-one smoothing
        prev, nxt = seq_c[:-1][same_user], seq_c[1:][same_user]
        ok = (prev >= 0) & (nxt >= 0)
        np.add.at(counts, (prev[ok], nxt[ok]), 1.0)
        self.transition = counts / counts.sum(axis=1, keepdims=True)  # (n_l1, n_l1)
        return self

    def score(self, users: np.ndarray) -> np.ndarray:
        last = self.last_l1[users]
        t = np.zeros((len(users), len(self.l1_codes)))
        ok_items = self.l1_codes >= 0
        for k, c in enumerate(last):
            if c >= 0:
                t[k, ok_items] = self.transition[c, self.l1_codes[ok_items]]
        return t
