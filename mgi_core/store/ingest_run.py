"""One ingest's transaction: its cursor, temporary tables, file scan and DuckDB settings.

The file streams through DuckDB twice, never through Python row objects:

1. A narrow pass (``read_csv`` / ``read_parquet`` into a temporary table) keeps every column
   but the review text, plus the text's length, and the text itself only for rows that are
   rejected. Validation is SQL over that pass: every row gets a reject reason or none;
   duplicates and the train/val/test split are computed on the narrow table too
   (:mod:`mgi_core.store.ingest_validate`).
2. A second pass streams the file straight into ``reviews``, the text joined to the narrow
   table's verdicts by position (both scans yield the records in file order; each row is
   checked against the first pass: CSV by the text's length, Parquet by row number)
   (:mod:`mgi_core.store.ingest_write`).

So the text is held in memory only a row group at a time. One ingest is one transaction:
after any failure the database holds exactly what it held before.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import duckdb

from mgi_core.store import Store
from mgi_core.store.ingest_reader import FileScan
from mgi_core.store.ingest_settings import IngestSettings

PROGRESS_AFTER_MS = 500  # DuckDB reports a statement's progress once it has run this long


@dataclass
class TempTables:
    """Names of one ingest's temp tables (made inside the transaction: a rollback drops
    them; on success they are dropped explicitly). ``t.raw`` is ``_mgi_raw_<tag>``."""

    tag: str

    def __getattr__(self, part: str) -> str:
        if part.startswith("_"):
            raise AttributeError(part)
        return f"_mgi_{part}_{self.tag}"


@dataclass
class IngestRun:
    """What the steps of one ingest share inside its transaction.

    Attributes:
        tx: the transaction's cursor.
        scan: how the file is read (the same way by every pass).
        settings: the DuckDB settings changed for this ingest.
        tables: the temp tables' names.
        base: ``min(rowid)`` of ``tables.raw`` (rowids are offset inside a transaction).
        rows: a subquery over ``tables.raw`` adding each row's key ``rid`` and its
            ``row_number`` (set by ``ingest_validate.number_rows``).
    """

    tx: duckdb.DuckDBPyConnection
    scan: FileScan
    settings: IngestSettings
    tables: TempTables = field(default_factory=lambda: TempTables(uuid.uuid4().hex[:12]))
    base: int = 0
    rows: str = ""

    def statement_fraction(self) -> float | None:
        """How far the statement running on ``tx`` is, 0 to 1 (callable from another
        thread); None when none runs or DuckDB cannot tell yet."""
        percent = self.tx.query_progress()
        return None if percent < 0 else min(1.0, percent / 100)


@contextmanager
def ingest_transaction(store: Store, scan: FileScan,
                       memory_cap: int | None) -> Iterator[IngestRun]:
    """A write transaction for one ingest, under ``memory_cap`` bytes (None: the store's
    limit). Commits when the block ends (its temp tables dropped); any exception rolls
    everything back. The DuckDB settings changed are restored either way."""
    with IngestSettings(store.cursor(), memory_cap) as settings:
        # Both passes rely on scans in file order. DuckDB tracks each statement's progress
        # (for IngestRun.statement_fraction) but prints nothing.
        settings.set(preserve_insertion_order=True, enable_progress_bar=True,
                     enable_progress_bar_print=False, progress_bar_time=PROGRESS_AFTER_MS)
        with store.transaction() as tx:
            run = IngestRun(tx, scan, settings)
            yield run
            t = run.tables
            for table in (t.spl, t.dtext, t.dups, t.num, t.raw, t.rej, *scan.rejects):
                tx.execute(f"DROP TABLE IF EXISTS {table}")
