"""What each feature group of the full system is worth: the built-in ablation.

For one version, the full system (``mgi_hybrid``), one variant per feature group with that
group removed (``without_cf``, ``without_overall_content``, ``without_granular_content``,
``without_category``; ``mgi_core.ranking.fusion.FEATURE_GROUPS``) and the reference without
any granularity (``cf_content``: CF + overall content) are evaluated by the same protocol,
each fusion learned on validation the same way. Each variant is then compared with the full
system per user, paired: Δ = variant − full, its bootstrap 95% CI and the Wilcoxon p-value
(``mgi_core.evaluation.compare``). A negative Δ is what the removed group contributes.

The metrics are the ranking's (NDCG@10, Recall@10, MRR) and next-interest read from the
ranked list (does the top-10 lead with the category of the held-out item, at L1 and L2:
``top_l1_hit@1``, ``top_l2_hit@1``), so one table shows what each group does to the list
and to the interest it puts first.

``run_ablation`` evaluates and stores (like ``evaluate``); ``load_ablation`` reads what is
stored, so the Compare page never recomputes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import pandas as pd

from mgi_core.errors import MgiError
from mgi_core.evaluation.compare import ComparisonReport, compare, format_p, metric_verdict
from mgi_core.evaluation.protocol import evaluate
from mgi_core.evaluation.stats import PairedResult
from mgi_core.ranking.fusion import (
    ABLATION_SCORERS,
    FULL_SCORER,
    GROUP_LABELS,
    REFERENCE_SCORER,
)
from mgi_core.store import Store
from mgi_core.store.evaluations import is_evaluated

ABLATION_METRICS = ("ndcg@10", "recall@10", "mrr", "top_l1_hit@1", "top_l2_hit@1")
REFERENCE_LABEL = "all granularity (finer content, category signals)"
# (scorer, what it removes from the full system), in table order.
VARIANTS: tuple[tuple[str, str], ...] = (
    *((scorer, GROUP_LABELS[group]) for group, scorer in ABLATION_SCORERS.items()),
    (REFERENCE_SCORER, REFERENCE_LABEL),
)
ABLATION_SCORER_NAMES = (FULL_SCORER, *(scorer for scorer, _ in VARIANTS))


def metric_frame(frame: pd.DataFrame, metric: str, label: str) -> pd.DataFrame:
    """One metric of a paired ablation's rows (``frame``: variant, ``label``, mean_variant,
    diff, ci_low, ci_high, p_value, n_users) for people: per variant (index) its ``label``,
    its mean, Δ with the 95% CI as text, p as text (``format_p``) and the users."""
    part = frame[frame["metric"] == metric].set_index("variant")
    return pd.DataFrame({
        label: part[label],
        "mean": part["mean_variant"],
        "Δ [95% CI]": [f"{d:+.4f} [{lo:+.4f}, {hi:+.4f}]" for d, lo, hi in
                       zip(part["diff"], part["ci_low"], part["ci_high"], strict=True)],
        "p": part["p_value"].map(format_p),
        "n_users": part["n_users"],
    }, index=part.index)


@dataclass
class AblationRow:
    """One variant against the full system on one metric (Δ = variant − full)."""

    variant: str
    removed: str
    metric: str
    mean_full: float
    mean_variant: float
    diff: float
    ci_low: float
    ci_high: float
    p_value: float
    n_users: int
    verdict: str  # metric_verdict of the variant against the full system


@dataclass
class AblationReport:
    """The paired ablation of one version on ``dataset``'s ``split``."""

    dataset: str
    version: str
    split: str
    rows: list[AblationRow]
    reference: ComparisonReport  # the full system (B) against CF + overall content (A)

    def to_frame(self) -> pd.DataFrame:
        """One row per (variant, metric), variants in ``VARIANTS`` order."""
        columns = list(AblationRow.__dataclass_fields__)
        return pd.DataFrame([asdict(r) for r in self.rows], columns=columns)

    def metric_table(self, metric: str) -> pd.DataFrame:
        """One metric for people: per variant (index) what it removes, its mean, Δ vs the
        full system with the 95% CI as text, p as text (``format_p``) and the users."""
        return metric_frame(self.to_frame(), metric, "removed")

    def metrics(self) -> list[str]:
        """The metrics compared, in ``ABLATION_METRICS`` order (L2 only where items have one)."""
        present = {r.metric for r in self.rows}
        return [m for m in ABLATION_METRICS if m in present]

    def full_means(self) -> dict[str, float]:
        """The full system's mean of each metric."""
        return {r.metric: r.mean_full for r in self.rows}

    def to_dict(self) -> dict:
        return {"dataset": self.dataset, "version": self.version, "split": self.split,
                "full": FULL_SCORER, "full_means": self.full_means(),
                "rows": [asdict(r) for r in self.rows],
                "reference_verdict": self.reference.verdict()}


def _row(result: PairedResult, variant: str, removed: str) -> AblationRow:
    # compare(full, variant) puts the full system in A and the variant in B.
    return AblationRow(variant, removed, result.metric, result.mean_a, result.mean_b,
                       result.diff, result.ci_low, result.ci_high, result.p_value,
                       result.n_users, metric_verdict(result))


def missing_scorers(store: Store, dataset: str, version: str, split: str = "test") -> list[str]:
    """The ablation's scorers with no stored evaluation of (dataset, version, split)."""
    return [s for s in ABLATION_SCORER_NAMES
            if not is_evaluated(store, dataset, version, s, split)]


def load_ablation(
    store: Store, dataset: str, version: str, split: str = "test", n_boot: int = 2000,
    seed: int = 0,
) -> AblationReport:
    """The ablation of ``version`` from stored per-user metrics (never evaluates).

    Raises:
        MgiError: a scorer of the ablation was not evaluated; the message names the command.
    """
    missing = missing_scorers(store, dataset, version, split)
    if missing:
        raise MgiError(
            f"No ablation of {version} on {dataset} ({split}) yet: {', '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} not evaluated. Run it: python -m "
            f"mgi_core ablate --dataset {dataset} --version {version}"
            + ("" if split == "test" else f" --split {split}")
        )
    full = f"{version}:{FULL_SCORER}"
    rows = []
    for scorer, removed in VARIANTS:
        report = compare(store, full, f"{version}:{scorer}", dataset, split,
                         metrics=ABLATION_METRICS, n_boot=n_boot, seed=seed)
        rows.extend(_row(r, scorer, removed) for r in report.results)
    reference = compare(store, f"{version}:{REFERENCE_SCORER}", full, dataset, split,
                        n_boot=n_boot, seed=seed)
    return AblationReport(dataset, version, split, rows, reference)


def run_ablation(
    store: Store, dataset: str, version: str, split: str = "test", seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> AblationReport:
    """Evaluate the full system, every variant and the reference for ``version`` (stored
    like any evaluation, fusion weights learned on validation), then compare them."""
    evaluate(store, dataset, version, ABLATION_SCORER_NAMES, split=split, seed=seed,
             progress=progress)
    return load_ablation(store, dataset, version, split, seed=seed)
