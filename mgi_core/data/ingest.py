"""Ingest review files (CSV or Parquet) into the store, validated row by row.

The file streams through DuckDB (``read_csv`` / ``read_parquet`` into a temporary table),
never through Python row objects. Validation is SQL over that table: every row gets a
reject reason or none. One ingest is one transaction: after any failure the database holds
exactly what it held before.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from mgi_core.config import IngestConfig, SplitConfig
from mgi_core.data.categories import category_levels_sql
from mgi_core.data.columns import CANONICAL_COLUMNS, guess_mapping, resolve_mapping
from mgi_core.data.files import (
    FileKind,
    file_sha256,
    parse_header,
    read_header_line,
    sniff_file,
    transcode_to_utf8,
)
from mgi_core.data.splits import split_sql
from mgi_core.errors import DatasetExistsError, DataValidationError
from mgi_core.store import Store

log = logging.getLogger(__name__)

MAX_REPORTED_REJECTS = 10_000
_NAME = re.compile(r"^[\w][\w .\-]{0,63}$")
_DATE_FORMATS = ["%m/%d/%Y", "%d.%m.%Y", "%m %d, %Y", "%Y/%m/%d", "%d/%m/%Y %H:%M", "%Y%m%d"]


@dataclass
class IngestReport:
    """What an ingest did: counts, reasons for rejected rows, and the detected format."""

    dataset: str
    file_name: str
    file_hash: str
    format: str
    encoding: str | None
    delimiter: str | None
    mapping: dict[str, str]
    n_read: int = 0
    n_accepted: int = 0
    n_rejected: int = 0
    n_users: int = 0
    n_items: int = 0
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    rejected_rows: list[dict[str, Any]] = field(default_factory=list)  # first 10,000
    notices: list[str] = field(default_factory=list)
    unchanged: bool = False
    committed: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        if self.unchanged:
            return f"{self.file_name} is already stored as dataset {self.dataset!r}; nothing changed."
        head = (
            f"{self.dataset}: {self.n_accepted:,} of {self.n_read:,} rows stored "
            f"({self.n_users:,} users, {self.n_items:,} items), {self.n_rejected:,} rejected"
        )
        if self.rejected_by_reason:
            head += ": " + "; ".join(f"{r} ({n:,})" for r, n in self.rejected_by_reason.items())
        return head + "."


@dataclass
class FileInspection:
    """A first look at a file for the mapping step: its kind, columns, guess and preview."""

    kind: FileKind
    columns: list[str]
    guessed_mapping: dict[str, str]
    preview: Any  # pandas.DataFrame of the first rows, all text


def _q(identifier: str) -> str:
    """Quote an identifier taken from a file's header (always checked to exist first)."""
    return '"' + identifier.replace('"', '""') + '"'


def _csv_args(kind: FileKind) -> str:
    """read_csv options; the path and the ``columns`` struct travel as the two parameters."""
    # Literals only from our own allow-list (DELIMITERS), never from user text.
    delim = {",": "','", ";": "';'", "\t": "'\\t'", "|": "'|'"}[kind.delimiter or ","]
    return (
        f"delim=E{delim}, header=true, quote='\"', escape='\"', auto_detect=false, "
        "strict_mode=true, columns=?, max_line_size=16777216"
    )


def _csv_params(path: Path, kind: FileKind) -> list[Any]:
    columns = parse_header(read_header_line(path, "utf-8-sig"), kind.delimiter or ",")
    return [str(path), dict.fromkeys(columns, "VARCHAR")]


@contextmanager
def _readable(path: Path) -> Iterator[tuple[Path, FileKind]]:
    """The file as DuckDB can read it: transcoded to UTF-8 when it is not UTF-8 already."""
    kind = sniff_file(path)
    if kind.format == "csv" and kind.encoding not in ("utf-8", "utf-8-sig"):
        tmp = transcode_to_utf8(path, kind.encoding or "utf-8")
        try:
            yield tmp, kind
        finally:
            tmp.unlink(missing_ok=True)
    else:
        yield path, kind


def _columns(con: duckdb.DuckDBPyConnection, path: Path, kind: FileKind) -> list[str]:
    try:
        if kind.format == "parquet":
            rel = con.execute("DESCRIBE SELECT * FROM read_parquet(?)", [str(path)])
        else:
            return parse_header(read_header_line(path, "utf-8-sig"), kind.delimiter or ",")
        return [row[0] for row in rel.fetchall()]
    except duckdb.Error as exc:
        raise DataValidationError(
            f"Cannot read {path.name} as {kind.format.upper()}: {str(exc).splitlines()[0]}"
        ) from exc


def inspect_file(path: str | Path, n_preview: int = 20) -> FileInspection:
    """Look at a file before ingesting: format, columns, guessed mapping, first rows."""
    path = Path(path)
    con = duckdb.connect()
    try:
        with _readable(path) as (readable, kind):
            columns = _columns(con, readable, kind)
            if kind.format == "parquet":
                sql = "SELECT * FROM read_parquet(?) LIMIT ?"
            else:
                sql = f"SELECT * FROM read_csv(?, {_csv_args(kind)}, store_rejects=true) LIMIT ?"
            params = [str(readable)] if kind.format == "parquet" else _csv_params(readable, kind)
            preview = con.execute(sql, [*params, n_preview]).df().astype("string")
    finally:
        con.close()
    return FileInspection(kind, columns, guess_mapping(columns), preview)


def _validated_rows_sql(raw: str, mapping: Mapping[str, str], cfg: IngestConfig) -> str:
    """SELECT over the raw table giving canonical columns, parsed values and a reason."""

    def col(name: str) -> str:
        return f"CAST({_q(mapping[name])} AS VARCHAR)" if name in mapping else "NULL::VARCHAR"

    ts_num = "TRY_CAST(trim(ts_raw) AS DOUBLE)"
    return f"""
    WITH base AS (
        SELECT row_number,
               nullif(trim({col('user_id')}), '') AS user_id,
               nullif(trim({col('item_id')}), '') AS item_id,
               {col('text')} AS text,
               {col('rating')} AS rating_raw,
               TRY_CAST(trim({col('rating')}) AS DOUBLE) AS rating,
               nullif(trim({col('timestamp')}), '') AS ts_raw,
               {col('category')} AS category_raw,
               nullif(trim({col('item_title')}), '') AS title
        FROM {raw}
    ), parsed AS (
        SELECT *,
            CASE WHEN ts_raw IS NULL THEN NULL
                 WHEN {ts_num} IS NOT NULL THEN
                     CASE WHEN abs({ts_num}) < 1e11
                              THEN make_timestamp(CAST({ts_num} * 1e6 AS BIGINT))
                          WHEN abs({ts_num}) < 1e14
                              THEN make_timestamp(CAST({ts_num} * 1e3 AS BIGINT))
                     END
                 ELSE coalesce(TRY_CAST(ts_raw AS TIMESTAMP),
                               try_strptime(ts_raw, {_DATE_FORMATS!r}))
            END AS ts
        FROM base
    ), judged AS (
        SELECT *,
            CASE
                WHEN user_id IS NULL THEN 'missing user_id'
                WHEN item_id IS NULL THEN 'missing item_id'
                WHEN text IS NULL OR trim(text) = '' THEN 'empty text'
                WHEN rating_raw IS NULL OR trim(rating_raw) = '' THEN 'missing rating'
                WHEN rating IS NULL OR isnan(rating) THEN 'rating is not a number'
                WHEN rating < {float(cfg.rating_min)!r} OR rating > {float(cfg.rating_max)!r}
                    THEN 'rating out of range'
                WHEN ts_raw IS NOT NULL AND ts IS NULL THEN 'unparseable timestamp'
            END AS reason
        FROM parsed
    )
    SELECT *,
        CASE WHEN reason IS NULL THEN
            row_number() OVER (PARTITION BY reason IS NULL, user_id, item_id ORDER BY row_number)
        END AS dup_rank,
        CASE WHEN reason IS NULL THEN
            min(row_number) OVER (PARTITION BY reason IS NULL, user_id, item_id)
        END AS first_row
    FROM judged
    """


def _detail_sql(cfg: IngestConfig, line_offset: int) -> str:
    lo, hi = f"{cfg.rating_min:g}", f"{cfg.rating_max:g}"
    return f"""
        CASE reason
            WHEN 'rating is not a number' THEN 'rating ' || to_json(rating_raw)::VARCHAR
            WHEN 'rating out of range' THEN 'rating ' || rating_raw || ' is outside {lo}..{hi}'
            WHEN 'unparseable timestamp' THEN 'timestamp ' || to_json(ts_raw)::VARCHAR
            WHEN 'duplicate (user_id, item_id)'
                THEN 'same user and item as line ' || (first_row + {line_offset})
            ELSE reason
        END
    """


def ingest_file(
    store: Store,
    path: str | Path,
    name: str,
    mapping: Mapping[str, str | None] | None = None,
    config: IngestConfig | None = None,
    file_name: str | None = None,
    split_config: SplitConfig | None = None,
) -> IngestReport:
    """Validate a review file and store its valid rows as dataset ``name``.

    Args:
        store: the open store (takes one write transaction).
        path: CSV (UTF-8/16, Latin-1, GBK…; ``,`` ``;`` or tab) or Parquet file.
        name: dataset name (letters, digits, space, ``. _ -``; at most 64 characters).
        mapping: ``{canonical column: file column}``, overriding the automatic guess;
            ``None`` leaves an optional column out.
        config: validation and caps; ``strict=True`` makes it all-or-nothing.
        file_name: the name to record (an uploaded file's original name).
        split_config: the temporal leave-last-out split assigned to the stored rows.

    Returns:
        The report. ``unchanged=True`` when the same file is already stored under ``name``.

    Raises:
        DataValidationError: the file as a whole is rejected; nothing was stored.
        DatasetExistsError: ``name`` holds a different file.
    """
    cfg = config or IngestConfig()
    path = Path(path)
    file_name = file_name or path.name
    if not _NAME.match(name or ""):
        raise DataValidationError(
            f"Dataset name {name!r} is not allowed: use 1-64 letters, digits, spaces, '.', "
            "'_' or '-', starting with a letter or digit."
        )
    if path.exists() and path.stat().st_size > cfg.max_bytes:
        raise DataValidationError(
            f"{file_name} is {path.stat().st_size:,} bytes, above the limit of "
            f"{cfg.max_bytes:,}. Split the file, or raise max_bytes."
        )
    if not path.exists():
        raise DataValidationError(f"File not found: {path}")
    digest = file_sha256(path)
    cur = store.cursor()
    existing = cur.execute(
        "SELECT file_hash, file_name FROM datasets WHERE name = ?", [name]
    ).fetchone()
    if existing is not None:
        if existing[0] == digest:
            report = registered_report(store, name)
            report.unchanged = True
            return report
        raise DatasetExistsError(
            f"Dataset {name!r} already holds another file ({existing[1]}). Choose a new name, "
            "or delete that dataset first."
        )

    with _readable(path) as (readable, kind):
        columns = _columns(cur, readable, kind)
        resolved = resolve_mapping(columns, mapping)
        report = IngestReport(
            dataset=name, file_name=file_name, file_hash=digest, format=kind.format,
            encoding=kind.encoding, delimiter=kind.delimiter, mapping=resolved,
        )
        with store.transaction() as tx:
            _load_and_store(tx, readable, kind, resolved, cfg, split_config, report)
        report.committed = True
    log.info("ingested %s", report.summary())
    return report


def _load_and_store(
    tx: duckdb.DuckDBPyConnection,
    path: Path,
    kind: FileKind,
    mapping: dict[str, str],
    cfg: IngestConfig,
    split_config: SplitConfig | None,
    report: IngestReport,
) -> None:
    tag = uuid.uuid4().hex[:12]
    raw, rows, rej = f"_mgi_raw_{tag}", f"_mgi_rows_{tag}", f"_mgi_rej_{tag}"
    # Temp tables made inside the transaction vanish with a rollback; on success drop them.
    n_malformed = _load_raw(tx, path, kind, cfg, raw, rej)
    n_raw = tx.execute(f"SELECT count(*) FROM {raw}").fetchone()[0]
    if n_raw + n_malformed > cfg.max_rows:
        raise DataValidationError(
            f"{report.file_name} has more than {cfg.max_rows:,} rows, the limit. Split the "
            "file, or raise max_rows."
        )
    if n_raw + n_malformed == 0:
        raise DataValidationError(
            f"{report.file_name} has a header but no data rows. Add reviews below the "
            "header line and upload it again."
        )
    line_offset = 1 if kind.format == "csv" else 0  # CSV: the header is line 1
    tx.execute(f"CREATE TEMP TABLE {rows} AS {_validated_rows_sql(raw, mapping, cfg)}")
    tx.execute(
        f"""UPDATE {rows} SET reason = 'duplicate (user_id, item_id)'
            WHERE reason IS NULL AND dup_rank > 1"""
    )
    _collect_rejects(tx, rows, rej, cfg, line_offset, n_malformed, report)
    report.n_read = n_raw + n_malformed
    report.n_accepted = report.n_read - report.n_rejected
    if cfg.strict and report.n_rejected:
        raise DataValidationError(
            f"Strict mode: {report.n_rejected:,} of {report.n_read:,} rows are invalid, so "
            f"nothing was stored ({_reasons_text(report)}). Fix those rows, or ingest "
            "without --strict to store the valid rows.",
            report,
        )
    if report.n_accepted == 0:
        raise DataValidationError(
            f"No valid rows in {report.file_name}: {_reasons_text(report)}.", report
        )
    _store_rows(tx, rows, rej, kind, mapping, cfg, split_config, report, line_offset)
    for table in (raw, rows, rej):
        tx.execute(f"DROP TABLE IF EXISTS {table}")


def _load_raw(
    tx: duckdb.DuckDBPyConnection, path: Path, kind: FileKind, cfg: IngestConfig,
    raw: str, rej: str,
) -> int:
    """Copy the file into a temp table ``raw`` with a 1-based ``row_number``.

    Malformed CSV records (wrong number of fields) land in temp table ``rej`` with their
    line. Returns how many records were malformed.
    """
    limit = cfg.max_rows + 1
    try:
        if kind.format == "parquet":
            tx.execute(
                f"""CREATE TEMP TABLE {raw} AS
                    SELECT * EXCLUDE (file_row_number), file_row_number + 1 AS row_number
                    FROM read_parquet(?, file_row_number = true) LIMIT ?""",
                [str(path), limit],
            )
            tx.execute(f"CREATE TEMP TABLE {rej} (line BIGINT, error VARCHAR, csv_line VARCHAR)")
            return 0
        tx.execute(
            f"""CREATE TEMP TABLE {raw}_r AS SELECT * FROM read_csv(?, {_csv_args(kind)},
                store_rejects=true, rejects_table='{rej}_e', rejects_scan='{rej}_s') LIMIT ?""",
            [*_csv_params(path, kind), limit],
        )
    except duckdb.Error as exc:
        raise DataValidationError(
            f"Cannot read {path.name} as {kind.format.upper()}: {str(exc).splitlines()[0]}. "
            "Check that it is a CSV with a header line (or a Parquet file)."
        ) from exc
    # One row per malformed record (several errors on one record count once).
    tx.execute(
        f"""CREATE TEMP TABLE {rej} AS
            SELECT line, first(error_message ORDER BY column_idx) AS error,
                   first(csv_line) AS csv_line
            FROM {rej}_e GROUP BY line"""
    )
    tx.execute(f"DROP TABLE IF EXISTS {rej}_e")
    tx.execute(f"DROP TABLE IF EXISTS {rej}_s")
    n_malformed = tx.execute(f"SELECT count(*) FROM {rej}").fetchone()[0]
    # The raw table's rowid is file order (consecutive, offset by a transaction-local base
    # inside a transaction, hence rowid - min(rowid)). A record's line (header = line 1, one line per
    # record) is rowid + 2 plus the malformed records before it: the j-th malformed line
    # q_j (1-based j) comes after q_j - 1 - j good rows, so an ASOF join on that threshold
    # finds how many malformed records precede each good row.
    tx.execute(
        f"""CREATE TEMP TABLE {raw} AS
            WITH m AS (SELECT line - 1 - row_number() OVER (ORDER BY line) AS t,
                              row_number() OVER (ORDER BY line) AS j FROM {rej}),
                 thresholds AS (SELECT t, max(j) AS k FROM m GROUP BY t),
                 r AS (SELECT rowid - (SELECT min(rowid) FROM {raw}_r) AS rid, *
                       FROM {raw}_r)
            SELECT r.* EXCLUDE (rid), r.rid + 1 + coalesce(thresholds.k, 0) AS row_number
            FROM r ASOF LEFT JOIN thresholds ON r.rid >= thresholds.t
            ORDER BY r.rid"""
    )
    tx.execute(f"DROP TABLE {raw}_r")
    return int(n_malformed)


def _collect_rejects(
    tx: duckdb.DuckDBPyConnection, rows: str, rej: str, cfg: IngestConfig, line_offset: int,
    n_malformed: int, report: IngestReport,
) -> None:
    counts = tx.execute(
        f"""SELECT reason, count(*) FROM {rows} WHERE reason IS NOT NULL
            GROUP BY reason ORDER BY count(*) DESC, reason"""
    ).fetchall()
    by_reason = {str(r): int(n) for r, n in counts}
    if n_malformed:
        by_reason = {"malformed row (wrong number of fields)": n_malformed, **by_reason}
    report.rejected_by_reason = dict(sorted(by_reason.items(), key=lambda kv: -kv[1]))
    report.n_rejected = sum(by_reason.values())
    cur = tx.execute(
        f"""{_rejects_select(rows, rej, cfg, line_offset)} ORDER BY line LIMIT ?""",
        [MAX_REPORTED_REJECTS],
    )
    names = [d[0] for d in cur.description]
    report.rejected_rows = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _rejects_select(rows: str, rej: str, cfg: IngestConfig, line_offset: int) -> str:
    return f"""
        SELECT row_number + {line_offset} AS line, row_number, reason,
               {_detail_sql(cfg, line_offset)} AS detail,
               user_id, item_id, rating_raw AS rating, text
        FROM {rows} WHERE reason IS NOT NULL
        UNION ALL
        SELECT line, line - 1 AS row_number, 'malformed row (wrong number of fields)',
               error, NULL, NULL, NULL, csv_line
        FROM {rej}
    """


def _store_rows(
    tx: duckdb.DuckDBPyConnection, rows: str, rej: str, kind: FileKind,
    mapping: dict[str, str], cfg: IngestConfig, split_config: SplitConfig | None,
    report: IngestReport, line_offset: int,
) -> None:
    name = report.dataset
    offset = tx.execute("SELECT coalesce(max(review_id), 0) FROM reviews").fetchone()[0]
    tx.execute(
        f"""INSERT INTO reviews
            SELECT {int(offset)} + row_number, ?, row_number, user_id, item_id, text, rating,
                   ts, {split_sql(split_config or SplitConfig())}
            FROM {rows} WHERE reason IS NULL""",
        [name],
    )
    levels = category_levels_sql("category_raw", cfg.category_separator)
    tx.execute(
        f"""INSERT INTO items
            WITH c AS (SELECT item_id, title, row_number, {levels}
                       FROM {rows} WHERE reason IS NULL)
            SELECT ?, item_id,
                   arg_min(title, row_number) FILTER (WHERE title IS NOT NULL),
                   mode(category) FILTER (WHERE category IS NOT NULL),
                   NULL, NULL, NULL, count(*)
            FROM c GROUP BY item_id""",
        [name],
    )
    # Levels follow the item's chosen (most common) category path.
    tx.execute(
        f"""UPDATE items SET l1 = c.l1, l2 = c.l2, l3 = c.l3
            FROM (SELECT DISTINCT category, l1, l2, l3
                  FROM (SELECT {levels} FROM {rows} WHERE reason IS NULL)) AS c
            WHERE items.dataset = ? AND items.category = c.category""",
        [name],
    )
    tx.execute(
        f"""INSERT INTO ingest_rejects
            SELECT ?, line, row_number, reason, detail, user_id, item_id, rating, text
            FROM ({_rejects_select(rows, rej, cfg, line_offset)})""",
        [name],
    )
    n_users, n_items, has_ts = tx.execute(
        "SELECT count(DISTINCT user_id), count(DISTINCT item_id), count(ts) > 0 "
        "FROM reviews WHERE dataset = ?",
        [name],
    ).fetchone()
    n_l1, n_l2, n_l3 = tx.execute(
        "SELECT count(DISTINCT l1), count(DISTINCT l2), count(DISTINCT l3) FROM items "
        "WHERE dataset = ?",
        [name],
    ).fetchone()
    report.n_users, report.n_items = int(n_users), int(n_items)
    if "timestamp" not in mapping or not has_ts:
        report.notices.append(
            "No usable timestamps: the temporal split orders each user's reviews by file order."
        )
    if "category" not in mapping:
        report.notices.append("No category column: the category tasks and levels are skipped.")
    tx.execute(
        """INSERT INTO datasets (name, file_name, file_hash, file_format, encoding, delimiter,
               mapping, config, n_reviews, n_users, n_items, n_l1, n_l2, n_l3, n_rejected,
               has_timestamp)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        [name, report.file_name, report.file_hash, kind.format, kind.encoding or "parquet",
         kind.delimiter, json.dumps(mapping), cfg.to_json(), report.n_accepted, n_users,
         n_items, n_l1, n_l2, n_l3, report.n_rejected, bool(has_ts)],
    )


def _reasons_text(report: IngestReport) -> str:
    return "; ".join(f"{r}: {n:,}" for r, n in report.rejected_by_reason.items())


def registered_report(store: Store, name: str) -> IngestReport:
    """The report of an already stored dataset, rebuilt from the registry."""
    row = store.cursor().execute(
        """SELECT file_name, file_hash, file_format, encoding, delimiter, mapping,
                  n_reviews, n_users, n_items, n_rejected FROM datasets WHERE name = ?""",
        [name],
    ).fetchone()
    if row is None:
        from mgi_core.errors import DatasetNotFoundError

        raise DatasetNotFoundError(f"No dataset named {name!r}.")
    by_reason = dict(
        store.cursor().execute(
            "SELECT reason, count(*) FROM ingest_rejects WHERE dataset = ? GROUP BY reason "
            "ORDER BY count(*) DESC",
            [name],
        ).fetchall()
    )
    return IngestReport(
        dataset=name, file_name=row[0], file_hash=row[1], format=row[2],
        encoding=None if row[3] == "parquet" else row[3], delimiter=row[4],
        mapping=json.loads(row[5]), n_read=row[6] + row[9], n_accepted=row[6],
        n_rejected=row[9], n_users=row[7], n_items=row[8], rejected_by_reason=by_reason,
        committed=True,
    )


__all__ = [
    "CANONICAL_COLUMNS", "FileInspection", "IngestReport", "ingest_file", "inspect_file",
    "registered_report",
]
