"""The Data page's upload flow: stage a file, the mapping form, ingest, and show the outcome.

Widget state lives in ``st.session_state`` under ``data_*`` keys. The pure helpers
(``saved``, ``dataset_name``, ``mapping_from_choices``, ``delimiter_name``) need no Streamlit.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from dashboard import charts
from dashboard.export import to_csv_bytes
from dashboard.resources import show_error
from mgi_core.config import IngestConfig
from mgi_core.data.columns import CANONICAL_COLUMNS, REQUIRED_COLUMNS
from mgi_core.data.ingest import ingest_file, inspect_file
from mgi_core.errors import MgiError
from mgi_core.store import Store

NONE = "— none —"  # the mapping choice that leaves an optional column out
SUFFIXES = (".csv", ".tsv", ".txt", ".parquet")
SHOWN = 1_000  # rejected rows shown in a table; downloads hold them all
DEFAULTS = IngestConfig()
DELIMITERS = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}


@contextmanager
def saved(upload: Any) -> Iterator[str]:
    """The upload as a temporary file for the core (which reads paths); removed afterwards."""
    suffix = Path(upload.name).suffix.lower()
    with tempfile.TemporaryDirectory(prefix="mgi_upload_") as folder:
        path = Path(folder) / ("upload" + (suffix if suffix in SUFFIXES else ""))
        path.write_bytes(upload.getbuffer())
        yield str(path)


def dataset_name(file_name: str) -> str:
    """A valid dataset name from an uploaded file's name (its stem, odd characters as ``_``)."""
    stem = re.sub(r"[^\w .\-]+", "_", Path(file_name).stem)
    return stem.strip(" ._-")[:64].strip(" ._-") or "reviews"


def mapping_from_choices(chosen: Mapping[str, str | None]) -> dict[str, str | None]:
    """The mapping for ``ingest_file`` from the form's choices.

    A column left unchosen (``None``) is not passed, so the core's guess applies; the
    ``NONE`` choice passes ``None``, which leaves that optional column out.
    """
    return {col: None if src == NONE else src for col, src in chosen.items() if src is not None}


def delimiter_name(delimiter: str | None) -> str:
    """The delimiter in words (``—`` for none, e.g. Parquet)."""
    return DELIMITERS.get(delimiter or "", "—")


def stage(upload: Any) -> dict[str, Any] | None:
    """The upload inspected once per file, with the mapping form prefilled from the guess."""
    state = st.session_state
    staged = state.get("data_staged")
    if upload is None:
        state.pop("data_staged", None)
        return None
    if staged is None or staged["file_id"] != upload.file_id:
        with saved(upload) as path:
            inspection = inspect_file(path)
        staged = state["data_staged"] = {"file_id": upload.file_id, "inspection": inspection}
        for col in CANONICAL_COLUMNS:
            fallback = None if col in REQUIRED_COLUMNS else NONE
            state[f"data_map_{col}"] = inspection.guessed_mapping.get(col, fallback)
        state["data_name"] = dataset_name(upload.name)
    return staged


def ingest(store: Store, upload: Any) -> None:
    """Form callback: ingest the uploaded file with the chosen mapping and options."""
    state = st.session_state
    mapping = mapping_from_choices({c: state.get(f"data_map_{c}") for c in CANONICAL_COLUMNS})
    result: dict[str, Any] = {"file_id": upload.file_id, "error": None}
    try:
        config = IngestConfig(category_separator=state["data_sep"], strict=state["data_strict"],
                              rating_min=state["data_rmin"], rating_max=state["data_rmax"])
        with saved(upload) as path:
            report = ingest_file(store, path, state["data_name"].strip(), mapping, config,
                                 file_name=upload.name)
    except MgiError as exc:
        result.update(error=exc, report=getattr(exc, "report", None))
    else:
        result.update(report=report)
        state["data_selected"] = report.dataset
    state["data_result"] = result


def show_staged(upload: Any, staged: dict[str, Any], store: Store) -> None:
    """What was detected in the staged file, its first rows, and the mapping/options form."""
    inspection = staged["inspection"]
    kind, columns = inspection.kind, inspection.columns
    st.caption(f"Detected **{kind.format.upper()}** · encoding **{kind.encoding or '—'}** · "
               f"delimiter **{delimiter_name(kind.delimiter)}** · {len(columns)} columns. "
               "The first rows:")
    st.dataframe(inspection.preview, hide_index=True)
    with st.form("data_form"):
        st.subheader("Column mapping")
        st.caption("The file column that holds each MGI column; guessed from the headers.")
        cells = st.columns(4)
        for i, col in enumerate(CANONICAL_COLUMNS):
            required = col in REQUIRED_COLUMNS
            cells[i % 4].selectbox(col + (" (required)" if required else ""),
                                   columns if required else [NONE, *columns], index=None,
                                   key=f"data_map_{col}", placeholder="choose a column")
        st.text_input("Dataset name", key="data_name", max_chars=64,
                      help="Letters, digits, spaces, '.', '_' or '-'.")
        with st.expander("Options"):
            sep, low, high, strict = st.columns(4)
            sep.text_input("Category separator", DEFAULTS.category_separator, key="data_sep",
                           help=IngestConfig.help("category_separator"))
            low.number_input("Lowest rating", value=DEFAULTS.rating_min, step=0.5,
                             key="data_rmin", help=IngestConfig.help("rating_min"))
            high.number_input("Highest rating", value=DEFAULTS.rating_max, step=0.5,
                              key="data_rmax", help=IngestConfig.help("rating_max"))
            strict.checkbox("Strict (all or nothing)", DEFAULTS.strict, key="data_strict",
                            help=IngestConfig.help("strict"))
        st.form_submit_button("Ingest", type="primary", key="data_ingest", on_click=ingest,
                              args=(store, upload), icon=":material/upload:")
    result = st.session_state.get("data_result")
    if result is not None and result["file_id"] == staged["file_id"]:
        show_result(result)


def show_rejects(by_reason: dict[str, int], rows: pd.DataFrame,
                 csv: bytes | Callable[[], bytes], dataset: str, key: str) -> None:
    """Rejected rows: counts per reason, the first rows by line, and a CSV download of all."""
    reasons = pd.DataFrame(list(by_reason.items()), columns=["reason", "n_rows"])
    left, right = st.columns([2, 3])
    left.plotly_chart(charts.rejects_by_reason_figure(reasons), key=f"data_{key}_reasons")
    right.dataframe(rows.drop(columns="row_number", errors="ignore").head(SHOWN), hide_index=True)
    st.download_button("Download rejected rows (CSV)", csv, f"{dataset}_rejected.csv", "text/csv",
                       key=f"data_{key}_download", icon=":material/download:", on_click="ignore")


def show_result(result: dict[str, Any]) -> None:
    """The outcome of the last ingest: message, counts, notices, rejected rows."""
    report = result["report"]
    if result["error"] is not None:
        show_error(result["error"])
    else:
        (st.info if report.unchanged else st.success)(report.summary())
    if report is None:
        return
    accepted = "Accepted" if report.committed else "Valid (nothing stored)"
    counts = {"Rows read": report.n_read, accepted: report.n_accepted,
              "Rejected": report.n_rejected}
    if report.committed:
        counts |= {"Users": report.n_users, "Items": report.n_items}
    for cell, (label, value) in zip(st.columns(5), counts.items(), strict=False):
        cell.metric(label, f"{value:,}")
    for notice in report.notices:
        st.info(notice, icon=":material/info:")
    if report.rejected_rows:
        rows = pd.DataFrame(report.rejected_rows)
        show_rejects(report.rejected_by_reason, rows, to_csv_bytes(rows), report.dataset, "upload")
