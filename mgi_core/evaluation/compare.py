"""A/B comparison of (version, scorer) pairs on the same users, from stored per-user metrics.

``compare(store, "base:content_hybrid", "v2:mgi_hybrid", dataset)`` gives per-metric means,
the paired mean difference (B − A) with a bootstrap 95% CI, a Wilcoxon signed-rank p-value,
and a per-category breakdown (users grouped by the L1 of their held-out item).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import pandas as pd

from mgi_core.errors import MgiError
from mgi_core.evaluation.stats import PairedResult, compare_paired, per_group_means
from mgi_core.store import Store

DEFAULT_SCORER = "mgi_hybrid"
HEADLINE_METRICS = ("ndcg@10", "recall@10", "mrr", "ndcg@20", "recall@20", "hit@10")


def parse_spec(spec: str) -> tuple[str, str]:
    """'v2' → ('v2', 'mgi_hybrid'); 'base:content_hybrid' → ('base', 'content_hybrid')."""
    version, _, scorer = spec.partition(":")
    return version.strip(), (scorer.strip() or DEFAULT_SCORER)


def per_user_frame(
    store: Store, dataset: str, version: str, scorer: str, split: str = "test"
) -> pd.DataFrame:
    """Stored per-user metrics as a frame indexed by user_id, one column per metric."""
    long = (
        store.cursor()
        .execute(
            "SELECT user_id, metric, value FROM per_user_metrics WHERE dataset = ? AND "
            "version = ? AND scorer = ? AND split = ?",
            [dataset, version, scorer, split],
        )
        .df()
    )
    if long.empty:
        evaluated = (
            store.cursor()
            .execute(
                "SELECT count(*) FROM evaluations WHERE dataset = ? AND version = ? AND "
                "scorer = ? AND split = ?",
                [dataset, version, scorer, split],
            )
            .fetchone()[0]
        )
        if evaluated:
            raise MgiError(
                f"{version}:{scorer} was evaluated on {dataset}, but no user had a held-out "
                f"{split} review to rank: the protocol holds out each user's last reviews, so "
                "it needs users with at least 3 reviews. Add more reviews per user."
            )
        raise MgiError(
            f"No evaluation of {version}:{scorer} on {dataset} ({split}). Run it first: "
            f"python -m mgi_core evaluate --dataset {dataset} --version {version} "
            f"--scorers {scorer}"
        )
    return long.pivot(index="user_id", columns="metric", values="value")


@dataclass
class ComparisonReport:
    a: str
    b: str
    dataset: str
    split: str
    results: list[PairedResult]
    per_category: pd.DataFrame = field(default_factory=pd.DataFrame)

    def to_frame(self) -> pd.DataFrame:
        """One row per metric; the mean columns are named after the systems ("mean v1:mf"),
        with " (A)" and " (B)" added when a system is compared with itself."""
        frame = pd.DataFrame([asdict(r) for r in self.results]).set_index("metric")
        a, b = (f"{self.a} (A)", f"{self.b} (B)") if self.a == self.b else (self.a, self.b)
        return frame.rename(columns={"mean_a": f"mean {a}", "mean_b": f"mean {b}"})

    def to_dict(self) -> dict:
        return {
            "a": self.a,
            "b": self.b,
            "dataset": self.dataset,
            "split": self.split,
            "metrics": [asdict(r) for r in self.results],
            "per_category": self.per_category.to_dict(orient="records"),
        }


def compare(
    store: Store,
    a: str,
    b: str,
    dataset: str,
    split: str = "test",
    metrics: tuple[str, ...] = HEADLINE_METRICS,
    n_boot: int = 2000,
    seed: int = 0,
) -> ComparisonReport:
    """Paired comparison of system ``b`` against ``a`` (each 'version[:scorer]')."""
    va, sa = parse_spec(a)
    vb, sb = parse_spec(b)
    frame_a = per_user_frame(store, dataset, va, sa, split)
    frame_b = per_user_frame(store, dataset, vb, sb, split)
    present = [m for m in metrics if m in frame_a.columns and m in frame_b.columns]
    results = compare_paired(frame_a, frame_b, present, n_boot=n_boot, seed=seed)
    groups = pd.Series(
        dict(
            store.cursor()
            .execute(
                """SELECT r.user_id, i.l1 FROM reviews r JOIN items i
           ON i.dataset = r.dataset AND i.item_id = r.item_id
           WHERE r.dataset = ? AND r.split = ?""",
                [dataset, split],
            )
            .fetchall()
        ),
        dtype=object,
    )
    per_category = (
        per_group_means(frame_a, frame_b, groups, "ndcg@10")
        if "ndcg@10" in present
        else pd.DataFrame()
    )
    return ComparisonReport(f"{va}:{sa}", f"{vb}:{sb}", dataset, split, results, per_category)
