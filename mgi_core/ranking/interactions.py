"""Index a dataset for ranking: users × items, train interactions, held-out targets."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
import scipy.sparse as sp

from mgi_core.data.datasets import get_dataset
from mgi_core.store import Store
from mgi_core.store.profiles import interaction_reviews, item_levels


@dataclass
class Interactions:
    """A dataset as matrices. Only ``train`` feeds scorers; ``targets`` are held out."""

    dataset: str
    users: np.ndarray  # (n_users,) user ids
    items: np.ndarray  # (n_items,) item ids
    train: sp.csr_matrix  # (n_users, n_items) 1 where the user reviewed the item in train
    train_reviews: pd.DataFrame  # review_id, u, i, rating, ts (train split only; no text)
    targets: dict[str, pd.DataFrame]  # split -> (u, i, review_id) for val and test
    item_l1: np.ndarray  # (n_items,) L1 of each item or None
    item_l2: np.ndarray

    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_items(self) -> int:
        return len(self.items)

    def user_index(self) -> dict[str, int]:
        """user id -> row (built once: a dashboard asks per recommendation)."""
        return self._user_index

    def item_index(self) -> dict[str, int]:
        """item id -> column (built once)."""
        return self._item_index

    @cached_property
    def _user_index(self) -> dict[str, int]:
        return {u: k for k, u in enumerate(self.users)}

    @cached_property
    def _item_index(self) -> dict[str, int]:
        return {i: k for k, i in enumerate(self.items)}


def load_interactions(store: Store, dataset: str) -> Interactions:
    get_dataset(store, dataset)
    items = item_levels(store, dataset)
    reviews = interaction_reviews(store, dataset)
    users = np.array(sorted(reviews["user_id"].unique()), dtype=object)
    u_index = {u: k for k, u in enumerate(users)}
    i_index = {i: k for k, i in enumerate(items["item_id"])}
    reviews["u"] = reviews["user_id"].map(u_index).astype(np.int64)
    reviews["i"] = reviews["item_id"].map(i_index).astype(np.int64)
    train = reviews[reviews["split"] == "train"].reset_index(drop=True)
    matrix = sp.csr_matrix(
        (np.ones(len(train), dtype=np.float32), (train["u"], train["i"])),
        shape=(len(users), len(items)),
    )
    targets = {
        split: reviews.loc[
            reviews["split"] == split, ["u", "i", "review_id", "rating"]
        ].reset_index(drop=True)
        for split in ("val", "test")
    }
    return Interactions(
        dataset=dataset,
        users=users,
        items=items["item_id"].to_numpy(dtype=object),
        train=matrix,
        train_reviews=train,
        targets=targets,
        item_l1=items["l1"].to_numpy(dtype=object),
        item_l2=items["l2"].to_numpy(dtype=object),
    )
