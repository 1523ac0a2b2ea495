"""Hyper-parameter search of the fine-tune with Optuna, on the validation split only.

A *study* varies some TrainConfig fields (its *space*) around a base config. Each trial
trains a fresh encoder with the base config and the trial's values (``fine_tune``) and is
worth its best epoch's validation objective, ``Σ_k λ_k · val_loss_k`` with the fixed λ
(``val_metrics["objective"]``, lower is better). Values are proposed by a TPE sampler seeded
from the base config's seed.

A search job's snapshot holds the train and validation reviews only
(``store.search.export_search_snapshot``): it cannot read the test split. The study lives in
an Optuna journal file (``runs/studies/<study>.journal``), so running the same study again
continues it until it has the number of complete trials asked for: after a cancel, a crash or
a timeout. A trial that was running when its process died is marked failed and does not
count. When a run ends, its job registers every trial of the study in DuckDB
(``store.search.register_search``); a search makes no model version (``--register`` on the
command line, or the Metrics page's button, trains one with the best trial's config).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import re
import time
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mgi_core.config import TrainConfig
from mgi_core.errors import ConfigError, JobError
from mgi_core.store.search import SEARCH_SPLITS, StudyRecord, TrialRecord

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

OBJECTIVE = ("validation objective: Σ fixed λ_k · validation loss_k at the best epoch "
             "(lower is better)")
DIRECTION = "minimize"
STUDY_FILE = "study.json"  # in the run folder: the study and all its trials, for registration
DEFAULT_TRIALS = 10
MAX_TRIALS = 1000
# learning rates log-uniform, dropout uniform, the rest one of a few values.
DEFAULT_SPACE: dict[str, dict[str, Any]] = {
    "learning_rate": {"low": 5e-5, "high": 1e-3, "log": True},
    "head_learning_rate": {"low": 5e-4, "high": 1e-2, "log": True},
    "dropout": {"low": 0.0, "high": 0.3},
    "lora_rank": {"choices": [4, 8, 16]},
    "adversarial": {"choices": ["none", "fgm"]},
    "task_weighting": {"choices": ["fixed", "uncertainty"]},
}
# Fields a space may not vary: they change what is measured, or not the model at all.
NOT_SEARCHABLE = {
    "tasks": "it changes the objective",
    "task_weights": "the fixed λ define the objective",
    "eval_max_reviews": "it changes the validation sample the objective is measured on",
    "device": "it does not change the model",
    "deterministic": "it does not change the model",
    "embed_batch_size": "it is used after training only",
    "embed_max_seq_length": "it is used after training only",
}
_STUDY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_VERSION_LIKE = re.compile(r"base|v[0-9]+")


def default_study_name(dataset: str) -> str:
    """``<dataset>-search`` (characters a study name cannot hold become '-')."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", dataset).strip("-._")[:56] or "dataset"
    return f"{stem}-search"


def check_study_name(name: str) -> str:
    """``name`` if it can name a study (and its journal file); else ConfigError."""
    if not _STUDY_NAME.fullmatch(name or "") or _VERSION_LIKE.fullmatch(name):
        raise ConfigError(
            f"Study name {name!r} is not allowed: use 1 to 64 letters, digits, '-', '_' or "
            "'.', starting with a letter or digit, and not a version id (base, v1, …).")
    return name


@dataclass(frozen=True)
class SearchRequest:
    """What a search job does: ``n_trials`` complete trials of ``study`` over ``space``,
    starting no new trial after ``timeout_s`` seconds (None: no limit)."""

    study: str
    n_trials: int = DEFAULT_TRIALS
    timeout_s: float | None = None
    space: dict[str, Any] = field(default_factory=lambda: json.loads(json.dumps(DEFAULT_SPACE)))

    def __post_init__(self) -> None:
        check_study_name(self.study)
        if not 1 <= int(self.n_trials) <= MAX_TRIALS:
            raise ConfigError(f"trials must be 1 to {MAX_TRIALS}, got {self.n_trials}")
        if self.timeout_s is not None and not self.timeout_s > 0:
            raise ConfigError(f"timeout must be > 0 seconds, got {self.timeout_s}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SearchRequest:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def load_space(text: str | Mapping[str, Any] | None) -> dict[str, Any]:
    """A space given as JSON text (or already parsed); None: ``DEFAULT_SPACE``.

    Each entry is ``FIELD: {"low": L, "high": H}`` (optionally ``"log": true``, or ``"step"``)
    for a number, or ``FIELD: {"choices": [...]}``; a bare list means choices.
    """
    if text is None:
        return json.loads(json.dumps(DEFAULT_SPACE))
    if isinstance(text, str):
        try:
            text = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"The search space is not valid JSON: {exc}. Example: "
                              '{"learning_rate": {"low": 1e-4, "high": 1e-3, "log": true}, '
                              '"lora_rank": {"choices": [4, 8]}}') from exc
    if not isinstance(text, Mapping) or not text:
        raise ConfigError("The search space must be a non-empty JSON object "
                          "{FIELD: {\"low\": …, \"high\": …} or {\"choices\": […]}}.")
    return {name: ({"choices": list(spec)} if isinstance(spec, list) else dict(spec))
            for name, spec in text.items()}


def _optuna():
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no line per trial
    return optuna


def distributions(space: Mapping[str, Any], base: TrainConfig) -> dict[str, Any]:
    """The Optuna distribution of each field of ``space`` (see :func:`load_space`).

    Every value a field can take is checked against TrainConfig with ``base``'s other
    values: the bounds and each choice.

    Raises:
        ConfigError: an unknown or unsearchable field, a malformed entry, or a value
            TrainConfig refuses.
    """
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    hints = typing.get_type_hints(TrainConfig)
    out: dict[str, Any] = {}
    for name, spec in load_space(space).items():
        if name not in hints:
            raise ConfigError(f"The search space names {name!r}, which is not a TrainConfig "
                              f"field; searchable: {', '.join(searchable_fields())}.")
        if name in NOT_SEARCHABLE:
            raise ConfigError(f"{name} cannot be searched: {NOT_SEARCHABLE[name]}.")
        kind = _scalar_type(hints[name])
        if kind is None:
            raise ConfigError(f"{name} cannot be searched: only number, text and yes/no "
                              "fields can.")
        if not isinstance(spec, Mapping):
            raise ConfigError(f"Search space entry {name}: use {{\"low\": …, \"high\": …}} "
                              "or {\"choices\": […]}.")
        unknown = sorted(set(spec) - {"low", "high", "log", "step", "choices"})
        if unknown:
            raise ConfigError(f"Search space entry {name}: unknown key(s) {unknown}; use low, "
                              "high, log, step or choices.")
        try:
            if "choices" in spec:
                choices = list(spec["choices"])
                if not choices or any(not isinstance(c, kind) and not (
                        kind is float and isinstance(c, int)) for c in choices):
                    raise ConfigError(f"Search space entry {name}: choices must be a "
                                      f"non-empty list of {kind.__name__} values.")
                out[name] = CategoricalDistribution([kind(c) for c in choices])
                values = out[name].choices
            elif kind in (int, float) and {"low", "high"} <= set(spec):
                cls = IntDistribution if kind is int else FloatDistribution
                step = spec.get("step")
                out[name] = cls(kind(spec["low"]), kind(spec["high"]),
                                log=bool(spec.get("log", False)),
                                step=(kind(step) if step is not None else
                                      (1 if kind is int else None)))
                values = (out[name].low, out[name].high)
            else:
                raise ConfigError(f"Search space entry {name}: give low and high (numbers) "
                                  "or choices.")
        except (TypeError, ValueError) as exc:
            if isinstance(exc, ConfigError):
                raise
            raise ConfigError(f"Search space entry {name}: {exc}") from exc
        for value in values:
            try:
                dataclasses.replace(base, **{name: value})
            except ConfigError as exc:
                raise ConfigError(f"Search space entry {name}: the value {value!r} is "
                                  f"refused: {exc}") from exc
    return out


def _scalar_type(hint: Any) -> type | None:
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    kind = args[0] if len(args) == 1 else hint
    return kind if kind in (int, float, str, bool) else None


def searchable_fields() -> list[str]:
    """The TrainConfig fields a space may vary."""
    hints = typing.get_type_hints(TrainConfig)
    return [f.name for f in dataclasses.fields(TrainConfig)
            if f.name not in NOT_SEARCHABLE and _scalar_type(hints[f.name]) is not None]


def trial_config(base: TrainConfig | Mapping[str, Any], params: Mapping[str, Any]
                 ) -> TrainConfig:
    """The config a trial trains with: ``base`` with ``params`` in place.

    Raises:
        ConfigError: TrainConfig refuses the combination.
    """
    if not isinstance(base, TrainConfig):
        base = TrainConfig.from_dict(dict(base))
    return dataclasses.replace(base, **dict(params))


def journal_path(runs_root: Path, study: str) -> Path:
    """Where the journal of ``study`` lives: ``<runs>/studies/<study>.journal``."""
    return Path(runs_root) / "studies" / f"{check_study_name(study)}.journal"


def _storage(journal: Path):
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    journal.parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(journal)))


def _settings(dataset: str, base: TrainConfig, space: Mapping[str, Any],
              data_hash: str) -> dict[str, Any]:
    return {"dataset": dataset, "base_config": base.to_dict(), "space": load_space(space),
            "data_hash": data_hash, "objective": OBJECTIVE}


def _differences(stored: Mapping[str, Any], wanted: Mapping[str, Any]) -> list[str]:
    """What differs between a study's settings and a new run's, in words."""
    out = []
    if stored.get("dataset") != wanted["dataset"]:
        out.append(f"dataset ({stored.get('dataset')} then, {wanted['dataset']} now)")
    if stored.get("data_hash") != wanted["data_hash"]:
        out.append("the dataset's train and validation reviews changed")
    then = TrainConfig.from_dict(stored.get("base_config") or {}).to_dict()
    fields = sorted(k for k, v in wanted["base_config"].items() if then.get(k) != v)
    if fields:
        out.append(f"base config field(s) {', '.join(fields)}")
    if json.dumps(stored.get("space"), sort_keys=True) != json.dumps(wanted["space"],
                                                                     sort_keys=True):
        out.append("the search space")
    return out


def check_continuable(journal: Path, study: str, dataset: str, base: TrainConfig,
                      space: Mapping[str, Any], data_hash: str) -> int:
    """Whether a run of ``study`` may continue its journal; return its complete trials.

    Raises:
        JobError: the study was started with other settings (dataset, data, base config or
            space): its trials would not be comparable.
    """
    if not journal.exists():
        return 0
    optuna = _optuna()
    try:
        existing = optuna.load_study(study_name=study, storage=_storage(journal))
    except KeyError:
        return 0
    _check_settings(existing, study, _settings(dataset, base, space, data_hash))
    return _n_complete(existing)


def _check_settings(study, name: str, wanted: Mapping[str, Any]) -> None:
    stored = study.user_attrs
    if not stored:
        return
    differs = _differences(stored, wanted)
    if differs:
        raise JobError(
            f"Study {name!r} was started with other settings ({'; '.join(differs)}), so its "
            "trials would not be comparable. Run it with the settings it began with, or "
            "give the new search another study name (--study NAME).")


def _n_complete(study) -> int:
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))


def _fail_interrupted(study) -> None:
    """Mark failed the trials left running by a process that ended (one job runs at a
    time, so none is running now)."""
    from optuna.trial import TrialState

    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study._storage.set_trial_user_attr(trial._trial_id, "error",
                                           "its process ended before the trial finished")
        study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        log.info("trial %d of %s was interrupted: marked failed", trial.number,
                 study.study_name)


def trial_record(trial) -> TrialRecord:
    """A FrozenTrial as the row the store keeps."""
    attrs = trial.user_attrs
    finished = trial.datetime_complete
    return TrialRecord(
        trial=trial.number, state=trial.state.name.lower(), params=dict(trial.params),
        value=trial.value if trial.state.name == "COMPLETE" else None,
        val_metrics=dict(attrs.get("val_metrics") or {}), seconds=attrs.get("seconds"),
        finished_at=finished.isoformat() if finished else None)


def _record_dict(record: TrialRecord, error: str | None = None) -> dict[str, Any]:
    return {**dataclasses.asdict(record), "error": error}


def run_study(snapshot: pd.DataFrame, base: TrainConfig, request: SearchRequest,
              journal: Path, *, dataset: str, data_hash: str,
              on_trial: Callable[[dict[str, Any], int], None] | None = None,
              on_step: Callable[[int, dict[str, Any]], None] | None = None,
              should_stop: Callable[[], bool] | None = None) -> list[TrialRecord]:
    """Run trials of ``request.study`` until it has ``request.n_trials`` complete ones.

    Each new trial trains a fresh encoder (``base_model`` of ``base``) on ``snapshot``'s
    train reviews and is measured on its validation reviews. ``on_trial(record, n_complete)``
    follows each trial that ends (``record``: a :class:`TrialRecord` as a dict, with
    ``error``); ``on_step(trial, event)`` passes on the trainer's events. A run makes at most
    ``n_trials`` minus the complete trials new ones (a trial whose values TrainConfig refuses
    fails and counts among them) and starts none after ``timeout_s``.

    Returns:
        Every trial of the study that is not running, by number.

    Raises:
        TrainingCancelled: ``should_stop()`` said so (between trials or inside one; that
            trial is marked failed, the others are kept).
        JobError: the snapshot holds test reviews, or has no validation review; or the
            study was started with other settings.
    """
    from mgi_core.encoder.train import TrainingCancelled

    optuna = _optuna()
    from optuna.trial import TrialState

    splits = set(snapshot["split"].unique())
    if not splits <= set(SEARCH_SPLITS):
        raise JobError(f"A search reads the train and validation reviews only; this snapshot "
                       f"holds {sorted(splits - set(SEARCH_SPLITS))} too.")
    if "val" not in splits:
        raise JobError("The dataset has no validation review (users need at least 3 "
                       "reviews), so a search has nothing to measure trials on.")
    space = load_space(request.space)
    dists = distributions(space, base)
    stop = should_stop or (lambda: False)
    study = optuna.create_study(storage=_storage(journal), study_name=request.study,
                                direction=DIRECTION, load_if_exists=True)
    wanted = _settings(dataset, base, space, data_hash)
    _check_settings(study, request.study, wanted)
    if not study.user_attrs:
        for key, value in wanted.items():
            study.set_user_attr(key, value)
    _fail_interrupted(study)
    done = _n_complete(study)
    # Seeded from the config's seed and the trials so far: a continued study does not
    # propose its first trials again.
    study.sampler = optuna.samplers.TPESampler(
        seed=base.seed + len(study.trials),
        n_startup_trials=max(2, min(10, request.n_trials // 3)))
    started = time.monotonic()
    for _ in range(max(0, request.n_trials - done)):
        if request.timeout_s is not None and time.monotonic() - started >= request.timeout_s:
            log.info("search %s: timeout after %d complete trials", request.study, done)
            break
        if stop():
            raise TrainingCancelled("The search was cancelled; its finished trials are kept: "
                                    "run it again to continue it.")
        trial = study.ask(dists)
        t0 = time.monotonic()
        error = None
        try:
            config = trial_config(base, trial.params)
            value, metrics = _train_trial(snapshot, config, trial.number, on_step, stop)
        except ConfigError as exc:  # a combination TrainConfig refuses
            error = str(exc)
        except BaseException as exc:
            why = "cancelled" if isinstance(exc, TrainingCancelled) else repr(exc)
            trial.set_user_attr("error", why)
            study.tell(trial, state=TrialState.FAIL)
            raise
        trial.set_user_attr("seconds", round(time.monotonic() - t0, 3))
        if error is None and not math.isfinite(value):
            error = f"the validation objective is {value}"
        if error is None:
            trial.set_user_attr("val_metrics", metrics)
            frozen = study.tell(trial, value)
        else:
            trial.set_user_attr("error", error)
            frozen = study.tell(trial, state=TrialState.FAIL)
        done += frozen.state == TrialState.COMPLETE
        if on_trial is not None:
            on_trial(_record_dict(trial_record(frozen), error), done)
    return [trial_record(t) for t in study.get_trials(deepcopy=False)
            if t.state != TrialState.RUNNING]


def _train_trial(snapshot: pd.DataFrame, config: TrainConfig, number: int,
                 on_step: Callable[[int, dict[str, Any]], None] | None,
                 stop: Callable[[], bool]) -> tuple[float, dict[str, float]]:
    """(objective, best-epoch validation metrics) of one fine-tune with ``config``."""
    from mgi_core.encoder.model import load_encoder
    from mgi_core.encoder.tasks import build_task_data
    from mgi_core.encoder.train import fine_tune

    encoder = load_encoder(config.base_model, config.max_seq_length, config.device)
    data = build_task_data(snapshot, config)
    events = None if on_step is None else (lambda event: on_step(number, event))
    result = fine_tune(encoder, data, config, on_event=events, should_stop=stop)
    metrics = {k: (float(v) if isinstance(v, int | float) and math.isfinite(v) else None)
               for k, v in result.val_metrics.items()}
    value = result.val_metrics.get("objective", math.nan)
    return float(value), metrics


def search_progress(run_dir: Path) -> dict[str, Any]:
    """Where a search job stands: ``study``, ``trials_done`` (complete), ``trials_target``
    and the ``trial`` running, from its run folder (before the job process writes its
    status, from job.json alone)."""
    from mgi_core.jobs.run_files import RunFiles, read_json

    files = RunFiles(Path(run_dir))
    spec = (read_json(files.job) or {}).get("search") or {}
    status = read_json(files.status) or {}
    return {"study": spec.get("study"), "trials_done": status.get("trials_done", 0),
            "trials_target": spec.get("n_trials"), "trial": status.get("trial")}


def study_file(run_dir: Path) -> Path:
    return Path(run_dir) / STUDY_FILE


def write_study_file(run_dir: Path, study: StudyRecord, trials: Sequence[TrialRecord]) -> None:
    """What registration stores: the study's settings and every trial (``study.json``)."""
    from mgi_core.jobs.run_files import write_json_atomic

    write_json_atomic(study_file(run_dir), {
        "study": dataclasses.asdict(study), "trials": [dataclasses.asdict(t) for t in trials]})


def read_study_file(run_dir: Path) -> tuple[StudyRecord, list[TrialRecord]]:
    """The study and trials a finished search run wrote.

    Raises:
        ValueError: the file is missing or damaged.
    """
    from mgi_core.jobs.run_files import read_json

    data = read_json(study_file(run_dir))
    if not data or "study" not in data:
        raise ValueError(f"the search run has no readable {STUDY_FILE}")
    return (StudyRecord(**data["study"]),
            [TrialRecord(**t) for t in data.get("trials", [])])


@dataclass(frozen=True)
class Importance:
    """Parameter importances (PED-ANOVA, Optuna's default; they sum to 1), or why there are
    none (``note``)."""

    values: dict[str, float]
    n_trials: int
    note: str | None = None


def param_importances(trials: Sequence[Mapping[str, Any]], space: Mapping[str, Any],
                      base: TrainConfig | Mapping[str, Any] | None = None) -> Importance:
    """How much each searched field explains the objective, from stored trials.

    An in-memory Optuna study is rebuilt from the complete trials (``store.search
    .study_trials`` rows: params and value) over ``space``'s distributions.
    """
    optuna = _optuna()
    if base is not None and not isinstance(base, TrainConfig):
        base = TrainConfig.from_dict(dict(base))
    try:
        dists = distributions(space, base or TrainConfig())
    except ConfigError as exc:  # a study stored before TrainConfig changed
        return Importance({}, 0, f"The study's space no longer fits the training config: {exc}")
    complete = [t for t in trials if t.get("state") == "complete" and t.get("value") is not None
                and set(t.get("params") or {}) <= set(dists)]
    n = len(complete)
    if n < 2:
        return Importance({}, n, f"Importance needs at least 2 complete trials; this study has "
                                 f"{n}.")
    varied = [p for p in dists if len({json.dumps(t["params"].get(p)) for t in complete}) > 1]
    if not varied:
        return Importance({}, n, "Every complete trial has the same values: nothing to tell "
                                 "the parameters apart.")
    if len({float(t["value"]) for t in complete}) < 2:
        return Importance({}, n, "Every complete trial has the same value: no parameter "
                                 "explains a difference.")
    study = optuna.create_study(direction=DIRECTION)
    for t in complete:
        params = {k: v for k, v in t["params"].items() if k in dists}
        study.add_trial(optuna.trial.create_trial(
            params=params, distributions={k: dists[k] for k in params},
            value=float(t["value"])))
    values = optuna.importance.get_param_importances(study, params=varied)
    return Importance({k: float(v) for k, v in values.items()}, n)
