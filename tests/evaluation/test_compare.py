"""compare() says what is missing: no evaluation yet, or no user to evaluate."""

from __future__ import annotations

import warnings

import pytest

from mgi_core.data.ingest import ingest_file
from mgi_core.errors import MgiError
from mgi_core.evaluation.compare import compare
from mgi_core.evaluation.protocol import evaluate
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
