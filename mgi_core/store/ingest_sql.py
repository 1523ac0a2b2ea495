"""The SQL text of an ingest's validation: canonical columns from a file's, a reason (or
none) for every row, and the reject report's lines. Pure functions: nothing runs here.

Column names come from the file's header and are quoted; every other literal is ours.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from mgi_core.config import IngestConfig
from mgi_core.store.ingest_reader import LONG_LINE_SIZE
from mgi_core.store.redaction import flags_ctes, redacted_text_sql
from mgi_core.store.sql import quote_identifier

# Reject reasons set by the ingest's own statements (the others are in validated_rows_sql).
MALFORMED = "malformed row (wrong number of fields)"
DUPLICATE = "duplicate (user_id, item_id)"
TS_RANGE = "timestamp out of range"
# DuckDB's rejects table's error_type for a record over max_line_size.
LINE_TOO_LONG = "LINE SIZE OVER MAXIMUM"
# Why DuckDB's CSV reader refused a record (its rejects table's error_type) -> our reason.
RECORD_REASONS = {
    LINE_TOO_LONG: f"record longer than {LONG_LINE_SIZE // 2**20} MB",
    "UNQUOTED VALUE": "unterminated or stray quote",
    "INVALID ENCODING": "invalid UTF-8",
    "INVALID UNICODE": "invalid UTF-8",
}
# The error a second-pass statement raises when a row is not the first pass's.
CHANGED = "MGI: the file changed while it was being read"
DATE_FORMATS = ["%m/%d/%Y", "%d.%m.%Y", "%m %d, %Y", "%Y/%m/%d", "%d/%m/%Y %H:%M", "%Y%m%d"]
# datasets.user_id_hashing of a dataset whose user ids are sha256(salt || user_id), hex.
HASHED_USER_IDS = "sha256-salted"


def mapped_column(mapping: Mapping[str, str], name: str) -> str:
    """A canonical column as text, from its mapped file column (NULL when unmapped)."""
    if name not in mapping:
        return "NULL::VARCHAR"
    return f"CAST({quote_identifier(mapping[name])} AS VARCHAR)"


def validated_rows_sql(reader: str, mapping: Mapping[str, str], cfg: IngestConfig,
                       parquet: bool, salt: str | None = None) -> tuple[str, list[Any]]:
    """SELECT over the file giving canonical columns, parsed values and a reason, and the
    parameters that follow the reader's (then comes ``LIMIT ?``, the row cap).

    Narrow: the text itself is kept only for rejected rows (for the reject report); every
    row keeps its length, which the second pass checks. With ``cfg.redact_pii`` each valid
    row's ``pii`` is the bit mask of the personal data a redaction of its text replaces
    (``store.redaction.flags_ctes``; the second pass redacts only rows where it is not 0);
    otherwise NULL (not looked for). With a ``salt``, ``user_id`` is
    ``sha256(salt || user_id)`` from here on: no table holds the raw id.
    """
    flags, params, pii = "", [], "NULL::UTINYINT AS pii"
    if cfg.redact_pii:
        flags, params = flags_ctes("judged", "text", "reason IS NULL", "pii_flags")
        flags, pii = f", {flags}", "pii"
    user_id = "user_id"
    if salt is not None:
        user_id, params = "sha256(? || user_id) AS user_id", [*params, salt]
    col = functools.partial(mapped_column, mapping)
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
                coalesce(TRY_CAST(ts_raw AS TIMESTAMP), try_strptime(ts_raw, {DATE_FORMATS!r}))
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
    ){flags}
    SELECT {'row_number,' if parquet else ''}
           {user_id}, item_id, rating, ts, ts_num, category_raw, title, reason,
           CAST(strlen(text) AS INTEGER) AS text_len,
           CASE WHEN reason IS NOT NULL THEN rating_raw END AS rating_raw,
           CASE WHEN reason IS NOT NULL THEN ts_raw END AS ts_raw,
           CASE WHEN reason IS NOT NULL THEN text END AS rej_text,
           {pii}
    FROM {'pii_flags' if flags else 'judged'}
    LIMIT ?
    """, params


def reject_detail_sql(cfg: IngestConfig, line_offset: int) -> str:
    """A CASE giving a rejected row's detail (the offending value, the allowed range)."""
    lo, hi = f"{cfg.rating_min:g}", f"{cfg.rating_max:g}"
    return f"""
        CASE reason
            WHEN 'rating is not a number' THEN 'rating ' || to_json(rating_raw)::VARCHAR
            WHEN 'rating out of range' THEN 'rating ' || rating_raw || ' is outside {lo}..{hi}'
            WHEN 'unparseable timestamp' THEN 'timestamp ' || to_json(ts_raw)::VARCHAR
            WHEN '{TS_RANGE}' THEN 'timestamp ' || to_json(ts_raw)::VARCHAR
                || ' is outside {cfg.min_year}..{cfg.max_year}'
            WHEN '{DUPLICATE}'
                THEN 'same user and item as line ' || (first_row + {line_offset})
            ELSE reason
        END
    """


def record_reason_sql() -> str:
    """Our reason for a record DuckDB refused, from its error types (one per record)."""
    cases = " ".join(f"WHEN list_contains(types, '{k}') THEN '{v}'"
                     for k, v in RECORD_REASONS.items())
    return (f"(SELECT CASE {cases} ELSE '{MALFORMED}' END "
            "FROM (SELECT list(error_type) AS types))")


def checked_text_sql(text: str, same: str) -> str:
    """The text of the second pass, failing the statement unless ``same`` holds (the row is
    the first pass's); a NULL there fails too."""
    return f"CASE WHEN {same} THEN {text} ELSE error('{CHANGED}') END"


def rejects_select_sql(rows: str, duplicate_texts: str, malformed: str, cfg: IngestConfig,
                       line_offset: int) -> tuple[str, list[Any]]:
    """Every rejected row as (line, row_number, reason, detail, user_id, item_id, rating,
    text): rows with a reason, their text from ``duplicate_texts`` for duplicates, then the
    ``malformed`` records DuckDB refused; and the statement's parameters.

    Their text is redacted as the stored reviews' is (``cfg.redact_pii``). A malformed
    record's text is its whole line, raw user id included: with ``cfg.hash_user_ids`` it is
    left out (NULL).
    """
    text, params = redacted_text_sql("text") if cfg.redact_pii else ("text", [])
    line, line_params = "csv_line", []
    if cfg.hash_user_ids:
        line = "NULL::VARCHAR"
    elif cfg.redact_pii:
        line, line_params = redacted_text_sql(line)
    return f"""
        SELECT row_number + {line_offset} AS line, row_number, reason,
               {reject_detail_sql(cfg, line_offset)} AS detail,
               user_id, item_id, rating_raw AS rating, {text} AS text
        FROM (SELECT r.row_number, r.reason, r.user_id, r.item_id, r.ts_raw, d.first_row,
                     coalesce(d.rating_raw, r.rating_raw) AS rating_raw,
                     coalesce(d.text, r.rej_text) AS text
              FROM {rows} AS r LEFT JOIN {duplicate_texts} AS d ON d.rid = r.rid
              WHERE r.reason IS NOT NULL)
        UNION ALL
        SELECT line, line - 1 AS row_number, reason,
               error, NULL, NULL, NULL, {line}
        FROM {malformed}
    """, [*params, *line_params]
