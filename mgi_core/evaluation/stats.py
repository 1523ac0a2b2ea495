"""Paired comparison of two systems measured on the same users.

Version comparison follows the evaluation protocol (README, "How it works"): per user and
paired, reported as the mean difference (b - a), a percentile-bootstrap 95% CI over users
and a two-sided Wilcoxon signed-rank p-value. Pure functions over arrays and pandas frames:
no model, no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import wilcoxon

from mgi_core.evaluation.metrics import NO_CATEGORY

_BOOT_CELLS = 1 << 22  # resampled values drawn per block, bounds memory for many users

# Zero-difference handling of the Wilcoxon test. Per-user ranking metrics are mostly tied
# (hit@10 is 0 for both systems for most users), so the choice matters:
# * "wilcox" (scipy's default) drops tied users and tests only the few where the systems
#   differ, which overstates significance for the population the mean difference describes;
# * "pratt" ranks the zeros but then drops their ranks, so ties still do not count as
#   evidence of "no difference";
# * "zsplit" keeps every user and splits the zeros' ranks evenly between W+ and W-, so ties
#   pull the statistic towards the null. It is the most conservative of the three here and
#   tests the same users as the bootstrap CI. We use it.
WILCOXON_ZERO_METHOD = "zsplit"


def _paired_arrays(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Float 1-D arrays of equal length with the pairs holding a NaN removed."""
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"paired samples must have the same length, got {a.size} and {b.size}")
    keep = ~(np.isnan(a) | np.isnan(b))
    return a[keep], b[keep]


def paired_bootstrap_ci(
    a: np.ndarray,
    b: np.ndarray,
    n_boot: int = 2000,
    alpha: float = 0.05,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Mean paired difference b - a with a percentile-bootstrap (1 - alpha) CI over users.

    Users are resampled with replacement ``n_boot`` times; the CI bounds are the alpha/2
    and 1 - alpha/2 quantiles of the resampled means. Pairs holding a NaN are dropped.

    Args:
        a: (n_users,) per-user metric of system A.
        b: (n_users,) the same users' metric of system B, same order.
        n_boot: number of bootstrap resamples.
        alpha: 1 - confidence level.
        seed: seed of the resampling, so a report is reproducible.

    Returns:
        (mean(b - a), low, high); all NaN when no pair is left.
    """
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    a, b = _paired_arrays(a, b)
    diff = b - a  # (n,)
    n = diff.size
    if n == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot)
    step = max(1, _BOOT_CELLS // n)
    for start in range(0, n_boot, step):
        stop = min(start + step, n_boot)
        idx = rng.integers(0, n, size=(stop - start, n))  # (block, n) resampled users
        means[start:stop] = diff[idx].mean(axis=1)
    low, high = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return float(diff.mean()), float(low), float(high)


def wilcoxon_p(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p-value for paired samples ``a`` and ``b``.

    Zero differences are handled with ``zero_method="zsplit"`` (see
    ``WILCOXON_ZERO_METHOD`` for why). Pairs holding a NaN are dropped. Returns 1.0 when
    every difference is zero and NaN when fewer than 2 pairs are left.
    """
    a, b = _paired_arrays(a, b)
    if a.size < 2:
        return float("nan")
    diff = b - a
    if not np.any(diff):
        return 1.0
    return float(wilcoxon(diff, zero_method=WILCOXON_ZERO_METHOD).pvalue)


@dataclass(frozen=True)
class PairedResult:
    """Comparison of system B against system A on one metric over the users both have."""

    metric: str
    n_users: int  # users with a value for this metric in both systems
    mean_a: float
    mean_b: float
    diff: float  # mean(b - a)
    ci_low: float
    ci_high: float
    p_value: float  # two-sided Wilcoxon signed-rank


def _aligned(
    per_user_a: pd.DataFrame, per_user_b: pd.DataFrame, metric: str
) -> tuple[pd.Series, pd.Series]:
    """The metric's columns of both frames on their common users, in sorted user order.

    Sorting makes the result independent of row order in the frames (the bootstrap
    resamples by position).
    """
    for name, frame in (("per_user_a", per_user_a), ("per_user_b", per_user_b)):
        if metric not in frame.columns:
            raise ValueError(f"{name} has no column {metric!r}; columns: {list(frame.columns)}")
        if not frame.index.is_unique:
            raise ValueError(f"{name} repeats user ids; give one row per user")
    common = per_user_a.index.intersection(per_user_b.index).sort_values()
    return per_user_a.loc[common, metric], per_user_b.loc[common, metric]


def compare_paired(
    per_user_a: pd.DataFrame,
    per_user_b: pd.DataFrame,
    metrics: Sequence[str],
    n_boot: int = 2000,
    seed: int = 0,
) -> list[PairedResult]:
    """Paired comparison of system B against A, one :class:`PairedResult` per metric.

    Args:
        per_user_a: indexed by user_id, one column per metric (system A).
        per_user_b: the same for system B.
        metrics: column names to compare.
        n_boot: bootstrap resamples for the 95% CI.
        seed: bootstrap seed.

    Only users present in both frames are compared (inner join on user_id); a user with a
    NaN for a metric in either frame is left out of that metric only.
    """
    results = []
    for metric in metrics:
        sa, sb = _aligned(per_user_a, per_user_b, metric)
        a, b = _paired_arrays(sa.to_numpy(dtype=np.float64), sb.to_numpy(dtype=np.float64))
        diff, low, high = paired_bootstrap_ci(a, b, n_boot=n_boot, seed=seed)
        nan = float("nan")
        results.append(
            PairedResult(
                metric=metric,
                n_users=int(a.size),
                mean_a=float(a.mean()) if a.size else nan,
                mean_b=float(b.mean()) if b.size else nan,
                diff=diff,
                ci_low=low,
                ci_high=high,
                p_value=wilcoxon_p(a, b),
            )
        )
    return results


def per_group_means(
    per_user_a: pd.DataFrame,
    per_user_b: pd.DataFrame,
    groups: pd.Series,
    metric: str,
) -> pd.DataFrame:
    """Mean of ``metric`` per user group for both systems, e.g. per dominant category.

    Users are the common users of both frames with a non-NaN value in both; a user missing
    from ``groups`` or with a missing label falls in the group ``"(none)"``, so the group
    sizes add up to the users compared.

    Args:
        per_user_a: indexed by user_id, one column per metric (system A).
        per_user_b: the same for system B.
        groups: user_id -> group label.
        metric: column to break down.

    Returns:
        Columns ``group, n_users, mean_a, mean_b, diff`` (diff = mean_b - mean_a), one row
        per group, largest groups first (ties by group label).
    """
    sa, sb = _aligned(per_user_a, per_user_b, metric)
    if not groups.index.is_unique:
        raise ValueError("groups repeats user ids; give one label per user")
    keep = sa.notna().to_numpy() & sb.notna().to_numpy()
    users = sa.index[keep]
    labels = groups.reindex(users).astype(object)
    labels = labels.where(labels.notna(), NO_CATEGORY)
    frame = pd.DataFrame(
        {
            "group": labels.to_numpy(),
            "a": sa[keep].to_numpy(dtype=np.float64),
            "b": sb[keep].to_numpy(dtype=np.float64),
        }
    )
    table = (
        frame.groupby("group", sort=False)
        .agg(n_users=("a", "size"), mean_a=("a", "mean"), mean_b=("b", "mean"))
        .reset_index()
    )
    table["n_users"] = table["n_users"].astype(np.int64)
    table["diff"] = table["mean_b"] - table["mean_a"]
    table = table.sort_values(
        ["n_users", "group"],
        ascending=[False, True],
        key=lambda col: col.astype(str) if col.name == "group" else col,  # mixed label types
    )
    return table.reset_index(drop=True)[["group", "n_users", "mean_a", "mean_b", "diff"]]
