"""bench/rank.py: the JSON it prints, and its paths agreeing (no wall-clock assertions)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench" / "rank.py"


@pytest.fixture(scope="module")
def rank_bench():
    spec = importlib.util.spec_from_file_location("bench_rank", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quick_json_has_every_path_and_the_paths_agree():
    # 500 users, 300 items, d = 16, batches of 64 users: 8 batches (7 of 64, one of 52).
    out = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--json", "--users", "500", "--items", "300",
         "--dim", "16", "--sample", "25", "--batch", "64"],
        capture_output=True, text=True, timeout=300, check=True,
    )
    result = json.loads(out.stdout)
    assert (result["users"], result["items"], result["dim"], result["k"]) == (500, 300, 16, 10)
    assert set(result["paths"]) == {"mgi", "duckdb", "numpy_loop"}
    for name, path in result["paths"].items():
        for key in ("seconds", "users_per_s", "cpu_seconds", "peak_rss_mib", "extrapolated"):
            assert key in path, (name, key)
        assert path["peak_rss_mib"] > 0
    assert result["paths"]["mgi"]["extrapolated"] is False
    assert result["paths"]["mgi"]["measured_users"] == 500
    assert result["paths"]["mgi"]["batch"] == 64
    assert result["paths"]["mgi"]["n_batches"] == 8
    for name in ("duckdb", "numpy_loop"):
        assert result["paths"][name]["extrapolated"] is True
        assert result["paths"][name]["measured_users"] == 25
    for peer in ("duckdb", "numpy_loop"):
        assert result[f"ratio_{peer}_over_mgi"] > 0
    assert len(result["agreement"]) == 3  # every pair of the three paths
    for pair, agreement in result["agreement"].items():
        assert agreement["users"] == 25, pair
        assert agreement["differ"] == 0, pair
    assert result["agree"] is True
    assert {"cpus", "cpu_model", "cpu_flags", "loadavg"} <= set(result["machine"])


def test_data_are_seeded_unit_rows_with_distinct_seen_items(rank_bench):
    users, items, seen = rank_bench.make_data(50, 40, 8, seed=3)
    again = rank_bench.make_data(50, 40, 8, seed=3)
    np.testing.assert_array_equal(users, again[0])
    assert users.dtype == items.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(items, axis=1), 1.0, rtol=1e-5)
    counts = np.diff(seen.indptr)
    assert counts.max() <= rank_bench.SEEN_PER_USER and counts.min() >= 1
    for u in range(50):  # distinct, sorted columns per row
        row = seen.indices[seen.indptr[u] : seen.indptr[u + 1]]
        assert np.all(np.diff(row) > 0)


def test_batched_path_equals_one_batch_and_the_per_user_loop(rank_bench):
    users, items, seen = rank_bench.make_data(83, 120, 8, seed=1)
    whole, _ = rank_bench.rank_mgi(users, items, seen, batch=83)
    batched, _ = rank_bench.rank_mgi(users, items, seen, batch=7)
    np.testing.assert_array_equal(batched, whole)
    for u in range(83):
        seen_u = seen.indices[seen.indptr[u] : seen.indptr[u + 1]]
        assert not np.isin(whole[u], seen_u).any()
        np.testing.assert_array_equal(whole[u], rank_bench.rank_one_numpy(users[u], items, seen_u))


def test_default_batch_keeps_one_score_array_under_the_budget(rank_bench):
    # 256 MiB of float32 scores over 50,000 items: 1,342 users (1,342 × 50,000 × 4 B ≈ 256 MiB).
    assert rank_bench.default_batch(50_000) == 1342
    assert rank_bench.default_batch(50_000, budget_bytes=1) == 1
