"""The one place that writes values or names into SQL text (everything else is a ``?``).

DuckDB takes values as parameters almost everywhere; a few places cannot: identifiers (column
names from a file's header, temp table names), ``SET`` values, and paths inside
``read_parquet('…')`` / ``COPY … TO '…'`` in statements DuckDB does not parameterise.
"""

from __future__ import annotations

from typing import Any


def quote_identifier(name: str) -> str:
    """``name`` as a quoted SQL identifier (``"`` doubled): safe for any text."""
    return '"' + str(name).replace('"', '""') + '"'


def quote_literal(value: Any) -> str:
    """``value`` as a SQL literal: booleans and integers as themselves, the rest as a
    single-quoted string (``'`` doubled)."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"
