"""bench/incremental.py: an append's incremental update equals the full rebuild (1e-5) and
every stage reports, in one JSON object (no wall-clock assertions)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench" / "incremental.py"
STAGES = ("ingest", "embed", "profiles", "append", "export", "update", "full", "check")


def test_tiny_incremental_bench_equals_the_full_rebuild(tmp_path: Path) -> None:
    # 3,000 reviews (300 users, 150 items); 2 % appended: the newest review of 60 users,
    # stand-in vectors; a 90-day half-life so the touched users' weights all decay anew.
    out = subprocess.run(
        [sys.executable, str(BENCH), "--json", "--reviews", "3000", "--append-share", "0.02",
         "--half-life", "90", "--workdir", str(tmp_path)],
        stdout=subprocess.PIPE, text=True, check=True, timeout=600,
    )
    result = json.loads(out.stdout)
    assert result["reviews"] == 3000 and result["half_life"] == 90
    assert {"incremental_seconds", "full_seconds", "ratio", "ratio_with_append",
            "touched_users", "touched_items", "max_abs_diff", "item_max_abs_diff",
            "peak_rss_mib", "total_seconds"} <= set(result)
    assert list(result["stages"]) == list(STAGES)
    for name in STAGES:
        stage = result["stages"][name]
        assert stage["seconds"] >= 0 and stage["peak_rss_mib"] > 0, name
        assert "cpu_seconds" in stage
    stages = result["stages"]
    # 60 reviews appended (2 % of 3,000), one per drawn user, all embedded by the update;
    # the first file's 2,940 reviews got their vectors from the embed stage.
    assert stages["append"]["n_reviews"] == result["n_appended"] == 60
    assert stages["append"]["n_users"] == 60 and stages["append"]["n_rejected"] == 0
    assert stages["embed"]["n_reviews"] == 2940
    assert stages["export"]["n_reviews"] == stages["update"]["n_reviews"] == 60
    assert result["touched_users"] == 60 and 0 < result["touched_items"] <= 150
    assert result["ratio"] == result["incremental_seconds"] / result["full_seconds"]
    # The incremental state equals the full rebuild of the same store ...
    assert result["rows_equal"] and result["n_rows_differing"] == 0
    assert result["n_keywords_differing"] == 0  # labels ranked again as a rebuild ranks them
    assert result["max_abs_diff"] <= 1e-5 and result["max_abs_diff_values"] <= 1e-5
    assert result["items_equal"] and result["item_max_abs_diff"] <= 1e-5
    # ... while the profiles before the update do not: the check sees a missed update.
    assert result["before_update_max_abs_diff"] > 1e-3
    assert result["before_update_rows_differing"] > 0
    assert result["kept"] is False and not Path(result["folder"]).exists()  # removed
