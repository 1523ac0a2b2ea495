"""Paired comparison: bootstrap CI, Wilcoxon p-value, alignment of per-user frames."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest

from mgi_core.evaluation.stats import (
    PairedResult,
    compare_paired,
    paired_bootstrap_ci,
    per_group_means,
    wilcoxon_p,
)

# ---------------------------------------------------------------- bootstrap CI


def test_bootstrap_constant_difference_has_a_point_interval() -> None:
    # Every user gains exactly 0.25, so every resample has mean difference 0.25.
    a = np.array([0.0, 0.25, 0.5, 0.75])
    mean, low, high = paired_bootstrap_ci(a, a + 0.25, n_boot=200)
    assert (mean, low, high) == pytest.approx((0.25, 0.25, 0.25))


def test_bootstrap_hand_worked_two_users() -> None:
    # Differences (0, 1). A resample of 2 users has mean 0 (both the first, p = 1/4),
    # 0.5 (p = 1/2) or 1 (p = 1/4); the 2.5% and 97.5% quantiles of 5000 resamples are
    # therefore 0 and 1, and the point estimate is the plain mean 0.5.
    mean, low, high = paired_bootstrap_ci([0.0, 0.0], [0.0, 1.0], n_boot=5000)
    assert (mean, low, high) == (0.5, 0.0, 1.0)


def test_bootstrap_ci_contains_true_difference_and_shrinks_with_users() -> None:
    rng = np.random.default_rng(0)
    true_diff = 0.05

    def sample(n: int) -> tuple[np.ndarray, np.ndarray]:
        a = rng.normal(0.3, 0.1, n)
        return a, a + true_diff + rng.normal(0.0, 0.1, n)

    mean_s, low_s, high_s = paired_bootstrap_ci(*sample(100))
    mean_l, low_l, high_l = paired_bootstrap_ci(*sample(2500))
    assert low_s <= true_diff <= high_s
    assert low_l <= true_diff <= high_l
    assert low_s <= mean_s <= high_s and low_l <= mean_l <= high_l
    # Width scales like 1/√n: 25 × the users → about 1/5 of the width.
    assert (high_l - low_l) < (high_s - low_s) / 3


def test_bootstrap_is_reproducible_and_drops_nan_pairs() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.random(50), rng.random(50)
    assert paired_bootstrap_ci(a, b, seed=7) == paired_bootstrap_ci(a, b, seed=7)
    # A NaN in either system removes that user: same as leaving the user out.
    a_nan, b_nan = a.copy(), b.copy()
    a_nan[3], b_nan[10] = np.nan, np.nan
    keep = np.ones(50, dtype=bool)
    keep[[3, 10]] = False
    assert paired_bootstrap_ci(a_nan, b_nan) == paired_bootstrap_ci(a[keep], b[keep])
    assert all(math.isnan(x) for x in paired_bootstrap_ci([np.nan], [1.0]))


def test_bootstrap_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="same length"):
        paired_bootstrap_ci([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="alpha"):
        paired_bootstrap_ci([1.0], [1.0], alpha=1.5)


# ---------------------------------------------------------------- Wilcoxon


def test_wilcoxon_hand_worked_exact() -> None:
    # Differences 1..5, all positive: W+ = 15 is the largest of 2^5 = 32 equally likely sign
    # patterns under the null, so the two-sided exact p = 2 × 1/32 = 0.0625.
    a = np.zeros(5)
    assert wilcoxon_p(a, np.arange(1.0, 6.0)) == pytest.approx(0.0625)


def test_wilcoxon_clear_shift_noise_identical_and_too_few() -> None:
    rng = np.random.default_rng(0)
    a = rng.random(60)
    assert wilcoxon_p(a, a + 0.3 + rng.normal(0.0, 0.1, 60)) < 0.01
    # Symmetric noise around zero: no evidence of a difference.
    assert wilcoxon_p(a, a + rng.normal(0.0, 0.1, 60)) > 0.05
    # Identical systems: every difference is zero → 1.0 by definition.
    assert wilcoxon_p(a, a.copy()) == 1.0
    # Fewer than 2 users with values in both → NaN.
    assert math.isnan(wilcoxon_p([0.5], [0.7]))
    assert math.isnan(wilcoxon_p([0.5, np.nan], [0.7, 0.1]))


def test_wilcoxon_keeps_tied_users_with_zsplit() -> None:
    # Mostly hit@10-style ties: 40 users where both systems score 0, 10 where B wins.
    # Dropping the ties ("wilcox") would test 10 all-positive users; zsplit keeps all 50,
    # so the p-value is larger than in the 10-user test.
    a = np.zeros(50)
    b = np.r_[np.zeros(40), np.ones(10)]
    p_all = wilcoxon_p(a, b)
    p_untied = wilcoxon_p(a[40:], b[40:])
    assert 0.0 < p_untied < p_all < 0.05


# ---------------------------------------------------------------- per-user frames

FRAME_A = pd.DataFrame(
    {"hit@10": [0.0, 1.0, 0.5, 1.0], "mrr": [0.5, 0.25, 1.0, 0.2]},
    index=pd.Index(["u1", "u2", "u3", "u4"], name="user_id"),
)
FRAME_B = pd.DataFrame(
    {"hit@10": [1.0, 1.0, np.nan, 0.0], "mrr": [0.5, 0.5, 0.5, 0.9]},
    index=pd.Index(["u1", "u2", "u3", "u5"], name="user_id"),
)


def test_compare_paired_hand_worked() -> None:
    hit, rr = compare_paired(FRAME_A, FRAME_B, ["hit@10", "mrr"], n_boot=500)
    # Common users u1, u2, u3 (u4 only in A, u5 only in B). hit@10: u3 is NaN in B, so
    # u1, u2 remain: A = (0, 1) → 0.5, B = (1, 1) → 1.0, diff = 0.5.
    assert (hit.metric, hit.n_users) == ("hit@10", 2)
    assert (hit.mean_a, hit.mean_b, hit.diff) == pytest.approx((0.5, 1.0, 0.5))
    assert hit.ci_low <= hit.diff <= hit.ci_high
    # mrr over u1, u2, u3: A = (0.5, 0.25, 1.0) → 0.58333, B = 0.5 each → 0.5,
    # differences (0, +0.25, -0.5) → mean -1/12.
    assert rr.n_users == 3
    assert (rr.mean_a, rr.mean_b, rr.diff) == pytest.approx((7 / 12, 0.5, -1 / 12))
    # Differences with one zero and one win, one loss: no evidence either way.
    assert rr.p_value > 0.05
    assert isinstance(rr, PairedResult)
    with pytest.raises(dataclasses.FrozenInstanceError):
        rr.diff = 0.0  # type: ignore[misc]


def test_compare_paired_does_not_depend_on_row_order() -> None:
    rng = np.random.default_rng(3)
    users = [f"u{i}" for i in range(200)]
    a = pd.DataFrame({"ndcg@10": rng.random(200)}, index=users)
    b = pd.DataFrame({"ndcg@10": a["ndcg@10"] + rng.normal(0.02, 0.1, 200)}, index=users)
    expected = compare_paired(a, b, ["ndcg@10"])
    shuffled = compare_paired(
        a.sample(frac=1.0, random_state=1), b.sample(frac=1.0, random_state=2), ["ndcg@10"]
    )
    assert shuffled == expected


def test_compare_paired_rejects_missing_column_and_repeated_users() -> None:
    with pytest.raises(ValueError, match="no column 'recall@20'"):
        compare_paired(FRAME_A, FRAME_B, ["recall@20"])
    repeated = pd.concat([FRAME_A, FRAME_A.iloc[:1]])
    with pytest.raises(ValueError, match="repeats user ids"):
        compare_paired(repeated, FRAME_B, ["mrr"])


def test_per_group_means_hand_worked() -> None:
    groups = pd.Series({"u1": "Books", "u2": "Books", "u3": None, "u5": "Music"})
    table = per_group_means(FRAME_A, FRAME_B, groups, "mrr")
    assert list(table.columns) == ["group", "n_users", "mean_a", "mean_b", "diff"]
    # Common users u1, u2, u3. Books = u1, u2: A (0.5, 0.25) → 0.375, B (0.5, 0.5) → 0.5.
    # u3 has no label → "(none)": A 1.0, B 0.5. u5 is not a common user, so no Music row.
    assert table["group"].tolist() == ["Books", "(none)"]
    assert table["n_users"].tolist() == [2, 1]
    np.testing.assert_allclose(table["mean_a"], [0.375, 1.0])
    np.testing.assert_allclose(table["mean_b"], [0.5, 0.5])
    np.testing.assert_allclose(table["diff"], [0.125, -0.5])
    # hit@10: u3 is NaN in B and drops out, leaving Books only (0.5 → 1.0).
    table = per_group_means(FRAME_A, FRAME_B, groups, "hit@10")
    assert table.to_dict("records") == [
        {"group": "Books", "n_users": 2, "mean_a": 0.5, "mean_b": 1.0, "diff": 0.5}
    ]
