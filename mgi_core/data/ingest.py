"""Ingest review files (CSV or Parquet) into the store, validated row by row.

This module checks the name and the file, recognises its format and encoding, makes a
readable UTF-8 copy when needed, and turns the store's counts into an :class:`IngestReport`
and its messages. The file itself streams through DuckDB twice, never through Python row
objects, in one transaction (:mod:`mgi_core.store.ingest_run` explains the two passes): a
narrow first pass validates every row in SQL, a second pass streams the text into
``reviews``. After any failure the database holds exactly what it held before.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb

from mgi_core.config import IngestConfig, SplitConfig
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
from mgi_core.data.ingest_report import (
    UNREDACTED,
    FileInspection,
    IngestReport,
    hashing_notice,
    registered_report,
)
from mgi_core.data.privacy import salt_check, salt_source, user_id_salt
from mgi_core.errors import DatasetExistsError, DataValidationError
from mgi_core.store import Store
from mgi_core.store.ingest_reader import (
    LONG_LINE_SIZE,
    FileScan,
    parquet_columns,
    preview_rows,
    scratch_connection,
)
from mgi_core.store.ingest_registry import IngestedFile, register_dataset, registered_file
from mgi_core.store.ingest_run import IngestRun, ingest_transaction
from mgi_core.store.ingest_settings import MEMORY_LIMIT
from mgi_core.store.ingest_sql import HASHED_USER_IDS
from mgi_core.store.ingest_validate import (
    ORDER_ONLY,
    YYYYMMDD,
    load_narrow_pass,
    mark_duplicates,
    number_rows,
    rejected_rows,
    rejects_by_reason,
    resolve_timestamps,
)
from mgi_core.store.ingest_write import (
    accepted_counts,
    level_counts,
    split_rows,
    write_items,
    write_rejects,
    write_reviews,
)

log = logging.getLogger(__name__)

MAX_REPORTED_REJECTS = 10_000
# on_stage(stage, fraction): the ingest enters ``stage``; ``fraction()`` says how far its
# current statement is (0 to 1, None when unknown) and may be called from another thread.
StageCallback = Callable[[str, Callable[[], float | None]], None]
_NAME = re.compile(r"^[\w][\w .\-]{0,63}$")


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


def _columns(con: duckdb.DuckDBPyConnection, path: Path, kind: FileKind,
             name: str) -> list[str]:
    """The file's column names: a CSV's header line, a Parquet file's schema."""
    if kind.format != "parquet":
        return _csv_columns(path, kind)
    columns = parquet_columns(con, path, name)
    if len(columns) > MAX_COLUMNS:
        raise DataValidationError(
            f"{name} has {len(columns):,} columns; MGI reads files with at most "
            f"{MAX_COLUMNS:,}. Keep the review columns (user_id, item_id, text, rating, ...)."
        )
    return columns


def _csv_columns(path: Path, kind: FileKind) -> list[str]:
    return parse_header(read_header_line(path, "utf-8-sig"), kind.delimiter or ",")


def _scan(readable: Path, kind: FileKind, name: str,
          max_line_size: int | None = None) -> FileScan:
    """How DuckDB reads ``readable`` (a CSV's columns from its header line)."""
    columns = _csv_columns(readable, kind) if kind.format == "csv" else []
    return FileScan(readable, kind.format, kind.delimiter, columns, name, max_line_size)


def inspect_file(path: str | Path, n_preview: int = 20,
                 file_name: str | None = None) -> FileInspection:
    """Look at a file before ingesting: format, columns, guessed mapping, first rows.

    Raises:
        DataValidationError: the file cannot be read (any parser error becomes this).
    """
    path = Path(path)
    name = file_name or path.name
    with scratch_connection() as con, _readable(path, name) as (readable, kind):
        columns = _columns(con, readable, kind, name)
        preview = preview_rows(con, _scan(readable, kind, name, LONG_LINE_SIZE), n_preview)
    return FileInspection(kind, columns, guess_mapping(columns), preview)


def ingest_file(
    store: Store,
    path: str | Path,
    name: str,
    mapping: Mapping[str, str | None] | None = None,
    config: IngestConfig | None = None,
    file_name: str | None = None,
    split_config: SplitConfig | None = None,
    on_stage: StageCallback | None = None,
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
        on_stage: told of each stage ('checking file', 'reading', 'validating',
            'storing'), for a progress display.

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
    existing = registered_file(store, name)
    if existing is not None:
        if existing.file_hash == file_sha256(path):
            report = registered_report(store, name)
            report.unchanged = True
            return report
        raise DatasetExistsError(
            f"Dataset {name!r} already holds another file ({existing.file_name}). Choose a "
            "new name, or delete that dataset first."
        )

    return read_and_store(store, path, name, mapping, cfg, file_name, split_config,
                          on_stage, NEW_DATASET)


@dataclass(frozen=True)
class RowSink:
    """Where a validated file's rows go: an ingest makes a new dataset (``NEW_DATASET``),
    an append (``mgi_core.data.append``) adds to a stored one. Both read and validate a
    file the same way; they differ in more verdicts after the file's own duplicates
    (``check(run, report)``) and in the writes (``store``, called as ``_store_rows``)."""

    check: Callable[[IngestRun, IngestReport], None]
    store: Callable[..., None] | None = None  # None: a new dataset's (``_store_rows``)


def read_and_store(store: Store, path: Path, name: str,
                   mapping: Mapping[str, str | None] | None, cfg: IngestConfig,
                   file_name: str, split_config: SplitConfig | None,
                   on_stage: StageCallback | None, sink: RowSink) -> IngestReport:
    """Read, validate and store a file's rows through ``sink``, in one transaction."""
    # The hash is only recorded, so it is computed beside the reading (hashlib releases
    # the GIL) and awaited just before the registry row is written.
    stage = on_stage or _no_stage
    stage("checking file", _unknown)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="mgi-sha256") as pool:
        digest = pool.submit(file_sha256, path)
        report: IngestReport | None = None
        try:
            with _readable(path, file_name) as (readable, kind):
                columns = _columns(store.cursor(), readable, kind, file_name)
                resolved = resolve_mapping(columns, mapping)
                # Under MEMORY_LIMIT first; should DuckDB run out of memory there (it
                # spills temp tables, sorts and joins, but not everything), once more
                # under the limit the store had.
                for memory_limit in (MEMORY_LIMIT, None):
                    report = IngestReport(
                        dataset=name, file_name=file_name, file_hash="", format=kind.format,
                        encoding=kind.encoding, delimiter=kind.delimiter, mapping=resolved,
                    )
                    scan = _scan(readable, kind, file_name)
                    try:
                        with ingest_transaction(store, scan, memory_limit) as run:
                            _load_and_store(run, kind, resolved, cfg, split_config, report,
                                            digest, stage, sink)
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


def _load_and_store(
    run: IngestRun,
    kind: FileKind,
    mapping: dict[str, str],
    cfg: IngestConfig,
    split_config: SplitConfig | None,
    report: IngestReport,
    digest: Future[str],
    stage: StageCallback,
    sink: RowSink,
) -> None:
    """The first pass and its verdicts, the checks on them, then the writes."""
    stage("reading", run.statement_fraction)
    salt = user_id_salt() if cfg.hash_user_ids else None  # a parameter, never stored
    n_raw, n_malformed = load_narrow_pass(run, mapping, cfg, salt)
    if salt is not None:
        report.user_id_hashing = HASHED_USER_IDS
        report.user_id_salt_check = salt_check(salt)
        report.notices.append(hashing_notice(salt_source()))
    stage("validating", run.statement_fraction)
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
    notice = _timestamp_notice(resolve_timestamps(run, cfg))
    if notice:
        report.notices.append(notice)
    number_rows(run, n_malformed)
    mark_duplicates(run, mapping)
    sink.check(run, report)
    report.rejected_by_reason = rejects_by_reason(run, n_malformed)
    report.n_rejected = sum(report.rejected_by_reason.values())
    if report.n_rejected:
        report.rejected_rows = rejected_rows(run, cfg, line_offset, MAX_REPORTED_REJECTS)
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
    stage("storing", run.statement_fraction)
    (sink.store or _store_rows)(run, kind, mapping, cfg, split_config, report, line_offset,
                                digest)


def _unknown() -> float | None:
    return None


def _no_stage(stage: str, fraction: Callable[[], float | None]) -> None:
    return None


def _reasons_text(report: IngestReport) -> str:
    return "; ".join(f"{r}: {n:,}" for r, n in report.rejected_by_reason.items())


def _timestamp_notice(reading: str | None) -> str | None:
    """What the report says about numeric timestamps read as ``reading``."""
    if reading is None:
        return None
    if reading == ORDER_ONLY:
        return ("The timestamps are small numbers (all below 100,000,000), not dates: they "
                "only order each user's reviews.")
    if reading == YYYYMMDD:
        return "Numeric timestamps are read as dates (YYYYMMDD)."
    return f"Numeric timestamps are read as {reading} since 1970."


def _store_rows(
    run: IngestRun, kind: FileKind, mapping: dict[str, str], cfg: IngestConfig,
    split_config: SplitConfig | None, report: IngestReport, line_offset: int,
    digest: Future[str],
) -> None:
    """The writes: splits, items, rejects, the second pass into ``reviews``, the registry."""
    name = report.dataset
    split_rows(run, split_config or SplitConfig())
    write_items(run, name, cfg.category_separator)
    if report.n_rejected:
        write_rejects(run, name, cfg, line_offset)
    n_users, n_items, has_ts = accepted_counts(run)
    report.redactions = write_reviews(run, mapping, name, report.n_read, report.n_accepted,
                                      redact=cfg.redact_pii)
    if not cfg.redact_pii:
        report.notices.append(UNREDACTED)
    n_l1, n_l2, n_l3 = level_counts(run, name)
    report.n_users, report.n_items = n_users, n_items
    if "timestamp" not in mapping or not has_ts:
        report.notices.append(
            "No usable timestamps: the temporal split orders each user's reviews by file order."
        )
    if "category" not in mapping:
        report.notices.append("No category column: the category tasks and levels are skipped.")
    report.file_hash = digest.result()
    register_dataset(run.tx, IngestedFile(
        name=name, file_name=report.file_name, file_hash=report.file_hash,
        file_format=kind.format, encoding=kind.encoding or "parquet", delimiter=kind.delimiter,
        mapping=mapping, config=cfg.to_json(), n_reviews=report.n_accepted, n_users=n_users,
        n_items=n_items, n_l1=n_l1, n_l2=n_l2, n_l3=n_l3, n_rejected=report.n_rejected,
        has_timestamp=has_ts, redactions=report.redactions if cfg.redact_pii else None,
        user_id_hashing=report.user_id_hashing, user_id_salt_check=report.user_id_salt_check,
    ))


def _no_check(run: IngestRun, report: IngestReport) -> None:
    return None


NEW_DATASET = RowSink(_no_check)


__all__ = [
    "CANONICAL_COLUMNS", "FileInspection", "IngestReport", "ingest_file", "inspect_file",
    "registered_report",
]
