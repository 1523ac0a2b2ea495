"""The Profiles page's Streamlit sections: the user finder, a profile, recommendations, exports.

The pieces live beside this module: ``profile_cache`` (the cached core calls),
``ranking_tasks`` (the slow ones, in the background), ``profile_choices`` (picker helpers),
``profile_tables`` (frames), ``profile_figures`` (plotly figures) and ``embedding_map`` (the
PCA item map). Only this module, ``profile_cache`` and ``pending`` import Streamlit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
import streamlit as st

from dashboard import pending
from dashboard import ranking_tasks as tasks
from dashboard.export import to_csv_bytes, to_parquet_bytes
from dashboard.paging import page_offset
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
from mgi_core.store.queries.profiles import USER_LIMIT, count_user_reviews, user_reviews

KINDS = {"All": None, "Warm": False, "Cold": True}  # the user-kind filter -> find_users(cold=)
TEXT = {"text": st.column_config.TextColumn("text", width="large")}
USERS_PAGE = USER_LIMIT  # users the picker lists at a time
REVIEWS_PAGE = 50  # a user's reviews shown at a time


def keep_choice(key: str, options: Sequence[Any]) -> None:
    """Point the widget ``key`` at the first option when its value is no longer offered."""
    if st.session_state.get(key) not in options and len(options):
        st.session_state[key] = options[0]


def pick_user(store: Store, db: str, dataset: str, stamp: str) -> str | None:
    """The user finder: L1, activity, cold/warm and id filters over a paged user picker.

    The picker lists ``USERS_PAGE`` matching users at a time, most active first; a page
    control moves through the rest (each page one query). Returns the picked user id, or
    None (after saying so) when no user matches.
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
    filters = (None if l1 == "All" else l1, int(least), KINDS[kind], search.strip())
    page = int(st.session_state.get("prof_user_page", 1))
    users = find_users(store, db, dataset, stamp, *filters, USERS_PAGE, (page - 1) * USERS_PAGE)
    if users.empty and page > 1:  # the filters changed: back to the first page
        st.session_state["prof_user_page"] = 1
        users = find_users(store, db, dataset, stamp, *filters, USERS_PAGE)
    if users.empty:
        st.info("No user matches these filters: loosen them.", icon=":material/filter_alt_off:")
        return None
    matching = int(users["n_matching"].iloc[0])
    page_offset("prof_user_page", matching, USERS_PAGE, "users")  # the page read above
    labels = {row["user_id"]: user_label(row) for row in users.to_dict("records")}
    keep_choice("prof_user", list(labels))  # else the most active match on this page
    user = st.selectbox("User", list(labels), format_func=labels.get, key="prof_user")
    st.caption(f"{matching:,} users match, most active first.")
    return user


def show_user_reviews(store: Store, dataset: str, user: str) -> None:
    """The user's reviews, newest first, a page at a time (every split)."""
    if st.session_state.get("prof_reviews_of") != user:  # another user: first page
        st.session_state.pop("prof_reviews_page", None)
        st.session_state["prof_reviews_of"] = user
    total = count_user_reviews(store, dataset, user)
    offset = page_offset("prof_reviews_page", total, REVIEWS_PAGE, "reviews")
    st.dataframe(user_reviews(store, dataset, user, limit=REVIEWS_PAGE, offset=offset),
                 hide_index=True, column_config=TEXT)


def ranked(store: Store, key: tasks.Key, scorer: str, user: str, k: int) -> dict[str, Any] | None:
    """The user's recommendations once the ranking is fitted; until then (or on an error)
    the section's status, and None."""
    fitted = tasks.recommender(store, key, scorer)
    if not pending.ready(fitted, "The recommendations"):
        return None
    ranking = tasks.recommendation(store, key, scorer, user, k)
    if not pending.ready(ranking, "The recommendations", wait_s=pending.QUICK_S):
        return None
    return ranking.result()


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


def export_buttons(stem: str, frames: Mapping[str, pd.DataFrame | None]) -> None:
    """A CSV and a Parquet download per frame (cells escaped against formula injection);
    a frame still being prepared (None) is named in a caption instead."""
    waiting = [what for what, frame in frames.items() if frame is None]
    if waiting:
        st.caption(f"The {' and '.join(waiting)} downloads appear here once ready.")
    with st.container(horizontal=True):
        for what, frame in frames.items():
            if frame is None:
                continue
            name = file_stem(stem, what)
            st.download_button(f"{what.capitalize()} (CSV)", to_csv_bytes(frame),
                               f"{name}.csv", "text/csv", key=f"prof_{what}_csv")
            st.download_button(f"{what.capitalize()} (Parquet)", to_parquet_bytes(frame),
                               f"{name}.parquet", "application/vnd.apache.parquet",
                               key=f"prof_{what}_parquet")
