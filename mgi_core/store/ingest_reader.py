"""Reading a review file with DuckDB: ``read_csv`` / ``read_parquet`` calls, repeatable so
that every pass of an ingest sees the same rows, and DuckDB's refusals as messages."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from mgi_core.errors import DataValidationError

# read_csv's max_line_size for files with a record longer than DuckDB's default (2 MB). Not
# the default: DuckDB sizes its read buffers from it (16 MB lines -> 256 MiB buffers).
LONG_LINE_SIZE = 16 * 1024 * 1024
_MAX_HINT = 3_000  # characters of a DuckDB error shown to the user
# read_csv's delimiter literals, from our own allow-list (never from user text).
_DELIMITERS = {",": "','", ";": "';'", "\t": "'\\t'", "|": "'|'"}


@dataclass
class FileScan:
    """One way of reading the file, repeatable: the second pass must see the same rows.

    Args:
        path: the file DuckDB reads (possibly a temporary UTF-8 copy).
        format: ``csv`` or ``parquet``.
        delimiter: a CSV's delimiter (one of ``, ; tab |``).
        columns: a CSV's column names, from its header line (read as VARCHAR).
        name: the file's name for messages (the path may be a temporary copy).
        max_line_size: CSV only; None = DuckDB's default.
    """

    path: Path
    format: str
    delimiter: str | None = None
    columns: list[str] = field(default_factory=list)
    name: str = ""
    max_line_size: int | None = None
    rejects: list[str] = field(default_factory=list)  # reject tables DuckDB made, to drop

    @property
    def is_csv(self) -> bool:
        return self.format == "csv"

    def csv_options(self) -> str:
        """read_csv options; the path and the ``columns`` struct travel as parameters."""
        delim = _DELIMITERS[self.delimiter or ","]
        args = (
            f"delim=E{delim}, header=true, quote='\"', escape='\"', auto_detect=false, "
            "strict_mode=true, columns=?"
        )
        return args + (f", max_line_size={int(self.max_line_size)}" if self.max_line_size else "")

    def csv_params(self) -> list[Any]:
        """The parameters of :meth:`csv_options`' read_csv: the path and the columns."""
        return [str(self.path), dict.fromkeys(self.columns, "VARCHAR")]

    def reader(self, rejects: str) -> tuple[str, list[Any]]:
        """``read_csv(...)`` / ``read_parquet(...)`` and its parameters.

        CSV records with the wrong number of fields (or too long) go to temp table
        ``rejects`` (its scan table ``{rejects}_s``) instead of failing the read.
        """
        if not self.is_csv:
            return "read_parquet(?, file_row_number = true)", [str(self.path)]
        self.rejects += [rejects, f"{rejects}_s"]
        return (
            f"read_csv(?, {self.csv_options()}, store_rejects=true, "
            f"rejects_table='{rejects}', rejects_scan='{rejects}_s')",
            self.csv_params(),
        )


def duckdb_refusal(exc: BaseException, name: str, readable: Path) -> str:
    """DuckDB's whole message (its hint and the options it used), with the temporary copy's
    path replaced by the file's name, cut at 3,000 characters."""
    text = str(exc).replace(str(readable), name).strip()
    return text if len(text) <= _MAX_HINT else text[:_MAX_HINT] + " …"


@contextmanager
def scratch_connection() -> Iterator[duckdb.DuckDBPyConnection]:
    """An in-memory DuckDB, for looking at a file outside the store; closed afterwards."""
    con = duckdb.connect()
    try:
        yield con
    finally:
        con.close()


def parquet_columns(con: duckdb.DuckDBPyConnection, path: Path, name: str) -> list[str]:
    """The column names of a Parquet file.

    Raises:
        DataValidationError: DuckDB cannot read the file as Parquet.
    """
    try:
        rows = con.execute("DESCRIBE SELECT * FROM read_parquet(?)", [str(path)]).fetchall()
    except duckdb.Error as exc:
        raise DataValidationError(
            f"Cannot read {name} as Parquet: {duckdb_refusal(exc, name, path)}"
        ) from exc
    return [row[0] for row in rows]


def preview_rows(con: duckdb.DuckDBPyConnection, scan: FileScan, n_rows: int) -> pd.DataFrame:
    """The first ``n_rows`` rows of the file, every value as text.

    Raises:
        DataValidationError: DuckDB cannot read the file (its refusal is in the message).
    """
    if scan.is_csv:
        sql = f"SELECT * FROM read_csv(?, {scan.csv_options()}, store_rejects=true) LIMIT ?"
        params = scan.csv_params()
    else:
        sql = "SELECT * FROM read_parquet(?) LIMIT ?"
        params = [str(scan.path)]
    try:
        return con.execute(sql, [*params, n_rows]).df().astype("string")
    except duckdb.Error as exc:
        raise DataValidationError(
            f"Cannot read {scan.name} as {scan.format.upper()}: "
            f"{duckdb_refusal(exc, scan.name, scan.path)}"
        ) from exc
