"""Downloads from the dashboard: CSV and Parquet bytes that are safe to open in a spreadsheet.

Review files are user data. A cell such as ``=HYPERLINK(...)`` or ``@SUM(...)`` in a
rejected row would run as a formula when the downloaded CSV is opened in Excel or
LibreOffice (CSV injection, OWASP). Such cells get a leading single quote, which the
spreadsheet shows as text. Parquet downloads get the same escaping: spreadsheets and BI
tools open Parquet too, and a user should not have to know which format is safe.
"""

from __future__ import annotations

import io
from typing import Any

import pandas as pd

# Characters a spreadsheet may read as the start of a formula (OWASP "CSV Injection").
FORMULA_PREFIXES: tuple[str, ...] = ("=", "+", "-", "@", "\t", "\r")


def _escape_cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def escape_csv_injection(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``df`` whose text cells (and column names) cannot start a formula.

    Text cells beginning with ``= + - @``, a tab or a carriage return get a leading ``'``;
    numbers, dates and missing values are left as they are.
    """
    out = df.copy()
    for column in out.columns:
        series = out[column]
        if pd.api.types.is_string_dtype(series) or series.dtype == object:
            out[column] = series.map(_escape_cell, na_action="ignore")
    out.columns = [_escape_cell(c) for c in out.columns]
    return out


def to_csv_bytes(df: pd.DataFrame) -> bytes:
    """``df`` as UTF-8 CSV bytes for ``st.download_button``, escaped against CSV injection."""
    return escape_csv_injection(df).to_csv(index=False).encode("utf-8")


def to_parquet_bytes(df: pd.DataFrame) -> bytes:
    """``df`` as Parquet bytes for ``st.download_button``, escaped like :func:`to_csv_bytes`."""
    buf = io.BytesIO()
    escape_csv_injection(df).to_parquet(buf, index=False)
    return buf.getvalue()
