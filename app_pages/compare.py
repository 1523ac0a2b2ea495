"""Compare page: two systems (version × scorer) on the same users, paired, with significance."""

from __future__ import annotations

import streamlit as st

from dashboard import compare as view
from dashboard import pending
from dashboard import ranking_tasks as tasks
from dashboard.evaluation_sections import show_ablation, show_next_interest_comparison
from dashboard.resources import get_store
from mgi_core.data.datasets import list_datasets
from mgi_core.evaluation.compare import parse_spec
from mgi_core.store.queries import evaluations as queries
from mgi_core.store.versions import BASE_VERSION, list_versions

state, store = st.session_state, get_store()

st.title("Compare")
st.caption("Two systems (a model version with a scorer) ranked on the same held-out items: "
           "is B better than A for the same users, and by how much?")
stored = list_datasets(store)
if not stored:
    st.info("No datasets yet: add a review file on the Data page first.", icon=":material/inbox:")
    st.page_link("app_pages/data.py", label="Go to the Data page", icon=":material/database:")
    st.stop()

names = [d["name"] for d in stored]
if state.get("compare_dataset") not in names:
    state["compare_dataset"] = names[0]  # newest first
dataset = st.selectbox("Dataset", names, key="compare_dataset", width=420)
usable = [v["version"] for v in list_versions(store, dataset=dataset, usable_only=True)]
versions = [BASE_VERSION, *(v for v in usable if v != BASE_VERSION)]
default_a, default_b = view.default_systems(versions)
left, right = st.columns(2)
with left:
    a = view.pick_system("A", versions, default_a)
with right:
    b = view.pick_system("B", versions, default_b)
if (note := view.systems_note(a, b, (default_a, default_b))) is not None:
    st.caption(note)
if a == b:
    st.info("A and B are the same system: pick another version or scorer for one of them.",
            icon=":material/info:")
    st.stop()
if not view.ready(store, dataset, (a, b)):
    st.stop()

stamps = (queries.evaluation_stamp(store, dataset, a), queries.evaluation_stamp(store, dataset, b))
comparison = tasks.comparison(store, dataset, a, b, stamps)
st.header("Metrics")
if pending.ready(comparison, "The comparison"):
    view.show_report(comparison.result())

version_a, version_b = parse_spec(a)[0], parse_spec(b)[0]
st.header("Next interest")
show_next_interest_comparison(store, dataset, version_a, version_b)

st.header("Ablation")
st.caption(f"What each feature group adds to {version_b}'s full system: the full system "
           "against itself without that group.")
show_ablation(store, dataset, version_b)

st.header("Per-user NDCG@10")
counts = queries.win_loss(store, dataset, a, b)
st.caption("Each point is the users with that pair of values (bigger: more users); above the "
           "diagonal B ranks their held-out item better.")
left, right = st.columns([3, 1])
left.plotly_chart(view.user_scatter_figure(queries.user_metric_points(store, dataset, a, b)),
                  key="compare_scatter")
for label, key in (("B better for", "better"), ("B worse for", "worse"), ("Same for", "same")):
    right.metric(label, view.users_text(counts[key]), border=True)

st.header("Users whose recommendations changed most")
st.caption(f"The {view.CHANGED_USERS} users whose NDCG@10 moved most between A and B, and one "
           "user's top-10 under each system, ranked as the evaluation ranked them.")
view.show_changed_users(store, dataset, a, b, stamps)
