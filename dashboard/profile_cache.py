"""The Profiles page's cached loaders: the quick core calls it makes, behind Streamlit's caches.

Each loader wraps one ``mgi_core`` call in ``st.cache_data`` keyed by (database path,
dataset, version, data stamp), so a page rerun with the same choices costs a few queries.
The leading ``_store`` argument is not hashed; ``db`` stands for it. The slow ones (stored
profiles, the ranking, the catalogue map) run in the background: ``ranking_tasks``.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from mgi_core.profiles.service import user_profile
from mgi_core.store import Store
from mgi_core.store.queries import profiles as queries


@st.cache_data(show_spinner=False, max_entries=16)
def categories(_store: Store, db: str, dataset: str, stamp: str) -> tuple[list[str], dict]:
    """(L1 categories with train reviews, L2 -> L1) of a dataset."""
    return queries.l1_categories(_store, dataset), queries.category_parents(_store, dataset)


@st.cache_data(show_spinner=False, max_entries=64)
def find_users(_store: Store, db: str, dataset: str, stamp: str, l1: str | None,
               min_train_reviews: int, cold: bool | None, id_contains: str,
               limit: int, offset: int = 0) -> pd.DataFrame:
    """``queries.find_users`` cached per filter combination and page."""
    return queries.find_users(_store, dataset, l1=l1, min_train_reviews=min_train_reviews,
                              cold=cold, id_contains=id_contains or None, limit=limit,
                              offset=offset)


@st.cache_data(show_spinner=False, max_entries=256)
def profile(_store: Store, db: str, dataset: str, version: str, stamp: str,
            user_id: str) -> dict[str, Any]:
    """``user_profile`` cached per user."""
    return user_profile(_store, dataset, version, user_id)


@st.cache_data(show_spinner=False, max_entries=256)
def user_vectors(_store: Store, db: str, dataset: str, version: str, stamp: str,
                 user_id: str) -> queries.UserVectors:
    """``queries.user_vectors`` (train review and profile vectors) cached per user."""
    return queries.user_vectors(_store, dataset, version, user_id)


def key(store: Store, dataset: str, version: str) -> tuple[Store, str, str, str, str]:
    """The leading arguments of the per-version loaders: (store, db, dataset, version, stamp)."""
    return store, str(store.path), dataset, version, queries.data_stamp(store, dataset, version)
