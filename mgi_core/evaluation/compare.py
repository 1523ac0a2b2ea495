"""A/B comparison of (version, scorer) pairs on the same users, from stored per-user metrics.

``compare(store, "base:content_hybrid", "v2:mgi_hybrid", dataset)`` gives per-metric means,
the paired mean difference (B − A) with a bootstrap 95% CI, a Wilcoxon signed-rank p-value,
and a per-category breakdown (users grouped by the L1 of their held-out item).
``ComparisonReport.verdict()`` says in one sentence whether B beats A: the CLI and the
Compare page show these words.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import pandas as pd

from mgi_core.errors import MgiError
from mgi_core.evaluation.stats import PairedResult, compare_paired, per_group_means
from mgi_core.store import Store
from mgi_core.store.evaluations import (
    appends_since_evaluated,
    held_out_l1,
    is_evaluated,
    per_user_metrics,
)
from mgi_core.systems import (  # re-exported: callers name them from here too
    HEADLINE_METRICS,
    parse_spec,
)

METRIC_LABELS = {
    "ndcg@10": "NDCG@10", "recall@10": "Recall@10", "mrr": "MRR", "ndcg@20": "NDCG@20",
    "recall@20": "Recall@20", "hit@10": "HitRate@10", "hit@20": "HitRate@20",
    "coverage@10": "Coverage@10", "diversity@10": "Diversity@10",
    "category_entropy@10": "Category entropy@10",
    "top_l1_hit@1": "List leads with next L1 (hit@1)",
    "top_l1_ndcg@5": "Next L1 in list (NDCG@5)",
    "top_l2_hit@1": "List leads with next L2 (hit@1)",
    "top_l2_ndcg@5": "Next L2 in list (NDCG@5)",
}
ALPHA = 0.05  # significance level of the verdicts
B_BETTER, B_WORSE, NO_CLEAR_DIFFERENCE = "B better", "B worse", "no clear difference"


def metric_label(metric: str) -> str:
    """'ndcg@10' → 'NDCG@10'; unknown names pass through."""
    return METRIC_LABELS.get(metric, metric)


def format_p(p: float) -> str:
    """A p-value for people: '< 0.001', '0.042', '1.000'; '—' when it could not be computed."""
    if p is None or not math.isfinite(p):
        return "—"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def metric_verdict(result: PairedResult, alpha: float = ALPHA) -> str:
    """``B_BETTER`` / ``B_WORSE`` when the CI excludes 0 on that side *and* p < alpha; else
    ``NO_CLEAR_DIFFERENCE`` (the bootstrap CI and the Wilcoxon test can disagree on
    mostly-tied per-user metrics: both must agree before a verdict calls it)."""
    significant = math.isfinite(result.p_value) and result.p_value < alpha
    if significant and result.ci_low > 0:
        return B_BETTER
    if significant and result.ci_high < 0:
        return B_WORSE
    return NO_CLEAR_DIFFERENCE


def per_user_frame(
    store: Store, dataset: str, version: str, scorer: str, split: str = "test"
) -> pd.DataFrame:
    """Stored per-user metrics as a frame indexed by user_id, one column per metric."""
    long = per_user_metrics(store, dataset, version, scorer, split)
    if long.empty:
        if is_evaluated(store, dataset, version, scorer, split):
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
    """System B ('version:scorer') against A on ``dataset``'s ``split``: one paired result
    per metric, NDCG@10 per category of the held-out item, and the verdict (``verdict``)."""

    a: str
    b: str
    dataset: str
    split: str
    results: list[PairedResult]
    per_category: pd.DataFrame = field(default_factory=pd.DataFrame)
    notes: list[str] = field(default_factory=list)  # what the reader should know first

    def to_frame(self) -> pd.DataFrame:
        """One row per metric; the mean columns are named after the systems ("mean v1:mf"),
        with " (A)" and " (B)" added when a system is compared with itself."""
        frame = pd.DataFrame([asdict(r) for r in self.results]).set_index("metric")
        a, b = (f"{self.a} (A)", f"{self.b} (B)") if self.a == self.b else (self.a, self.b)
        return frame.rename(columns={"mean_a": f"mean {a}", "mean_b": f"mean {b}"})

    def result(self, metric: str) -> PairedResult | None:
        """The paired result of ``metric``, or None when it was not compared."""
        return next((r for r in self.results if r.metric == metric), None)

    def verdict(self, metric: str = "ndcg@10", alpha: float = ALPHA) -> str:
        """One sentence: is B significantly better or worse than A on ``metric``, or neither.

        Significant means the 95% bootstrap CI of Δ = B − A excludes 0 on one side *and*
        the Wilcoxon p-value is below ``alpha`` (``metric_verdict``). The sentence names
        both systems and gives Δ, its CI, p and the users compared, e.g. "B (v2:mgi_hybrid)
        is significantly better than A (base:content_hybrid) on NDCG@10: Δ +0.0600, 95% CI
        [+0.0200, +0.1000], p < 0.001, 100 users."
        """
        a, b, label = f"A ({self.a})", f"B ({self.b})", metric_label(metric)
        r = self.result(metric)
        if r is None or not r.n_users or not math.isfinite(r.diff):
            return (f"{b} and {a} have no user in common with a value of {label}: nothing to "
                    "compare.")
        p = format_p(r.p_value)
        numbers = (f"Δ {r.diff:+.4f}, 95% CI [{r.ci_low:+.4f}, {r.ci_high:+.4f}], "
                   f"p {p if p.startswith('<') else '= ' + p}, {r.n_users:,} "
                   f"user{'' if r.n_users == 1 else 's'}")
        outcome = metric_verdict(r, alpha)
        if outcome == NO_CLEAR_DIFFERENCE:
            return (f"No clear difference between {b} and {a} on {label}: {numbers} (a verdict "
                    f"needs the CI to exclude 0 and p < {alpha:g}).")
        word = "better" if outcome == B_BETTER else "worse"
        return f"{b} is significantly {word} than {a} on {label}: {numbers}."

    def to_dict(self) -> dict:
        return {
            "a": self.a,
            "b": self.b,
            "dataset": self.dataset,
            "split": self.split,
            "metrics": [asdict(r) for r in self.results],
            "per_category": self.per_category.to_dict(orient="records"),
            "notes": list(self.notes),
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
    notes = _split_notes(store, dataset, split, (f"{va}:{sa}", va, sa), (f"{vb}:{sb}", vb, sb))
    present = [m for m in metrics if m in frame_a.columns and m in frame_b.columns]
    results = compare_paired(frame_a, frame_b, present, n_boot=n_boot, seed=seed)
    groups = pd.Series(held_out_l1(store, dataset, split), dtype=object)
    per_category = (
        per_group_means(frame_a, frame_b, groups, "ndcg@10")
        if "ndcg@10" in present
        else pd.DataFrame()
    )
    return ComparisonReport(f"{va}:{sa}", f"{vb}:{sb}", dataset, split, results, per_category,
                            notes)


def _split_notes(store: Store, dataset: str, split: str,
                 *systems: tuple[str, str, str]) -> list[str]:
    """Refuses a pair evaluated on either side of an append (they ranked different held-out
    reviews: the append split its users again); a note when both predate the latest one.

    Raises:
        MgiError: an append of ``dataset`` was made between the two evaluations.
    """
    since = {name: appends_since_evaluated(store, dataset, version, scorer, split)
             for name, version, scorer in systems}
    if len({n for n, _ in since.values()}) > 1:
        old = max(since, key=lambda name: since[name][0])
        raise MgiError(
            f"{old} was evaluated on {dataset} before reviews were appended to it, the other "
            "system after: the append split its users again, so they ranked different "
            f"held-out reviews. Evaluate {old} again (python -m mgi_core evaluate --dataset "
            f"{dataset} --version {old.split(':')[0]} --scorers {old.split(':')[1]}).")
    n, when = next(iter(since.values()))
    if not n:
        return []
    return [f"Both systems were evaluated before the latest append to {dataset} "
            f"({when:%Y-%m-%d %H:%M}): they compare on the earlier split. Evaluate both again "
            "to include the appended reviews."]
