"""The Metrics page's hyper-parameter search section under AppTest.

The demo data with a stored study (rows written as a finished search registers them: no
training here); the buttons start real jobs whose child process is not spawned (the job
stays with this process and is cancelled at the end).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from dashboard.resources import _open_store
from mgi_core.cli import DEMO_DIR
from mgi_core.config import TrainConfig
from mgi_core.data.ingest import ingest_file
from mgi_core.jobs import manager
from mgi_core.jobs import search as searching
from mgi_core.jobs.manager import cancel_job, list_jobs
from mgi_core.store import Store
from mgi_core.store.search import StudyRecord, TrialRecord, register_search
from mgi_core.store.versions import get_version
from tests.app.pages import open_page
from tests.app.pages import run as _run
from tests.app.pages import texts as _texts
from tests.app.test_compare_page import VOCAB, _array
from tests.fake_encoder import register_fake_version

PAGE = "app_pages/metrics.py"
SPACE = {"learning_rate": {"low": 1e-4, "high": 1e-3, "log": True},
         "dropout": {"low": 0.0, "high": 0.3}, "lora_rank": {"choices": [4, 8]}}
BASE = TrainConfig(epochs=2, seed=5)
# The objective follows the learning rate; trial 3 failed; trial 2 is the best.
TRIALS = [
    TrialRecord(0, "complete", {"learning_rate": 8e-4, "dropout": 0.1, "lora_rank": 4}, 2.4,
                {"objective": 2.4}, 3.0, "2025-01-01T10:00:00"),
    TrialRecord(1, "complete", {"learning_rate": 5e-4, "dropout": 0.25, "lora_rank": 8}, 2.1,
                {"objective": 2.1}, 3.2, "2025-01-01T10:01:00"),
    TrialRecord(2, "complete", {"learning_rate": 1.5e-4, "dropout": 0.05, "lora_rank": 8},
                1.7, {"objective": 1.7}, 2.9, "2025-01-01T10:02:00"),
    TrialRecord(3, "fail", {"learning_rate": 3e-4, "dropout": 0.2, "lora_rank": 4}),
]


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    path = tmp_path / "app.duckdb"
    monkeypatch.setenv("MGI_DB", str(path))
    monkeypatch.setenv("MGI_RUNS", str(tmp_path / "runs"))
    yield path
    _open_store(str(path)).close()
    _open_store.clear()


@pytest.fixture
def demo(db: Path) -> Store:
    store = _open_store(str(db))
    ingest_file(store, DEMO_DIR / "reviews.csv", "demo")
    register_fake_version(store, "demo", VOCAB, "v1")
    return store


@pytest.fixture
def no_spawn(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Jobs are prepared and recorded, but no child process starts (``spawn`` noted)."""
    spawned: list[Path] = []
    monkeypatch.setattr(manager, "spawn", lambda store, run_dir: spawned.append(run_dir) or 0)
    return spawned


def _study(store: Store) -> None:
    record = StudyRecord("demo-search", "demo", BASE.to_dict(), SPACE, searching.OBJECTIVE)
    register_search(store, "no-job", record, TRIALS)


def _frame(at: AppTest, first_column: str):
    """The table whose first column is ``first_column``."""
    return next(d.value for d in at.dataframe if d.value.columns[0] == first_column)


def _chart(at: AppTest, title: str) -> dict:
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    [spec] = [s for s in specs if s["layout"]["title"]["text"] == title]
    return spec


def test_without_a_study_the_cli_command_and_a_search_in_the_background(
        demo: Store, no_spawn: list[Path]) -> None:
    at = open_page(PAGE)
    assert "Hyper-parameter search" in _texts(at.header)
    assert "python -m mgi_core search --dataset demo --trials 10" in _texts(at.caption)
    at.number_input(key="metrics_search_trials_n").set_value(3)
    assert at.number_input(key="metrics_search_reviews").value == 1000  # a budget per trial
    at.number_input(key="metrics_search_reviews").set_value(500)
    at.button(key="metrics_search_start").click()
    at = _run(at)
    assert "Started search **demo-search** on demo in the background" in _texts(at.success)
    [job] = list_jobs(demo)
    assert (job["kind"], job["version"], job["status"]) == ("search", "demo-search", "running")
    job_file = json.loads((no_spawn[0] / "job.json").read_text())
    assert (job_file["search"]["study"], job_file["search"]["n_trials"]) == ("demo-search", 3)
    assert job_file["config"]["max_train_reviews"] == 500
    at = _run(at)  # while it runs: said, and no second start
    assert "Search **demo-search** is running: 0 of 3 trials complete" in _texts(at.info)
    assert not [b for b in at.button if b.key == "metrics_search_start"]
    cancel_job(demo, "demo-search")


def test_a_study_shows_its_trials_best_config_and_importance(demo: Store,
                                                             no_spawn: list[Path]) -> None:
    _study(demo)
    at = open_page(PAGE)
    assert at.selectbox(key="metrics_search_study").value == "demo-search"
    trials = _frame(at, "trial")
    assert trials.columns.tolist() == ["trial", "state", "value", "seconds", "dropout",
                                       "learning_rate", "lora_rank"]
    assert trials["trial"].tolist() == [0, 1, 2, 3]
    assert trials["state"].tolist() == ["complete"] * 3 + ["fail"]
    assert trials["value"].tolist()[:3] == [2.4, 2.1, 1.7]
    assert trials["learning_rate"].tolist() == [8e-4, 5e-4, 1.5e-4, 3e-4]
    # The best configuration: trial 2's values beside the base config's.
    assert "**Best configuration** · trial 2 · objective 1.7000" in [m.value for m in
                                                                      at.markdown]
    best = _frame(at, "field").set_index("field")
    assert best.loc["learning_rate", "best"] == "0.00015"
    assert best.loc["lora_rank", "best"] == "8"
    assert best.loc["lora_rank", "base"] == str(BASE.lora_rank)
    # Importance of the fields that varied across the three complete trials; sums to 1.
    bars = _chart(at, "Parameter importance")["data"][0]
    assert set(bars["y"]) <= set(SPACE) and "learning_rate" in bars["y"]
    assert sum(_array(bars["x"])) == pytest.approx(1.0)
    values = _chart(at, "Validation objective per trial (lower is better)")["data"]
    assert _array(values[1]["y"]).tolist() == [2.4, 2.1, 1.7]  # best so far

    # The button starts a normal training job with the base config and the best values.
    at.button(key="metrics_search_train").click()
    at = _run(at)
    assert "Started training version **v2** with the best configuration" in _texts(at.success)
    info = get_version(demo, "v2", usable=False)
    assert info["status"] == "running"
    assert TrainConfig.from_dict(info["config"]) == searching.trial_config(
        BASE, TRIALS[2].params)
    assert len(no_spawn) == 1
    cancel_job(demo, "v2")


def test_a_dataset_without_versions_still_shows_its_study(db: Path) -> None:
    store = _open_store(str(db))
    ingest_file(store, DEMO_DIR / "reviews.csv", "demo")
    _study(store)
    at = open_page(PAGE)
    assert "No model versions for demo yet" in _texts(at.info)
    assert _frame(at, "trial")["trial"].tolist() == [0, 1, 2, 3]
