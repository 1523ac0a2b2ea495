"""The Profiles page's "Forget this user" section: a button, a confirmation, the report.

The confirmation asks for the user id typed again (a two-step confirm that works the same in
every browser and under AppTest); the forget itself is ``mgi_core.jobs.forget.forget``. Its
report stays in the session (``show_last_forget``), since the forgotten user is no longer
there to be picked on the next run of the page.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import pandas as pd
import streamlit as st

from dashboard import background
from dashboard.resources import show_error
from dashboard.text import plain
from mgi_core.errors import MgiError
from mgi_core.jobs.forget import ForgetReport, find_user, forget
from mgi_core.store import Store

ASKING = "forget_asking"  # session key: the (dataset, user) whose confirmation is open
TYPED = "forget_typed"  # the confirmation's text input
LAST = "forget_last"  # the last forget's report (a dict) and its dataset


def show_forget(store: Store, dataset: str, user_id: str) -> ForgetReport | None:
    """The "Forget this user" section for ``user_id`` of ``dataset``; the report when the
    user was forgotten in this run, else None."""
    state = st.session_state
    st.subheader("Forget this user")
    st.caption("Removes every row of this user from this dataset: reviews, rejected rows, "
               "review vectors of every version, profiles, per-user metrics and the copies "
               "in run folders. Item vectors are recomputed without them. Versions trained "
               "with their reviews are then listed as trained with forgotten data. This "
               "cannot be undone.")
    if state.get(ASKING) != (dataset, user_id):
        if st.button("Forget this user…", key="forget_open", icon=":material/person_remove:"):
            state[ASKING], state[TYPED] = (dataset, user_id), ""
            st.rerun()
        return None
    try:
        found = find_user(store, user_id, dataset)
    except MgiError as exc:
        show_error(exc)
        state.pop(ASKING, None)
        return None
    with st.container(border=True):
        st.warning(plain(f"Forget user {user_id} ({found.get(dataset, 0):,} review(s) in "
                         f"{dataset})? Type the user id to confirm."), icon=":material/warning:")
        typed = st.text_input("User id", key=TYPED, placeholder=user_id)
        go, cancel = st.columns(2)
        confirmed = go.button("Forget", key="forget_confirm", type="primary",
                              disabled=typed != user_id, width="stretch")
        if cancel.button("Cancel", key="forget_cancel", width="stretch"):
            state.pop(ASKING, None)
            st.rerun()
    if not confirmed:
        return None
    try:
        with st.spinner("Forgetting the user…"):
            report = forget(store, user_id, dataset)
    except MgiError as exc:
        show_error(exc)
        return None
    state.pop(ASKING, None)
    state[LAST] = (dataset, report.to_dict())
    _drop_cached(dataset)
    show_report(report.to_dict())
    return report


def show_last_forget(dataset: str) -> None:
    """The report of the last forget on ``dataset`` in this session, if any (for the page's
    next run, where the forgotten user can no longer be picked)."""
    last = st.session_state.get(LAST)
    if last is not None and last[0] == dataset:
        show_report(last[1])


def report_tables(report: dict[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(rows removed: table or file, rows; versions trained with the forgotten data)."""
    removed = [{"from": table, "rows": n} for table, n in sorted(report["deleted"].items())]
    removed += [{"from": path, "rows": n}
                for path, n in sorted(report["files_rewritten"].items())]
    versions = pd.DataFrame(report["trained_with_forgotten_data"],
                            columns=["version", "dataset", "reviews"])
    return pd.DataFrame(removed, columns=["from", "rows"]), versions


def show_report(report: dict[str, Any]) -> None:
    """What a forget removed, and the versions now trained with forgotten data."""
    removed, versions = report_tables(report)
    st.success(plain(f"Forgot {report['reviews']:,} review(s) in "
                     f"{', '.join(report['datasets'])}."), icon=":material/check_circle:")
    st.dataframe(removed, hide_index=True)
    if versions.empty:
        st.caption("No fine-tuned version was trained with this user's reviews.")
    else:
        st.caption("Now trained with forgotten data (their training snapshot held the user's "
                   "reviews): retrain them without it to be rid of what they learned.")
        st.dataframe(versions, hide_index=True)
    for notice in report["notices"]:
        st.caption(plain(notice))


def _drop_cached(dataset: str) -> None:
    """Forget what this process keeps of the dataset (cached reads, finished background
    work): it may hold the forgotten user's rows. The data stamp changed with the forget,
    so nothing would read them again; this lets the memory go now."""
    st.cache_data.clear()
    for tasks in background._REGISTRIES:
        tasks.forget(lambda key: _mentions(key, dataset))


def _mentions(key: Hashable, dataset: str) -> bool:
    if isinstance(key, tuple):
        return any(_mentions(k, dataset) for k in key)
    return key == dataset
