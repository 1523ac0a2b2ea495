"""Append a review file to a stored dataset: new reviews for existing and new users.

The file is read and validated exactly as an ingest reads it (``data.ingest``: formats,
encodings, rejects, redaction, user-id hashing with the dataset's own settings), plus one
more verdict: a (user_id, item_id) the dataset already holds is rejected. The valid rows
become new reviews, the users they touch are split again (the rule is
``store.ingest_append.resplit_touched``'s; README, "Appending reviews"), and the append is
recorded. One transaction: a failure stores nothing.

Appending stores text only. The vectors come after, from ``profiles.incremental``: the new
reviews are embedded with a version (``mgi append`` does it with the dataset's current
version; the app starts it as a background job) and the touched users' profiles and items'
vectors are updated, without retraining.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

from mgi_core.config import IngestConfig, SplitConfig
from mgi_core.data.files import FileKind
from mgi_core.data.ingest import (
    IngestReport,
    RowSink,
    StageCallback,
    read_and_store,
)
from mgi_core.data.privacy import dataset_salt
from mgi_core.errors import DataValidationError, JobError
from mgi_core.store import Store
from mgi_core.store import ingest_append as sql
from mgi_core.store.datasets import get_dataset
from mgi_core.store.ingest_registry import registered_file
from mgi_core.store.ingest_run import IngestRun
from mgi_core.store.ingest_write import write_reviews
from mgi_core.store.jobs import running_job_on_dataset

log = logging.getLogger(__name__)


@dataclass
class AppendReport:
    """What an append did: the ingest report of its file, and what the append changed.

    Attributes:
        report: the file's validation report (its ``n_users``: users with appended reviews).
        seq: the append's number in the dataset (1 for the first).
        first_review_id, last_review_id: the appended reviews' ids.
        n_new_users: users the dataset did not have.
        n_new_items: items the dataset did not have.
        n_moved: stored validation/test reviews that moved to train (their users' newer
            reviews are held out now).
    """

    report: IngestReport
    seq: int = 0
    first_review_id: int = 0
    last_review_id: int = 0
    n_new_users: int = 0
    n_new_items: int = 0
    n_moved: int = 0
    notices: list[str] = field(default_factory=list)

    def summary(self) -> str:
        r = self.report
        text = (f"{r.dataset}: {r.n_accepted:,} of {r.n_read:,} rows appended "
                f"({r.n_users:,} users, {self.n_new_users:,} of them new; "
                f"{self.n_new_items:,} new items), {r.n_rejected:,} rejected")
        if r.rejected_by_reason:
            text += ": " + "; ".join(f"{k} ({n:,})" for k, n in r.rejected_by_reason.items())
        return text + "."

    def to_dict(self) -> dict[str, object]:
        return {**self.report.to_dict(), "seq": self.seq,
                "first_review_id": self.first_review_id,
                "last_review_id": self.last_review_id, "n_new_users": self.n_new_users,
                "n_new_items": self.n_new_items, "n_moved": self.n_moved,
                "append_notices": self.notices}


def stored_ingest_config(store: Store, dataset: str) -> IngestConfig:
    """The ingest settings dataset ``dataset`` was stored with (newer fields: defaults)."""
    entry = registered_file(store, dataset)
    if entry is None:
        get_dataset(store, dataset)  # raises DatasetNotFoundError with the known names
    known = {f for f in IngestConfig.__dataclass_fields__}
    stored = {k: v for k, v in json.loads(entry.config).items() if k in known}
    return IngestConfig.from_dict(stored)


def append_file(
    store: Store,
    path: str | Path,
    dataset: str,
    mapping: Mapping[str, str | None] | None = None,
    file_name: str | None = None,
    split_config: SplitConfig | None = None,
    on_stage: StageCallback | None = None,
) -> AppendReport:
    """Validate a review file and add its valid rows to the stored dataset ``dataset``.

    Args:
        store: the open store (takes one write transaction).
        path: a review file, as for ``ingest_file``; its columns need not be named as the
            dataset's first file's were (``mapping`` as for ``ingest_file``).
        dataset: a stored dataset.
        file_name: the name to record (an uploaded file's original name).
        split_config: the split rule's ``min_reviews`` (default: the ingest's default).
        on_stage: told of each stage, as for ``ingest_file``.

    Raises:
        DatasetNotFoundError: no dataset ``dataset``.
        JobError: a job is running on the dataset (its snapshot would no longer match).
        DataValidationError: the file as a whole is rejected, or no row is new; nothing
            was stored.
    """
    path = Path(path)
    file_name = file_name or path.name
    cfg = stored_ingest_config(store, dataset)
    if cfg.hash_user_ids:
        dataset_salt(store, dataset)  # the salt its users were hashed with, or a clear error
    running = running_job_on_dataset(store, dataset)
    if running is not None:
        raise JobError(
            f"A {running.kind} job ({running.version}) is running on {dataset!r}. Append "
            "when it has finished, or cancel it: it works on the reviews as they were."
        )
    if not path.exists():
        raise DataValidationError(f"File not found: {path}")
    if path.stat().st_size > cfg.max_bytes:
        raise DataValidationError(
            f"{file_name} is {path.stat().st_size:,} bytes, above the limit of "
            f"{cfg.max_bytes:,}. Split the file, or raise max_bytes."
        )
    result = AppendReport(report=IngestReport(dataset, file_name, "", "", None, None, {}))
    splits = split_config or SplitConfig()

    def check(run: IngestRun, report: IngestReport) -> None:
        sql.mark_stored_pairs(run, dataset)

    def store_rows(run: IngestRun, kind: FileKind, mapping: dict[str, str],
                   cfg: IngestConfig, split_config: SplitConfig | None, report: IngestReport,
                   line_offset: int, digest: Future[str]) -> None:
        _append_rows(run, mapping, cfg, splits, report, digest, result)

    report = read_and_store(store, path, dataset, mapping, cfg, file_name, splits, on_stage,
                            RowSink(check, store_rows))
    result.report = report
    log.info("appended %s", result.summary())
    return result


def _append_rows(run: IngestRun, mapping: dict[str, str], cfg: IngestConfig,
                 splits: SplitConfig, report: IngestReport, digest: Future[str],
                 result: AppendReport) -> None:
    """The writes of an append, on its transaction."""
    name, tx = report.dataset, run.tx
    sql.provisional_splits(run)
    first_id = sql.next_review_id(tx)
    result.n_new_items = sql.merge_items(run, name, cfg.category_separator)
    redactions = write_reviews(run, mapping, name, report.n_read, report.n_accepted,
                               redact=cfg.redact_pii)
    report.redactions = redactions
    last_id = sql.next_review_id(tx) - 1
    result.n_moved = sql.resplit_touched(tx, name, first_id, splits)
    report.n_users, result.n_new_users = sql.appended_users(tx, name, first_id)
    report.n_items = result.n_new_items
    sql.refresh_counts(tx, name, report.n_rejected, redactions)
    report.file_hash = digest.result()
    result.seq = sql.record_append(
        tx, name, report.file_name, report.file_hash, first_id, last_id, report.n_accepted,
        report.n_rejected, report.n_users, result.n_new_users, result.n_moved, redactions)
    result.first_review_id, result.last_review_id = first_id, last_id
    if result.n_moved:
        result.notices.append(
            f"{result.n_moved:,} stored validation/test reviews moved to train: their "
            "users' appended reviews are newer, so those are held out now. Evaluations "
            "stored before this append used the earlier split; evaluate again to compare.")
