"""Temporal leave-last-out split per user, the evaluation protocol's split.

Users with at least ``min_reviews`` reviews give their latest review to ``test`` and the
second latest to ``val``; everything else is ``train``. Order is by timestamp (reviews with
no timestamp count as earliest), ties broken by the row in the file, so the split is
reproducible. Nothing of ``val`` or ``test`` may reach fine-tuning, profiles or item
vectors: training data is read with ``split = 'train'``.
"""

from __future__ import annotations

from mgi_core.config import SplitConfig
from mgi_core.store import Store

SPLITS = ("train", "val", "test")


def split_sql(config: SplitConfig) -> str:
    """SQL expression giving the split of a row of (user_id, ts, row_number)."""
    recency = "row_number() OVER (PARTITION BY user_id ORDER BY ts DESC NULLS LAST, " \
        "row_number DESC)"
    return f"""CASE WHEN count(*) OVER (PARTITION BY user_id) >= {int(config.min_reviews)}
                    THEN CASE {recency} WHEN 1 THEN 'test' WHEN 2 THEN 'val' ELSE 'train' END
                    ELSE 'train' END"""


def assign_splits(store: Store, dataset: str, config: SplitConfig | None = None) -> None:
    """Recompute the split column of a stored dataset (one transaction)."""
    cfg = config or SplitConfig()
    with store.transaction() as tx:
        tx.execute(
            f"""UPDATE reviews SET split = s.split
                FROM (SELECT review_id, {split_sql(cfg)} AS split
                      FROM reviews WHERE dataset = ?) AS s
                WHERE reviews.review_id = s.review_id""",
            [dataset],
        )


def split_counts(store: Store, dataset: str) -> dict[str, int]:
    """Number of reviews per split."""
    rows = store.cursor().execute(
        "SELECT split, count(*) FROM reviews WHERE dataset = ? GROUP BY split", [dataset]
    ).fetchall()
    counts = dict.fromkeys(SPLITS, 0)
    counts.update({s: int(n) for s, n in rows})
    return counts
