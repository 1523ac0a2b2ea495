"""An ingest's writes, after the first pass's verdicts: the split of each valid row, the
items with their category levels, the rejects, and the second pass into ``reviews``.

Every function runs inside the ingest's transaction (:class:`IngestRun`), after
``ingest_validate`` has set ``run.rows``.
"""

from __future__ import annotations

from collections.abc import Mapping

import duckdb

from mgi_core.config import IngestConfig, SplitConfig
from mgi_core.errors import DataValidationError
from mgi_core.store.ingest_categories import category_levels_sql
from mgi_core.store.ingest_run import IngestRun
from mgi_core.store.ingest_settings import ROW_GROUP_ROWS
from mgi_core.store.ingest_sql import CHANGED, checked_text_sql, mapped_column, rejects_select_sql
from mgi_core.store.redaction import KINDS, counts_sql, redacted_text_sql
from mgi_core.store.reviews_splits import split_sql


def split_rows(run: IngestRun, config: SplitConfig) -> None:
    """The split of each valid row, computed on a narrow projection: temp table ``t.spl``
    has one row per row of ``t.raw``, in ``t.raw``'s order (NULL split: rejected) for the
    positional second pass."""
    rows = run.rows
    run.tx.execute(
        f"""CREATE TEMP TABLE {run.tables.spl} AS
            WITH s AS (SELECT rid, {split_sql(config)} AS split
                       FROM (SELECT rid, row_number, user_id, ts FROM {rows}
                             WHERE reason IS NULL))
            SELECT r.row_number, s.split
            FROM (SELECT rid, row_number FROM {rows}) AS r LEFT JOIN s USING (rid)
            ORDER BY r.rid"""
    )


def write_items(run: IngestRun, dataset: str, category_separator: str,
                into: str = "items") -> None:
    """The items of the valid rows into ``items`` (or the table ``into``, of the same
    columns: an append's staging table): first title, number of reviews, category.

    Category levels are computed once per distinct category path, not per row. An item's
    category is its most common path (ties: the one seen first in the file).
    """
    levels = category_levels_sql("category_raw", category_separator)
    run.tx.execute(
        f"""INSERT INTO {into}
            WITH acc AS (SELECT row_number, item_id, title, category_raw FROM {run.rows}
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
        [dataset],
    )


def write_rejects(run: IngestRun, dataset: str, cfg: IngestConfig, line_offset: int) -> None:
    """Every rejected row into ``ingest_rejects`` (``line_offset``: 1 after a header)."""
    t = run.tables
    select, params = rejects_select_sql(run.rows, t.dtext, t.rej, cfg, line_offset)
    run.tx.execute(
        f"""INSERT INTO ingest_rejects
            SELECT ?, line, row_number, reason, detail, user_id, item_id, rating, text
            FROM ({select})""",
        [dataset, *params],
    )


def accepted_counts(run: IngestRun) -> tuple[int, int, bool]:
    """(distinct users, distinct items, whether any timestamp) of the valid rows."""
    n_users, n_items, has_ts = run.tx.execute(
        f"""SELECT count(DISTINCT user_id), count(DISTINCT item_id), count(ts) > 0
            FROM {run.tables.raw} WHERE reason IS NULL"""
    ).fetchone()
    return int(n_users), int(n_items), bool(has_ts)


def level_counts(run: IngestRun, dataset: str) -> tuple[int, int, int]:
    """Distinct category levels l1, l2, l3 among the dataset's items."""
    n_l1, n_l2, n_l3 = run.tx.execute(
        "SELECT count(DISTINCT l1), count(DISTINCT l2), count(DISTINCT l3) FROM items "
        "WHERE dataset = ?",
        [dataset],
    ).fetchone()
    return int(n_l1), int(n_l2), int(n_l3)


def write_reviews(run: IngestRun, mapping: Mapping[str, str], dataset: str, n_read: int,
                  n_accepted: int, redact: bool = True) -> dict[str, int]:
    """Second pass: stream the file's text into ``reviews`` beside the narrow verdicts.

    CSV has no row number to join on, so the text is matched by position: a POSITIONAL
    JOIN scans the reader (same options, so the same records), ``t.raw`` and ``t.spl``
    (both in file order) in step, on one thread. Each row is checked against the first
    pass (CSV: the text's length; Parquet: the file's row number), or the statement fails.

    With ``redact``, e-mail addresses, phone numbers and URLs in the text are replaced
    (``store.redaction``) on the way in, only in the rows where the first pass found some
    (``t.raw.pii``): only the redacted text is stored. The first pass must have looked for
    them (``load_narrow_pass`` with ``IngestConfig.redact_pii``): pass that setting here.

    Returns:
        ``{kind: number of stored reviews with at least one redaction of that kind}`` for
        ``email``, ``phone``, ``url``; ``{}`` without ``redact``.

    Raises:
        DataValidationError: the file changed since the first pass (other rows, or
            ``n_accepted`` valid rows no more).
        ValueError: ``redact`` after a first pass that did not look for personal data.
    """
    tx, scan, t, settings = run.tx, run.scan, run.tables, run.settings
    if settings.memory_cap:
        row_group_bytes = scan.path.stat().st_size / n_read * ROW_GROUP_ROWS
        settings.set(memory_limit=max(settings.memory_cap, int(2.5 * row_group_bytes)))
    offset = tx.execute("SELECT coalesce(max(review_id), 0) FROM reviews").fetchone()[0]
    text = mapped_column(mapping, "text")
    reader, params = scan.reader(f"{t.rej}_t")
    stored, redaction, counts = "text", [], {}
    if redact:
        stored, redaction = redacted_text_sql("text", "pii")
        counts = _redaction_counts(run)
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
                SELECT review_id, dataset, row_number, user_id, item_id, {stored}, rating,
                       ts, split
                FROM (SELECT {int(offset)} + s.row_number AS review_id, ? AS dataset,
                             s.row_number, v.user_id, v.item_id,
                             {checked_text_sql("f.text", same)} AS text, v.rating, v.ts,
                             s.split, v.pii
                      FROM (SELECT {key}{text} AS text FROM {reader}) AS f
                      POSITIONAL JOIN {t.raw} AS v POSITIONAL JOIN {t.spl} AS s
                      -- a record beyond t.raw's (NULL row_number): the file grew, so fail
                      WHERE s.split IS NOT NULL OR s.row_number IS NULL)""",
            [*redaction, dataset, *params],
        )
        n = tx.fetchone()[0]
    except duckdb.Error as exc:
        if CHANGED in str(exc):
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
    return counts


def _redaction_counts(run: IngestRun) -> dict[str, int]:
    """``{kind: valid rows whose text holds that kind of personal data}``, from the first
    pass's flags (a scan of the narrow table, not of the text)."""
    *counts, unknown = run.tx.execute(
        f"SELECT {counts_sql('pii')}, count(*) FILTER (WHERE pii IS NULL) FROM {run.tables.raw} "
        "WHERE reason IS NULL"
    ).fetchone()
    if unknown:
        raise ValueError("write_reviews(redact=True) after a first pass that did not look for "
                         "personal data (IngestConfig.redact_pii was off): pass redact=False")
    return {kind: int(n) for kind, n in zip(KINDS, counts, strict=True)}
