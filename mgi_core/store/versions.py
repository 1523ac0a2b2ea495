"""The model-version registry: what was trained, on what, how it did, and whether it is usable."""

from __future__ import annotations

import json
from typing import Any

import duckdb

from mgi_core.errors import ModelVersionNotFound
from mgi_core.store import Store

BASE_VERSION = "base"
RETIRED = "retired"  # a ready version left with no embeddings of any dataset
VERSION_COLUMNS = (
    "version", "kind", "dataset", "base_model", "strategy", "status", "metrics", "dim",
    "device", "data_hash", "artefact_dir", "message", "created_at", "finished_at", "config",
    "library_versions", "heads",
)


# How many reviews of users since forgotten were in the version's training snapshots
# (``forgotten_data``, written by ``store.forget``): 0 for a version trained on none.
FORGOTTEN_REVIEWS = (
    "(SELECT coalesce(sum(f.n_reviews), 0) FROM forgotten_data f "
    "WHERE f.version = v.version)::BIGINT AS forgotten_reviews"
)


def _row_dict(names: list[str], row: tuple) -> dict[str, Any]:
    out = dict(zip(names, row, strict=True))
    for key in ("metrics", "config", "library_versions", "heads"):
        if isinstance(out.get(key), str):
            out[key] = json.loads(out[key])
    return out


def list_versions(store: Store, dataset: str | None = None,
                  usable_only: bool = False) -> list[dict[str, Any]]:
    """Versions, newest first.

    ``dataset``: those with embeddings for it (base included), and the runs on it that are
    not ready (running, failed, cancelled) made since the dataset was ingested: a dataset
    deleted and added again under its name is not offered the old one's versions.

    Each row also has ``forgotten_reviews``: how many reviews of users forgotten since were
    in its training data (0 for none): a version "trained with forgotten data".
    """
    sql = (f"SELECT {', '.join('v.' + c for c in VERSION_COLUMNS)}, {FORGOTTEN_REVIEWS} "
           "FROM model_versions v")
    params: list[Any] = []
    where = []
    if dataset is not None:
        where.append(
            "EXISTS (SELECT 1 FROM embedding_sets e WHERE e.version = v.version "
            "AND e.dataset = ?) OR (v.dataset = ? AND v.status <> 'ready' AND v.created_at "
            ">= (SELECT d.created_at FROM datasets d WHERE d.name = ?))"
        )
        params += [dataset, dataset, dataset]
    if usable_only:
        where.append("v.status = 'ready'")
    if where:
        sql += " WHERE " + " AND ".join(f"({w})" for w in where)
    sql += " ORDER BY v.kind = 'base' DESC, v.created_at DESC"
    cur = store.cursor().execute(sql, params)
    names = [d[0] for d in cur.description]
    return [_row_dict(names, row) for row in cur.fetchall()]


def get_version(store: Store, version: str, usable: bool = True) -> dict[str, Any]:
    """One version. Raises ModelVersionNotFound when absent (or not usable)."""
    cur = store.cursor().execute(
        f"SELECT {', '.join('v.' + c for c in VERSION_COLUMNS)}, {FORGOTTEN_REVIEWS} "
        "FROM model_versions v WHERE v.version = ?", [version]
    )
    row = cur.fetchone()
    if row is None:
        known = ", ".join(v["version"] for v in list_versions(store, usable_only=True))
        raise ModelVersionNotFound(
            f"No model version {version!r} (usable: {known or 'none yet'}). Train one on the "
            "Train page or with python -m mgi_core train."
        )
    info = _row_dict([d[0] for d in cur.description], row)
    if usable and info["status"] != "ready":
        raise ModelVersionNotFound(
            f"Version {version!r} is {info['status']}, not usable"
            + (f": {info['message']}" if info.get("message") else ".")
        )
    return info


def next_version_id(store: Store) -> str:
    """v1, v2, … in order of creation (failed and cancelled runs keep their number)."""
    rows = store.cursor().execute(
        "SELECT version FROM model_versions WHERE regexp_matches(version, '^v[0-9]+$')"
    ).fetchall()
    n = max((int(r[0][1:]) for r in rows), default=0)
    return f"v{n + 1}"


def training_log(store: Store, version: str) -> list[tuple[int, int, str, float]]:
    """(step, epoch, metric, value) rows of a version's training, in order."""
    return store.cursor().execute(
        "SELECT step, epoch, metric, value FROM train_log WHERE version = ? "
        "ORDER BY step, metric",
        [version],
    ).fetchall()


def retire_unembedded(target: Store | duckdb.DuckDBPyConnection, dataset: str) -> None:
    """Retire the ready versions trained on ``dataset`` that have no embeddings left.

    Their status becomes ``RETIRED`` with a message that says the dataset was deleted, so
    ``get_version`` refuses them and ``list_versions(usable_only=True)`` leaves them out.

    Args:
        target: a store, or the cursor of the caller's transaction (the one that purged
            the dataset).
        dataset: the deleted dataset.
    """
    cur = target.cursor() if isinstance(target, Store) else target
    cur.execute(
        """UPDATE model_versions
           SET status = ?, message = 'Its training dataset ' || dataset || ' was deleted on '
               || strftime(current_timestamp, '%Y-%m-%d %H:%M')
               || ' with its embeddings; train a new version on the data you use now.'
           WHERE dataset = ? AND status = 'ready' AND NOT EXISTS (
               SELECT 1 FROM embedding_sets e WHERE e.version = model_versions.version)""",
        [RETIRED, dataset],
    )
