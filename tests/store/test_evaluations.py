"""store/evaluations.py: the fusion-weights pair and replacing a system's results."""

from __future__ import annotations

import pandas as pd

from mgi_core.store import Store
from mgi_core.store.evaluations import (
    fusion_weights,
    is_evaluated,
    per_user_metrics,
    replace_evaluation,
    save_fusion_weights,
)


def test_fusion_weights_round_trip_and_replace(store: Store) -> None:
    assert fusion_weights(store, "d", "v1", "mgi_hybrid") is None
    weights = {"content": 0.5, "popularity": -0.25, "cold": {"content": 1.0}}
    save_fusion_weights(store, "d", "v1", "mgi_hybrid", weights)
    assert fusion_weights(store, "d", "v1", "mgi_hybrid") == weights
    save_fusion_weights(store, "d", "v1", "mgi_hybrid", {"content": 2.0})  # replaces
    assert fusion_weights(store, "d", "v1", "mgi_hybrid") == {"content": 2.0}
    assert fusion_weights(store, "d", "v1", "content_hybrid") is None
    assert fusion_weights(store, "other", "v1", "mgi_hybrid") is None


def _per_user(scorer: str, values: dict[str, float]) -> pd.DataFrame:
    return pd.DataFrame([{"scorer": scorer, "split": "test", "user_id": u, "metric": "ndcg@10",
                          "value": v} for u, v in values.items()])


def test_replace_evaluation_replaces_the_systems_rows_as_a_whole(store: Store) -> None:
    def replace(values: dict[str, float], weights: dict) -> None:
        summary = [("mgi_hybrid", "ndcg@10", sum(values.values()) / len(values), len(values),
                    "{}")]
        replace_evaluation(store, "d", "v1", "test", ["mgi_hybrid"],
                           _per_user("mgi_hybrid", values), summary, weights)

    assert not is_evaluated(store, "d", "v1", "mgi_hybrid")
    replace({"a": 1.0, "b": 0.5}, {"mgi_hybrid": {"content": 1.0}})
    replace({"c": 0.25}, {"mgi_hybrid": {"content": 3.0}})  # a second evaluation
    assert is_evaluated(store, "d", "v1", "mgi_hybrid")
    long = per_user_metrics(store, "d", "v1", "mgi_hybrid")
    assert long.values.tolist() == [["c", "ndcg@10", 0.25]]  # a and b are gone
    n_summary = store.cursor().execute("SELECT count(*) FROM evaluations").fetchone()[0]
    assert n_summary == 1
    assert fusion_weights(store, "d", "v1", "mgi_hybrid") == {"content": 3.0}
