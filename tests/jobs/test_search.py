"""Hyper-parameter search (Optuna) on the tiny local BERT: validation only, resumable,
stored in DuckDB, the best trial registrable as a version.

Budgets are tiny (24 training reviews, one epoch, one head warm-up epoch, a few trials of
about two seconds each).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState

from mgi_core.cli import main, search_progress_view
from mgi_core.config import TrainConfig
from mgi_core.data.ingest import ingest_file
from mgi_core.data.snapshot import data_hash
from mgi_core.errors import ConfigError, JobError
from mgi_core.jobs import search as searching
from mgi_core.jobs.manager import job_progress, prepare_job, refresh_jobs, runs_root
from mgi_core.jobs.run_files import read_events
from mgi_core.jobs.worker import run_job
from mgi_core.progress import ProgressView
from mgi_core.store import Store
from mgi_core.store.search import (
    StudyRecord,
    TrialRecord,
    best_trial,
    get_study,
    list_studies,
    register_search,
    search_data_hash,
    study_trials,
)
from mgi_core.store.versions import get_version
from tests.tiny_model import write_review_csv

# Continuous values and one choice: every trial differs, and few trials suffice.
SPACE = {"learning_rate": {"low": 1e-4, "high": 1e-3, "log": True},
         "dropout": {"low": 0.0, "high": 0.3},
         "lora_rank": {"choices": [2, 4]}}
TINY = dict(batch_size=8, max_seq_length=16, device="cpu", lora_rank=2,
            lora_targets=("query", "value"), max_train_reviews=24, epochs=1,
            head_warmup_epochs=1)


@pytest.fixture
def tiny_store(tmp_path: Path, snapshot) -> Store:
    store = Store(tmp_path / "mgi.duckdb")
    ingest_file(store, write_review_csv(snapshot, tmp_path / "tiny.csv"), "tiny")
    yield store
    store.close()


def _config(tiny_bert: Path, **kw) -> TrainConfig:
    return TrainConfig(**{"base_model": str(tiny_bert), **TINY, **kw})


def _search(store: Store, study: str, trials: int, config: TrainConfig, should_stop=None,
            space=SPACE) -> tuple[str, Path]:
    """Prepare a search job, run it here, register it; return (final state, run folder)."""
    _, run_dir = prepare_job(store, "search", "tiny", config,
                             search={"study": study, "n_trials": trials, "space": space})
    state = run_job(run_dir, should_stop=should_stop)
    refresh_jobs(store)
    return state, run_dir


def _journal(store: Store, study: str) -> optuna.Study:
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(
        str(searching.journal_path(runs_root(store).resolve(), study))))
    return optuna.load_study(study_name=study, storage=storage)


def _count(store: Store, sql: str, *params) -> int:
    return store.cursor().execute(sql, list(params)).fetchone()[0]


def test_a_search_never_reads_the_test_split(tiny_store: Store, tiny_bert: Path) -> None:
    config = _config(tiny_bert)
    state, run_dir = _search(tiny_store, "before", 2, config)
    assert state == "finished"
    # The job's snapshot holds the train and validation reviews, and no test review.
    snapshot = pd.read_parquet(run_dir / "data.parquet")
    assert set(snapshot["split"]) == {"train", "val"}
    assert len(snapshot) == _count(tiny_store, "SELECT count(*) FROM reviews "
                                               "WHERE split IN ('train', 'val')")
    test_ids = {r[0] for r in tiny_store.cursor().execute(
        "SELECT review_id FROM reviews WHERE split = 'test'").fetchall()}
    assert test_ids and not test_ids & set(snapshot["review_id"])
    before = study_trials(tiny_store, "before")

    # Every test review rewritten: other words, the opposite rating.
    hashes = data_hash(tiny_store, "tiny"), search_data_hash(tiny_store, "tiny")
    tiny_store.cursor().execute(
        "UPDATE reviews SET text = 'awful broken returned terrible', rating = 6 - rating "
        "WHERE split = 'test'")
    assert data_hash(tiny_store, "tiny") != hashes[0]  # the dataset did change …
    assert search_data_hash(tiny_store, "tiny") == hashes[1]  # … not what a search reads
    assert _search(tiny_store, "after", 2, config)[0] == "finished"
    after = study_trials(tiny_store, "after")
    # Same seed, same train and validation reviews: the same trials, to the last bit.
    assert [(t["params"], t["value"]) for t in after] == [
        (t["params"], t["value"]) for t in before]
    assert all(t["state"] == "complete" and math.isfinite(t["value"]) for t in after)


def test_a_study_continues_until_it_has_the_trials_asked(tiny_store: Store,
                                                          tiny_bert: Path) -> None:
    config = _config(tiny_bert)
    assert _search(tiny_store, "s", 2, config)[0] == "finished"
    assert [t["trial"] for t in study_trials(tiny_store, "s")] == [0, 1]
    state, run_dir = _search(tiny_store, "s", 3, config)
    assert state == "finished"
    # The second run trained one trial (one event) and registered all three, once each.
    assert [e["trial"] for e in read_events(run_dir / "metrics.jsonl")
            if e["kind"] == "trial"] == [2]
    journal = _journal(tiny_store, "s")
    assert len(journal.get_trials(states=(TrialState.COMPLETE,))) == 3
    trials = study_trials(tiny_store, "s")
    assert [t["trial"] for t in trials] == [0, 1, 2]
    assert all(t["state"] == "complete" for t in trials)
    # A continued study does not propose its first trial again.
    assert trials[2]["params"] != trials[0]["params"]
    for t, frozen in zip(trials, journal.trials, strict=True):
        assert t["params"] == frozen.params and t["value"] == frozen.value
        assert t["val_metrics"]["objective"] == pytest.approx(t["value"])
        assert t["seconds"] > 0 and t["finished_at"] is not None
    # A third run asking three has nothing to add.
    assert _search(tiny_store, "s", 3, config)[0] == "finished"
    assert [t["trial"] for t in study_trials(tiny_store, "s")] == [0, 1, 2]

    # One study row: the base config and the space it searched; the best trial.
    [study] = list_studies(tiny_store, "tiny")
    assert (study["study"], study["n_trials"], study["n_complete"]) == ("s", 3, 3)
    assert TrainConfig.from_dict(study["base_config"]) == config
    assert study["space"] == SPACE and study["direction"] == "minimize"
    best = best_trial(tiny_store, "s")
    assert best["value"] == min(t["value"] for t in trials) == study["best_value"]
    # Three search jobs, all finished; a search makes no model version.
    assert tiny_store.cursor().execute(
        "SELECT kind, version, status FROM jobs").fetchall() == [("search", "s", "finished")] * 3
    assert _count(tiny_store, "SELECT count(*) FROM model_versions") == 0

    # Importance from the stored trials: each searched field that varied, summing to 1.
    importance = searching.param_importances(trials, study["space"], study["base_config"])
    assert importance.note is None and importance.n_trials == 3
    assert set(importance.values) <= set(SPACE) and "learning_rate" in importance.values
    assert sum(importance.values.values()) == pytest.approx(1.0)
    one = searching.param_importances(trials[:1], study["space"])
    assert one.values == {} and "at least 2 complete trials" in one.note


def test_cancel_and_crash_leave_failed_trials_that_do_not_count(tiny_store: Store,
                                                                tiny_bert: Path) -> None:
    config = _config(tiny_bert)
    run_dir: list[Path] = []

    def stop_after_a_step() -> bool:  # cancel inside the first trial
        return bool(run_dir) and job_progress(run_dir[0]).get("step", 0) >= 1

    _, folder = prepare_job(tiny_store, "search", "tiny", config,
                            search={"study": "c", "n_trials": 2, "space": SPACE})
    run_dir.append(folder)
    assert run_job(folder, should_stop=stop_after_a_step) == "cancelled"
    refresh_jobs(tiny_store)
    assert tiny_store.cursor().execute("SELECT status FROM jobs").fetchall() == [("cancelled",)]
    assert get_study(tiny_store, "c") is None  # a cancelled search registers nothing
    [cancelled] = _journal(tiny_store, "c").trials
    assert cancelled.state == TrialState.FAIL and cancelled.user_attrs["error"] == "cancelled"

    # A process that died inside a trial leaves it running in the journal.
    _journal(tiny_store, "c").ask(searching.distributions(SPACE, config))
    assert _search(tiny_store, "c", 1, config)[0] == "finished"
    trials = study_trials(tiny_store, "c")
    assert [(t["trial"], t["state"]) for t in trials] == [
        (0, "fail"), (1, "fail"), (2, "complete")]
    assert trials[1]["value"] is None and "ended" in _journal(
        tiny_store, "c").trials[1].user_attrs["error"]


def test_a_study_is_continued_only_with_its_own_settings(tiny_store: Store,
                                                          tiny_bert: Path) -> None:
    config = _config(tiny_bert)
    # Cancelled before its first trial: the study exists, with its settings, and no trial.
    assert _search(tiny_store, "x", 2, config, should_stop=lambda: True)[0] == "cancelled"
    assert _journal(tiny_store, "x").user_attrs["dataset"] == "tiny"
    with pytest.raises(JobError, match=r"base config field\(s\) epochs, seed"):
        prepare_job(tiny_store, "search", "tiny", _config(tiny_bert, epochs=2, seed=1),
                    search={"study": "x", "n_trials": 2, "space": SPACE})
    with pytest.raises(JobError, match="the search space"):
        prepare_job(tiny_store, "search", "tiny", config,
                    search={"study": "x", "n_trials": 2, "space": {"dropout": [0.0, 0.1]}})
    # Bad requests are refused before any job starts, with what is allowed.
    for search, message in (
            ({"study": "v3"}, "not a version id"),
            ({"study": "a b"}, "is not allowed"),
            ({"study": "y", "n_trials": 0}, "trials must be 1 to"),
            ({"study": "y", "space": {"nope": [1]}}, "not a TrainConfig field; searchable:"),
            ({"study": "y", "space": {"tasks": [["overall"]]}}, "changes the objective"),
            ({"study": "y", "space": {"dropout": {"low": 0, "high": 1.5}}},
             r"the value 1\.5 is refused: warmup_ratio and dropout must be in \[0, 1\)"),
            ({"study": "y", "space": {"adversarial": {"choices": ["none", "x"]}}},
             "'x' is refused")):
        with pytest.raises(ConfigError, match=message):
            prepare_job(tiny_store, "search", "tiny", config, search=search)
    assert _count(tiny_store, "SELECT count(*) FROM jobs WHERE status = 'running'") == 0


def test_importance_ranks_the_field_that_moves_the_objective() -> None:
    # The value follows the learning rate alone; dropout is noise-free and irrelevant.
    trials = [{"trial": i, "state": "complete", "value": 10 * lr,
               "params": {"learning_rate": lr, "dropout": d}}
              for i, (lr, d) in enumerate([(1e-4, 0.2), (3e-4, 0.1), (6e-4, 0.25), (9e-4, 0.05),
                                           (2e-4, 0.15), (8e-4, 0.2), (5e-4, 0.0), (1e-3, 0.3)])]
    space = {k: SPACE[k] for k in ("learning_rate", "dropout")}
    importance = searching.param_importances(trials, space)
    assert importance.values["learning_rate"] > importance.values.get("dropout", 0.0)
    same = [{**t, "value": 1.0} for t in trials]
    assert "same value" in searching.param_importances(same, space).note


def test_registering_replaces_the_trials_of_a_continued_study(tiny_store: Store) -> None:
    study = StudyRecord("r", "tiny", TrainConfig().to_dict(), SPACE, searching.OBJECTIVE)
    first = [TrialRecord(0, "complete", {"dropout": 0.1}, 2.0, {"objective": 2.0}, 1.0,
                         "2025-01-01T10:00:00")]
    register_search(tiny_store, "job-a", study, first)
    created = get_study(tiny_store, "r")["created_at"]
    second = [*first, TrialRecord(1, "fail", {"dropout": 0.2}),
              TrialRecord(2, "complete", {"dropout": 0.3}, 1.5, {"objective": float("nan")})]
    register_search(tiny_store, "job-b", study, second)
    rows = study_trials(tiny_store, "r")
    assert [(t["trial"], t["state"], t["value"]) for t in rows] == [
        (0, "complete", 2.0), (1, "fail", None), (2, "complete", 1.5)]
    assert rows[2]["val_metrics"] == {"objective": None}  # NaN is stored as null
    assert get_study(tiny_store, "r")["created_at"] == created
    assert best_trial(tiny_store, "r")["trial"] == 2


def test_cli_search_then_register_the_best_as_a_version(tmp_path: Path, snapshot,
                                                         tiny_bert: Path, capsys) -> None:
    db = tmp_path / "cli.duckdb"
    with Store(db) as store:
        ingest_file(store, write_review_csv(snapshot, tmp_path / "tiny.csv"), "tiny")
    options = ["--db", str(db), "--base-model", str(tiny_bert), "--batch-size", "8",
               "--max-seq-length", "16", "--device", "cpu", "--lora-targets", "query,value",
               "--max-train-reviews", "24", "--head-warmup-epochs", "1",
               "--embed-max-seq-length", "16", "--embed-batch-size", "32"]
    # The default space (rates, dropout, LoRA rank, adversarial training, task weighting).
    assert main(["search", "--dataset", "tiny", "--trials", "2", "--register", "--json",
                 *options]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["study"] == "tiny-search" and out["version"] == "v1"
    assert [t["trial"] for t in out["trials"]] == [0, 1]
    assert set(out["trials"][0]["params"]) == set(searching.DEFAULT_SPACE)
    best = min((t for t in out["trials"] if t["state"] == "complete"),
               key=lambda t: t["value"])
    assert out["best"]["trial"] == best["trial"]
    with Store(db) as store:
        version = get_version(store, "v1")
        study = get_study(store, "tiny-search")
    assert version["status"] == "ready" and version["dataset"] == "tiny"
    # The version's stored config is the study's base config with the best trial's values.
    expected = {**study["base_config"], **best["params"]}
    assert version["config"] == json.loads(json.dumps(expected))
    assert TrainConfig.from_dict(version["config"]) == searching.trial_config(
        study["base_config"], best["params"])
    # Run again: the study has its trials, nothing trains; the table and the best config.
    assert main(["search", "--dataset", "tiny", "--trials", "2", *options]) == 0
    text = capsys.readouterr().out
    assert "Study tiny-search on tiny: 2 complete trial(s) of 2 asked" in text
    assert f"best: trial {best['trial']} ({best['value']:.4f})" in text
    assert text.splitlines()[1].split()[:3] == ["trial", "state", "value"]
    # A bad space exits 2 and says why.
    assert main(["search", "--dataset", "tiny", "--study", "z", "--space", "{bad",
                 *options]) == 2
    assert "not valid JSON" in capsys.readouterr().err


def test_the_cli_progress_shows_the_trial_its_steps_and_the_trials_complete() -> None:
    assert search_progress_view(None) is None
    assert search_progress_view({"phase": "preparing"}) == ProgressView("preparing",
                                                                        "preparing")
    status = {"phase": "searching", "trial": 4, "trials_done": 3, "trials_target": 10,
              "step": 5, "total_steps": 12}
    assert search_progress_view(status) == ProgressView(
        "trial 4", "trial 4 (3 of 10 complete)", 5, 12, "steps")
    assert search_progress_view({**status, "phase": "done"}) is None
