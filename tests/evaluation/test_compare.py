"""compare() says what is missing (no evaluation yet, or no user to evaluate) and whether B
beats A (the verdict)."""

from __future__ import annotations

import warnings

import pytest

from mgi_core.data.ingest import ingest_file
from mgi_core.errors import MgiError
from mgi_core.evaluation.compare import (
    B_BETTER,
    B_WORSE,
    NO_CLEAR_DIFFERENCE,
    ComparisonReport,
    compare,
    metric_verdict,
)
from mgi_core.evaluation.protocol import evaluate
from mgi_core.evaluation.stats import PairedResult
from tests.conftest import write_csv
from tests.fake_encoder import register_fake_version


def test_compare_explains_a_missing_or_empty_evaluation(store, tmp_path) -> None:
    # Two reviews per user: train and validation, no test review for anyone.
    rows = [[u, f"i{k}", f"review {u} {k}", 5, 1_600_000_000 + k, "A > B", f"T{k}"]
            for u in ("a", "b", "c") for k in range(2)]
    ingest_file(store, write_csv(tmp_path / "two.csv", rows), "two")
    register_fake_version(store, "two", ["review", "a", "b", "c"])
    with pytest.raises(MgiError, match=r"No evaluation of fake:popularity on two.*Run it first"):
        compare(store, "fake:popularity", "fake:item_knn", "two")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # means over no user
        evaluate(store, "two", "fake", ("popularity", "item_knn"))
    with pytest.raises(MgiError, match=r"no user had a held-out test review.*at least 3"):
        compare(store, "fake:popularity", "fake:item_knn", "two")


# Hand-made paired results (metric, users, mean A, mean B, Δ, CI low, CI high, p).
BETTER = PairedResult("ndcg@10", 100, 0.20, 0.26, 0.06, 0.02, 0.10, 0.0004)
WORSE = PairedResult("recall@10", 100, 0.40, 0.30, -0.10, -0.15, -0.05, 0.0213)
SPANS_ZERO = PairedResult("mrr", 100, 0.0, 0.01, 0.01, -0.01, 0.03, 0.03)
# The CI lies above 0 but the Wilcoxon test disagrees (p = 0.165): not significant.
TEST_DISAGREES = PairedResult("hit@10", 1, 0.5, 0.53, 0.03, 0.002, 0.058, 0.165)


def _report(*results: PairedResult) -> ComparisonReport:
    return ComparisonReport("base:content_hybrid", "v2:mgi_hybrid", "demo", "test",
                            list(results))


def test_metric_verdict_needs_the_ci_and_the_test_to_agree() -> None:
    assert [metric_verdict(r) for r in (BETTER, WORSE, SPANS_ZERO, TEST_DISAGREES)] == [
        B_BETTER, B_WORSE, NO_CLEAR_DIFFERENCE, NO_CLEAR_DIFFERENCE]
    # A stricter level turns WORSE (p = 0.0213) into no clear difference.
    assert metric_verdict(WORSE, alpha=0.01) == NO_CLEAR_DIFFERENCE


def test_verdict_sentence_significantly_better() -> None:
    assert _report(BETTER, WORSE).verdict() == (
        "B (v2:mgi_hybrid) is significantly better than A (base:content_hybrid) on NDCG@10: "
        "Δ +0.0600, 95% CI [+0.0200, +0.1000], p < 0.001, 100 users.")


def test_verdict_sentence_significantly_worse() -> None:
    assert _report(BETTER, WORSE).verdict("recall@10") == (
        "B (v2:mgi_hybrid) is significantly worse than A (base:content_hybrid) on Recall@10: "
        "Δ -0.1000, 95% CI [-0.1500, -0.0500], p = 0.021, 100 users.")


def test_verdict_sentence_not_significant() -> None:
    report = _report(SPANS_ZERO, TEST_DISAGREES)
    assert report.verdict("mrr") == (
        "No clear difference between B (v2:mgi_hybrid) and A (base:content_hybrid) on MRR: "
        "Δ +0.0100, 95% CI [-0.0100, +0.0300], p = 0.030, 100 users (a verdict needs the CI "
        "to exclude 0 and p < 0.05).")
    assert report.verdict("hit@10").startswith("No clear difference")
    assert "1 user (" in report.verdict("hit@10")  # singular
    # The sentence states the level it used.
    assert report.verdict("mrr", alpha=0.01).endswith("p < 0.01).")


def test_verdict_without_the_metric_says_there_is_nothing_to_compare() -> None:
    nan = float("nan")
    empty = PairedResult("ndcg@10", 0, nan, nan, nan, nan, nan, nan)
    for report in (_report(WORSE), _report(empty)):
        assert report.verdict() == ("B (v2:mgi_hybrid) and A (base:content_hybrid) have no "
                                    "user in common with a value of NDCG@10: nothing to compare.")
