"""Resources shared by every session: the store (one root DuckDB connection per file)."""

from __future__ import annotations

import streamlit as st

from dashboard.text import plain
from mgi_core.errors import MgiError
from mgi_core.store import Store, resolve_db_path


@st.cache_resource(show_spinner=False)
def _open_store(path: str) -> Store:
    return Store(path)


def get_store() -> Store:
    """The store for ``$MGI_DB`` (or data/mgi.duckdb); each script run uses its own cursor.

    Shows the error and stops the page when the file cannot be opened (e.g. busy).
    """
    try:
        return _open_store(str(resolve_db_path()))
    except MgiError as exc:
        st.error(plain(exc))
        st.stop()
        raise  # unreachable: st.stop() raises


def show_error(exc: MgiError) -> None:
    """How every page reports an MgiError: its message as plain text, no traceback.

    Messages quote user data (file and column names, values): never rendered as markdown.
    """
    st.error(plain(exc), icon=":material/error:")
