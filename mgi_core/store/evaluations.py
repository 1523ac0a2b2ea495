"""Evaluation results in the store: ``evaluations`` (one row per metric of a system),
``per_user_metrics`` (one row per user and metric, for paired comparisons) and
``fusion_weights`` (the weights a fused scorer learned on validation).

A *system* is a (version, scorer) pair; results are keyed by (dataset, version, scorer,
split) and replaced as a whole by each evaluation.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import duckdb
import pandas as pd

from mgi_core.store import Store

# Columns of ``per_user_metrics`` after (dataset, version), in table order.
PER_USER_COLUMNS = ("scorer", "split", "user_id", "metric", "value")
# One summary row: (scorer, metric, value, n_users, details JSON).
SummaryRow = tuple[str, str, float, int, str]


def replace_evaluation(
    store: Store,
    dataset: str,
    version: str,
    split: str,
    scorers: Iterable[str],
    per_user: pd.DataFrame,
    summary: Sequence[SummaryRow],
    weights: Mapping[str, Mapping[str, Any]],
) -> None:
    """Replace the stored results of ``scorers`` on (dataset, version, split) in one
    transaction, with the fusion weights each fused scorer learned.

    Args:
        scorers: the systems' scorers: their old rows go, whether or not they have new ones.
        per_user: long frame with the columns ``PER_USER_COLUMNS``.
        summary: (scorer, metric, value, n_users, details JSON) rows for ``evaluations``.
        weights: scorer -> the fusion weights it learned (``save_fusion_weights``).
    """
    rows = per_user.loc[:, list(PER_USER_COLUMNS)].copy()
    rows.insert(0, "version", version)
    rows.insert(0, "dataset", dataset)
    with store.transaction() as tx:
        for scorer in scorers:
            params = [dataset, version, scorer, split]
            where = "dataset = ? AND version = ? AND scorer = ? AND split = ?"
            tx.execute(f"DELETE FROM per_user_metrics WHERE {where}", params)
            tx.execute(f"DELETE FROM evaluations WHERE {where}", params)
        tx.register("_mgi_per_user", rows)
        tx.execute(
            "INSERT INTO per_user_metrics SELECT dataset, version, scorer, split, "
            "user_id, metric, value FROM _mgi_per_user"
        )
        tx.unregister("_mgi_per_user")
        tx.executemany(
            "INSERT INTO evaluations (dataset, version, scorer, split, metric, value, n_users, "
            "details) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [[dataset, version, scorer, split, metric, value, n_users, details]
             for scorer, metric, value, n_users, details in summary],
        )
        for scorer, scorer_weights in weights.items():
            save_fusion_weights(tx, dataset, version, scorer, scorer_weights)


def save_fusion_weights(
    target: Store | duckdb.DuckDBPyConnection,
    dataset: str,
    version: str,
    scorer: str,
    weights: Mapping[str, Any],
) -> None:
    """Replace the fusion weights of (dataset, version, scorer); read by ``fusion_weights``.

    Args:
        target: a store, or the cursor of the caller's transaction.
        weights: feature -> weight, and optionally ``"cold"`` -> the cold segment's weights.
    """
    cur = target.cursor() if isinstance(target, Store) else target
    cur.execute(
        "DELETE FROM fusion_weights WHERE dataset = ? AND version = ? AND scorer = ?",
        [dataset, version, scorer],
    )
    cur.execute(
        "INSERT INTO fusion_weights (dataset, version, scorer, weights) VALUES (?, ?, ?, ?)",
        [dataset, version, scorer, json.dumps(weights)],
    )


def fusion_weights(
    store: Store, dataset: str, version: str, scorer: str
) -> dict[str, Any] | None:
    """The fusion weights ``save_fusion_weights`` stored for (dataset, version, scorer), the
    newest; None when there are none."""
    row = store.cursor().execute(
        "SELECT weights FROM fusion_weights WHERE dataset = ? AND version = ? AND scorer = ? "
        "ORDER BY created_at DESC LIMIT 1",
        [dataset, version, scorer],
    ).fetchone()
    return json.loads(row[0]) if row else None


def per_user_metrics(
    store: Store, dataset: str, version: str, scorer: str, split: str = "test"
) -> pd.DataFrame:
    """A system's stored per-user metrics, long: columns ``user_id``, ``metric``, ``value``."""
    return store.cursor().execute(
        "SELECT user_id, metric, value FROM per_user_metrics WHERE dataset = ? AND "
        "version = ? AND scorer = ? AND split = ?",
        [dataset, version, scorer, split],
    ).df()


def is_evaluated(
    store: Store, dataset: str, version: str, scorer: str, split: str = "test"
) -> bool:
    """Whether an evaluation of the system on (dataset, split) is stored (even one that had
    no user to rank)."""
    row = store.cursor().execute(
        "SELECT count(*) FROM evaluations WHERE dataset = ? AND version = ? AND "
        "scorer = ? AND split = ?",
        [dataset, version, scorer, split],
    ).fetchone()
    return bool(row[0])


def appends_since_evaluated(store: Store, dataset: str, version: str, scorer: str,
                            split: str = "test") -> tuple[int, object]:
    """(appends of ``dataset`` made after the system's stored evaluation, the latest one's
    time): an append splits its users again, so an evaluation made before it ranked other
    held-out reviews than one made after. (0, None) when none, or when not evaluated."""
    row = store.cursor().execute(
        """SELECT count(a.seq), max(a.appended_at) FROM dataset_appends a
           WHERE a.dataset = ? AND a.appended_at > (
               SELECT max(created_at) FROM evaluations WHERE dataset = ? AND version = ?
               AND scorer = ? AND split = ?)""",
        [dataset, dataset, version, scorer, split]).fetchall()[0]
    return int(row[0] or 0), row[1]


def held_out_l1(store: Store, dataset: str, split: str = "test") -> dict[str, str | None]:
    """user_id -> the L1 category of the user's held-out ``split`` item (users whose item is
    in the catalogue)."""
    rows = store.cursor().execute(
        """SELECT r.user_id, i.l1 FROM reviews r JOIN items i
           ON i.dataset = r.dataset AND i.item_id = r.item_id
           WHERE r.dataset = ? AND r.split = ?""",
        [dataset, split],
    ).fetchall()
    return dict(rows)
