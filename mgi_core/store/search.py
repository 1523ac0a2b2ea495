"""Hyper-parameter searches in the store: the ``search_studies`` and ``search_trials`` rows,
the snapshot a search reads (train and validation reviews only), and registering a finished
search in one transaction.

The search itself (Optuna, the trials) is in ``mgi_core.jobs.search``; this module only reads
and writes rows.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from mgi_core.store import Store
from mgi_core.store.datasets import export_reviews_parquet

SEARCH_SPLITS = ("train", "val")  # what a search reads; the test split never leaves the store
STUDY_COLUMNS = ("study", "dataset", "base_config", "space", "objective", "direction",
                 "created_at")
TRIAL_COLUMNS = ("study", "dataset", "trial", "state", "params", "value", "val_metrics",
                 "seconds", "finished_at")


@dataclass(frozen=True)
class StudyRecord:
    """A study's row: what its trials start from, what they vary, what they minimise."""

    study: str
    dataset: str
    base_config: dict[str, Any]  # TrainConfig.to_dict()
    space: dict[str, Any]  # the search space as JSON (mgi_core.jobs.search)
    objective: str
    direction: str = "minimize"


@dataclass(frozen=True)
class TrialRecord:
    """One trial's row. ``state``: complete, fail, pruned (running ones are not stored)."""

    trial: int
    state: str
    params: dict[str, Any]
    value: float | None = None
    val_metrics: dict[str, Any] = field(default_factory=dict)
    seconds: float | None = None
    finished_at: str | None = None  # ISO 8601


def export_search_snapshot(store: Store, dataset: str, path: Path) -> None:
    """Write the train and validation reviews of ``dataset`` (the columns of the training
    snapshot, ``store.datasets.SNAPSHOT_COLUMNS``) to the Parquet file ``path``, by review
    id. No test review is written: a search cannot read what it would be judged on."""
    export_reviews_parquet(store, dataset, path, splits=SEARCH_SPLITS)


def search_data_hash(store: Store, dataset: str) -> str:
    """A hash of what a search reads (ids, text, rating, split and item levels of the train
    and validation reviews): a study is continued only on the same data. Test reviews do
    not enter it."""
    row = store.cursor().execute(
        """SELECT count(*), sum(hash(r.review_id, r.user_id, r.item_id, r.text, r.rating,
                                     r.split, i.l1, i.l2, i.l3))
           FROM reviews r LEFT JOIN items i ON i.dataset = r.dataset AND i.item_id = r.item_id
           WHERE r.dataset = ? AND r.split IN ('train', 'val')""",
        [dataset],
    ).fetchone()
    return hashlib.sha256(f"{row[0]}:{row[1]}".encode()).hexdigest()[:16]


def _finite(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _when(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def register_search(store: Store, job_id: str, study: StudyRecord,
                    trials: Sequence[TrialRecord]) -> None:
    """Store a finished search and mark its job finished, in one transaction.

    The study's row is added (or its settings rewritten, keeping when it was created) and
    its trials replace those stored before: a search continued by a later run registers
    every trial of the study once.
    """
    with store.transaction() as tx:
        tx.execute(
            """INSERT INTO search_studies (study, dataset, base_config, space, objective,
                                           direction)
               VALUES (?, ?, ?, ?, ?, ?)
               ON CONFLICT (study) DO UPDATE SET dataset = excluded.dataset,
                   base_config = excluded.base_config, space = excluded.space,
                   objective = excluded.objective, direction = excluded.direction""",
            [study.study, study.dataset, json.dumps(study.base_config, sort_keys=True),
             json.dumps(study.space, sort_keys=True), study.objective, study.direction],
        )
        tx.execute("DELETE FROM search_trials WHERE study = ?", [study.study])
        if trials:
            tx.executemany(
                f"INSERT INTO search_trials ({', '.join(TRIAL_COLUMNS)}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [[study.study, study.dataset, t.trial, t.state,
                  json.dumps(t.params, sort_keys=True), _finite(t.value),
                  json.dumps({k: _finite(v) for k, v in t.val_metrics.items()},
                             sort_keys=True),
                  t.seconds, _when(t.finished_at)] for t in trials],
            )
        tx.execute(
            "UPDATE jobs SET status = 'finished', finished_at = current_timestamp "
            "WHERE job_id = ?",
            [job_id],
        )


def _rows(cur: Any) -> list[dict[str, Any]]:
    names = [d[0] for d in cur.description]
    out = []
    for row in cur.fetchall():
        item = dict(zip(names, row, strict=True))
        for key in ("base_config", "space", "params", "val_metrics"):
            if isinstance(item.get(key), str):
                item[key] = json.loads(item[key])
        out.append(item)
    return out


def list_studies(store: Store, dataset: str) -> list[dict[str, Any]]:
    """The studies of ``dataset``, newest first: ``STUDY_COLUMNS`` (JSON parsed) with
    n_trials, n_complete and best_value (the lowest complete value; None without one)."""
    return _rows(store.cursor().execute(
        f"""SELECT {', '.join('s.' + c for c in STUDY_COLUMNS)},
                   count(t.trial) AS n_trials,
                   count(t.trial) FILTER (WHERE t.state = 'complete') AS n_complete,
                   min(t.value) FILTER (WHERE t.state = 'complete') AS best_value
            FROM search_studies s LEFT JOIN search_trials t ON t.study = s.study
            WHERE s.dataset = ?
            GROUP BY ALL ORDER BY s.created_at DESC, s.study""",
        [dataset],
    ))


def get_study(store: Store, study: str) -> dict[str, Any] | None:
    """The row of ``study`` (``STUDY_COLUMNS``, JSON parsed); None when it is not stored."""
    rows = _rows(store.cursor().execute(
        f"SELECT {', '.join(STUDY_COLUMNS)} FROM search_studies WHERE study = ?", [study]))
    return rows[0] if rows else None


def study_trials(store: Store, study: str) -> list[dict[str, Any]]:
    """The stored trials of ``study`` by number: ``TRIAL_COLUMNS`` (JSON parsed)."""
    return _rows(store.cursor().execute(
        f"SELECT {', '.join(TRIAL_COLUMNS)} FROM search_trials WHERE study = ? ORDER BY trial",
        [study],
    ))


def best_trial(store: Store, study: str) -> dict[str, Any] | None:
    """The complete trial of ``study`` with the lowest value (the earliest on a tie); None
    when no trial completed."""
    rows = _rows(store.cursor().execute(
        f"""SELECT {', '.join(TRIAL_COLUMNS)} FROM search_trials
            WHERE study = ? AND state = 'complete' AND value IS NOT NULL
            ORDER BY value, trial LIMIT 1""",
        [study],
    ))
    return rows[0] if rows else None
