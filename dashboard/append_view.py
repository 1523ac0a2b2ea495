"""The Data page's "Add reviews" section: append a file to the shown dataset, then bring
its current version up to date in the background (``mgi_core.data.append``,
``mgi_core.profiles.incremental``), and offer the update to versions still behind.

The outcome of the last append is kept in ``st.session_state['append_result']`` so it
stays on the page after the uploader is reset.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from dashboard import upload
from dashboard.resources import show_error
from dashboard.text import plain
from mgi_core.data.append import append_file
from mgi_core.errors import MgiError
from mgi_core.jobs.manager import start_job
from mgi_core.profiles.incremental import current_version, versions_behind
from mgi_core.store import Store
from mgi_core.store.ingest_append import list_appends

APPENDS = {"seq": "#", "file_name": "File", "n_reviews": "Reviews", "n_rejected": "Rejected",
           "n_users": "Users", "n_new_users": "New users", "n_moved": "Moved to train",
           "appended_at": st.column_config.DatetimeColumn("Added", format="YYYY-MM-DD HH:mm")}


def _start_update(store: Store, dataset: str, version: str) -> str:
    """Start the update job; the line to show."""
    try:
        start_job(store, "update", dataset, version=version)
    except MgiError as exc:
        return f"{version} was not updated: {exc}"
    return (f"{version} is embedding the new reviews in the background; its profiles and "
            "item vectors update when the job ends (progress on the Train page).")


def show_append(store: Store, dataset: str) -> None:
    """The section for ``dataset``: the uploader, the last result, appends, versions behind."""
    st.subheader("Add reviews to this dataset")
    st.caption("A file of newer reviews (same columns as an upload). Pairs the dataset "
               "already has are rejected; users with new reviews are split again "
               "(latest to test, the one before to validation; nothing that was training "
               "data is held out). Only the new reviews are embedded, with the current "
               "version, and only the profiles they touch are rebuilt: no retraining.")
    key = f"append_file_{dataset}_{st.session_state.get('append_nonce', 0)}"
    file = st.file_uploader("More reviews", type=[s[1:] for s in upload.SUFFIXES], key=key)
    if file is not None and st.button(f"Append to {dataset}", key="append_go",
                                      type="primary", icon=":material/add:"):
        path = upload.save_upload(file)
        try:
            result = append_file(store, path, dataset, file_name=file.name)
        except MgiError as exc:
            show_error(exc)
            return
        finally:
            upload.discard(path)
        version = current_version(store, dataset)
        lines = [result.summary(), *result.report.notices, *result.notices]
        if version is not None:
            lines.append(_start_update(store, dataset, version))
        st.session_state["append_result"] = {"dataset": dataset, "lines": lines}
        st.session_state["append_nonce"] = st.session_state.get("append_nonce", 0) + 1
        st.rerun()
    shown: dict[str, Any] | None = st.session_state.get("append_result")
    if shown and shown["dataset"] == dataset:
        st.success(plain(shown["lines"][0]), icon=":material/check_circle:")
        for line in shown["lines"][1:]:
            st.info(plain(line), icon=":material/info:")
    appends = list_appends(store, dataset)
    if appends:
        st.dataframe(pd.DataFrame(appends), hide_index=True, column_order=list(APPENDS),
                     column_config=APPENDS)
    for version, n in versions_behind(store, dataset).items():
        left, right = st.columns([3, 1], vertical_alignment="center")
        left.caption(plain(f"Version {version} has not embedded {n:,} review(s) of this "
                           "dataset yet: its profiles and rankings leave them out."))
        if right.button(f"Update {version}", key=f"append_update_{version}"):
            st.session_state["append_result"] = {
                "dataset": dataset, "lines": [f"Update of {version} requested.",
                                              _start_update(store, dataset, version)]}
            st.rerun()
