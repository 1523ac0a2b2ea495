"""Ingest review files (CSV or Parquet) into the store, validated row by row.

The file streams through DuckDB twice, never through Python row objects:

1. A narrow pass (``read_csv`` / ``read_parquet`` into a temporary table) keeps every column
   but the review text, plus the text's length, and the text itself only for rows that are
   rejected. Validation is SQL over that pass: every row gets a reject reason or none;
   duplicates and the train/val/test split are computed on the narrow table too.
2. A second pass streams the file straight into ``reviews``, the text joined to the narrow
   table's verdicts by position (both scans yield the records in file order; each row is
   checked against the first pass: CSV by the text's length, Parquet by row number).

So the text is held in memory only a row group at a time. One ingest is one transaction:
after any failure the database holds exactly what it held before.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import uuid
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from mgi_core.config import IngestConfig, SplitConfig
from mgi_core.data.categories import category_levels_sql
from mgi_core.data.columns import CANONICAL_COLUMNS, guess_mapping, resolve_mapping
from mgi_core.data.files import (
    MAX_COLUMNS,
    FileKind,
    cleanup_stale_temp_files,
    file_sha256,
    parse_header,
    read_header_line,
    scan_text,
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
# read_csv's max_line_size for files with a record longer than DuckDB's default (2 MB). Not
# the default: DuckDB sizes its read buffers from it (16 MB lines -> 256 MiB buffers).
LONG_LINE_SIZE = 16 * 1024 * 1024
_LINE_TOO_LONG = "LINE SIZE OVER MAXIMUM"
# DuckDB's memory limit while ingesting (never above the store's own): the narrow tables
# spill to disk past it, and the blocks written for ``reviews`` leave the buffer pool instead
# of piling up. While ``reviews`` is written it is at least 2.5 row groups of the file's
# rows (DuckDB fills a row group of 122,880 rows in memory before compressing it).
MEMORY_LIMIT = 384 * 1024 * 1024
_ROW_GROUP_ROWS = 122_880
_MALFORMED = "malformed row (wrong number of fields)"
# Why DuckDB's CSV reader refused a record (its rejects table's error_type) -> our reason.
_RECORD_REASONS = {
    "LINE SIZE OVER MAXIMUM": f"record longer than {LONG_LINE_SIZE // 2**20} MB",
    "UNQUOTED VALUE": "unterminated or stray quote",
    "INVALID ENCODING": "invalid UTF-8",
    "INVALID UNICODE": "invalid UTF-8",
}
_MAX_HINT = 3_000  # characters of a DuckDB error shown to the user
_DUPLICATE = "duplicate (user_id, item_id)"
_CHANGED = "MGI: the file changed while it was being read"
_TS_RANGE = "timestamp out of range"
# Numeric timestamps: one unit per file, from the magnitude of the column's median value
# (seconds since 1970 have 9-10 digits today, milliseconds 12-13, microseconds 15-16,
# nanoseconds 18-19). Factor: to microseconds.
_TS_UNITS = (("seconds", 1e11, 1e6), ("milliseconds", 1e14, 1e3),
             ("microseconds", 1e17, 1.0), ("nanoseconds", float("inf"), 1e-3))
_ORDER_ONLY = 1e8  # all values below: sequence numbers (1973-03 in seconds), order only


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
            return (
                f"{self.file_name} is already stored as dataset {self.dataset!r}; "
                "nothing changed."
            )
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


def _csv_args(kind: FileKind, max_line_size: int | None = None) -> str:
    """read_csv options; the path and the ``columns`` struct travel as the two parameters."""
    # Literals only from our own allow-list (DELIMITERS), never from user text.
    delim = {",": "','", ";": "';'", "\t": "'\\t'", "|": "'|'"}[kind.delimiter or ","]
    args = (
        f"delim=E{delim}, header=true, quote='\"', escape='\"', auto_detect=false, "
        "strict_mode=true, columns=?"
    )
    return args + (f", max_line_size={int(max_line_size)}" if max_line_size else "")


def _csv_params(path: Path, kind: FileKind) -> list[Any]:
    columns = parse_header(read_header_line(path, "utf-8-sig"), kind.delimiter or ",")
    return [str(path), dict.fromkeys(columns, "VARCHAR")]


@contextmanager
def _readable(path: Path, file_name: str | None = None) -> Iterator[tuple[Path, FileKind]]:
    """The file as DuckDB can read it: UTF-8 with one kind of line ending, no NUL bytes.

    A file in another encoding, or a UTF-8 file with mixed line endings, is rewritten to a
    temporary UTF-8 copy with LF endings (removed afterwards; one left by a killed process
    is removed by the next ingest). A NUL byte anywhere rejects the file, whatever its
    position (the same rule as for the first megabyte in ``sniff_file``).
    """
    name = file_name or path.name
    cleanup_stale_temp_files()
    kind = sniff_file(path)
    if kind.format != "csv":
        yield path, kind
        return
    tmp: Path | None = None
    try:
        utf8 = kind.encoding in ("utf-8", "utf-8-sig")
        scan = scan_text(path) if utf8 else None
        if not utf8 or (scan is not None and scan.mixed_line_endings and scan.nul_offset is None):
            if scan is not None:
                log.info("%s: mixed line endings (%d CRLF, %d LF, %d CR); rewritten with LF",
                         name, scan.crlf, scan.lf - scan.crlf, scan.lone_cr)
            tmp = transcode_to_utf8(path, kind.encoding or "utf-8")
            scan = scan_text(tmp)
        if scan.nul_offset is not None:
            raise DataValidationError(
                f"{name} contains a NUL byte (line {scan.nul_line:,}"
                + (f", byte {scan.nul_offset:,}" if tmp is None else "")
                + "), which no text CSV holds: it is binary or damaged. Remove the NUL "
                "characters (e.g. tr -d '\\000' < in.csv > out.csv) or export the file again."
            )
        yield tmp or path, kind
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)


def _refusal(exc: BaseException, name: str, readable: Path) -> str:
    """DuckDB's whole message (its hint and the options it used), with the temporary copy's
    path replaced by the file's name, cut at :data:`_MAX_HINT` characters."""
    text = str(exc).replace(str(readable), name).strip()
    return text if len(text) <= _MAX_HINT else text[:_MAX_HINT] + " …"


def _columns(con: duckdb.DuckDBPyConnection, path: Path, kind: FileKind,
             name: str | None = None) -> list[str]:
    if kind.format != "parquet":
        return parse_header(read_header_line(path, "utf-8-sig"), kind.delimiter or ",")
    try:
        rows = con.execute("DESCRIBE SELECT * FROM read_parquet(?)", [str(path)]).fetchall()
    except duckdb.Error as exc:
        raise DataValidationError(
            f"Cannot read {name or path.name} as Parquet: {_refusal(exc, name or path.name, path)}"
        ) from exc
    columns = [row[0] for row in rows]
    if len(columns) > MAX_COLUMNS:
        raise DataValidationError(
            f"{name or path.name} has {len(columns):,} columns; MGI reads files with at most "
            f"{MAX_COLUMNS:,}. Keep the review columns (user_id, item_id, text, rating, ...)."
        )
    return columns


def inspect_file(path: str | Path, n_preview: int = 20,
                 file_name: str | None = None) -> FileInspection:
    """Look at a file before ingesting: format, columns, guessed mapping, first rows.

    Raises:
        DataValidationError: the file cannot be read (any parser error becomes this).
    """
    path = Path(path)
    name = file_name or path.name
    con = duckdb.connect()
    try:
        with _readable(path, name) as (readable, kind):
            columns = _columns(con, readable, kind, name)
            if kind.format == "parquet":
                sql = "SELECT * FROM read_parquet(?) LIMIT ?"
            else:
                sql = (
                    f"SELECT * FROM read_csv(?, {_csv_args(kind, LONG_LINE_SIZE)}, "
                    "store_rejects=true) LIMIT ?"
                )
            params = [str(readable)] if kind.format == "parquet" else _csv_params(readable, kind)
            try:
                preview = con.execute(sql, [*params, n_preview]).df().astype("string")
            except duckdb.Error as exc:
                raise DataValidationError(
                    f"Cannot read {name} as {kind.format.upper()}: "
                    f"{_refusal(exc, name, readable)}"
                ) from exc
    finally:
        con.close()
    return FileInspection(kind, columns, guess_mapping(columns), preview)


def _col(mapping: Mapping[str, str], name: str) -> str:
    """A canonical column as text, from its mapped file column (NULL when unmapped)."""
    return f"CAST({_q(mapping[name])} AS VARCHAR)" if name in mapping else "NULL::VARCHAR"


@dataclass
class _Scan:
    """One way of reading the file, repeatable: the second pass must see the same rows."""

    path: Path
    kind: FileKind
    tag: str
    max_line_size: int | None = None  # CSV only; None = DuckDB's default
    rejects: list[str] = field(default_factory=list)  # reject tables DuckDB made, to drop
    name: str = ""  # the file's name for messages (the path may be a temporary copy)

    @property
    def is_csv(self) -> bool:
        return self.kind.format == "csv"

    def reader(self, rejects: str) -> tuple[str, list[Any]]:
        """``read_csv(...)`` / ``read_parquet(...)`` and its parameters.

        CSV records with the wrong number of fields (or too long) go to temp table
        ``rejects`` (its scan table ``{rejects}_s``) instead of failing the read.
        """
        if not self.is_csv:
            return "read_parquet(?, file_row_number = true)", [str(self.path)]
        self.rejects += [rejects, f"{rejects}_s"]
        return (
            f"read_csv(?, {_csv_args(self.kind, self.max_line_size)}, store_rejects=true, "
            f"rejects_table='{rejects}', rejects_scan='{rejects}_s')",
            _csv_params(self.path, self.kind),
        )


def _validated_rows_sql(reader: str, mapping: Mapping[str, str], cfg: IngestConfig,
                        parquet: bool) -> str:
    """SELECT over the file giving canonical columns, parsed values and a reason.

    Narrow: the text itself is kept only for rejected rows (for the reject report); every
    row keeps its length, which the second pass checks. ``LIMIT ?`` is the row cap.
    """
    col = functools.partial(_col, mapping)
    row_number = "file_row_number + 1 AS row_number," if parquet else ""
    return f"""
    WITH base AS (
        SELECT {row_number}
               nullif(trim({col('user_id')}), '') AS user_id,
               nullif(trim({col('item_id')}), '') AS item_id,
               {col('text')} AS text,
               {col('rating')} AS rating_raw,
               TRY_CAST(trim({col('rating')}) AS DOUBLE) AS rating,
               nullif(trim({col('timestamp')}), '') AS ts_raw,
               {col('category')} AS category_raw,
               nullif(trim({col('item_title')}), '') AS title
        FROM {reader}
    ), numeric AS (
        SELECT *, TRY_CAST(ts_raw AS DOUBLE) AS ts_any FROM base
    ), parsed AS (
        -- Numbers stay numbers here: their unit is chosen for the whole column afterwards
        -- (resolve_timestamps); text dates are parsed now.
        SELECT * EXCLUDE (ts_any),
            CASE WHEN isfinite(ts_any) THEN ts_any END AS ts_num,
            CASE WHEN ts_raw IS NOT NULL AND ts_any IS NULL THEN
                coalesce(TRY_CAST(ts_raw AS TIMESTAMP), try_strptime(ts_raw, {_DATE_FORMATS!r}))
            END AS ts
        FROM numeric
    ), judged AS (
        SELECT *,
            CASE
                WHEN user_id IS NULL THEN 'missing user_id'
                WHEN item_id IS NULL THEN 'missing item_id'
                WHEN text IS NULL OR text = '' OR (starts_with(text, ' ') AND trim(text) = '')
                    THEN 'empty text'
                WHEN rating_raw IS NULL OR trim(rating_raw) = '' THEN 'missing rating'
                WHEN rating IS NULL OR isnan(rating) THEN 'rating is not a number'
                WHEN rating < {float(cfg.rating_min)!r} OR rating > {float(cfg.rating_max)!r}
                    THEN 'rating out of range'
                WHEN ts_raw IS NOT NULL AND ts IS NULL AND ts_num IS NULL
                    THEN 'unparseable timestamp'
            END AS reason
        FROM parsed
    )
    SELECT {'row_number,' if parquet else ''}
           user_id, item_id, rating, ts, ts_num, category_raw, title, reason,
           CAST(strlen(text) AS INTEGER) AS text_len,
           CASE WHEN reason IS NOT NULL THEN rating_raw END AS rating_raw,
           CASE WHEN reason IS NOT NULL THEN ts_raw END AS ts_raw,
           CASE WHEN reason IS NOT NULL THEN text END AS rej_text
    FROM judged
    LIMIT ?
    """


def _detail_sql(cfg: IngestConfig, line_offset: int) -> str:
    lo, hi = f"{cfg.rating_min:g}", f"{cfg.rating_max:g}"
    return f"""
        CASE reason
            WHEN 'rating is not a number' THEN 'rating ' || to_json(rating_raw)::VARCHAR
            WHEN 'rating out of range' THEN 'rating ' || rating_raw || ' is outside {lo}..{hi}'
            WHEN 'unparseable timestamp' THEN 'timestamp ' || to_json(ts_raw)::VARCHAR
            WHEN '{_TS_RANGE}' THEN 'timestamp ' || to_json(ts_raw)::VARCHAR
                || ' is outside {cfg.min_year}..{cfg.max_year}'
            WHEN '{_DUPLICATE}'
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
    cur = store.cursor()
    existing = cur.execute(
        "SELECT file_hash, file_name FROM datasets WHERE name = ?", [name]
    ).fetchone()
    if existing is not None:
        if existing[0] == file_sha256(path):
            report = registered_report(store, name)
            report.unchanged = True
            return report
        raise DatasetExistsError(
            f"Dataset {name!r} already holds another file ({existing[1]}). Choose a new name, "
            "or delete that dataset first."
        )

    # The hash is only recorded, so it is computed beside the reading (hashlib releases
    # the GIL) and awaited just before the registry row is written.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="mgi-sha256") as pool:
        digest = pool.submit(file_sha256, path)
        report: IngestReport | None = None
        try:
            with _readable(path, file_name) as (readable, kind):
                columns = _columns(cur, readable, kind, file_name)
                resolved = resolve_mapping(columns, mapping)
                # Under MEMORY_LIMIT first; should DuckDB run out of memory there (it
                # spills temp tables, sorts and joins, but not everything), once more
                # under the limit the store had.
                for memory_limit in (MEMORY_LIMIT, None):
                    report = IngestReport(
                        dataset=name, file_name=file_name, file_hash="", format=kind.format,
                        encoding=kind.encoding, delimiter=kind.delimiter, mapping=resolved,
                    )
                    try:
                        with _Settings(cur, memory_limit) as settings:
                            # Both passes rely on scans in file order.
                            settings.set(preserve_insertion_order=True)
                            with store.transaction() as tx:
                                _load_and_store(tx, readable, kind, resolved, cfg,
                                                split_config, report, digest, settings)
                        break
                    except duckdb.OutOfMemoryException:
                        if not memory_limit:
                            raise
                        log.info("%s: out of memory under %d bytes; again without that cap",
                                 file_name, memory_limit)
                report.committed = True
        finally:
            if report is not None and not report.file_hash and digest.exception() is None:
                report.file_hash = digest.result()  # also for a rejected file's report
    log.info("ingested %s", report.summary())
    return report


_UNITS = {"bytes": 1, "b": 1, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40,
          "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}


def _bytes(text: str) -> float:
    """``'18.7 GiB'`` (as DuckDB shows a memory setting) in bytes; inf when unreadable."""
    m = re.fullmatch(r"\s*([\d.]+)\s*([A-Za-z]*)\s*", str(text))
    if not m or m[2].lower() not in _UNITS:
        return float("inf")
    return float(m[1]) * _UNITS[m[2].lower()]


class _Settings:
    """DuckDB settings changed for one ingest, each restored to its previous value on exit.

    They are GLOBAL settings of the DuckDB instance and not transactional (a rollback keeps
    them), so they are restored whatever happens, after the transaction has ended.
    ``memory_limit`` is only ever lowered below its previous value.
    """

    def __init__(self, cur: duckdb.DuckDBPyConnection, memory_cap: int | None) -> None:
        self.cur = cur
        self.before: dict[str, Any] = {}
        self.memory_cap = memory_cap  # the ingest's memory_limit (None: the store's)

    def __enter__(self) -> _Settings:
        if self.memory_cap:
            self.set(memory_limit=self.memory_cap)
        return self

    def uncap(self) -> None:
        """The store's own memory_limit for the rest of the ingest."""
        self.memory_cap = None
        self.reset("memory_limit")

    def _current(self, name: str) -> Any:
        return self.cur.execute("SELECT current_setting(?)", [name]).fetchone()[0]

    def set(self, **values: Any) -> None:
        for name, value in values.items():
            current = self._current(name)
            if name == "memory_limit":
                if _bytes(self.before.get(name, current)) <= value:
                    self.reset(name)
                    continue
                value = f"{int(value)} bytes"
            elif current == value:
                continue
            self.before.setdefault(name, current)
            self.cur.execute(f"SET {name} = {_literal(value)}")

    def reset(self, name: str) -> None:
        """Back to the value it had before this ingest."""
        if name not in self.before:
            return
        before = self.before.pop(name)
        if name == "memory_limit":
            # Shown rounded ('2.7 GiB' is 2.7 to 2.8 GiB): RESET when it was the default,
            # else the middle of that range, so that repeated ingests do not drift.
            self.cur.execute(f"RESET {name}")
            if self._current(name) == before:
                return
            m = re.fullmatch(r"\s*(\d+)\.(\d)\s*(\w+)\s*", str(before))
            if m:
                before = f"{m[1]}.{m[2]}5 {m[3]}"
        self.cur.execute(f"SET {name} = {_literal(before)}")

    def __exit__(self, *exc: object) -> None:
        for name in reversed(list(self.before)):
            self.reset(name)


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


@dataclass
class _Tables:
    """Names of one ingest's temp tables (made inside the transaction: a rollback drops
    them; on success they are dropped explicitly)."""

    tag: str

    def __getattr__(self, part: str) -> str:
        if part.startswith("_"):
            raise AttributeError(part)
        return f"_mgi_{part}_{self.tag}"


def _load_and_store(
    tx: duckdb.DuckDBPyConnection,
    path: Path,
    kind: FileKind,
    mapping: dict[str, str],
    cfg: IngestConfig,
    split_config: SplitConfig | None,
    report: IngestReport,
    digest: Future[str],
    settings: _Settings,
) -> None:
    t = _Tables(uuid.uuid4().hex[:12])
    scan = _Scan(path, kind, t.tag, name=report.file_name)
    n_malformed = _load_raw(tx, scan, mapping, cfg, t, settings)
    n_raw, base = tx.execute(f"SELECT count(*), min(rowid) FROM {t.raw}").fetchone()
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
    _resolve_timestamps(tx, t, cfg, report)
    rows = _numbered_rows(tx, scan, t, int(base or 0), n_malformed)
    _mark_duplicates(tx, scan, mapping, t, rows)
    _collect_rejects(tx, rows, t, cfg, line_offset, n_malformed, report)
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
    _store_rows(tx, scan, rows, t, kind, mapping, cfg, split_config, report, line_offset,
                digest, settings)
    for table in (t.spl, t.dtext, t.dups, t.num, t.raw, t.rej, *scan.rejects):
        tx.execute(f"DROP TABLE IF EXISTS {table}")


def _load_raw(
    tx: duckdb.DuckDBPyConnection, scan: _Scan, mapping: Mapping[str, str], cfg: IngestConfig,
    t: _Tables, settings: _Settings,
) -> int:
    """First, narrow pass: the validated rows into temp table ``t.raw``, in file order.

    Malformed CSV records (wrong number of fields) land in temp table ``t.rej`` with their
    line. Returns how many records were malformed. A record longer than DuckDB's default
    line size makes the pass run again with room for lines up to 16 MB.
    """
    limit = cfg.max_rows + 1
    while True:
        reader, params = scan.reader(f"{t.rej}_e")
        sql = _validated_rows_sql(reader, mapping, cfg, parquet=not scan.is_csv)
        try:
            tx.execute(f"CREATE TEMP TABLE {t.raw} AS {sql}", [*params, limit])
        except duckdb.OutOfMemoryException:
            raise
        except duckdb.Error as exc:
            raise DataValidationError(
                f"Cannot read {scan.name} as {scan.kind.format.upper()}. Check that it is a "
                "CSV with a header line (or a Parquet file). The reader said: "
                f"{_refusal(exc, scan.name, scan.path)}"
            ) from exc
        if not scan.is_csv:
            tx.execute(f"CREATE TEMP TABLE {t.rej} (line BIGINT, error VARCHAR, reason VARCHAR, "
                       "csv_line VARCHAR)")
            return 0
        too_long = tx.execute(
            f"SELECT count(*) FROM {t.rej}_e WHERE error_type = ?", [_LINE_TOO_LONG]
        ).fetchone()[0]
        if not too_long or scan.max_line_size:
            break
        for table in (t.raw, f"{t.rej}_e", f"{t.rej}_e_s"):
            tx.execute(f"DROP TABLE IF EXISTS {table}")
        scan.max_line_size = LONG_LINE_SIZE
        settings.uncap()  # read buffers of 16 x 16 MB would not fit
    # One row per malformed record (several errors on one record count once).
    tx.execute(
        f"""CREATE TEMP TABLE {t.rej} AS
            SELECT line, first(error_message ORDER BY column_idx) AS error,
                   {_record_reason_sql()} AS reason,
                   first(csv_line) AS csv_line
            FROM {t.rej}_e GROUP BY line"""
    )
    return int(tx.execute(f"SELECT count(*) FROM {t.rej}").fetchone()[0])


def _resolve_timestamps(
    tx: duckdb.DuckDBPyConnection, t: _Tables, cfg: IngestConfig, report: IngestReport
) -> None:
    """Give numeric timestamps one unit for the whole column, and reject implausible dates.

    The unit comes from the column's median magnitude, never from each value alone: in a
    file of unix seconds, 253402300799 is the year 9999 (rejected), not 1978 in
    milliseconds. All-integer ``YYYYMMDD`` columns are read as dates; a column of small
    numbers only (all below 1e8) as sequence numbers that order each user's reviews. Any
    date outside ``cfg.min_year``..``cfg.max_year`` rejects its row with the reason.
    """
    n, median, largest, ymd = tx.execute(
        f"""SELECT count(*), median(abs(ts_num)), max(abs(ts_num)),
                   bool_and(ts_num = trunc(ts_num) AND ts_num BETWEEN 10000101 AND 99991231
                            AND try_strptime(CAST(TRY_CAST(ts_num AS BIGINT) AS VARCHAR),
                                             '%Y%m%d') IS NOT NULL)
            FROM {t.raw} WHERE ts_num IS NOT NULL AND reason IS NULL"""
    ).fetchone()
    lo = f"make_timestamp({cfg.min_year}, 1, 1, 0, 0, 0)"
    hi = f"make_timestamp({cfg.max_year + 1}, 1, 1, 0, 0, 0)"
    if n:
        if ymd:
            unit = "dates written as YYYYMMDD"
            value = ("try_strptime(CAST(TRY_CAST(ts_num AS BIGINT) AS VARCHAR), '%Y%m%d')"
                     "::TIMESTAMP")
        elif largest < _ORDER_ONLY:
            unit = None
            value = "make_timestamp(CAST(ts_num * 1e6 AS BIGINT))"
            report.notices.append(
                "The timestamps are small numbers (all below 100,000,000), not dates: they "
                "only order each user's reviews."
            )
        else:
            unit, factor = next((u, f) for u, top, f in _TS_UNITS if median < top)
            micros = f"(ts_num * {factor!r})"
            # out of TIMESTAMP's range: NULL here, rejected below as out of range
            value = (f"CASE WHEN abs({micros}) < 9e18 "
                     f"THEN make_timestamp(CAST({micros} AS BIGINT)) END")
        if unit:
            report.notices.append(f"Numeric timestamps are read as {unit} since 1970."
                                  if unit != "dates written as YYYYMMDD"
                                  else "Numeric timestamps are read as dates (YYYYMMDD).")
        tx.execute(f"UPDATE {t.raw} SET ts = {value} WHERE ts_num IS NOT NULL AND reason IS NULL")
        if unit is None:
            return_check = f"ts_num IS NULL AND ts IS NOT NULL AND (ts < {lo} OR ts >= {hi})"
        else:
            return_check = f"(ts IS NULL AND ts_num IS NOT NULL) OR ts < {lo} OR ts >= {hi}"
    else:
        return_check = f"ts IS NOT NULL AND (ts < {lo} OR ts >= {hi})"
    tx.execute(
        f"""UPDATE {t.raw} SET reason = '{_TS_RANGE}', ts_raw = coalesce(
                CASE WHEN ts_num = trunc(ts_num) AND abs(ts_num) < 1e18
                     THEN CAST(TRY_CAST(ts_num AS BIGINT) AS VARCHAR) END,
                CAST(ts_num AS VARCHAR), strftime(ts, '%Y-%m-%d %H:%M:%S'))
            WHERE reason IS NULL AND ({return_check})"""
    )


def _record_reason_sql() -> str:
    """Our reason for a record DuckDB refused, from its error types (one per record)."""
    cases = " ".join(f"WHEN list_contains(types, '{k}') THEN '{v}'"
                     for k, v in _RECORD_REASONS.items())
    return (f"(SELECT CASE {cases} ELSE '{_MALFORMED}' END "
            "FROM (SELECT list(error_type) AS types))")


def _numbered_rows(
    tx: duckdb.DuckDBPyConnection, scan: _Scan, t: _Tables, base: int, n_malformed: int
) -> str:
    """A subquery over ``t.raw`` adding ``rid`` (the row's key) and its ``row_number``.

    CSV: ``t.raw``'s rowid is file order (consecutive, offset by a transaction-local base
    inside a transaction, hence rowid - base). A record's line (header = line 1, one line
    per record) is rowid - base + 2 plus the malformed records before it: the j-th
    malformed line q_j (1-based j) comes after q_j - 1 - j good rows, so an ASOF join on
    that threshold finds how many malformed records precede each good row. Parquet: the
    row number is the file's own.
    """
    if not scan.is_csv:
        return f"(SELECT row_number AS rid, * FROM {t.raw})"
    if not n_malformed:
        return f"(SELECT rowid AS rid, rowid - {base} + 1 AS row_number, * FROM {t.raw})"
    tx.execute(
        f"""CREATE TEMP TABLE {t.num} AS
            WITH m AS (SELECT line - 1 - row_number() OVER (ORDER BY line) AS t,
                              row_number() OVER (ORDER BY line) AS j FROM {t.rej}),
                 thresholds AS (SELECT t, max(j) AS k FROM m GROUP BY t),
                 r AS (SELECT rowid AS rid, rowid - {base} AS i FROM {t.raw})
            SELECT r.rid, r.i + 1 + coalesce(thresholds.k, 0) AS row_number
            FROM r ASOF LEFT JOIN thresholds ON r.i >= thresholds.t"""
    )
    return (
        f"(SELECT n.rid, n.row_number, raw.* FROM {t.raw} AS raw "
        f"JOIN {t.num} AS n ON n.rid = raw.rowid)"
    )


def _mark_duplicates(
    tx: duckdb.DuckDBPyConnection, scan: _Scan, mapping: Mapping[str, str], t: _Tables,
    rows: str,
) -> None:
    """Reject repeats of a (user_id, item_id) pair among valid rows; the first one stays.

    Their text (and raw rating) for the reject report come from one more read of the file,
    only when there are duplicates: ``t.dtext`` (rid, first_row, text, rating_raw).
    """
    tx.execute(
        f"""CREATE TEMP TABLE {t.dups} AS
            WITH v AS (SELECT rid, row_number, user_id, item_id FROM {rows}
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
        f"UPDATE {t.raw} SET reason = '{_DUPLICATE}' WHERE {key} IN (SELECT rid FROM {t.dups})"
    )
    text, rating = _col(mapping, "text"), _col(mapping, "rating")
    reader, params = scan.reader(f"{t.rej}_d")
    if scan.is_csv:  # aligned by position with t.raw (see _insert_reviews)
        source = f"""(SELECT {text} AS text, {rating} AS rating_raw FROM {reader}) AS f
            POSITIONAL JOIN (SELECT rowid AS rid, text_len FROM {t.raw}) AS v
            JOIN {t.dups} AS d ON d.rid = v.rid"""
        checked = _checked("f.text", "strlen(f.text) = v.text_len")
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


def _checked(text: str, same: str) -> str:
    """The text of the second pass, failing the statement unless ``same`` holds (the row is
    the first pass's); a NULL there fails too."""
    return f"CASE WHEN {same} THEN {text} ELSE error('{_CHANGED}') END"


def _collect_rejects(
    tx: duckdb.DuckDBPyConnection, rows: str, t: _Tables, cfg: IngestConfig,
    line_offset: int, n_malformed: int, report: IngestReport,
) -> None:
    counts = tx.execute(
        f"""SELECT reason, count(*) FROM {t.raw} WHERE reason IS NOT NULL
            GROUP BY reason ORDER BY count(*) DESC, reason"""
    ).fetchall()
    by_reason = {str(r): int(n) for r, n in counts}
    if n_malformed:
        for reason, n in tx.execute(
            f"SELECT reason, count(*) FROM {t.rej} GROUP BY reason"
        ).fetchall():
            by_reason[str(reason)] = by_reason.get(str(reason), 0) + int(n)
    report.rejected_by_reason = dict(sorted(by_reason.items(), key=lambda kv: -kv[1]))
    report.n_rejected = sum(by_reason.values())
    if not report.n_rejected:
        return
    cur = tx.execute(
        f"""{_rejects_select(rows, t, cfg, line_offset)} ORDER BY line LIMIT ?""",
        [MAX_REPORTED_REJECTS],
    )
    names = [d[0] for d in cur.description]
    report.rejected_rows = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _rejects_select(rows: str, t: _Tables, cfg: IngestConfig, line_offset: int) -> str:
    return f"""
        SELECT row_number + {line_offset} AS line, row_number, reason,
               {_detail_sql(cfg, line_offset)} AS detail,
               user_id, item_id, rating_raw AS rating, text
        FROM (SELECT r.row_number, r.reason, r.user_id, r.item_id, r.ts_raw, d.first_row,
                     coalesce(d.rating_raw, r.rating_raw) AS rating_raw,
                     coalesce(d.text, r.rej_text) AS text
              FROM {rows} AS r LEFT JOIN {t.dtext} AS d ON d.rid = r.rid
              WHERE r.reason IS NOT NULL)
        UNION ALL
        SELECT line, line - 1 AS row_number, reason,
               error, NULL, NULL, NULL, csv_line
        FROM {t.rej}
    """


def _store_rows(
    tx: duckdb.DuckDBPyConnection, scan: _Scan, rows: str, t: _Tables, kind: FileKind,
    mapping: dict[str, str], cfg: IngestConfig, split_config: SplitConfig | None,
    report: IngestReport, line_offset: int, digest: Future[str], settings: _Settings,
) -> None:
    name = report.dataset
    # The split of each valid row, computed on a narrow projection. t.spl has one row per
    # row of t.raw, in t.raw's order (NULL split: rejected) for the positional second pass.
    tx.execute(
        f"""CREATE TEMP TABLE {t.spl} AS
            WITH s AS (SELECT rid, {split_sql(split_config or SplitConfig())} AS split
                       FROM (SELECT rid, row_number, user_id, ts FROM {rows}
                             WHERE reason IS NULL))
            SELECT r.row_number, s.split
            FROM (SELECT rid, row_number FROM {rows}) AS r LEFT JOIN s USING (rid)
            ORDER BY r.rid"""
    )
    # Category levels once per distinct category path, not per row. An item's category is
    # its most common path (ties: the one seen first in the file).
    levels = category_levels_sql("category_raw", cfg.category_separator)
    tx.execute(
        f"""INSERT INTO items
            WITH acc AS (SELECT row_number, item_id, title, category_raw FROM {rows}
                         WHERE reason IS NULL),
                 cats AS (SELECT category_raw, {levels}
                          FROM (SELECT DISTINCT category_raw FROM acc
                                WHERE category_raw IS NOT NULL)),
                 per_cat AS (SELECT acc.item_id, cats.category, count(*) AS n,
                                    min(acc.row_number) AS first_row
                             FROM acc JOIN cats ON cats.category_raw = acc.category_raw
                             WHERE cats.category IS NOT NULL
                             GROUP BY acc.item_id, cats.category),
                 best AS (SELECT item_id, arg_max(category, (n, -first_row)) AS category
                          FROM per_cat GROUP BY item_id),
                 agg AS (SELECT item_id,
                                arg_min(title, row_number) FILTER (WHERE title IS NOT NULL)
                                    AS title,
                                count(*) AS n
                         FROM acc GROUP BY item_id),
                 lv AS (SELECT DISTINCT category, l1, l2, l3 FROM cats
                        WHERE category IS NOT NULL)
            SELECT ?, agg.item_id, agg.title, best.category, lv.l1, lv.l2, lv.l3, agg.n
            FROM agg LEFT JOIN best USING (item_id) LEFT JOIN lv USING (category)""",
        [name],
    )
    if report.n_rejected:
        tx.execute(
            f"""INSERT INTO ingest_rejects
                SELECT ?, line, row_number, reason, detail, user_id, item_id, rating, text
                FROM ({_rejects_select(rows, t, cfg, line_offset)})""",
            [name],
        )
    n_users, n_items, has_ts = tx.execute(
        f"""SELECT count(DISTINCT user_id), count(DISTINCT item_id), count(ts) > 0
            FROM {t.raw} WHERE reason IS NULL"""
    ).fetchone()
    if settings.memory_cap:
        row_group_bytes = scan.path.stat().st_size / report.n_read * _ROW_GROUP_ROWS
        settings.set(memory_limit=max(settings.memory_cap, int(2.5 * row_group_bytes)))
    _insert_reviews(tx, scan, t, mapping, name, report.n_accepted, settings)
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
    report.file_hash = digest.result()
    tx.execute(
        """INSERT INTO datasets (name, file_name, file_hash, file_format, encoding, delimiter,
               mapping, config, n_reviews, n_users, n_items, n_l1, n_l2, n_l3, n_rejected,
               has_timestamp)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        [name, report.file_name, report.file_hash, kind.format, kind.encoding or "parquet",
         kind.delimiter, json.dumps(mapping), cfg.to_json(), report.n_accepted, n_users,
         n_items, n_l1, n_l2, n_l3, report.n_rejected, bool(has_ts)],
    )


def _insert_reviews(
    tx: duckdb.DuckDBPyConnection, scan: _Scan, t: _Tables, mapping: Mapping[str, str],
    name: str, n_accepted: int, settings: _Settings,
) -> None:
    """Second pass: stream the file's text into ``reviews`` beside the narrow verdicts.

    CSV has no row number to join on, so the text is matched by position: a POSITIONAL
    JOIN scans the reader (same options, so the same records), ``t.raw`` and ``t.spl``
    (both in file order) in step, on one thread. Each row is checked against the first
    pass (CSV: the text's length; Parquet: the file's row number), or the statement fails.
    """
    offset = tx.execute("SELECT coalesce(max(review_id), 0) FROM reviews").fetchone()[0]
    text = _col(mapping, "text")
    reader, params = scan.reader(f"{t.rej}_t")
    # CSV: the text's length must match; Parquet: the file's own row number.
    key = "" if scan.is_csv else "file_row_number + 1 AS rid, "
    same = "strlen(f.text) = v.text_len" if scan.is_csv else "f.rid = v.row_number"
    try:
        # Row order is irrelevant here (row_number is a column): no order-preserving
        # batch insert, which buffers row groups; each one is written as soon as it is
        # full. (The positional scan runs on one thread, in file order, either way.)
        settings.set(preserve_insertion_order=False, write_buffer_row_group_count=1)
        tx.execute(
            f"""INSERT INTO reviews
                SELECT {int(offset)} + s.row_number, ?, s.row_number, v.user_id, v.item_id,
                       {_checked("f.text", same)}, v.rating, v.ts, s.split
                FROM (SELECT {key}{text} AS text FROM {reader}) AS f
                POSITIONAL JOIN {t.raw} AS v POSITIONAL JOIN {t.spl} AS s
                -- a record beyond t.raw's (NULL row_number): the file grew, so fail
                WHERE s.split IS NOT NULL OR s.row_number IS NULL""",
            [name, *params],
        )
        n = tx.fetchone()[0]
    except duckdb.Error as exc:
        if _CHANGED in str(exc):
            raise DataValidationError(
                f"{scan.name} changed while it was being read; nothing was stored. "
                "Upload it again."
            ) from exc
        raise
    if n != n_accepted:
        raise DataValidationError(
            f"{scan.name} changed while it was being read ({n:,} rows instead of "
            f"{n_accepted:,}); nothing was stored. Upload it again."
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
