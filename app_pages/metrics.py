"""Metrics page: training curves and validation metrics per version, stored evaluations,
next interest per granularity, hyper-parameter searches."""

from __future__ import annotations

import streamlit as st

from dashboard import metrics_view as view
from dashboard.evaluation_sections import show_next_interest
from dashboard.resources import get_store
from dashboard.search_section import show_search
from dashboard.training import HEADLINE, show_curves, version_events
from mgi_core.data.datasets import list_datasets
from mgi_core.store.queries import evaluations as queries
from mgi_core.store.versions import list_versions

state, store = st.session_state, get_store()

st.title("Metrics")
st.caption("How each model version trained, and how every evaluated system ranks on a dataset.")
stored = list_datasets(store)
if not stored:
    st.info("No datasets yet: add a review file on the Data page first.", icon=":material/inbox:")
    st.page_link("app_pages/data.py", label="Go to the Data page", icon=":material/database:")
    st.stop()
names = [d["name"] for d in stored]
if state.get("metrics_dataset") not in names:
    state["metrics_dataset"] = names[0]  # newest first
dataset = st.selectbox("Dataset", names, key="metrics_dataset", width=420)
versions = list_versions(store, dataset=dataset)
if not versions:
    st.info(f"No model versions for {dataset} yet: fine-tune one, or embed the dataset with the "
            "pre-trained encoder (base), on the Train page.", icon=":material/inbox:")
    st.page_link("app_pages/train.py", label="Go to the Train page",
                 icon=":material/model_training:")
    show_search(store, dataset)  # a search needs no version
    st.stop()

st.header("Training")
tuned = view.tuned_versions(versions)
if not tuned:
    st.caption(f"No finished fine-tuned version on {dataset} yet: fine-tune one on the Train "
               "page to see its training curves and validation metrics here.")
else:
    st.caption("Validation metrics of each fine-tuned version at its best epoch, then each "
               "version's loss per task and validation curves.")
    table = view.validation_table(versions)
    number = st.column_config.NumberColumn
    left, right = st.columns([3, 2])
    left.dataframe(table, hide_index=True, key="metrics_validation_table", column_config={
        "created_at": st.column_config.DatetimeColumn("created", format="YYYY-MM-DD HH:mm"),
        **{label: number(label, help=text, format="%.3f") for label, text in HEADLINE.values()}})
    right.plotly_chart(view.validation_figure(table), key="metrics_validation_bars")
    shown = tuned[: view.MAX_CURVE_VERSIONS]
    if len(tuned) > len(shown):
        st.caption(f"Curves of the {len(shown)} newest versions; the Train page shows any one.")
    for tab, info in zip(st.tabs([v["version"] for v in shown]), shown, strict=True):
        with tab:
            show_curves(version_events(store, info), key=f"metrics_curves_{info['version']}")

st.header("Evaluation")
evaluations = queries.evaluation_table(store, dataset)
if evaluations.empty:
    st.info(f"No stored evaluations on {dataset} yet. Evaluate a version with a scorer on the "
            "Compare page (its Evaluate button), or run `python -m mgi_core evaluate "
            f"--dataset {dataset} --version VERSION`.", icon=":material/inbox:")
    st.page_link("app_pages/compare.py", label="Go to the Compare page",
                 icon=":material/compare_arrows:")
else:
    st.caption("Every stored evaluation of a version with a scorer on the test split: how "
               "well the held-out item ranked (NDCG@10, Recall@10, MRR, HitRate@10: means over "
               "users), the share of the catalogue the top-10 lists cover, and their mean "
               "diversity.")
    shown_table = view.evaluation_display(evaluations)
    st.dataframe(shown_table, hide_index=True, key="metrics_evaluations", column_config={
        "users": st.column_config.NumberColumn(format="localized", width="small"),
        "evaluated": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm"),
        **{c: st.column_config.NumberColumn(format="%.3f") for c in shown_table.columns[2:-1]}})
    st.plotly_chart(view.evaluation_figure(evaluations), key="metrics_evaluation_bars")
    st.subheader("Per category")
    st.caption("Mean NDCG@10 of the users whose held-out item is in each L1 category (the "
               "categories with the most users).")
    st.plotly_chart(view.heatmap_figure(queries.category_metric(store, dataset)),
                    key="metrics_heatmap")

st.header("Next interest")
embedded = view.next_interest_versions(versions)
if state.get("metrics_ni_version") not in embedded:
    state["metrics_ni_version"] = embedded[0] if embedded else None
if not embedded:
    st.caption(f"No version has embedded {dataset} yet: next interest reads a version's "
               "profiles, built from its embeddings.")
else:
    version = st.selectbox("Version", embedded, key="metrics_ni_version", width=420,
                           help="Whose profiles rank the categories and interests.")
    show_next_interest(store, dataset, version, key="metrics_next_interest")

show_search(store, dataset)
