"""An ingest's first, narrow pass and its verdicts: rows into a temp table with a reject
reason or none, timestamps resolved per column, line numbers, duplicates, the rejects.

Every function runs inside the ingest's transaction (:class:`IngestRun`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import duckdb

from mgi_core.config import IngestConfig
from mgi_core.errors import DataValidationError
from mgi_core.store.ingest_reader import LONG_LINE_SIZE, duckdb_refusal
from mgi_core.store.ingest_run import IngestRun
from mgi_core.store.ingest_sql import (
    DUPLICATE,
    LINE_TOO_LONG,
    TS_RANGE,
    checked_text_sql,
    mapped_column,
    record_reason_sql,
    rejects_select_sql,
    validated_rows_sql,
)

# Numeric timestamps: one unit per file, from the magnitude of the column's median value
# (seconds since 1970 have 9-10 digits today, milliseconds 12-13, microseconds 15-16,
# nanoseconds 18-19). Factor: to microseconds.
_TS_UNITS = (("seconds", 1e11, 1e6), ("milliseconds", 1e14, 1e3),
             ("microseconds", 1e17, 1.0), ("nanoseconds", float("inf"), 1e-3))
_ORDER_ONLY = 1e8  # all values below: sequence numbers (1973-03 in seconds), order only
YYYYMMDD = "YYYYMMDD"  # resolve_timestamps: numbers read as dates written so
ORDER_ONLY = "order"  # resolve_timestamps: small numbers that only order the reviews


def load_narrow_pass(run: IngestRun, mapping: Mapping[str, str],
                     cfg: IngestConfig, salt: str | None = None) -> tuple[int, int]:
    """First, narrow pass: the validated rows into temp table ``t.raw``, in file order.

    Malformed CSV records (wrong number of fields) land in temp table ``t.rej`` with their
    line. A record longer than DuckDB's default line size makes the pass run again with
    room for lines up to 16 MB. At most ``cfg.max_rows + 1`` rows are read. Each valid
    row's ``pii`` says what a redaction of its text replaces (``ingest_write.write_reviews``
    redacts by it). With a ``salt`` (``IngestConfig.hash_user_ids``), user ids are stored
    as ``sha256(salt || user_id)``; the salt travels as a parameter, never into a table.

    Returns:
        (rows read into ``t.raw``, malformed records).

    Raises:
        DataValidationError: DuckDB cannot read the file (its refusal is in the message).
        ValueError: a ``salt`` without ``cfg.hash_user_ids``, or that setting without one.
    """
    if cfg.hash_user_ids != (salt is not None):
        raise ValueError("load_narrow_pass: pass a salt exactly when cfg.hash_user_ids is on")
    n_malformed = _load_raw(run, mapping, cfg, salt)
    n_raw, base = run.tx.execute(f"SELECT count(*), min(rowid) FROM {run.tables.raw}").fetchone()
    run.base = int(base or 0)
    return int(n_raw), n_malformed


def _load_raw(run: IngestRun, mapping: Mapping[str, str], cfg: IngestConfig,
              salt: str | None) -> int:
    tx, scan, t = run.tx, run.scan, run.tables
    limit = cfg.max_rows + 1
    while True:
        reader, params = scan.reader(f"{t.rej}_e")
        sql, more = validated_rows_sql(reader, mapping, cfg, not scan.is_csv, salt)
        try:
            tx.execute(f"CREATE TEMP TABLE {t.raw} AS {sql}", [*params, *more, limit])
        except duckdb.OutOfMemoryException:
            raise
        except duckdb.Error as exc:
            raise DataValidationError(
                f"Cannot read {scan.name} as {scan.format.upper()}. Check that it is a "
                "CSV with a header line (or a Parquet file). The reader said: "
                f"{duckdb_refusal(exc, scan.name, scan.path)}"
            ) from exc
        if not scan.is_csv:
            tx.execute(f"CREATE TEMP TABLE {t.rej} (line BIGINT, error VARCHAR, reason VARCHAR, "
                       "csv_line VARCHAR)")
            return 0
        too_long = tx.execute(
            f"SELECT count(*) FROM {t.rej}_e WHERE error_type = ?", [LINE_TOO_LONG]
        ).fetchone()[0]
        if not too_long or scan.max_line_size:
            break
        for table in (t.raw, f"{t.rej}_e", f"{t.rej}_e_s"):
            tx.execute(f"DROP TABLE IF EXISTS {table}")
        scan.max_line_size = LONG_LINE_SIZE
        run.settings.uncap()  # read buffers of 16 x 16 MB would not fit
    # One row per malformed record (several errors on one record count once).
    tx.execute(
        f"""CREATE TEMP TABLE {t.rej} AS
            SELECT line, first(error_message ORDER BY column_idx) AS error,
                   {record_reason_sql()} AS reason,
                   first(csv_line) AS csv_line
            FROM {t.rej}_e GROUP BY line"""
    )
    return int(tx.execute(f"SELECT count(*) FROM {t.rej}").fetchone()[0])


def resolve_timestamps(run: IngestRun, cfg: IngestConfig) -> str | None:
    """Give numeric timestamps one unit for the whole column, and reject implausible dates.

    The unit comes from the column's median magnitude, never from each value alone: in a
    file of unix seconds, 253402300799 is the year 9999 (rejected), not 1978 in
    milliseconds. All-integer ``YYYYMMDD`` columns are read as dates; a column of small
    numbers only (all below 1e8) as sequence numbers that order each user's reviews. Any
    date outside ``cfg.min_year``..``cfg.max_year`` rejects its row with the reason.

    Returns:
        How the numeric timestamps were read: ``'seconds'``, ``'milliseconds'``,
        ``'microseconds'`` or ``'nanoseconds'`` since 1970, :data:`YYYYMMDD`,
        :data:`ORDER_ONLY`; None when there are none.
    """
    tx, t = run.tx, run.tables
    n, median, largest, ymd = tx.execute(
        f"""SELECT count(*), median(abs(ts_num)), max(abs(ts_num)),
                   bool_and(ts_num = trunc(ts_num) AND ts_num BETWEEN 10000101 AND 99991231
                            AND try_strptime(CAST(TRY_CAST(ts_num AS BIGINT) AS VARCHAR),
                                             '%Y%m%d') IS NOT NULL)
            FROM {t.raw} WHERE ts_num IS NOT NULL AND reason IS NULL"""
    ).fetchone()
    lo = f"make_timestamp({cfg.min_year}, 1, 1, 0, 0, 0)"
    hi = f"make_timestamp({cfg.max_year + 1}, 1, 1, 0, 0, 0)"
    reading = None
    if n:
        if ymd:
            reading = YYYYMMDD
            value = ("try_strptime(CAST(TRY_CAST(ts_num AS BIGINT) AS VARCHAR), '%Y%m%d')"
                     "::TIMESTAMP")
        elif largest < _ORDER_ONLY:
            reading = ORDER_ONLY
            value = "make_timestamp(CAST(ts_num * 1e6 AS BIGINT))"
        else:
            reading, factor = next((u, f) for u, top, f in _TS_UNITS if median < top)
            micros = f"(ts_num * {factor!r})"
            # out of TIMESTAMP's range: NULL here, rejected below as out of range
            value = (f"CASE WHEN abs({micros}) < 9e18 "
                     f"THEN make_timestamp(CAST({micros} AS BIGINT)) END")
        tx.execute(f"UPDATE {t.raw} SET ts = {value} WHERE ts_num IS NOT NULL AND reason IS NULL")
        if reading == ORDER_ONLY:
            return_check = f"ts_num IS NULL AND ts IS NOT NULL AND (ts < {lo} OR ts >= {hi})"
        else:
            return_check = f"(ts IS NULL AND ts_num IS NOT NULL) OR ts < {lo} OR ts >= {hi}"
    else:
        return_check = f"ts IS NOT NULL AND (ts < {lo} OR ts >= {hi})"
    tx.execute(
        f"""UPDATE {t.raw} SET reason = '{TS_RANGE}', ts_raw = coalesce(
                CASE WHEN ts_num = trunc(ts_num) AND abs(ts_num) < 1e18
                     THEN CAST(TRY_CAST(ts_num AS BIGINT) AS VARCHAR) END,
                CAST(ts_num AS VARCHAR), strftime(ts, '%Y-%m-%d %H:%M:%S'))
            WHERE reason IS NULL AND ({return_check})"""
    )
    return reading


def number_rows(run: IngestRun, n_malformed: int) -> None:
    """Set ``run.rows``: a subquery over ``t.raw`` adding ``rid`` (the row's key) and its
    ``row_number``.

    CSV: ``t.raw``'s rowid is file order (consecutive, offset by a transaction-local base
    inside a transaction, hence rowid - base). A record's line (header = line 1, one line
    per record) is rowid - base + 2 plus the malformed records before it: the j-th
    malformed line q_j (1-based j) comes after q_j - 1 - j good rows, so an ASOF join on
    that threshold finds how many malformed records precede each good row. Parquet: the
    row number is the file's own.
    """
    t, base = run.tables, run.base
    if not run.scan.is_csv:
        run.rows = f"(SELECT row_number AS rid, * FROM {t.raw})"
        return
    if not n_malformed:
        run.rows = f"(SELECT rowid AS rid, rowid - {base} + 1 AS row_number, * FROM {t.raw})"
        return
    run.tx.execute(
        f"""CREATE TEMP TABLE {t.num} AS
            WITH m AS (SELECT line - 1 - row_number() OVER (ORDER BY line) AS t,
                              row_number() OVER (ORDER BY line) AS j FROM {t.rej}),
                 thresholds AS (SELECT t, max(j) AS k FROM m GROUP BY t),
                 r AS (SELECT rowid AS rid, rowid - {base} AS i FROM {t.raw})
            SELECT r.rid, r.i + 1 + coalesce(thresholds.k, 0) AS row_number
            FROM r ASOF LEFT JOIN thresholds ON r.i >= thresholds.t"""
    )
    run.rows = (
        f"(SELECT n.rid, n.row_number, raw.* FROM {t.raw} AS raw "
        f"JOIN {t.num} AS n ON n.rid = raw.rowid)"
    )


def mark_duplicates(run: IngestRun, mapping: Mapping[str, str]) -> None:
    """Reject repeats of a (user_id, item_id) pair among valid rows; the first one stays.

    Their text (and raw rating) for the reject report come from one more read of the file,
    only when there are duplicates: ``t.dtext`` (rid, first_row, text, rating_raw).
    """
    tx, scan, t = run.tx, run.scan, run.tables
    tx.execute(
        f"""CREATE TEMP TABLE {t.dups} AS
            WITH v AS (SELECT rid, row_number, user_id, item_id FROM {run.rows}
                       WHERE reason IS NULL),
                 g AS (SELECT user_id, item_id, min(row_number) AS first_row FROM v
                       GROUP BY user_id, item_id HAVING count(*) > 1)
            SELECT v.rid, g.first_row FROM v JOIN g USING (user_id, item_id)
            WHERE v.row_number > g.first_row"""
    )
    if not tx.execute(f"SELECT count(*) FROM {t.dups}").fetchone()[0]:
        tx.execute(
            f"""CREATE TEMP TABLE {t.dtext}
                (rid BIGINT, first_row BIGINT, text VARCHAR, rating_raw VARCHAR)"""
        )
        return
    key = "rowid" if scan.is_csv else "row_number"
    tx.execute(
        f"UPDATE {t.raw} SET reason = '{DUPLICATE}' WHERE {key} IN (SELECT rid FROM {t.dups})"
    )
    text, rating = mapped_column(mapping, "text"), mapped_column(mapping, "rating")
    reader, params = scan.reader(f"{t.rej}_d")
    if scan.is_csv:  # aligned by position with t.raw (see ingest_write.write_reviews)
        source = f"""(SELECT {text} AS text, {rating} AS rating_raw FROM {reader}) AS f
            POSITIONAL JOIN (SELECT rowid AS rid, text_len FROM {t.raw}) AS v
            JOIN {t.dups} AS d ON d.rid = v.rid"""
        checked = checked_text_sql("f.text", "strlen(f.text) = v.text_len")
    else:
        source = f"""(SELECT file_row_number + 1 AS rid, {text} AS text,
                             {rating} AS rating_raw FROM {reader}) AS f
            JOIN {t.dups} AS d ON d.rid = f.rid"""
        checked = "f.text"
    tx.execute(
        f"""CREATE TEMP TABLE {t.dtext} AS
            SELECT d.rid, d.first_row, {checked} AS text, f.rating_raw FROM {source}""",
        params,
    )


def rejects_by_reason(run: IngestRun, n_malformed: int) -> dict[str, int]:
    """How many rows each reason rejected (malformed records included), most first."""
    t = run.tables
    counts = run.tx.execute(
        f"""SELECT reason, count(*) FROM {t.raw} WHERE reason IS NOT NULL
            GROUP BY reason ORDER BY count(*) DESC, reason"""
    ).fetchall()
    by_reason = {str(r): int(n) for r, n in counts}
    if n_malformed:
        for reason, n in run.tx.execute(
            f"SELECT reason, count(*) FROM {t.rej} GROUP BY reason"
        ).fetchall():
            by_reason[str(reason)] = by_reason.get(str(reason), 0) + int(n)
    return dict(sorted(by_reason.items(), key=lambda kv: -kv[1]))


def rejected_rows(run: IngestRun, cfg: IngestConfig, line_offset: int,
                  limit: int) -> list[dict[str, Any]]:
    """The first ``limit`` rejected rows by line (``rejects_select_sql``'s columns).

    ``line_offset``: 1 when line 1 is a header (CSV), else 0.
    """
    t = run.tables
    select, params = rejects_select_sql(run.rows, t.dtext, t.rej, cfg, line_offset)
    cur = run.tx.execute(f"{select} ORDER BY line LIMIT ?", [*params, limit])
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
