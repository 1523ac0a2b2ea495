"""The Profiles page's Streamlit sections: the user finder, a profile, recommendations, exports.

The pieces live beside this module: ``profile_cache`` (the cached core calls),
``profile_choices`` (picker helpers), ``profile_tables`` (frames), ``profile_figures``
(plotly figures) and ``embedding_map`` (the PCA item map). Only this module and
``profile_cache`` import Streamlit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
import streamlit as st

from dashboard.export import to_csv_bytes, to_parquet_bytes
from dashboard.profile_cache import categories, find_users
from dashboard.profile_choices import file_stem, user_label
from dashboard.profile_figures import (
    affinity_comparison_figure,
    affinity_sunburst_figure,
    recommendation_parts_figure,
    top_categories_figure,
)
from dashboard.profile_tables import (
    affinity_comparison_frame,
    category_frame,
    interests_frame,
    matching_reviews_frame,
    recommendations_frame,
    representative_reviews_frame,
)
from mgi_core.store import Store

KINDS = {"All": None, "Warm": False, "Cold": True}  # the user-kind filter -> find_users(cold=)
TEXT = {"text": st.column_config.TextColumn("text", width="large")}


def keep_choice(key: str, options: Sequence[Any]) -> None:
    """Point the widget ``key`` at the first option when its value is no longer offered."""
    if st.session_state.get(key) not in options and len(options):
        st.session_state[key] = options[0]


def pick_user(store: Store, db: str, dataset: str, stamp: str) -> str | None:
    """The user finder: L1, activity, cold/warm and id filters over a user picker.

    Returns the picked user id, or None (after saying so) when no user matches.
    """
    l1s, _ = categories(store, db, dataset, stamp)
    keep_choice("prof_l1", ["All", *l1s])
    a, b, c, d = st.columns(4)
    l1 = a.selectbox("L1 category", ["All", *l1s], key="prof_l1",
                     help="Users with train reviews in this category.")
    least = b.number_input("Min train reviews", 1, 100_000, 1, key="prof_min_reviews")
    kind = c.radio("Users", list(KINDS), key="prof_kind", horizontal=True,
                   help="Cold users have a single train review.")
    search = d.text_input("User id contains", key="prof_search")
    users = find_users(store, db, dataset, stamp, None if l1 == "All" else l1, int(least),
                       KINDS[kind], search.strip())
    if users.empty:
        st.info("No user matches these filters: loosen them.", icon=":material/filter_alt_off:")
        return None
    labels = {row["user_id"]: user_label(row) for row in users.to_dict("records")}
    keep_choice("prof_user", list(labels))  # else the most active match
    user = st.selectbox("User", list(labels), format_func=labels.get, key="prof_user")
    st.caption(f"{int(users['n_matching'].iloc[0]):,} users match; the list holds the "
               f"{len(users):,} most active.")
    return user


def show_profile(profile: Mapping[str, Any], parents: Mapping[str, str],
                 compared: Mapping[str, Any] | None = None) -> None:
    """Cold note, headline numbers, category charts, the version comparison, interests."""
    if profile["cold"]:
        st.warning("Cold user: one training review, so the profile is that single review. "
                   "Recommendations fall back to popularity within their categories plus "
                   "similarity to that review.", icon=":material/ac_unit:")
    a, b, c = st.columns(3)
    a.metric("Train reviews", profile["n_train_reviews"], border=True)
    b.metric("Mean sentiment", f"{profile['mean_sentiment']:+.2f}", border=True,
             help="Mean rating on a −1 (worst) to +1 (best) scale.")
    c.metric("Fine interests", len(profile["interests"]), border=True)
    cats = category_frame(profile, parents)
    a, b = st.columns(2)
    a.plotly_chart(affinity_sunburst_figure(cats))
    b.plotly_chart(top_categories_figure(cats))
    if compared is not None:
        st.subheader(f"{profile['version']} compared with {compared['version']}")
        delta = affinity_comparison_frame(profile, compared)
        a, b = st.columns(2)
        a.dataframe(delta, hide_index=True)
        b.plotly_chart(affinity_comparison_figure(delta))
    st.subheader("Fine interests")
    st.caption("Clusters of the user's review embeddings, with c-TF-IDF keywords and the "
               "reviews closest to each centre.")
    st.dataframe(interests_frame(profile), hide_index=True)
    st.dataframe(representative_reviews_frame(profile), hide_index=True, column_config=TEXT)


def show_recommendations(rec: Mapping[str, Any]) -> None:
    """Cold-start note, score parts per item, the ranked table and the matching reviews."""
    if rec["note"]:
        st.info(rec["note"], icon=":material/ac_unit:")
    st.plotly_chart(recommendation_parts_figure(rec))
    st.dataframe(recommendations_frame(rec), hide_index=True)
    st.caption("The user's past train reviews that match each recommended item best.")
    st.dataframe(matching_reviews_frame(rec), hide_index=True, column_config=TEXT)


def export_buttons(stem: str, frames: Mapping[str, pd.DataFrame]) -> None:
    """A CSV and a Parquet download per frame (cells escaped against formula injection)."""
    with st.container(horizontal=True):
        for what, frame in frames.items():
            name = file_stem(stem, what)
            st.download_button(f"{what.capitalize()} (CSV)", to_csv_bytes(frame),
                               f"{name}.csv", "text/csv", key=f"prof_{what}_csv")
            st.download_button(f"{what.capitalize()} (Parquet)", to_parquet_bytes(frame),
                               f"{name}.parquet", "application/vnd.apache.parquet",
                               key=f"prof_{what}_parquet")
