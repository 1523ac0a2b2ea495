"""The CLI as a user runs it (python -m mgi_core in a subprocess), and its options, generated
from the config dataclasses, parsed in this process."""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from mgi_core import cli
from mgi_core.cli import (
    DEMO_DIR,
    build_parser,
    job_progress_view,
    main,
    train_config_from_args,
)
from mgi_core.config import IngestConfig, TrainConfig
from mgi_core.config_cli import config_from_args, option_name
from mgi_core.data.ingest import ingest_file
from mgi_core.errors import ConfigError
from mgi_core.evaluation.compare import compare
from mgi_core.evaluation.protocol import evaluate
from mgi_core.progress import ProgressView
from mgi_core.store import Store
from tests.conftest import ROOT, SHARED_DATA, small_rows, write_csv
from tests.fake_encoder import register_fake_version

MUSIC = SHARED_DATA / "amazon_digital_music.csv"
needs_shared = pytest.mark.skipif(not MUSIC.exists(), reason="shared data not beside project")


def mgi(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mgi_core", *args], cwd=ROOT, capture_output=True, text=True
    )


def _datasets(db: Path) -> list[dict]:
    result = mgi("datasets", "--json", "--db", str(db))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@needs_shared
def test_ingest_shared_music_data_reports_the_known_counts(tmp_path: Path) -> None:
    db = tmp_path / "mgi.duckdb"
    result = mgi("ingest", str(MUSIC), "--name", "dm", "--db", str(db))
    assert result.returncode == 0, result.stderr
    assert "6,898 of 6,898 rows stored" in result.stdout
    [dm] = _datasets(db)
    assert (dm["reviews"], dm["users"], dm["items"], dm["distinct_l1"]) == (6898, 2489, 381, 18)
    assert (dm["distinct_l2"], dm["distinct_l3"], dm["rejected"]) == (62, 26, 0)


@needs_shared
def test_amazon_original_column_names_ingest_through_a_mapping(tmp_path: Path) -> None:
    renamed = tmp_path / "amazon_original.csv"
    with open(MUSIC, newline="", encoding="utf-8") as src, open(
        renamed, "w", newline="", encoding="utf-8"
    ) as dst:
        reader, writer = csv.reader(src), csv.writer(dst)
        next(reader)
        writer.writerow(["reviewerID", "asin", "reviewText", "overall", "unixReviewTime",
                         "genre_path", "album"])
        writer.writerows(reader)
    db = tmp_path / "mgi.duckdb"
    result = mgi("ingest", str(renamed), "--name", "dm_orig", "--db", str(db), "--mapping",
                 "reviewerID=user_id", "asin=item_id", "reviewText=text", "overall=rating",
                 "unixReviewTime=timestamp", "genre_path=category", "album=item_title")
    assert result.returncode == 0, result.stderr
    [dm] = _datasets(db)
    assert (dm["reviews"], dm["users"], dm["items"], dm["distinct_l1"]) == (6898, 2489, 381, 18)


def test_rejected_file_exits_non_zero_with_reason_on_stderr(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "x.csv", [r[:3] for r in small_rows()],
                     header=["user_id", "item_id", "text"])
    db = tmp_path / "mgi.duckdb"
    result = mgi("ingest", str(path), "--name", "x", "--db", str(db))
    assert result.returncode == 2
    assert "Missing required column(s): rating" in result.stderr
    assert _datasets(db) == []


def test_bad_mapping_argument_is_explained(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "x.csv", small_rows())
    result = mgi("ingest", str(path), "--name", "x", "--db", str(tmp_path / "m.duckdb"),
                 "--mapping", "stars=score")
    assert result.returncode == 2
    assert "not an MGI column" in result.stderr


def test_ingest_json_and_load_demo(tmp_path: Path) -> None:
    db = tmp_path / "mgi.duckdb"
    rows = small_rows()
    rows[0][3] = "five"
    result = mgi("ingest", str(write_csv(tmp_path / "s.csv", rows)), "--name", "s",
                 "--db", str(db), "--json")
    report = json.loads(result.stdout)
    assert report["n_rejected"] == 1
    assert report["rejected_rows"][0]["line"] == 2
    # load-demo does nothing on a store that already has data …
    assert "demo not loaded" in mgi("load-demo", "--db", str(db)).stdout
    # … and loads the bundled demo into an empty one.
    empty = tmp_path / "empty.duckdb"
    assert mgi("load-demo", "--db", str(empty)).returncode == 0
    [demo] = _datasets(empty)
    assert demo["name"] == "demo" and demo["reviews"] > 2000 and demo["rejected"] == 0


# ---------------------------------------------------------------- options from the configs


def _subparser(command: str) -> argparse.ArgumentParser:
    [sub] = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return sub.choices[command]


def _cli_value(value: object) -> str:
    """A config value as the command line spells it (the inverse of the option types)."""
    if isinstance(value, tuple):
        return ",".join(value)
    if isinstance(value, dict):
        return ",".join(f"{k}={v}" for k, v in value.items())
    return str(value)


def _args(config: TrainConfig | IngestConfig) -> list[str]:
    """Every field of ``config`` as options: --name VALUE, or --flag / --no-flag."""
    out = []
    for name, value in config.to_dict().items():
        if isinstance(value, bool):
            out.append(option_name(name) if value else "--no-" + name.replace("_", "-"))
        else:
            out += [option_name(name), _cli_value(value)]
    return out


@pytest.mark.parametrize(("command", "cls"), [("train", TrainConfig), ("ingest", IngestConfig)])
def test_every_config_field_has_an_option_with_its_help(command: str, cls: type) -> None:
    options = {a.dest: a for a in _subparser(command)._actions}
    for f in dataclasses.fields(cls):
        assert option_name(f.name) in options[f.name].option_strings, f.name
        assert options[f.name].help.startswith(cls.help(f.name).replace("%", "%%")), f.name


def test_train_args_round_trip_to_the_intended_config() -> None:
    # Every field away from its default (the bool too).
    intended = TrainConfig(
        base_model="/models/tiny", tasks=("overall", "match"),
        task_weights={"overall": 1.5, "category": 0.5, "subcategory": 0.25, "match": 3.0},
        strategy="freeze", freeze_layers=2, lora_rank=4, lora_alpha=8, lora_dropout=0.2,
        lora_targets=("query", "value"), epochs=3, head_warmup_epochs=0, batch_size=8,
        learning_rate=1e-5, head_learning_rate=5e-4, weight_decay=0.0, warmup_ratio=0.2,
        dropout=0.3, grad_clip=0.5, max_seq_length=32, max_train_reviews=100,
        like_threshold=3.5, balance="none", match_scale=10.0, patience=3,
        eval_max_reviews=50, seed=7, deterministic=False, device="cpu", embed_batch_size=8,
        embed_max_seq_length=48, adalora_init_rank=8, adalora_target_rank=2,
        adalora_tinit=0.2, adalora_tfinal=0.3, adalora_delta_t=3, adversarial="pgd",
        adv_epsilon=0.5, pgd_steps=2, pgd_alpha=0.2, augment=("swap", "synonym"),
        augment_rate=0.2, augment_share=0.3, backtranslation_model="/models/bt",
        task_weighting="uncertainty", weighting_learning_rate=0.01)
    assert all(getattr(intended, f.name) != TrainConfig.default(f.name)
               for f in dataclasses.fields(TrainConfig))
    args = build_parser().parse_args(["train", "--dataset", "d", *_args(intended)])
    assert train_config_from_args(args).to_dict() == intended.to_dict()


def test_ingest_args_round_trip_to_the_intended_config() -> None:
    intended = IngestConfig(category_separator="/", rating_min=0.0, rating_max=10.0,
                            strict=True, max_rows=10, max_bytes=1000, min_year=1990,
                            max_year=2030)
    args = build_parser().parse_args(["ingest", "f.csv", "--name", "n", *_args(intended)])
    assert config_from_args(IngestConfig, args) == intended


def test_the_older_option_spellings_still_work() -> None:
    args = build_parser().parse_args([
        "train", "--dataset", "d", "--tasks", "overall,category", "--weights", "category=0.25",
        "--strategy", "freeze", "--freeze-layers", "3", "--epochs", "2", "--batch-size", "4",
        "--lr", "1e-4", "--max-seq-length", "16", "--max-train-reviews", "40",
        "--base-model", "/m", "--device", "cpu", "--seed", "5"])
    config = train_config_from_args(args)
    assert config.tasks == ("overall", "category")
    # --weights changes the tasks it names; the others keep their defaults.
    assert config.task_weights == {**TrainConfig.default("task_weights"), "category": 0.25}
    assert (config.strategy, config.freeze_layers, config.epochs, config.batch_size) == (
        "freeze", 3, 2, 4)
    assert (config.learning_rate, config.max_seq_length, config.max_train_reviews) == (
        1e-4, 16, 40)
    assert (config.base_model, config.device, config.seed) == ("/m", "cpu", 5)
    args = build_parser().parse_args([
        "ingest", "f.csv", "--name", "n", "--separator", "/", "--rating-min", "0",
        "--rating-max", "10", "--max-rows", "9", "--max-bytes", "99", "--strict"])
    assert config_from_args(IngestConfig, args) == IngestConfig(
        category_separator="/", rating_min=0.0, rating_max=10.0, max_rows=9, max_bytes=99,
        strict=True)


@pytest.mark.parametrize(("strategy", "lr"), [("lora", 3e-4), ("full", 3e-5), ("freeze", 3e-5)])
def test_the_learning_rate_defaults_to_suit_the_strategy(strategy: str, lr: float) -> None:
    args = build_parser().parse_args(["train", "--dataset", "d", "--strategy", strategy])
    assert train_config_from_args(args).learning_rate == lr
    # Without any option the config is TrainConfig's default.
    assert train_config_from_args(build_parser().parse_args(["train", "--dataset", "d"])) == \
        TrainConfig()


def test_bad_option_values_are_refused_with_what_is_allowed(
        capsys: pytest.CaptureFixture[str]) -> None:
    for bad, message in ((["--weights", "category"], "'category' is not KEY=NUMBER"),
                         (["--tasks", "overall,nope"], "['nope'] not allowed; choose from"),
                         (["--strategy", "half"], "invalid choice: 'half'")):
        with pytest.raises(SystemExit) as exc:
            build_parser().parse_args(["train", "--dataset", "d", *bad])
        assert exc.value.code == 2
        assert message in capsys.readouterr().err
    # What only the config can judge is refused by it.
    args = build_parser().parse_args(["train", "--dataset", "d", "--epochs", "0"])
    with pytest.raises(ConfigError, match="epochs must be >= 1, got 0"):
        train_config_from_args(args)


def test_train_help_lists_every_field_with_its_help() -> None:
    result = mgi("train", "--help")
    assert result.returncode == 0, result.stderr
    shown = " ".join(result.stdout.split())
    for f in dataclasses.fields(TrainConfig):
        assert option_name(f.name) in shown, f.name
        assert " ".join(TrainConfig.help(f.name).split()) in shown, f.name


# ---------------------------------------------------------------- compare


def test_compare_prints_the_verdict_under_its_table(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "mgi.duckdb"
    vocab = ["headphones", "speaker", "lens", "camera", "laptop", "keyboard", "coffee", "knife",
             "novel", "plot", "bike", "tent", "battery", "sound"]
    with Store(db) as store:
        ingest_file(store, DEMO_DIR / "reviews.csv", "demo")
        register_fake_version(store, "demo", vocab, "v1")
        register_fake_version(store, "demo", vocab[:7], "v2")
        evaluate(store, "demo", "v1", ["content_hybrid"])
        evaluate(store, "demo", "v2", ["mgi_hybrid"])
        report = compare(store, "v1:content_hybrid", "v2:mgi_hybrid", "demo")
    assert main(["compare", "v1:content_hybrid", "v2", "--db", str(db)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == report.verdict()  # under the table
    assert "ndcg@10" in "\n".join(lines[:-1])
    assert main(["compare", "v1:content_hybrid", "v2", "--db", str(db), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["verdict"] == report.verdict()
    assert out["metrics"][0]["diff"] == pytest.approx(report.results[0].diff)


# ---------------------------------------------------------------- progress on a terminal


class FakeTerminal(io.StringIO):
    """stderr as on a terminal: the CLI's progress bars draw on it."""

    def isatty(self) -> bool:
        return True


@pytest.fixture
def quick_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    """The job's status file polled every 2 ms, so that a phase of a tiny model (a few
    milliseconds) is seen on a busy machine too, as the default 0.2 s sees real ones."""
    from mgi_core.progress import PolledProgress

    class Quick(PolledProgress):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **{**kwargs, "interval": 0.002})

    monkeypatch.setattr(cli, "PolledProgress", Quick)


def _frames(text: str) -> list[str]:
    """Every redraw of every bar (lines end in '\\n', redraws start with '\\r')."""
    return [f.rstrip() for line in text.split("\n") for f in line.split("\r") if f.strip()]


def test_job_status_reads_as_a_phase_with_its_counts() -> None:
    assert job_progress_view(None, 2) is None
    assert job_progress_view({"phase": "loading encoder"}, 2) == ProgressView(
        "loading encoder", "loading encoder")
    assert job_progress_view({"phase": "training"}, 2) == ProgressView("training", "training")
    step = {"phase": "training", "epoch": 2, "step": 30, "total_steps": 40, "eta_s": 5.0}
    assert job_progress_view(step, 2) == ProgressView(
        "training", "training epoch 2/2", 30, 40, "steps")
    embedding = {"phase": "embedding", "done": 64, "total": 100}
    assert job_progress_view(embedding, 2) == ProgressView(
        "embedding", "embedding reviews", 64, 100, "reviews")
    # Once done, the embedding's counts stay: the last bar ends on them.
    assert job_progress_view({**embedding, "phase": "done", "done": 100}, 2).done == 100
    assert job_progress_view({"phase": "failed"}, 2) is None


@pytest.fixture
def demo_db(tmp_path: Path) -> Path:
    db = tmp_path / "mgi.duckdb"
    vocab = ["headphones", "speaker", "lens", "camera", "laptop", "keyboard", "coffee"]
    with Store(db) as store:
        ingest_file(store, DEMO_DIR / "reviews.csv", "demo")
        register_fake_version(store, "demo", vocab, "v1")
    return db


def test_evaluate_shows_progress_on_a_terminal_only(
        demo_db: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    args = ["evaluate", "--dataset", "demo", "--version", "v1", "--scorers", "popularity",
            "--db", str(demo_db)]
    terminal = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main(args) == 0
    frames = _frames(terminal.getvalue())
    assert frames and all(f.startswith("evaluating v1 on demo (test)") for f in frames)
    assert "users/s" in frames[0] and "ETA" in frames[0]
    n_users = json.loads(mgi(*args, "--json").stdout)["scorers"][0]["n_users"]
    assert f"{n_users:,}/{n_users:,} 100%" in frames[-1]
    # --json: nothing on stderr, even on a terminal; the JSON alone on stdout.
    capsys.readouterr()
    terminal.seek(0), terminal.truncate()
    assert main([*args, "--json"]) == 0
    assert terminal.getvalue() == ""
    json.loads(capsys.readouterr().out)


def test_evaluate_off_a_terminal_prints_no_progress(demo_db: Path) -> None:
    result = mgi("evaluate", "--dataset", "demo", "--version", "v1", "--scorers",
                 "popularity", "--db", str(demo_db))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


def test_evaluate_reports_next_interest_per_granularity_with_baselines(demo_db: Path) -> None:
    result = mgi("evaluate", "--dataset", "demo", "--version", "v1", "--scorers",
                 "popularity", "--db", str(demo_db), "--json")
    assert result.returncode == 0, result.stderr
    levels = json.loads(result.stdout)["next_interest"]["levels"]
    assert {"l1", "l2"} <= set(levels)
    for level in ("l1", "l2"):
        assert levels[level]["n_users"] > 0
        assert set(levels[level]["systems"]) == {"profile", "popular", "frequent", "recent",
                                                 "learned"}
        for metrics in levels[level]["systems"].values():
            assert set(metrics) == {"hit@1", "hit@3", "ndcg@5"}
            assert all(0.0 <= v <= 1.0 for v in metrics.values())
    text = mgi("evaluate", "--dataset", "demo", "--version", "v1", "--scorers",
               "popularity", "--db", str(demo_db))
    assert "Next interest" in text.stdout and "frequent" in text.stdout


@pytest.fixture
def tiny_db(tmp_path: Path, snapshot) -> Path:
    """The tiny corpus (every word in the tiny BERT's vocabulary) ingested as 'tiny'."""
    csv_path = tmp_path / "tiny.csv"
    snapshot[["user_id", "item_id", "text", "rating", "ts", "category", "item_title"]].rename(
        columns={"ts": "timestamp"}).to_csv(csv_path, index=False)
    db = tmp_path / "mgi.duckdb"
    with Store(db) as store:
        ingest_file(store, csv_path, "tiny")
    return db


def test_embed_on_a_terminal_shows_rate_and_eta(
        tiny_db: Path, tiny_bert: Path, monkeypatch: pytest.MonkeyPatch, quick_polls: None,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(cli, "embed_config", lambda args: TrainConfig(
        base_model=str(tiny_bert), embed_max_seq_length=16, embed_batch_size=8))
    terminal = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main(["embed", "--dataset", "tiny", "--db", str(tiny_db)]) == 0
    assert capsys.readouterr().out.strip() == "base"
    frames = _frames(terminal.getvalue())
    embedding = [f for f in frames if f.startswith("embedding reviews")]
    assert embedding, frames
    assert all("reviews/s" in f for f in embedding)
    assert any("ETA" in f for f in embedding[:-1]) or "ETA" in embedding[0]
    [tiny] = _datasets(tiny_db)
    n = tiny["reviews"]
    assert f"{n:,}/{n:,} 100%" in embedding[-1] and " in 0:" in embedding[-1]


def test_train_on_a_terminal_shows_the_epoch_and_the_embedding(
        tiny_db: Path, tiny_bert: Path, monkeypatch: pytest.MonkeyPatch,
        quick_polls: None) -> None:
    terminal = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main(["train", "--dataset", "tiny", "--db", str(tiny_db), "--base-model",
                 str(tiny_bert), "--max-train-reviews", "16", "--epochs", "1",
                 "--batch-size", "8", "--max-seq-length", "16", "--embed-max-seq-length",
                 "16", "--lora-rank", "2"]) == 0
    frames = _frames(terminal.getvalue())
    training = [f for f in frames if f.startswith("training epoch 1/1")]
    assert training and "steps/s" in training[-1]
    assert any(f.startswith("embedding reviews") and "reviews/s" in f for f in frames)


def test_ingest_on_a_terminal_shows_its_stages_and_with_json_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    path = write_csv(tmp_path / "s.csv", small_rows())
    terminal = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    stages: list[str] = []
    real = cli.IngestStages.enter
    monkeypatch.setattr(cli.IngestStages, "enter",
                        lambda self, stage, fraction: (stages.append(stage),
                                                       real(self, stage, fraction)))
    assert main(["ingest", str(path), "--name", "s", "--db", str(tmp_path / "a.duckdb")]) == 0
    assert stages == ["checking file", "reading", "validating", "storing"]
    frames = _frames(terminal.getvalue())
    # A small file is stored between two polls: at least the last stage's final line.
    assert frames and frames[-1].startswith("storing") and " in 0:" in frames[-1]
    capsys.readouterr()
    before = terminal.getvalue()
    assert main(["ingest", str(path), "--name", "s", "--db", str(tmp_path / "b.duckdb"),
                 "--json"]) == 0
    assert terminal.getvalue() == before  # --json: not a character more on stderr
    json.loads(capsys.readouterr().out)
