"""Data page: the stored datasets, adding one from an uploaded file, and a dataset overview."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import charts, upload
from dashboard.append_view import show_append
from dashboard.drift_view import show_category_shares
from dashboard.export import to_csv_bytes
from dashboard.paging import page_offset
from dashboard.resources import get_store, show_error
from mgi_core.data.columns import REQUIRED_COLUMNS
from mgi_core.data.ingest import registered_report
from mgi_core.errors import MgiError
from mgi_core.store.queries import datasets

COUNTS = {"n_reviews": "Reviews", "n_users": "Users", "n_items": "Items", "n_l1": "L1",
          "n_l2": "L2", "n_l3": "L3", "n_rejected": "Rejected"}
TABLE = {"name": "Dataset", "file_name": "File",
         **{k: st.column_config.NumberColumn(v, format="localized") for k, v in COUNTS.items()},
         "created_at": st.column_config.DatetimeColumn("Added", format="YYYY-MM-DD HH:mm")}
METRICS = {"n_reviews": "Reviews", "n_users": "Users", "n_items": "Items",
           "n_rejected": "Rejected rows", "n_l1": "L1 categories", "n_l2": "L2 categories",
           "n_l3": "L3 categories"}
REVIEWS_PAGE = 50
state, store = st.session_state, get_store()

st.title("Data")
st.caption("Review files become datasets: validated rows kept in the local database.")
st.header("Stored datasets")
st.caption("Every dataset in the database, newest first. L1–L3: distinct categories per level.")
stored = datasets.list_datasets(store)
if stored:
    st.dataframe(pd.DataFrame(stored), hide_index=True, column_order=list(TABLE),
                 column_config=TABLE)
else:
    st.info("No datasets yet. Upload a review file below, or run `python -m mgi_core ingest "
            "FILE --name NAME` (`python -m mgi_core load-demo` loads the demo data).",
            icon=":material/inbox:")

st.header("Add a dataset")
st.caption(f"CSV, TSV or TXT (any common encoding and delimiter) or Parquet, one review per row. "
           f"Required columns: {', '.join(REQUIRED_COLUMNS)}; optional: timestamp, category "
           "(a path such as `Audio > Headphones`), item_title.")
file = st.file_uploader("Review file", type=[s[1:] for s in upload.SUFFIXES],
                        key=upload.uploader_key(),
                        help=f"Up to {st.get_option('server.maxUploadSize'):,} MB here; ingest "
                        "larger files from disk with `python -m mgi_core ingest FILE --name NAME`.")
try:
    staged = upload.stage(file)
except MgiError as exc:
    show_error(exc)
    staged = None
if staged is not None:
    upload.show_staged(file, staged, store)
elif (result := state.get("data_result")) is not None and result["error"] is None:
    upload.show_result(result)  # the file was ingested and the uploader emptied

st.header("Dataset overview")
if not stored:
    st.caption("Add a dataset to see its users, items, ratings and categories here.")
    st.stop()
st.caption("Who reviews how much, how they rate, which categories and when, for one dataset.")
names = [d["name"] for d in stored]
if state.get("data_selected") not in names:
    state["data_selected"] = names[0]  # newest first
name = st.selectbox("Dataset", names, key="data_selected", width=420)
info = stored[names.index(name)]
cells = [*st.columns(4), *st.columns(4)]  # two rows: a million fits in a quarter of the width
for cell, (field, label) in zip(cells, METRICS.items(), strict=False):
    cell.metric(label, f"{int(info[field]):,}", border=True)
left, right = st.columns(2)
left.plotly_chart(charts.reviews_per_user_figure(datasets.reviews_per_user(store, name)))
right.plotly_chart(charts.rating_figure(datasets.rating_distribution(store, name)))
left, right = st.columns(2)
left.plotly_chart(charts.category_sunburst_figure(datasets.category_counts(store, name)))
right.plotly_chart(charts.reviews_over_time_figure(datasets.reviews_over_time(store, name)))
show_category_shares(store, name)

st.subheader("Sample reviews")
st.caption(f"The reviews in file order, {REVIEWS_PAGE} a page, read from the database a page "
           "at a time; review text is shown as plain text.")
offset = page_offset(f"data_reviews_page_{name}", int(info["n_reviews"]), REVIEWS_PAGE, "reviews")
st.dataframe(datasets.sample_reviews(store, name, limit=REVIEWS_PAGE, offset=offset),
             hide_index=True,
             column_config={"text": st.column_config.TextColumn("text", width="large")})
if info["n_rejected"]:
    st.subheader("Rejected rows")
    st.caption("Rows of the file that were not stored, by line, a page at a time (the "
               "download has them all).")
    total = datasets.count_rejected_rows(store, name)
    offset = page_offset(f"data_rejects_page_{name}", total, upload.SHOWN, "rows")
    upload.show_rejects(registered_report(store, name).rejected_by_reason,
                        datasets.rejected_rows(store, name, limit=upload.SHOWN, offset=offset),
                        lambda: to_csv_bytes(datasets.rejected_rows(store, name)), name, "stored")
show_append(store, name)
