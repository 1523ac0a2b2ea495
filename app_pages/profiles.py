"""Profiles page: one user's interests at every granularity and how they moved, recommendations
with reasons."""

from __future__ import annotations

import streamlit as st

from dashboard import pending
from dashboard import profile_cache as cache
from dashboard import profiles as prof
from dashboard import ranking_tasks as tasks
from dashboard.drift_view import show_drift
from dashboard.embedding_map import embedding_map_figure
from dashboard.forget_view import show_forget, show_last_forget
from dashboard.profile_choices import NONE, file_stem, version_options
from dashboard.profile_tables import profile_export_frame, recommendations_export_frame
from dashboard.resources import get_store, show_error
from mgi_core.data.datasets import list_datasets
from mgi_core.errors import MgiError
from mgi_core.ranking.fusion import SCORERS
from mgi_core.store.versions import list_versions

store = get_store()

st.title("Profiles")
st.caption("What a user is interested in, at every granularity, and what to recommend next.")
names = [d["name"] for d in list_datasets(store)]  # newest first
if not names:
    st.info("No datasets yet: add a review file on the Data page first.", icon=":material/inbox:")
    st.page_link("app_pages/data.py", label="Go to the Data page", icon=":material/database:")
    st.stop()
prof.keep_choice("prof_dataset", names)
left, mid, right = st.columns(3)
dataset = left.selectbox("Dataset", names, key="prof_dataset")
versions = version_options(list_versions(store, dataset=dataset, usable_only=True))
if not versions:
    st.info(f"No model version has embedded {dataset!r} yet: train one (or embed it with the "
            "pre-trained `base` encoder) on the Train page.", icon=":material/model_training:")
    st.page_link("app_pages/train.py", label="Go to the Train page",
                 icon=":material/model_training:")
    st.stop()
prof.keep_choice("prof_version", versions)
version = mid.selectbox("Model version", versions, key="prof_version")
others = [NONE, *(v for v in versions if v != version)]
prof.keep_choice("prof_compare", others)
other = right.selectbox("Compare with", others, key="prof_compare",
                        help="Another version: how this user's L1 affinities change.")
try:
    key = cache.key(store, dataset, version)
    task_key = key[1:]
    stored = tasks.profiles(store, task_key)
    tasks.context(store, task_key)  # the slowest part starts first, in the background
    st.header("Find a user")
    show_last_forget(dataset)  # the user forgotten last is no longer in the list
    user = prof.pick_user(store, key[1], dataset, key[4])
    if user is None:
        st.stop()

    st.header("Interest profile")
    profile = None
    if pending.ready(stored, "The interest profiles", wait_s=pending.QUICK_S):
        profile, compared = cache.profile(*key, user), None
        if other != NONE:
            other_key = cache.key(store, dataset, other)
            if pending.ready(tasks.profiles(store, other_key[1:]),
                             f"The {other} profiles", wait_s=pending.QUICK_S):
                compared = cache.profile(*other_key, user)
        prof.show_profile(profile, cache.categories(store, key[1], dataset, key[4])[1],
                          compared)
    st.subheader("Reviews")
    st.caption("The user's reviews, newest first, every split (profiles use train only).")
    prof.show_user_reviews(store, dataset, user)
    show_drift(key, user)

    st.header("Recommendations")
    a, b = st.columns(2)
    scorer = a.selectbox("Scorer", list(SCORERS), index=list(SCORERS).index("mgi_hybrid"),
                         key="prof_scorer")
    k = b.number_input("Items", 1, 100, 10, key="prof_k")
    rec = prof.ranked(store, task_key, scorer, user, int(k))
    if rec is not None:
        prof.show_recommendations(rec)

    st.header("Embedding map")
    st.caption("Item vectors on their two main axes (PCA), with this user's train reviews, "
               "interest centres and the recommended items on top.")
    item_map = tasks.item_map(store, task_key)
    if pending.ready(item_map, "The embedding map"):
        fitted = tasks.recommender(store, task_key, scorer).peek()  # its titles, once fitted
        st.plotly_chart(embedding_map_figure(
            item_map.result(), cache.user_vectors(*key, user),
            [i["item_id"] for i in rec["items"]] if rec else [],
            fitted.titles if fitted else None))
except MgiError as exc:
    show_error(exc)
    st.stop()

st.header("Export")
frames = {"profile": profile_export_frame(profile) if profile else None,
          "recommendations": recommendations_export_frame(rec) if rec else None}
prof.export_buttons(file_stem(dataset, version, user), frames)

st.header("Privacy")
try:
    show_forget(store, dataset, user)
except MgiError as exc:
    show_error(exc)
