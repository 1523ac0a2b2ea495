"""The Metrics page's hyper-parameter search section: a study's trials, its best config and
the parameters' importance, a button that trains a version with the best config, and a small
form that starts a search in the background.

Tables and figures come from ``dashboard.search_view`` (pure); the rows from
``mgi_core.store.search``; jobs start through ``mgi_core.jobs.manager``.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from dashboard import search_view as view
from dashboard.resources import show_error
from dashboard.text import plain
from mgi_core.config import TrainConfig
from mgi_core.errors import MgiError
from mgi_core.jobs import search as searching
from mgi_core.jobs.manager import active_job, refresh_jobs, start_job
from mgi_core.store import Store
from mgi_core.store import search as rows

SEARCH_REVIEWS = 1000  # the page's default budget per trial (training reviews)
CAPTION = (
    "Trials of a study: each fine-tunes a fresh encoder with the base config and the trial's "
    "values, on the train reviews, and is worth its validation objective (Σ λ·loss over the "
    "tasks at the best epoch; lower is better). The test split is never read. Importance: "
    "how much of the objective's variation each searched field explains (PED-ANOVA).")


def show_search(store: Store, dataset: str) -> None:
    """The section: the chosen study of ``dataset``, or how to start one."""
    state = st.session_state
    st.header("Hyper-parameter search")
    refresh_jobs(store)  # a search that ended in the background is registered now
    running = active_job(store)
    if running is not None and running["kind"] == "search" and running["dataset"] == dataset:
        progress = searching.search_progress(running["run_dir"])
        st.info(f"Search **{plain(running['version'])}** is running: "
                f"{progress['trials_done']} of {progress['trials_target']} trials complete. "
                "Its trials appear here when it ends.",
                icon=":material/hourglass_top:")
    studies = rows.list_studies(store, dataset)
    if not studies:
        st.caption(f"No hyper-parameter search on {plain(dataset)} yet. Run one with "
                   f"`{view.search_command(dataset)}` (every option of `train` sets the "
                   "base config; `--space` the searched fields), or start one here with the "
                   "default training settings on a budget of training reviews per trial.")
        if running is None:
            _start_form(store, dataset)
        _show_outcome()
        return
    names = [s["study"] for s in studies]
    if state.get("metrics_search_study") not in names:
        state["metrics_search_study"] = names[0]
    labels = {s["study"]: view.study_label(s) for s in studies}
    study_name = st.selectbox("Study", names, key="metrics_search_study", width=420,
                              format_func=labels.get)
    study = next(s for s in studies if s["study"] == study_name)
    trials = rows.study_trials(store, study_name)
    st.caption(CAPTION)
    st.dataframe(view.trials_frame(trials, study["space"]), hide_index=True,
                 key="metrics_search_trials", column_config={
                     "value": st.column_config.NumberColumn(format="%.4f"),
                     "seconds": st.column_config.NumberColumn(format="%.1f")})
    best = rows.best_trial(store, study_name)
    left, right = st.columns(2)
    with left:
        if best is None:
            st.info("No trial of this study completed: run it again to continue it.",
                    icon=":material/info:")
        else:
            st.markdown(f"**Best configuration** · trial {best['trial']} · objective "
                        f"{best['value']:.4f}")
            st.dataframe(view.best_config_frame(study["base_config"], best["params"]),
                         hide_index=True, key="metrics_search_best")
            st.button("Train a version with the best configuration",
                      key="metrics_search_train", icon=":material/model_training:",
                      on_click=_train_best, args=(store, dataset, study, best),
                      disabled=running is not None,
                      help="Starts a normal training job with the base config and the best "
                           "trial's values; it becomes a new version.")
    importance = searching.param_importances(trials, study["space"], study["base_config"])
    right.plotly_chart(view.importance_figure(importance.values, importance.note),
                       key="metrics_search_importance")
    st.plotly_chart(view.trials_figure(trials), key="metrics_search_values")
    _show_outcome()


def _train_best(store: Store, dataset: str, study: dict[str, Any],
                best: dict[str, Any]) -> None:
    state = st.session_state
    try:
        config = searching.trial_config(study["base_config"], best["params"])
        version = start_job(store, "train", dataset, config)
    except MgiError as exc:
        state["metrics_search_outcome"] = exc
    else:
        state["metrics_search_outcome"] = (
            f"Started training version **{plain(version)}** with the best configuration of "
            f"study {plain(study['study'])} (trial {best['trial']}). Follow it on the Train "
            "page.")


def _start_search(store: Store, dataset: str) -> None:
    state = st.session_state
    try:
        request = searching.SearchRequest(searching.default_study_name(dataset),
                                          int(state["metrics_search_trials_n"]))
        budget = int(state["metrics_search_reviews"]) or None  # 0: every training review
        study = start_job(store, "search", dataset, TrainConfig(max_train_reviews=budget),
                          search=request.to_dict())
    except MgiError as exc:
        state["metrics_search_outcome"] = exc
    else:
        state["metrics_search_outcome"] = (
            f"Started search **{plain(study)}** on {plain(dataset)} in the background; its "
            "trials appear here when it ends.")


def _start_form(store: Store, dataset: str) -> None:
    left, middle, right = st.columns([1, 1, 2], vertical_alignment="bottom")
    left.number_input("Trials", min_value=1, max_value=searching.MAX_TRIALS,
                      value=searching.DEFAULT_TRIALS, key="metrics_search_trials_n")
    middle.number_input("Training reviews per trial", min_value=0, value=SEARCH_REVIEWS,
                        step=500, key="metrics_search_reviews",
                        help="Each trial fine-tunes on at most this many training reviews "
                             "(0 = all): a small budget keeps a search to minutes per trial "
                             "on a CPU.")
    right.button("Start a search", key="metrics_search_start", icon=":material/tune:",
                 on_click=_start_search, args=(store, dataset),
                 help="Runs the trials in a background job on this machine.")


def _show_outcome() -> None:
    outcome = st.session_state.pop("metrics_search_outcome", None)
    if isinstance(outcome, MgiError):
        show_error(outcome)
    elif outcome:
        st.success(outcome, icon=":material/check_circle:")
        st.page_link("app_pages/train.py", label="Go to the Train page",
                     icon=":material/model_training:")
