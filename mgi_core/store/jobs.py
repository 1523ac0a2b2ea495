"""Background jobs in the store: the ``jobs`` table, the version row a training job makes,
and registering a finished run (embeddings, head probabilities, training log) atomically.

The process logic (spawning, liveness, cancelling, polling run folders) is in
``mgi_core.jobs.manager``; this module only reads and writes rows.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from mgi_core.store import Store
from mgi_core.store.embeddings import load_embedding_set
from mgi_core.store.sql import quote_literal

ACTIVE_JOB_COLUMNS = ("job_id", "kind", "version", "dataset", "pid", "run_dir", "started_at")
LISTED_JOB_COLUMNS = ("job_id", "kind", "version", "dataset", "status", "pid", "started_at",
                      "finished_at", "message")


class RunningJob(NamedTuple):
    """A job row in state 'running', with the process recorded as running it."""

    job_id: str
    kind: str  # train | embed
    version: str
    dataset: str
    pid: int | None
    pid_start: int | None  # the process's start time (clock ticks after boot), if known
    detached: bool  # pid leads its own session (a child the app spawned)
    run_dir: str


@dataclass(frozen=True)
class TrainingVersion:
    """The row of the fine-tuned version a train job makes (status 'running' until done)."""

    base_model: str
    strategy: str
    config_json: str  # TrainConfig as JSON
    data_hash: str


@dataclass(frozen=True)
class FinishedRun:
    """What a finished run's folder holds, read by the job manager, to register in one go.

    ``kind`` 'embed' makes the ``version`` row (a base version) if it is absent, from
    ``job_config``; 'train' completes the row its job made (metrics, heads, message), loads
    the head probabilities and replaces the training log.
    """

    job_id: str
    kind: str  # train | embed
    version: str
    dataset: str
    dim: int
    review_embeddings: Path  # Parquet: review_id, embedding
    item_embeddings: Path  # Parquet: item_id, n_train_reviews, embedding
    device: str | None
    library_versions: dict[str, str]
    job_config: dict[str, Any] = field(default_factory=dict)  # embed: job.json's config
    metrics: dict[str, Any] = field(default_factory=dict)  # train: best-epoch validation
    message: str | None = None  # train: notices of the run
    heads: dict[str, list[str]] = field(default_factory=dict)  # train: labels per head
    head_probs: Path | None = None  # train: Parquet review_id, task, probs (if written)
    log_rows: Sequence[tuple[str, int, int, str, float]] = ()  # train_log rows


def _dicts(cur: Any) -> list[dict[str, Any]]:
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def running_job(store: Store) -> dict[str, Any] | None:
    """The most recently started job in state 'running' (``ACTIVE_JOB_COLUMNS``), or None.

    A pure read: states are as last refreshed (``jobs.manager.refresh_jobs``).
    """
    cur = store.cursor().execute(
        f"SELECT {', '.join(ACTIVE_JOB_COLUMNS)} FROM jobs "
        "WHERE status = 'running' ORDER BY started_at DESC LIMIT 1"
    )
    rows = _dicts(cur)
    return rows[0] if rows else None


def running_jobs(store: Store) -> list[RunningJob]:
    """Every job in state 'running'."""
    rows = store.cursor().execute(
        "SELECT job_id, kind, version, dataset, pid, pid_start, detached, run_dir FROM jobs "
        "WHERE status = 'running'"
    ).fetchall()
    return [RunningJob(*row[:6], bool(row[6]), row[7]) for row in rows]


def running_job_on_dataset(store: Store, dataset: str) -> RunningJob | None:
    """A job in state 'running' on ``dataset``, or None."""
    return next((job for job in running_jobs(store) if job.dataset == dataset), None)


def running_job_of_version(store: Store, version: str) -> RunningJob | None:
    """The latest job in state 'running' that makes ``version``, or None."""
    row = store.cursor().execute(
        "SELECT job_id, kind, version, dataset, pid, pid_start, detached, run_dir FROM jobs "
        "WHERE version = ? AND status = 'running' ORDER BY started_at DESC LIMIT 1",
        [version],
    ).fetchone()
    return None if row is None else RunningJob(*row[:6], bool(row[6]), row[7])


def last_job_status(store: Store, version: str) -> str | None:
    """The status of the latest job that made ``version``; None when no job did."""
    row = store.cursor().execute(
        "SELECT status FROM jobs WHERE version = ? ORDER BY started_at DESC LIMIT 1", [version]
    ).fetchone()
    return None if row is None else row[0]


def list_jobs(store: Store) -> list[dict[str, Any]]:
    """Every job (``LISTED_JOB_COLUMNS``), newest first. A pure read."""
    return _dicts(store.cursor().execute(
        f"SELECT {', '.join(LISTED_JOB_COLUMNS)} FROM jobs ORDER BY started_at DESC, job_id"
    ))


def insert_job(store: Store, *, job_id: str, kind: str, version: str, dataset: str,
               run_dir: Path, pid: int, pid_start: int | None,
               training: TrainingVersion | None = None) -> None:
    """Add a job in state 'running', owned by process ``pid`` (not detached), and for a
    train job (``training`` given) its version row, in one transaction."""
    with store.transaction() as tx:
        if training is not None:
            tx.execute(
                """INSERT INTO model_versions (version, kind, dataset, base_model, strategy,
                       config, data_hash, library_versions, status, artefact_dir)
                   VALUES (?, 'fine-tuned', ?, ?, ?, ?, ?, '{}', 'running', ?)""",
                [version, dataset, training.base_model, training.strategy,
                 training.config_json, training.data_hash, str(run_dir)],
            )
        tx.execute(
            "INSERT INTO jobs (job_id, kind, version, dataset, run_dir, status, pid, "
            "pid_start, detached) VALUES (?, ?, ?, ?, ?, 'running', ?, ?, false)",
            [job_id, kind, version, dataset, str(run_dir), pid, pid_start],
        )


def set_job_process(store: Store, run_dir: Path, pid: int, pid_start: int | None) -> None:
    """Record that the job of ``run_dir`` now runs in child process ``pid`` (detached)."""
    store.cursor().execute(
        "UPDATE jobs SET pid = ?, pid_start = ?, detached = true WHERE run_dir = ?",
        [pid, pid_start, str(run_dir)],
    )


def job_id_of_run(store: Store, run_dir: Path) -> str | None:
    """The id of the job whose run folder is ``run_dir``; None when there is none."""
    row = store.cursor().execute(
        "SELECT job_id FROM jobs WHERE run_dir = ?", [str(run_dir)]
    ).fetchone()
    return None if row is None else row[0]


def close_job(store: Store, job_id: str, kind: str, version: str, state: str,
              message: str | None) -> None:
    """End a job in ``state`` (failed, cancelled) with ``message``; a train job's version
    row takes the same state and message. One transaction."""
    with store.transaction() as tx:
        tx.execute(
            "UPDATE jobs SET status = ?, message = ?, finished_at = current_timestamp "
            "WHERE job_id = ?",
            [state, message, job_id],
        )
        if kind == "train":
            tx.execute(
                "UPDATE model_versions SET status = ?, message = ?, "
                "finished_at = current_timestamp WHERE version = ?",
                [state, message, version],
            )


def register_finished_run(store: Store, run: FinishedRun) -> None:
    """Make a finished run a usable version and mark its job finished, in one transaction.

    Raises:
        duckdb.IOException: a Parquet file is missing or unreadable (nothing is written).
    """
    with store.transaction() as tx:
        load_embedding_set(tx, run.version, run.dataset, run.dim, run.review_embeddings,
                           run.item_embeddings)
        if run.kind == "embed":
            exists = tx.execute(
                "SELECT count(*) FROM model_versions WHERE version = ?", [run.version]
            ).fetchone()[0]
            if not exists:
                tx.execute(
                    """INSERT INTO model_versions (version, kind, dataset, base_model, strategy,
                           config, library_versions, status, dim, device, finished_at)
                       VALUES (?, 'base', NULL, ?, NULL, ?, ?, 'ready', ?, ?,
                               current_timestamp)""",
                    [run.version, run.job_config["base_model"], json.dumps(run.job_config),
                     json.dumps(run.library_versions), run.dim, run.device],
                )
        else:
            tx.execute(
                """UPDATE model_versions SET status = 'ready', metrics = ?, dim = ?, device = ?,
                       library_versions = ?, finished_at = current_timestamp, message = ?,
                       heads = ?
                   WHERE version = ?""",
                [json.dumps(run.metrics), run.dim, run.device,
                 json.dumps(run.library_versions), run.message, json.dumps(run.heads),
                 run.version],
            )
            if run.head_probs is not None:
                tx.execute(
                    "DELETE FROM review_head_probs WHERE version = ? AND dataset = ?",
                    [run.version, run.dataset],
                )
                tx.execute(
                    f"""INSERT INTO review_head_probs
                        SELECT ?, ?, review_id, task, probs
                        FROM read_parquet({quote_literal(run.head_probs)})""",
                    [run.version, run.dataset],
                )
            tx.execute("DELETE FROM train_log WHERE version = ?", [run.version])
            if run.log_rows:
                tx.executemany("INSERT INTO train_log VALUES (?, ?, ?, ?, ?)",
                               list(run.log_rows))
        tx.execute(
            "UPDATE jobs SET status = 'finished', finished_at = current_timestamp "
            "WHERE job_id = ?",
            [run.job_id],
        )
