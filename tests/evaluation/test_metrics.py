"""Metrics: hand-worked numbers on tiny inputs, then agreement of the ranking metrics with
scikit-learn and with a full stable sort on random cases (Cornac
``tests/cornac/metrics/test_ranking.py`` style)."""

from __future__ import annotations

import math
import subprocess
import sys
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.metrics import ndcg_score

from mgi_core.evaluation import metrics
from mgi_core.evaluation.metrics import (
    accuracy,
    catalog_coverage,
    category_entropy,
    hit_rate_at_k,
    intra_list_diversity,
    macro_f1,
    metrics_from_ranks,
    mrr,
    ndcg_at_k,
    recall_at_k,
    recall_at_k_matrix,
    roc_auc,
    target_ranks,
    top_k,
)
from tests.conftest import ROOT

SEEDS = range(20)

# One ranking used by several hand-worked tests: item 3 is best, item 2 is worst.
RANKED = [3, 1, 4, 0, 2]


# ---------------------------------------------------------------- per-user ranking metrics


def test_recall_at_k_hand_worked() -> None:
    # Relevant {1, 2}. Top-3 = [3, 1, 4] holds item 1 only → 1/2.
    assert recall_at_k(RANKED, {1, 2}, 3) == pytest.approx(0.5)
    # Top-5 is the whole list, both relevant items are in it → 2/2.
    assert recall_at_k(RANKED, {1, 2}, 5) == pytest.approx(1.0)
    # Top-1 = [3] holds neither → 0.
    assert recall_at_k(RANKED, [1, 2], 1) == 0.0
    # k beyond the list length counts what the list has: still 2/2.
    assert recall_at_k(RANKED, {1, 2}, 50) == pytest.approx(1.0)
    # No relevant item: undefined, NaN so that nanmean over users skips it.
    assert math.isnan(recall_at_k(RANKED, set(), 3))


def test_hit_rate_at_k_hand_worked() -> None:
    # Item 4 sits at rank 2 (0-based): not in the top-2, in the top-3.
    assert hit_rate_at_k(RANKED, {4}, 2) == 0.0
    assert hit_rate_at_k(RANKED, {4}, 3) == 1.0
    # Two relevant items in the top-5 still give a hit rate of 1, not 2.
    assert hit_rate_at_k(RANKED, {3, 1}, 5) == 1.0
    assert math.isnan(hit_rate_at_k(RANKED, [], 5))


def test_ndcg_at_k_hand_worked() -> None:
    # Single target at rank 2 → DCG = 1/log2(2 + 2) = 0.5, IDCG = 1/log2(2) = 1 → 0.5.
    assert ndcg_at_k(RANKED, {4}, 5) == pytest.approx(0.5)
    # Relevant {1, 2} at ranks 1 and 4, k = 5:
    # DCG = 1/log2(3) + 1/log2(6) = 0.63093 + 0.38685 = 1.01778,
    # IDCG = 1/log2(2) + 1/log2(3) = 1.63093 → 0.62405.
    assert ndcg_at_k(RANKED, {1, 2}, 5) == pytest.approx(
        (1 / math.log2(3) + 1 / math.log2(6)) / (1 + 1 / math.log2(3))
    )
    assert ndcg_at_k(RANKED, {1, 2}, 5) == pytest.approx(0.62405, abs=1e-5)
    # Same with k = 3: only item 1 counts, DCG = 0.63093; IDCG over min(2, 3) = 2 slots
    # = 1.63093 → 0.38685.
    assert ndcg_at_k(RANKED, {1, 2}, 3) == pytest.approx(0.38685, abs=1e-5)
    # Four relevant items, k = 2, the top-2 [3, 1] both relevant: IDCG over min(4, 2) = 2
    # slots equals DCG → 1.0 (not penalised for relevant items that cannot fit).
    assert ndcg_at_k(RANKED, {3, 1, 4, 0}, 2) == pytest.approx(1.0)
    # Nothing relevant in the top-k → 0; empty relevant set → NaN.
    assert ndcg_at_k(RANKED, {2}, 4) == 0.0
    assert math.isnan(ndcg_at_k(RANKED, set(), 4))


def test_mrr_hand_worked() -> None:
    # First relevant item (4) at rank 2 → 1/3; item 0 at rank 3 is not the first.
    assert mrr(RANKED, {4, 0}) == pytest.approx(1 / 3)
    # Best item relevant → 1.
    assert mrr(RANKED, {3}) == 1.0
    # Relevant item absent from the ranking → 0; no relevant item → NaN.
    assert mrr(RANKED, {99}) == 0.0
    assert math.isnan(mrr(RANKED, []))


def test_per_user_metrics_reject_bad_input() -> None:
    with pytest.raises(ValueError, match="k must be a positive integer"):
        recall_at_k(RANKED, {1}, 0)
    with pytest.raises(ValueError, match="must not repeat an item"):
        ndcg_at_k([1, 2, 1], {1}, 3)


@pytest.mark.parametrize("seed", SEEDS)
def test_ndcg_at_k_agrees_with_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 30
    scores = rng.random(n)  # distinct almost surely, so sklearn's tie averaging is moot
    assert np.unique(scores).size == n
    relevance = (rng.random(n) < 0.2).astype(int)
    relevance[rng.integers(n)] = 1  # at least one relevant item
    ranked = np.argsort(-scores)
    for k in (5, 10, n):
        expected = ndcg_score(relevance[None, :], scores[None, :], k=k)
        assert ndcg_at_k(ranked, np.flatnonzero(relevance), k) == pytest.approx(expected)


# ---------------------------------------------------------------- existing training metrics


def test_roc_auc_hand_worked_with_tie() -> None:
    # Positives score 0.8 and 0.4, negatives 0.4 and 0.1. Of the 4 (pos, neg) pairs, three
    # are ordered correctly and the (0.4, 0.4) tie counts half → 3.5 / 4 = 0.875.
    assert roc_auc(np.array([1, 0, 1, 0]), np.array([0.8, 0.4, 0.4, 0.1])) == 0.875
    assert math.isnan(roc_auc(np.array([1, 1]), np.array([0.1, 0.2])))  # one class only


def test_classification_metrics_are_nan_where_undefined_without_warning() -> None:
    # The wrappers answer NaN themselves instead of scikit-learn's error or warning.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert math.isnan(roc_auc(np.array([0, 0, 0]), np.array([0.1, 0.2, 0.3])))
        assert math.isnan(roc_auc(np.array([]), np.array([])))
        assert math.isnan(macro_f1(np.array([]), np.array([])))
        assert math.isnan(accuracy(np.array([]), np.array([])))
        # A class never predicted (2) and one never true (3) score F1 0 silently:
        # class 1: tp 1, fp 0, fn 0 → 1; classes 2 and 3 → 0; mean = 1/3.
        assert macro_f1(np.array([1, 2]), np.array([1, 3])) == pytest.approx(1 / 3)


def test_macro_f1_and_accuracy_hand_worked() -> None:
    y_true, y_pred = np.array([0, 0, 1, 2]), np.array([0, 1, 1, 1])
    # class 0: tp 1, fp 0, fn 1 → F1 = 2/3; class 1: tp 1, fp 2, fn 0 → 2/4;
    # class 2: tp 0 → 0. Mean = (0.6667 + 0.5 + 0) / 3 = 0.38889.
    assert macro_f1(y_true, y_pred) == pytest.approx((2 / 3 + 0.5) / 3)
    # 2 of 4 predictions right.
    assert accuracy(y_true, y_pred) == 0.5


def test_recall_at_k_matrix_hand_worked() -> None:
    # Row 0: diagonal 0.9 is best → rank 0. Row 1: diagonal 0.5 ties with 0.5, ties count
    # against it, and 0.7 is above → rank 1. With k = 1 only row 0 is a hit → 1/2.
    sim = np.array([[0.9, 0.1], [0.7, 0.5]])
    assert recall_at_k_matrix(sim, 1) == 0.5
    assert recall_at_k_matrix(sim, 2) == 1.0


# ---------------------------------------------------------------- leave-last-out, vectorised


def test_target_ranks_hand_worked() -> None:
    scores = np.array([[0.1, 0.9, 0.5, 0.9, 0.3]])
    # Target 3 (0.9): nothing strictly above; item 1 ties and has the lower index, so it
    # comes first in the stable sort → rank 1.
    assert target_ranks(scores, np.array([3])).tolist() == [1]
    # Excluding item 1 (seen in train) removes it from the ranking → rank 0.
    exclude = np.array([[False, True, False, False, False]])
    assert target_ranks(scores, np.array([3]), exclude).tolist() == [0]
    # Target 1 is ahead of its tie partner 3 → rank 0.
    assert target_ranks(scores, np.array([1])).tolist() == [0]
    # Target 2 (0.5): items 1 and 3 above → rank 2; excluding item 3 → 1.
    assert target_ranks(scores, np.array([2])).tolist() == [2]
    exclude = np.array([[False, False, False, True, False]])
    assert target_ranks(scores, np.array([2]), exclude).tolist() == [1]
    assert target_ranks(scores, np.array([2]), sp.csr_matrix(exclude)).tolist() == [1]


def test_target_ranks_ignores_the_targets_own_exclusion_flag() -> None:
    scores = np.array([[0.3, 0.2, 0.1]])
    # Item 0 is above target 1 → rank 1 whether or not the target itself is flagged.
    exclude = np.array([[False, True, False]])
    assert target_ranks(scores, np.array([1]), exclude).tolist() == [1]
    assert target_ranks(scores, np.array([1]), sp.csr_array(exclude)).tolist() == [1]


def _stable_candidates(scores_row: np.ndarray, exclude_row: np.ndarray) -> np.ndarray:
    """Reference: stable descending full sort with the excluded items removed."""
    order = np.argsort(-scores_row, kind="stable")
    return order[~exclude_row[order]]


def _random_case(seed: int, n_users: int = 12, n_items: int = 40):
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 6, (n_users, n_items)).astype(np.float64)  # many ties
    scores[0, :5] = -np.inf  # genuine -inf scores must still be ranked
    exclude = rng.random((n_users, n_items)) < 0.3
    exclude[1] = True  # a user with no candidates besides the target
    targets = rng.integers(0, n_items, n_users)
    exclude[np.arange(n_users), targets] = False
    return scores, exclude, targets


@pytest.mark.parametrize("seed", SEEDS)
def test_target_ranks_match_stable_sort(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    scores, exclude, targets = _random_case(seed)
    expected = [
        int(np.flatnonzero(_stable_candidates(s, e) == t)[0])
        for s, e, t in zip(scores, exclude, targets, strict=True)
    ]
    assert expected[1] == 0  # the only candidate
    assert target_ranks(scores, targets, exclude).tolist() == expected
    assert target_ranks(scores, targets, sp.csr_array(exclude)).tolist() == expected
    assert target_ranks(scores, targets, sp.csr_matrix(exclude)).tolist() == expected
    # Without exclusions: the position in the plain stable sort.
    plain = [
        int(np.flatnonzero(np.argsort(-s, kind="stable") == t)[0])
        for s, t in zip(scores, targets, strict=True)
    ]
    assert target_ranks(scores, targets).tolist() == plain
    # float32 scores (kept as they are, not copied to float64) rank the same.
    assert target_ranks(scores.astype(np.float32), targets, exclude).tolist() == expected
    # Processing users in small blocks gives the same answer.
    monkeypatch.setattr(metrics, "_CHUNK_CELLS", 50)
    assert target_ranks(scores, targets, exclude).tolist() == expected


def test_sparse_exclude_with_explicit_false_entries_is_left_untouched() -> None:
    scores = np.array([[0.9, 0.8, 0.1]])
    # A stored 0 (False) at item 0 is not an exclusion: item 0 stays above target 2.
    exclude = sp.csr_array((np.array([0, 1]), np.array([0, 1]), np.array([0, 2])), shape=(1, 3))
    assert target_ranks(scores, np.array([2]), exclude).tolist() == [1]
    assert exclude.nnz == 2  # the caller's matrix is not modified


def test_target_ranks_reject_bad_input() -> None:
    with pytest.raises(ValueError, match="NaN"):
        target_ranks(np.array([[np.nan, 1.0]]), np.array([0]))
    with pytest.raises(ValueError, match=r"targets must lie in \[0, 2\)"):
        target_ranks(np.zeros((1, 2)), np.array([2]))
    with pytest.raises(ValueError, match="exclude has shape"):
        target_ranks(np.zeros((1, 2)), np.array([0]), np.zeros((1, 3), dtype=bool))


def test_metrics_from_ranks_hand_worked() -> None:
    out = metrics_from_ranks(np.array([0, 2, 9, 10]), k=10)
    assert set(out) == {"recall@10", "ndcg@10", "hit@10", "mrr"}
    # Ranks 0, 2, 9 are inside the top-10, rank 10 is the 11th item → outside.
    assert out["recall@10"].tolist() == [1.0, 1.0, 1.0, 0.0]
    assert out["hit@10"].tolist() == [1.0, 1.0, 1.0, 0.0]
    # NDCG = 1/log2(rank + 2): rank 0 → 1, rank 2 → 1/log2(4) = 0.5, rank 9 → 1/log2(11)
    # = 0.28906, outside the cut-off → 0.
    np.testing.assert_allclose(out["ndcg@10"], [1.0, 0.5, 1 / math.log2(11), 0.0])
    # MRR over the full ranking, no cut-off: 1/1, 1/3, 1/10, 1/11.
    np.testing.assert_allclose(out["mrr"], [1.0, 1 / 3, 0.1, 1 / 11])


@pytest.mark.parametrize("seed", range(5))
def test_metrics_from_ranks_match_per_user_functions(seed: int) -> None:
    scores, exclude, targets = _random_case(seed)
    out = metrics_from_ranks(target_ranks(scores, targets, exclude), k=5)
    for u in range(scores.shape[0]):
        ranked = _stable_candidates(scores[u], exclude[u])
        assert out["ndcg@5"][u] == pytest.approx(ndcg_at_k(ranked, {targets[u]}, 5))
        assert out["recall@5"][u] == recall_at_k(ranked, {targets[u]}, 5)
        assert out["mrr"][u] == pytest.approx(mrr(ranked, {targets[u]}))


def test_top_k_hand_worked() -> None:
    scores = np.array([[0.2, 0.8, 0.8, 0.5, 0.8]])
    # Three items tie at 0.8; lower index first → [1, 2].
    assert top_k(scores, 2).tolist() == [[1, 2]]
    # Item 1 excluded → the ties 2, 4, then 0.5 (item 3), then 0.2 (item 0).
    exclude = np.array([[False, True, False, False, False]])
    assert top_k(scores, 4, exclude).tolist() == [[2, 4, 3, 0]]
    # Only 4 candidates for k = 6 → padded with -1.
    assert top_k(scores, 6, exclude).tolist() == [[2, 4, 3, 0, -1, -1]]


def _expected_top_k(scores: np.ndarray, exclude: np.ndarray, k: int) -> np.ndarray:
    """Reference: head of the stable sort of the candidates, padded with -1."""
    expected = np.full((scores.shape[0], k), -1)
    for u in range(scores.shape[0]):
        head = _stable_candidates(scores[u], exclude[u])[:k]
        expected[u, : head.size] = head
    return expected


@pytest.mark.parametrize("seed", SEEDS)
def test_top_k_matches_head_of_stable_sort(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    scores, exclude, _ = _random_case(seed)
    no_exclusion = np.zeros_like(exclude)
    for k in (1, 5, 17, scores.shape[1], scores.shape[1] + 3):
        expected = _expected_top_k(scores, exclude, k)
        np.testing.assert_array_equal(top_k(scores, k, exclude), expected)
        np.testing.assert_array_equal(top_k(scores, k, sp.csr_array(exclude)), expected)
        np.testing.assert_array_equal(top_k(scores.astype(np.float32), k, exclude), expected)
        np.testing.assert_array_equal(top_k(scores, k), _expected_top_k(scores, no_exclusion, k))
    monkeypatch.setattr(metrics, "_CHUNK_CELLS", 50)  # several blocks of users
    np.testing.assert_array_equal(top_k(scores, 5, exclude), _expected_top_k(scores, exclude, 5))


# ---------------------------------------------------------------- beyond accuracy


def test_catalog_coverage_hand_worked() -> None:
    # Items {0, 1, 2} recommended out of 10 → 0.3; the -1 padding is not an item.
    assert catalog_coverage(np.array([[0, 1], [1, 2], [2, -1]]), 10) == pytest.approx(0.3)
    with pytest.raises(ValueError, match="outside"):
        catalog_coverage(np.array([[0, 10]]), 10)


def test_intra_list_diversity_hand_worked() -> None:
    s = 1 / math.sqrt(2)
    vectors = np.array([[1.0, 0.0], [0.0, 1.0], [s, s], [2.0, 0.0]])
    # Pairs of [0, 1, 2]: (0,1) cos 0 → distance 1; (0,2) and (1,2) cos 1/√2 → 1 - 0.70711.
    # Mean = (1 + 2 × 0.29289) / 3 = (3 - √2) / 3 = 0.52860.
    assert intra_list_diversity(np.array([0, 1, 2]), vectors) == pytest.approx(
        (3 - math.sqrt(2)) / 3
    )
    # Item 3 points the same way as item 0 (unnormalised on purpose) → distance 0.
    assert intra_list_diversity(np.array([0, 3]), vectors) == pytest.approx(0.0)
    assert math.isnan(intra_list_diversity(np.array([1]), vectors))  # no pair


def test_category_entropy_hand_worked() -> None:
    # Two categories, 2 items each → p = (1/2, 1/2) → 1 bit.
    assert category_entropy(["a", "a", "b", "b"]) == pytest.approx(1.0)
    # Four distinct categories with None as its own → log2(4) = 2 bits.
    assert category_entropy(["a", "b", None, "c"]) == pytest.approx(2.0)
    # p = (3/4, 1/4) → -(0.75 log2 0.75 + 0.25 log2 0.25) = 0.31128 + 0.5 = 0.81128.
    assert category_entropy(["a", "a", "a", "b"]) == pytest.approx(0.81128, abs=1e-5)
    # Missing labels from pandas are NaN floats, distinct objects that compare unequal;
    # they still form one "(none)" category with None → p = (1/2, 1/2) → 1 bit.
    assert category_entropy(["a", float("nan"), None, "a"]) == pytest.approx(1.0)
    # A single category → 0 (not -0.0); an empty list → NaN.
    assert category_entropy([None, None]) == 0.0
    assert math.isnan(category_entropy([]))


def test_evaluation_imports_stay_light() -> None:
    code = (
        "import sys, mgi_core.evaluation.metrics, mgi_core.evaluation.stats\n"
        "print(' '.join(m for m in ('streamlit', 'torch', 'duckdb') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == ""


@pytest.mark.parametrize("kind", ["continuous", "few_values", "all_tied", "short_rows"])
def test_top_k_block_bound_and_partition_paths_equal_the_argsort_rule(kind) -> None:
    # The block-max fast path (continuous scores) and the partition path (many ties) must
    # both give the head of a stable descending argsort with excluded items removed.
    rng = np.random.default_rng(7)
    n_users, n_items, k = 40, 700, 10
    scores = {"continuous": rng.normal(size=(n_users, n_items)),
              "few_values": rng.integers(0, 4, size=(n_users, n_items)).astype(float),
              "all_tied": np.ones((n_users, n_items)),
              "short_rows": rng.normal(size=(n_users, n_items))}[kind]
    exclude = rng.random((n_users, n_items)) < (0.995 if kind == "short_rows" else 0.05)
    got = top_k(scores, k, exclude)
    for u in range(n_users):
        order = [i for i in np.argsort(-scores[u], kind="stable") if not exclude[u, i]][:k]
        assert list(got[u][: len(order)]) == order
        assert (got[u][len(order):] == -1).all()
