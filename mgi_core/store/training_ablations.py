"""The ``training_ablations`` table: which version each variant of an ablation of the
training options made (``mgi_core.evaluation.training_ablation``).

One ablation run is a ``name``; each of its variants maps to one model version and the
TrainConfig fields the variant set. The row is written once its version is ready, so an
interrupted run resumes with the variants that have none.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from mgi_core.store import Store


def record_variant(store: Store, name: str, dataset: str, variant: str, version: str,
                   overrides: Mapping[str, Any]) -> None:
    """Record (or replace) the version ``variant`` of ablation ``name`` made on ``dataset``."""
    store.cursor().execute(
        """INSERT INTO training_ablations (name, dataset, variant, version, overrides)
           VALUES (?, ?, ?, ?, ?)
           ON CONFLICT (name, variant) DO UPDATE SET dataset = excluded.dataset,
               version = excluded.version, overrides = excluded.overrides,
               created_at = now()::TIMESTAMP""",
        [name, dataset, variant, version, json.dumps(dict(overrides), sort_keys=True)],
    )


def ablation_variants(store: Store, name: str) -> list[dict[str, Any]]:
    """The variants recorded for ablation ``name``, oldest first: dataset, variant, version,
    overrides (a dict) and created_at. Empty when there is no such ablation."""
    cur = store.cursor().execute(
        "SELECT dataset, variant, version, overrides, created_at FROM training_ablations "
        "WHERE name = ? ORDER BY created_at, variant",
        [name],
    )
    names = [d[0] for d in cur.description]
    rows = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    for row in rows:
        row["overrides"] = json.loads(row["overrides"])
    return rows


def ablation_names(store: Store, dataset: str | None = None) -> list[str]:
    """Names of the stored training ablations (of ``dataset`` when given), newest first."""
    where, params = ("WHERE dataset = ? ", [dataset]) if dataset is not None else ("", [])
    rows = store.cursor().execute(
        f"SELECT name FROM training_ablations {where}GROUP BY name "
        "ORDER BY max(created_at) DESC, name",
        params,
    ).fetchall()
    return [r[0] for r in rows]
