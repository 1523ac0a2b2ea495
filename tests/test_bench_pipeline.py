"""bench/pipeline.py: every stage reports, in one JSON object (no wall-clock assertions)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench" / "pipeline.py"
STAGES = ("ingest", "embed", "profiles", "evaluate", "recommend")


def test_tiny_pipeline_reports_every_stage(tmp_path: Path) -> None:
    # 3,000 reviews (300 users, 150 items), no encoder sample: stand-in vectors only.
    out = subprocess.run(
        [sys.executable, str(BENCH), "--json", "--reviews", "3000", "--embed-sample", "0",
         "--scorers", "popularity,content", "--workdir", str(tmp_path)],
        stdout=subprocess.PIPE, text=True, check=True, timeout=600,
    )
    result = json.loads(out.stdout)
    assert result["reviews"] == 3000
    assert {"n_users", "n_items", "stages", "peak_rss_mib", "total_seconds",
            "embed_extrapolated"} <= set(result)
    assert list(result["stages"]) == list(STAGES)
    for name in STAGES:
        stage = result["stages"][name]
        assert stage["seconds"] >= 0 and stage["peak_rss_mib"] > 0, name
        assert "cpu_seconds" in stage
    assert result["stages"]["ingest"]["n_reviews"] == 3000
    assert result["stages"]["embed"]["n_reviews"] == 3000
    assert result["stages"]["embed"]["stand_in_vectors"] is True
    assert result["stages"]["evaluate"]["scorers"] == ["popularity", "content"]
    assert result["stages"]["evaluate"]["n_target_users"] > 0
    assert result["stages"]["recommend"]["user_id"]
    assert not Path(result["db"]).exists()  # the temporary store is removed
