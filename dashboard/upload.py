"""The Data page's upload flow: stage a file, the mapping form, ingest, and show the outcome.

An upload is copied to disk once, in chunks, when it is staged (``save_upload``); the
inspection and the ingest read that copy. After a successful ingest the uploader is reset
(a new widget key), so Streamlit drops the file's bytes from the server's memory, and the
copy is deleted. A copy left by a killed server is removed by the next ingest
(``mgi_core.data.files.cleanup_stale_temp_files``: its folder name carries the pid).

Widget state lives in ``st.session_state`` under ``data_*`` keys. The pure helpers
(``save_upload``, ``dataset_name``, ``mapping_from_choices``, ``delimiter_name``) need no
Streamlit.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from dashboard import charts
from dashboard.export import to_csv_bytes
from dashboard.resources import show_error
from dashboard.text import plain
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


COPY_CHUNK = 1024 * 1024


def save_upload(upload: Any, folder: str | Path | None = None) -> Path:
    """The upload copied to a new temporary folder, 1 MiB at a time (no second copy of the
    file in memory). The folder's name carries this process's id; remove it with
    :func:`discard`."""
    suffix = Path(upload.name).suffix.lower()
    target = Path(tempfile.mkdtemp(prefix=f"mgi_upload_{os.getpid()}_", dir=folder))
    path = target / ("upload" + (suffix if suffix in SUFFIXES else ""))
    upload.seek(0)
    with open(path, "wb") as fh:
        shutil.copyfileobj(upload, fh, COPY_CHUNK)
    return path


def discard(path: str | Path | None) -> None:
    """Remove a saved upload and its folder (nothing when already gone)."""
    if path is not None:
        shutil.rmtree(Path(path).parent, ignore_errors=True)


def uploader_key() -> str:
    """The uploader's key: a new one after each successful ingest empties the widget."""
    return f"data_upload_{st.session_state.get('data_upload_round', 0)}"


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


def _label(field: str) -> str:
    return IngestConfig.field_info(field).metadata["label"]


def delimiter_name(delimiter: str | None) -> str:
    """The delimiter in words (``—`` for none, e.g. Parquet)."""
    return DELIMITERS.get(delimiter or "", "—")


def stage(upload: Any) -> dict[str, Any] | None:
    """The upload inspected once per file, with the mapping form prefilled from the guess."""
    state = st.session_state
    staged = state.get("data_staged")
    if upload is None:
        if staged is not None:
            discard(state.pop("data_staged")["path"])
        return None
    if staged is None or staged["file_id"] != upload.file_id:
        if staged is not None:
            discard(state.pop("data_staged")["path"])
        state.pop("data_result", None)
        path = save_upload(upload)
        try:
            inspection = inspect_file(path, file_name=upload.name)
        except BaseException:
            discard(path)
            raise
        staged = state["data_staged"] = {"file_id": upload.file_id, "inspection": inspection,
                                         "path": path}
        for col in CANONICAL_COLUMNS:
            fallback = None if col in REQUIRED_COLUMNS else NONE
            state[f"data_map_{col}"] = inspection.guessed_mapping.get(col, fallback)
        state["data_name"] = dataset_name(upload.name)
    return staged


def ingest(store: Store, upload: Any) -> None:
    """Form callback: ingest the staged file with the chosen mapping and options.

    On success the uploader is emptied (its bytes leave the server's memory) and the copy
    on disk removed; on an error both stay, so the mapping can be changed and tried again.
    """
    state = st.session_state
    mapping = mapping_from_choices({c: state.get(f"data_map_{c}") for c in CANONICAL_COLUMNS})
    staged = state["data_staged"]
    result: dict[str, Any] = {"file_id": upload.file_id, "error": None}
    try:
        config = IngestConfig(category_separator=state["data_sep"], strict=state["data_strict"],
                              rating_min=state["data_rmin"], rating_max=state["data_rmax"],
                              redact_pii=state["data_redact"],
                              hash_user_ids=state["data_hash_ids"])
        report = ingest_file(store, staged["path"], state["data_name"].strip(), mapping, config,
                             file_name=upload.name)
    except MgiError as exc:
        result.update(error=exc, report=getattr(exc, "report", None))
    else:
        result.update(report=report)
        state["data_selected"] = report.dataset
        discard(state.pop("data_staged")["path"])
        state["data_upload_round"] = state.get("data_upload_round", 0) + 1
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
            redact, hashed = st.columns(2)
            redact.checkbox(_label("redact_pii"), DEFAULTS.redact_pii, key="data_redact",
                            help=IngestConfig.help("redact_pii"))
            hashed.checkbox(_label("hash_user_ids"), DEFAULTS.hash_user_ids, key="data_hash_ids",
                            help=IngestConfig.help("hash_user_ids"))
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
        (st.info if report.unchanged else st.success)(plain(report.summary()))
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
        st.info(plain(notice), icon=":material/info:")
    if report.rejected_rows:
        rows = pd.DataFrame(report.rejected_rows)
        show_rejects(report.rejected_by_reason, rows, to_csv_bytes(rows), report.dataset, "upload")
