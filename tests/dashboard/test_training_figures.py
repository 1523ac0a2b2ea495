"""The Train page's pure helpers: figures from job events, the table, config, progress text."""

from __future__ import annotations

import dataclasses
import math
from datetime import UTC, datetime

import pytest

from dashboard.train_form import (
    HYPER_FIELDS,
    OPTION_FIELDS,
    PAGE_OMITS,
    STRATEGY_FIELDS,
    TOP_FIELDS,
    FormInput,
    build_config,
    form_input,
    form_key,
)
from dashboard.training import (
    best_epoch,
    elapsed_s,
    events_from_log,
    format_duration,
    loss_figure,
    progress_bar,
    strategy_figures,
    validation_figure,
    versions_frame,
    versions_note,
)
from mgi_core.config import TrainConfig
from mgi_core.errors import ConfigError


def _step(step: int, epoch: int, overall: float, match: float) -> dict:
    return {"kind": "step", "epoch": epoch, "step": step, "total_steps": 4,
            "loss": {"overall": overall, "match": match}, "loss_total": overall + match,
            "lr": 1e-4, "elapsed_s": step, "eta_s": 4 - step}


def _epoch(epoch: int, step: int, auc: float, objective: float, **more: float) -> dict:
    return {"kind": "epoch", "epoch": epoch, "step": step,
            "metrics": {"overall/auc": auc, "objective": objective, **more}}


# Two epochs of two steps; epoch 2 has the lower objective (0.8 < 0.9) → best epoch 2.
EVENTS = [
    _step(1, 1, 0.70, 2.0), _step(2, 1, 0.60, 1.8), _epoch(1, 2, 0.60, 0.9,
                                                           **{"match/recall@10": 0.2}),
    _step(3, 2, 0.50, 1.5), _step(4, 2, 0.40, 1.2), _epoch(2, 4, 0.75, 0.8,
                                                           **{"match/recall@10": 0.4}),
]


def _traces(fig) -> dict[str, tuple[list, list]]:
    return {t.name: (list(t.x), list(t.y)) for t in fig.data}


def test_loss_figure_has_a_line_per_task_and_the_total() -> None:
    traces = _traces(loss_figure(EVENTS))
    # Tasks in TASKS order (overall before match), then the weighted total.
    assert list(traces) == ["overall", "match", "total (Σ λ·ℓ)"]
    assert traces["overall"] == ([1, 2, 3, 4], [0.70, 0.60, 0.50, 0.40])
    assert traces["match"][1] == [2.0, 1.8, 1.5, 1.2]
    # total = overall + match at each step: 2.7, 2.4, 2.0, 1.6
    assert traces["total (Σ λ·ℓ)"][1] == pytest.approx([2.7, 2.4, 2.0, 1.6])
    # Steps are whole numbers: one tick per step while there are few, none at 0.5.
    xaxis = loss_figure(EVENTS).layout.xaxis
    assert (xaxis.tickformat, xaxis.dtick) == (",d", 1)
    assert list(loss_figure(EVENTS[:1]).layout.xaxis.range) == [0.5, 1.5]


def test_loss_figure_marks_epoch_ends_only_with_several_epochs() -> None:
    shapes = loss_figure(EVENTS).layout.shapes
    assert [s.x0 for s in shapes] == [2, 4]  # the steps where epochs 1 and 2 closed
    one_epoch = [e for e in EVENTS if e["epoch"] == 1]
    assert not loss_figure(one_epoch).layout.shapes


def test_loss_figure_skips_missing_and_nan_losses() -> None:
    events = [_step(1, 1, 0.7, 2.0), {**_step(2, 1, math.nan, 1.0), "loss": {"match": 1.0}}]
    traces = _traces(loss_figure(events))
    assert traces["overall"] == ([1], [0.7])  # step 2 has no overall loss
    assert traces["match"] == ([1, 2], [2.0, 1.0])


def test_empty_events_give_figures_that_say_so() -> None:
    assert loss_figure([]).layout.annotations[0].text == "No training steps yet"
    assert validation_figure([]).layout.annotations[0].text == "Measured after each epoch"
    # Steps without an epoch end: still nothing to draw for validation.
    assert not validation_figure(EVENTS[:2]).data


def test_validation_figure_draws_metrics_per_epoch_and_marks_the_best() -> None:
    fig = validation_figure(EVENTS)
    traces = _traces(fig)
    assert traces == {"overall AUC": ([1, 2], [0.60, 0.75]),
                      "match recall@10": ([1, 2], [0.2, 0.4])}
    assert [s.x0 for s in fig.layout.shapes] == [2]  # best = epoch 2 (objective 0.8)
    assert list(fig.layout.yaxis.range) == [0, 1.02]


def test_best_epoch_is_the_lowest_objective() -> None:
    assert best_epoch(EVENTS) == 2
    # NaN objectives are ignored; no epoch at all gives None.
    assert best_epoch([_epoch(1, 1, 0.5, math.nan), _epoch(2, 2, 0.5, 3.0)]) == 2
    assert best_epoch(EVENTS[:2]) is None


def test_events_from_the_stored_log_draw_the_same_curves() -> None:
    # training_log rows as register_run writes them: loss/<task>, loss/total, val/<metric>.
    rows = []
    for e in EVENTS:
        if e["kind"] == "step":
            rows += [(e["step"], e["epoch"], f"loss/{t}", v) for t, v in e["loss"].items()]
            rows.append((e["step"], e["epoch"], "loss/total", e["loss_total"]))
        else:
            rows += [(e["step"], e["epoch"], f"val/{m}", v) for m, v in e["metrics"].items()]
    rebuilt = events_from_log(sorted(rows, key=lambda r: (r[0], r[2])))
    assert [(e["kind"], e["step"]) for e in rebuilt] == [
        ("step", 1), ("step", 2), ("epoch", 2), ("step", 3), ("step", 4), ("epoch", 4)]
    assert _traces(loss_figure(rebuilt)) == _traces(loss_figure(EVENTS))
    assert _traces(validation_figure(rebuilt)) == _traces(validation_figure(EVENTS))


def test_strategy_curves_survive_the_stored_log() -> None:
    # Learned task weights, AdaLoRA's rank budget and the adversarial loss, as fine_tune logs
    # them, written by the registration's log rows and read back for the Metrics page.
    from mgi_core.jobs.manager import _log_rows

    events = [{"kind": "step", "epoch": 1, "step": s, "loss": {"overall": 0.5, "match": 2.0},
               "loss_total": 1.0, "weights": {"overall": 1.0 + s / 10, "match": 1.0 - s / 10},
               "rank_budget": 48 - 4 * s, "adv_loss": 1.1} for s in (1, 2, 3)]
    rows = [row[1:] for row in _log_rows("v1", events)]
    rebuilt = events_from_log(sorted(rows, key=lambda r: (r[0], r[2])))
    assert [e["weights"] for e in rebuilt] == [e["weights"] for e in events]
    assert [e["rank_budget"] for e in rebuilt] == [44, 40, 36]
    assert all(e["adv_loss"] == 1.1 and set(e["loss"]) == {"overall", "match"}
               for e in rebuilt)
    weights, budget = strategy_figures(rebuilt)
    assert [t.name for t in weights.data] == ["overall", "match"]
    assert list(weights.data[1].y) == pytest.approx([0.9, 0.8, 0.7])
    assert list(budget.data[0].y) == [44, 40, 36]
    assert "learned" in loss_figure(rebuilt).data[-1].name
    assert strategy_figures(EVENTS) == []  # a fixed-λ LoRA run draws none


def test_the_strategy_column_names_the_training_options() -> None:
    plain = {"version": "v1", "strategy": "lora", "config": {"adversarial": "none"}}
    tuned = {"version": "v2", "strategy": "adalora", "config": {
        "adversarial": "fgm", "adv_epsilon": 0.25, "augment": ["swap"],
        "task_weighting": "uncertainty"}}
    frame = versions_frame([plain, tuned])
    assert frame["strategy"].tolist() == ["lora", "adalora + fgm ε=0.25 + augment + learned λ"]


def test_versions_frame_has_the_headline_metrics() -> None:
    versions = [
        {"version": "v2", "kind": "fine-tuned", "dataset": "d", "strategy": "lora",
         "status": "failed", "metrics": None, "message": "boom", "created_at": None},
        {"version": "v1", "kind": "fine-tuned", "dataset": "d", "strategy": "full",
         "status": "ready", "metrics": {"overall/auc": 0.8, "category/macro_f1": 0.5,
                                        "subcategory/macro_f1": math.nan,
                                        "match/recall@10": 0.3},
         "message": None, "created_at": None},
    ]
    frame = versions_frame(versions).set_index("version")
    assert frame.loc["v1", "AUC"] == 0.8 and frame.loc["v1", "R@10"] == 0.3
    assert math.isnan(frame.loc["v1", "F1 L2"])  # NaN stays empty, not a number
    assert frame.loc["v2", "message"] == "boom" and math.isnan(frame.loc["v2", "AUC"])
    assert frame.loc["v1", "message"] == ""  # no message: an empty cell, not "None"
    assert versions_frame([]).columns[0] == "version"


def test_versions_frame_says_what_the_base_version_is() -> None:
    base = {"version": "base", "kind": "base", "dataset": None, "strategy": None,
            "status": "ready", "metrics": None, "message": None, "created_at": None}
    tuned = {"version": "v1", "kind": "fine-tuned", "dataset": "d", "strategy": "lora",
             "status": "ready", "metrics": None, "message": None, "created_at": None}
    frame = versions_frame([base, tuned], {"base": ["d", "other"], "v1": ["d"]})
    frame = frame.set_index("version")
    # base is not trained: pre-trained, on every dataset it has embedded.
    assert frame.loc["base", ["dataset", "strategy"]].tolist() == ["d, other", "pre-trained"]
    assert frame.loc["v1", ["dataset", "strategy"]].tolist() == ["d", "lora"]
    alone = versions_frame([base]).set_index("version")  # no embeddings known: a dash
    assert alone.loc["base", ["dataset", "strategy"]].tolist() == ["—", "pre-trained"]


def test_versions_note_covers_the_embedding_job_that_adds_no_row_yet() -> None:
    embed = {"kind": "embed", "version": "base", "dataset": "shop"}
    train = {"kind": "train", "version": "v1", "dataset": "shop"}
    assert versions_note(embed, any_versions=False) == (
        "No versions yet: version base appears here when the embedding job above finishes.")
    assert versions_note(embed, any_versions=True) == (
        "shop joins version base's datasets when the embedding job above finishes.")
    assert versions_note(None, any_versions=False).startswith("No versions yet: train one")
    assert versions_note(None, any_versions=True) is None
    assert versions_note(train, any_versions=True) is None  # its version is listed, running


def test_elapsed_runs_from_the_start_time() -> None:
    now = datetime(2024, 5, 1, 12, 0, 30).timestamp()  # naive: local time, as DuckDB gives
    assert elapsed_s(datetime(2024, 5, 1, 12, 0, 0), now=now) == pytest.approx(30)
    aware = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
    assert elapsed_s(aware, now=aware.timestamp() + 75) == pytest.approx(75)
    assert elapsed_s(now - 5, now=now) == pytest.approx(5)  # epoch seconds (status.json)
    assert elapsed_s(None) is None and elapsed_s(math.nan) is None
    assert 0 <= elapsed_s(datetime.now()) < 60  # default: the current time


def test_build_config_from_form_values() -> None:
    config = build_config({
        "train_base_model": " /models/tiny ", "train_tasks": ["overall", "match"],
        "train_w_overall": 2.0, "train_w_match": 0.5, "train_w_category": 9.0,
        "train_strategy": "freeze", "train_freeze_layers": 2, "train_epochs": 3,
        "train_max_reviews": 0, "train_embed_max_seq_length": 64,
    })
    assert config.base_model == "/models/tiny" and config.tasks == ("overall", "match")
    # Only the chosen tasks keep a weight; 0 max reviews means all (None).
    assert config.task_weights == {"overall": 2.0, "match": 0.5}
    assert (config.strategy, config.freeze_layers, config.epochs) == ("freeze", 2, 3)
    assert config.max_train_reviews is None and config.embed_max_seq_length == 64
    assert build_config({"train_max_reviews": 32}).max_train_reviews == 32
    with pytest.raises(ConfigError, match="tasks"):
        build_config({"train_tasks": []})


def test_every_field_has_one_place_on_the_form() -> None:
    # A strategy's fields show only under it: LoRA and AdaLoRA share the adapter's.
    strategy_fields = dict.fromkeys(n for names in STRATEGY_FIELDS.values() for n in names)
    assert all(len(set(names)) == len(names) for names in STRATEGY_FIELDS.values())
    placed = [*TOP_FIELDS, *strategy_fields, *HYPER_FIELDS, *OPTION_FIELDS, *PAGE_OMITS]
    assert sorted(placed) == sorted(f.name for f in dataclasses.fields(TrainConfig))


def test_form_inputs_take_label_help_default_and_minimum_from_the_field() -> None:
    epochs = form_input("epochs")
    assert (epochs.key, epochs.label, epochs.kind, epochs.value, epochs.min_value) == (
        "train_epochs", "Epochs", "int", 1, 1)
    assert epochs.help == TrainConfig.help("epochs")
    # Labels the browser test types into, and the older session keys.
    assert [(form_input(n).label, form_input(n).key) for n in (
        "max_train_reviews", "max_seq_length", "embed_max_seq_length", "learning_rate")] == [
        ("Max training reviews", "train_max_reviews"),
        ("Max sequence length", "train_max_seq_length"),
        ("Embedding max length", "train_embed_max_seq_length"),
        ("Encoder learning rate", "train_lr")]
    # An unset optional number shows 0, and the help says what 0 means.
    reviews = form_input("max_train_reviews")
    assert (reviews.value, reviews.min_value) == (0, 0)
    assert reviews.help.endswith(" 0 = all.")
    # Learning rates in scientific notation, stepping a tenth of their magnitude.
    lr = form_input("learning_rate")
    assert (lr.kind, lr.format, lr.step) == ("float", "%.1e", pytest.approx(1e-5))
    assert form_input("dropout").min_value == 0.0 and form_input("dropout").step == 0.01
    assert form_input("balance").options == ("class_weights", "none")
    assert (form_input("deterministic").kind, form_input("lora_targets").kind) == (
        "bool", "list")


def _nudged(spec: FormInput) -> object:
    """A valid value other than the input's default."""
    if spec.kind == "bool":
        return not spec.value
    if spec.kind == "choice":
        return spec.options[-1]
    if spec.kind == "list":
        return "query,value"
    if spec.kind == "multi":
        return [spec.options[-1], spec.options[0]]
    if spec.kind == "text":
        return spec.value + "/elsewhere"
    return spec.value + 3 if spec.kind == "int" else spec.value / 2


def test_every_hyper_parameter_reaches_the_config() -> None:
    # Each input's default, nudged, comes back in the config (no field is dropped).
    values, expected = {}, {}
    for name in dict.fromkeys(HYPER_FIELDS + OPTION_FIELDS + STRATEGY_FIELDS["adalora"]
                              + STRATEGY_FIELDS["lora"]):
        spec = form_input(name)
        value = _nudged(spec)
        values[form_key(name)] = value
        expected[name] = (("query", "value") if spec.kind == "list"
                          else tuple(value) if spec.kind == "multi" else value)
    config = build_config(values)
    assert {name: getattr(config, name) for name in expected} == expected


@pytest.mark.parametrize(("seconds", "text"), [
    (None, "—"), (math.nan, "—"), (44.6, "45 s"), (185, "3 min 05 s"), (7440, "2 h 04 min")])
def test_format_duration(seconds, text) -> None:
    assert format_duration(seconds) == text


def test_progress_bar_per_phase() -> None:
    training = {"phase": "training", "epoch": 2, "step": 30, "total_steps": 120, "eta_s": 90}
    assert progress_bar(training, epochs=4) == (
        0.25, "Training · epoch 2 of 4 · step 30 of 120 · ETA 1 min 30 s")
    embedding = {"phase": "embedding", "done": 640, "total": 2560}
    assert progress_bar(embedding) == (0.25, "Embedding the reviews · 640 of 2,560 reviews")
    assert progress_bar({"phase": "loading encoder"}) == (0.0, "Loading the encoder")
    assert progress_bar({}) == (0.0, "Starting")
